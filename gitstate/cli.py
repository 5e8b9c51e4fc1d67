"""The ``gitstate`` command line: click commands that parse, call the core, and print.

Errors become messages here and nowhere else (``_Group.invoke``): a
``GitStateError`` prints ``error: <message>`` on stderr (and, with ``--json``,
a JSON error object on stdout) and exits with its code. Heavy modules are
imported inside commands so that ``--help`` and completion stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from gitstate import __version__
from gitstate.errors import EXIT_FAILED, GitStateError, InvalidInput

if TYPE_CHECKING:
    from gitstate.git import Repository
    from gitstate.store import Store

F = TypeVar("F", bound=Callable[..., Any])


class _Failure(click.ClickException):
    """A GitStateError on its way out: one line on stderr, JSON on stdout with --json."""

    def __init__(self, error: GitStateError | OSError, as_json: bool) -> None:
        if isinstance(error, OSError):
            where = f": {error.filename}" if error.filename else ""
            message, code, exit_code = f"{error.strerror or error}{where}", "os_error", EXIT_FAILED
        else:
            message, code, exit_code = str(error), error.code, error.exit_code
        super().__init__(message)
        self.status = exit_code
        self.code = code
        self.as_json = as_json

    @property
    def exit_code(self) -> int:  # click reads it per instance; ours varies per error
        return self.status

    @exit_code.setter
    def exit_code(self, value: int) -> None:
        self.status = value

    def show(self, file: Any = None) -> None:
        if self.as_json:
            from gitstate.render import dumps

            click.echo(dumps({"error": {"code": self.code, "message": self.message}}))
        click.echo(f"error: {self.message}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (GitStateError, OSError) as exc:
            raise _Failure(exc, bool(ctx.meta.get("gitstate.json"))) from None


class App:
    """What every command needs, opened on first use and closed when the command ends."""

    def __init__(self, directory: str | None, branch: str | None, agent: str | None) -> None:
        self.directory = directory
        self.branch = branch
        self.agent = agent

    @cached_property
    def repo(self) -> Repository:
        from gitstate.git import Repository

        return Repository.discover(self.directory)

    @cached_property
    def store(self) -> Store:
        from gitstate.store import DEFAULT_LOCK_TIMEOUT, Store

        timeout = os.environ.get("GITSTATE_LOCK_TIMEOUT", str(DEFAULT_LOCK_TIMEOUT))
        try:
            seconds = float(timeout)
        except ValueError:
            raise InvalidInput(f"GITSTATE_LOCK_TIMEOUT {timeout!r} is not a number of seconds") from None
        return Store(
            self.repo,
            self.branch,
            agent=self.agent,
            lock_timeout=seconds,
            notify=lambda message: click.echo(message, err=True),
        )

    def close(self) -> None:
        if "repo" in self.__dict__:
            self.repo.close()


def _app() -> App:
    return click.get_current_context().find_object(App)  # type: ignore[return-value]


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta["gitstate.json"] = True
    return value


def json_option(f: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=_remember_json,
        help="Print one JSON document on stdout, nothing else.",
    )(f)


def _echo_json(payload: dict[str, Any]) -> None:
    from gitstate.render import dumps

    click.echo(dumps(payload))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "directory",
    metavar="PATH",
    help="Run as if gitstate was started in PATH (like git -C).",
)
@click.option(
    "--branch",
    envvar="GITSTATE_BRANCH",
    help="The state branch. Default: git config gitstate.branch, else main, else master.",
)
@click.option(
    "--agent",
    envvar="GITSTATE_AGENT",
    help="Name recorded as Gitstate-Agent in the commits this command makes.",
)
@click.version_option(__version__, prog_name="gitstate")
@click.pass_context
def cli(ctx: click.Context, directory: str | None, branch: str | None, agent: str | None) -> None:
    """Task state for many agents, kept in git.

    Each project's tasks live in projects/<name>/STATE.yaml on the state
    branch; every change is one commit. Exit codes: 0 success, 1 refused or
    failed, 2 usage, 3 nothing ready, 4 busy (retry).
    """
    if agent is not None:
        from gitstate.names import check_agent_name

        try:
            check_agent_name(agent)
        except GitStateError as exc:
            raise click.BadParameter(str(exc), param_hint="--agent") from None
    app = App(directory, branch, agent)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main() -> NoReturn:
    try:
        cli.main(prog_name="gitstate")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


# -- option groups ------------------------------------------------------------------------------


def _meta(values: Iterable[str]) -> dict[str, str]:
    meta = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--meta {item!r} must look like KEY=VALUE")
        meta[key.strip()] = value
    return meta


def _common_options(f: F) -> F:
    options = [
        click.option("--description", help="Longer text; agents receive it as GITSTATE_DESCRIPTION."),
        click.option("--command", help="Shell command an agent runs for the task."),
        click.option("--timeout", metavar="DURATION", help="How long a run may take (90s, 5m, 2h)."),
        click.option("--max-retries", type=click.IntRange(min=0), help="Retries after the first attempt."),
        click.option(
            "--requires", multiple=True, metavar="CAP", help="Capability an agent needs (repeatable)."
        ),
        click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Your own data (repeatable)."),
        click.option(
            "--clear",
            "clear",
            multiple=True,
            metavar="FIELD",
            help="Reset a field to its default, e.g. --clear depends_on (repeatable).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _fields(options: dict[str, Any], extra: Iterable[str] = ()) -> dict[str, Any]:
    """Model field values from the options that were given."""
    from gitstate.names import check_capability, check_relative_path, check_task_id
    from gitstate.timefmt import parse_duration, parse_when

    fields: dict[str, Any] = {}
    for name in ("description", "command", "check", "priority", "max_retries", "setup"):
        if options.get(name) is not None:
            fields[name] = options[name]
    for name in ("timeout", "lease"):
        if options.get(name) is not None:
            fields[name] = parse_duration(options[name], f"--{name}")
    if options.get("requires"):
        fields["requires"] = tuple(check_capability(c) for c in options["requires"])
    if options.get("copy_files"):
        fields["copy_files"] = tuple(check_relative_path(p) for p in options["copy_files"])
    if options.get("depends_on"):
        fields["depends_on"] = tuple(check_task_id(t) for t in options["depends_on"])
    if options.get("not_before") is not None:
        fields["not_before"] = parse_when(options["not_before"], _app().store.clock.now(), "--not-before")
    if options.get("meta"):
        fields["meta"] = _meta(options["meta"])
    for name in options.get("clear") or ():
        key = name.replace("-", "_")
        if key not in extra:
            raise InvalidInput(f"--clear {name!r}: fields that can be cleared are {', '.join(extra)}")
        if key in fields:
            raise InvalidInput(f"--clear {name} conflicts with --{name.replace('_', '-')}")
        empty = {"description": "", "depends_on": (), "requires": (), "copy_files": (), "meta": {}}
        fields[key] = empty.get(key)
    return fields


# -- init ---------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--branch", "init_branch", help="Keep the state on this branch (default: main, else master, else HEAD's)."
)
def init(init_branch: str | None) -> None:
    """Set up gitstate in this repository (safe to run again)."""
    from gitstate.projects import init as do_init
    from gitstate.timefmt import Clock

    app = _app()
    name, done = do_init(app.repo, init_branch or app.branch, Clock(app.repo.env))
    for line in done:
        click.echo(line)
    click.echo(f"gitstate keeps state on branch {name}; add a project: gitstate project add NAME")


# -- projects -----------------------------------------------------------------------------------


@cli.group(cls=_Group)
def project() -> None:
    """Add, change and inspect projects."""


def _project_options(f: F) -> F:
    f = click.option("--setup", metavar="COMMAND", help="Command run in each new worktree (npm ci, ...).")(f)
    f = click.option(
        "--copy-file",
        "copy_files",
        multiple=True,
        metavar="PATH",
        help="Untracked file copied into each new worktree, e.g. .env (repeatable).",
    )(f)
    f = click.option("--lease", metavar="DURATION", help="How long a claim holds before it expires (15m).")(f)
    f = click.option("--check", help="Command that must pass before a task's work lands on the branch.")(f)
    return _common_options(f)


_PROJECT_CLEARABLE = (
    "description",
    "command",
    "check",
    "max_retries",
    "timeout",
    "lease",
    "requires",
    "copy_files",
    "setup",
    "meta",
)


@project.command("add")
@click.argument("name")
@_project_options
@json_option
def project_add(name: str, as_json: bool, **options: Any) -> None:
    """Create project NAME (projects/NAME/STATE.yaml).

    \b
    Example:
      gitstate project add api --check "pytest -q" --timeout 20m
    """
    from gitstate import projects
    from gitstate.render import project_json

    app = _app()
    made = projects.create(app.store, name, _fields(options, _PROJECT_CLEARABLE))
    if as_json:
        _echo_json({"project": project_json(made, app.store.clock.now())})
    else:
        click.echo(f"created project {name} (projects/{name}/STATE.yaml)")


@project.command("edit")
@click.argument("name")
@_project_options
@json_option
def project_edit(name: str, as_json: bool, **options: Any) -> None:
    """Change project NAME's settings.

    \b
    Example:
      gitstate project edit api --lease 30m --clear command
    """
    from gitstate import projects
    from gitstate.render import project_json

    app = _app()
    changed = projects.edit(app.store, name, _fields(options, _PROJECT_CLEARABLE))
    if as_json:
        _echo_json({"project": project_json(changed, app.store.clock.now())})
    else:
        click.echo(f"updated project {name}")


@project.command("list")
@json_option
def project_list(as_json: bool) -> None:
    """List the projects with their task counts."""
    from gitstate.model import counts
    from gitstate.render import project_json, table

    store = _app().store
    now = store.clock.now()
    found = store.read_all()
    if as_json:
        _echo_json({"projects": [project_json(p, now) for p in found]})
        return
    if not found:
        click.echo("no projects yet; add one with: gitstate project add NAME")
        return
    rows = []
    for p in found:
        c = counts(p, now)
        rows.append([p.name, c["total"], c["ready"], p.settings.description.split("\n")[0]])
    click.echo(table(("PROJECT", "TASKS", "READY", "DESCRIPTION"), rows))


@project.command("show")
@click.argument("name")
@json_option
def project_show(name: str, as_json: bool) -> None:
    """Show project NAME's settings and counts."""
    from gitstate.render import project_detail, project_json

    store = _app().store
    found = store.read(name)
    now = store.clock.now()
    click.echo(_echo_text(project_json(found, now), as_json, lambda: project_detail(found, now)))


def _echo_text(payload: dict[str, Any], as_json: bool, text: Callable[[], str]) -> str:
    from gitstate.render import dumps

    return dumps({"project": payload}) if as_json else text()


# -- tasks --------------------------------------------------------------------------------------


@cli.group(cls=_Group)
def task() -> None:
    """Add, change and inspect tasks."""


def _task_options(f: F) -> F:
    f = click.option("--not-before", metavar="WHEN", help="Do not start before this time (2026-12-01, +2h).")(
        f
    )
    f = click.option(
        "--depends-on", multiple=True, metavar="ID", help="Task that must be merged first (repeatable)."
    )(f)
    f = click.option("--priority", type=int, help="Higher runs first (default 0).")(f)
    return _common_options(f)


_TASK_CLEARABLE = (
    "description",
    "depends_on",
    "requires",
    "command",
    "max_retries",
    "timeout",
    "not_before",
    "meta",
)


@task.command("add")
@click.argument("project_name", metavar="PROJECT")
@click.argument("title")
@click.option("--id", "task_id", metavar="ID", help="Use this id instead of a generated one.")
@_task_options
@json_option
def task_add(project_name: str, title: str, task_id: str | None, as_json: bool, **options: Any) -> None:
    """Add a task titled TITLE to PROJECT; prints its new id.

    \b
    Example:
      gitstate task add api "Add rate limiting" --priority 2 --depends-on t-3kq9x2m
    """
    from gitstate import tasks

    app = _app()
    made = tasks.add(app.store, project_name, title, _fields(options, _TASK_CLEARABLE), task_id)
    _print_task(project_name, made, as_json, f"added {project_name}/{made.id}")


@task.command("edit")
@click.argument("project_name", metavar="PROJECT")
@click.argument("task_id", metavar="ID")
@click.option("--title", help="New title.")
@_task_options
@json_option
def task_edit(project_name: str, task_id: str, title: str | None, as_json: bool, **options: Any) -> None:
    """Change task ID's fields (lists given here replace the old ones).

    \b
    Example:
      gitstate task edit api t-3kq9x2m --priority 5 --clear not_before
    """
    from gitstate import tasks

    fields = _fields(options, _TASK_CLEARABLE)
    if title is not None:
        fields["title"] = title
    changed = tasks.edit(_app().store, project_name, task_id, fields)
    _print_task(project_name, changed, as_json, f"updated {project_name}/{task_id}")


@task.command("cancel")
@click.argument("project_name", metavar="PROJECT")
@click.argument("task_id", metavar="ID")
@click.option("--reason", help="Why; kept in the task's error field.")
@json_option
def task_cancel(project_name: str, task_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel a pending or failed task."""
    from gitstate import tasks

    changed = tasks.cancel(_app().store, project_name, task_id, reason)
    _print_task(project_name, changed, as_json, f"cancelled {project_name}/{task_id}")


@task.command("retry")
@click.argument("project_name", metavar="PROJECT")
@click.argument("task_id", metavar="ID")
@json_option
def task_retry(project_name: str, task_id: str, as_json: bool) -> None:
    """Send a failed task back to pending with fresh attempts."""
    from gitstate import tasks

    changed = tasks.retry(_app().store, project_name, task_id)
    _print_task(project_name, changed, as_json, f"{project_name}/{task_id} is pending again")


@task.command("show")
@click.argument("project_name", metavar="PROJECT")
@click.argument("task_id", metavar="ID")
@json_option
def task_show(project_name: str, task_id: str, as_json: bool) -> None:
    """Show every field of task ID."""
    from gitstate import tasks
    from gitstate.render import task_detail

    store = _app().store
    found = store.read(project_name)
    item = tasks.get(found, task_id)
    _print_task(project_name, item, as_json, task_detail(found, item, store.clock.now()))


@task.command("list")
@click.argument("project_name", metavar="[PROJECT]", required=False)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["pending", "in_progress", "completed", "merged", "failed", "cancelled"]),
    help="Only tasks in this status (repeatable).",
)
@click.option("--ready", is_flag=True, help="Only tasks that are ready to be claimed.")
@json_option
def task_list(project_name: str | None, statuses: tuple[str, ...], ready: bool, as_json: bool) -> None:
    """List tasks (of PROJECT, or of every project), in the order claims take them."""
    from gitstate.model import claim_order, is_ready
    from gitstate.render import TASK_HEADERS, table, task_json, task_rows

    store = _app().store
    now = store.clock.now()
    found = [store.read(project_name)] if project_name else store.read_all()
    picked = []
    for p in found:
        items = sorted(p.tasks.values(), key=claim_order)
        items = [
            t for t in items if (not statuses or t.status in statuses) and (not ready or is_ready(p, t, now))
        ]
        picked.append((p, items))
    if as_json:
        _echo_json({"tasks": [task_json(p, t, now) for p, items in picked for t in items]})
        return
    rows = [row for p, items in picked for row in task_rows(p, items, now)]
    click.echo(table(TASK_HEADERS, rows) if rows else "no tasks match")


def _print_task(project_name: str, item: Any, as_json: bool, text: str) -> None:
    if not as_json:
        click.echo(text)
        return
    from gitstate.render import task_json

    store = _app().store
    _echo_json({"task": task_json(store.read(project_name), item, store.clock.now())})


# -- agents -------------------------------------------------------------------------------------


def agent_option(f: F) -> F:
    return click.option(
        "--agent",
        "agent_name",
        envvar="GITSTATE_AGENT",
        metavar="NAME",
        help="Who is working (default: the global --agent or GITSTATE_AGENT).",
    )(f)


def _agent(name: str | None, required: bool = True) -> str | None:
    from gitstate.names import check_agent_name

    chosen = name or _app().agent
    if chosen is None:
        if required:
            raise InvalidInput("name the agent with --agent NAME (or set GITSTATE_AGENT)")
        return None
    return check_agent_name(chosen)


def _which_task(project_name: str | None, task_id: str | None) -> tuple[str, str]:
    """PROJECT and ID as given, or the task whose worktree we are in."""
    from gitstate.agent import task_here

    if project_name and task_id:
        return project_name, task_id
    if project_name or task_id:
        raise click.UsageError("give both PROJECT and ID, or neither (inside a task's worktree)")
    return task_here(_app().repo)


@cli.command()
@click.argument("project_name", metavar="[PROJECT]", required=False)
@agent_option
@click.option(
    "--requires",
    "capabilities",
    multiple=True,
    metavar="CAP",
    help="A capability this agent has (repeatable).",
)
@click.option("--no-worktree", is_flag=True, help="Only take the task and make its branch; no worktree.")
@json_option
def claim(
    project_name: str | None,
    agent_name: str | None,
    capabilities: tuple[str, ...],
    no_worktree: bool,
    as_json: bool,
) -> None:
    """Take the best ready task (exit 3 when none is ready, saying why).

    Records the claim in one commit, starts the task branch gitstate/PROJECT/ID
    and makes a worktree for it. Tasks whose lease ran out are given back first.

    \b
    Example:
      cd "$(gitstate claim api --agent claude-1 --json | jq -r .worktree)"
    """
    from gitstate import agent
    from gitstate.render import first_line, task_json

    store = _app().store
    name = _agent(agent_name)
    assert name is not None  # noqa: S101 (required)
    taken = agent.claim(
        store, name, project_name, capabilities or None, worktree=not no_worktree, env=dict(os.environ)
    )
    path = str(taken.worktree.path) if taken.worktree else None
    if as_json:
        _echo_json({"task": task_json(taken.project, taken.task, store.clock.now()), "worktree": path})
        return
    where = f"{taken.project.name}/{taken.task.id}"
    click.echo(f"claimed {where} (attempt {taken.task.attempts}): {first_line(taken.task.title)}")
    click.echo(f"branch:   {taken.task.branch}")
    if path:
        click.echo(f"worktree: {path}")


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False)
@click.argument("task_id", metavar="ID]", required=False)
@click.option("--result", help="What the work produced (kept in the task's result).")
@agent_option
@json_option
def done(
    project_name: str | None, task_id: str | None, result: str | None, agent_name: str | None, as_json: bool
) -> None:
    """Mark a task completed, committing the work left in its worktree.

    The work and the task's new state go into one commit on the task branch,
    for the coordinator to merge. Without PROJECT and ID, the task whose
    worktree you are in. The worktree is removed afterwards.
    """
    from gitstate import agent

    project, task_id = _which_task(project_name, task_id)
    finished = agent.done(
        _app().store, project, task_id, result=result, agent=_agent(agent_name, required=False)
    )
    _print_task(
        project, finished, as_json, f"{project}/{task_id} completed; its branch awaits the coordinator"
    )


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False)
@click.argument("task_id", metavar="ID]", required=False)
@click.option("--error", required=True, help="Why it failed (kept in the task's error).")
@agent_option
@json_option
def fail(
    project_name: str | None, task_id: str | None, error: str, agent_name: str | None, as_json: bool
) -> None:
    """Give a task back as failed: pending again, or failed once out of attempts.

    Uncommitted work is saved on the task branch, so the next attempt starts
    from it; the worktree is removed.
    """
    from gitstate import agent

    project, task_id = _which_task(project_name, task_id)
    back = agent.fail(_app().store, project, task_id, error=error, agent=_agent(agent_name, required=False))
    _print_task(
        project, back, as_json, f"{project}/{task_id} is {back.status} (attempt {back.attempts} counted)"
    )


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False)
@click.argument("task_id", metavar="ID]", required=False)
@click.option("--reason", help="Why (kept in the task's error).")
@agent_option
@json_option
def release(
    project_name: str | None, task_id: str | None, reason: str | None, agent_name: str | None, as_json: bool
) -> None:
    """Give a task back unfinished: pending again (failed once out of attempts).

    Uncommitted work is saved on the task branch; the worktree is removed.
    """
    from gitstate import agent

    project, task_id = _which_task(project_name, task_id)
    back = agent.release(
        _app().store, project, task_id, reason=reason, agent=_agent(agent_name, required=False)
    )
    _print_task(
        project, back, as_json, f"{project}/{task_id} is {back.status} (attempt {back.attempts} counted)"
    )


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False)
@click.argument("task_id", metavar="ID]", required=False)
@agent_option
@json_option
def renew(project_name: str | None, task_id: str | None, agent_name: str | None, as_json: bool) -> None:
    """Extend your lease on a task (for agents not run by `gitstate work`).

    Renewals live in refs/gitstate/leases/, not in commits: a heartbeat adds
    nothing to history.
    """
    from gitstate import agent
    from gitstate.timefmt import format_timestamp

    project, task_id = _which_task(project_name, task_id)
    name = _agent(agent_name)
    assert name is not None  # noqa: S101 (required)
    expires = agent.renew(_app().store, project, task_id, name)
    if expires is None:
        raise InvalidInput(f"{name} does not hold {project}/{task_id} any more; its lease may have expired")
    if as_json:
        _echo_json({"project": project, "task": task_id, "lease_expires": format_timestamp(expires)})
    else:
        click.echo(f"lease on {project}/{task_id} runs until {format_timestamp(expires)}")


@cli.command()
@json_option
def reap(as_json: bool) -> None:
    """Give back tasks whose lease ran out (every claim does this too)."""
    from gitstate import agent

    reaped = agent.reap(_app().store)
    if as_json:
        _echo_json({"reaped": [{"project": p, "id": t.id, "status": t.status.value} for p, t in reaped]})
    elif not reaped:
        click.echo("no lease has run out")
    for project, task in reaped if not as_json else ():
        click.echo(f"{project}/{task.id}: lease ran out; now {task.status}")


@cli.command()
@json_option
def gc(as_json: bool) -> None:
    """Remove worktrees, branches and leases that no open task owns.

    Work left uncommitted in a worktree of a pending or failed task is saved
    on its branch first. Branches of merged and cancelled tasks are deleted.
    """
    from gitstate import agent

    cleaned = agent.gc(_app().store)
    if as_json:
        _echo_json(
            {
                "worktrees": list(cleaned.worktrees),
                "branches": list(cleaned.branches),
                "leases": list(cleaned.leases),
            }
        )
        return
    for kind, items in (
        ("worktree", cleaned.worktrees),
        ("branch", cleaned.branches),
        ("lease", cleaned.leases),
    ):
        for item in items:
            click.echo(f"removed {kind} {item}")
    if not (cleaned.worktrees or cleaned.branches or cleaned.leases):
        click.echo("nothing to clean up")


@cli.command()
@click.argument("project_name", metavar="[PROJECT]", required=False)
@agent_option
@click.option(
    "--requires",
    "capabilities",
    multiple=True,
    metavar="CAP",
    help="A capability this agent has (repeatable).",
)
@click.option("--once", is_flag=True, help="Run one task, then stop.")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Stop after this many tasks.")
@click.option("--wait", is_flag=True, help="When nothing is ready, wait for work instead of stopping.")
@json_option
def work(
    project_name: str | None,
    agent_name: str | None,
    capabilities: tuple[str, ...],
    once: bool,
    max_tasks: int | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Run tasks: claim, run the command in the worktree, then done or fail.

    The command is the task's own, else the project's; it gets the task
    through GITSTATE_PROJECT, GITSTATE_TASK, GITSTATE_TITLE,
    GITSTATE_DESCRIPTION, GITSTATE_BRANCH, GITSTATE_WORKTREE and
    GITSTATE_ATTEMPT. Its output goes to .git/gitstate/logs/PROJECT/ID/.

    \b
    Example:
      gitstate work api --agent claude-1 --max-tasks 5
    """
    import signal
    import threading

    from gitstate import worker
    from gitstate.render import task_json

    store = _app().store
    name = _agent(agent_name)
    assert name is not None  # noqa: S101 (required)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say = (lambda _: None) if as_json else click.echo
    ran = worker.work(
        store,
        name,
        project=project_name,
        capabilities=capabilities or None,
        max_tasks=max_tasks,
        once=once,
        wait=wait,
        stop=stop,
        say=say,
    )
    if as_json:
        now = store.clock.now()
        runs = []
        for item in ran:
            final = item.final or item.task
            runs.append(
                {
                    **task_json(store.read(item.project), final, now),
                    "outcome": item.outcome.reason if item.outcome else None,
                    "seconds": round(item.outcome.seconds, 3) if item.outcome else None,
                }
            )
        _echo_json({"agent": name, "runs": runs})


# -- the coordinator ----------------------------------------------------------------------------


@cli.command("merge")
@click.argument("project_name", metavar="[PROJECT]", required=False)
@click.option(
    "--strategy",
    type=click.Choice(["merge", "squash"]),
    default="merge",
    show_default=True,
    help="A merge commit per task (one revertable unit each), or one squashed commit.",
)
@json_option
def merge_cmd(project_name: str | None, strategy: str, as_json: bool) -> None:
    """Land every completed task branch on the state branch, checked.

    Branches are merged without touching any checkout; conflicts and branches
    that change more of STATE.yaml than their own task are turned away first;
    the project's check runs once per batch on exactly what would land
    (failing batches are split until the culprit is alone). A task that cannot
    land goes back to pending with the reason in its error.
    """
    from gitstate.coordinator import Coordinator

    store = _app().store
    report = Coordinator(store, strategy=strategy, say=(lambda _: None) if as_json else click.echo).run(
        [project_name] if project_name else None
    )
    if as_json:
        landings = [
            {
                "project": item.project,
                "id": item.task,
                "outcome": item.outcome,
                "detail": item.detail,
                "commit": item.commit,
            }
            for item in report.landings
        ]
        _echo_json({"landings": landings, "checks": report.checks})
    elif not report.landings:
        click.echo("no completed task is waiting to be merged")
    else:
        merged = len(report.merged())
        click.echo(f"{merged} merged, {len(report.landings) - merged} not; {report.checks} check runs")


def _supervisor_options(f: F) -> F:
    options = [
        click.option(
            "--agents",
            type=click.IntRange(1, 64),
            default=2,
            show_default=True,
            envvar="GITSTATE_AGENTS",
            help="Agents to run side by side.",
        ),
        click.option(
            "--project",
            "projects",
            multiple=True,
            metavar="P",
            envvar="GITSTATE_PROJECTS",
            help="Only these projects (repeatable; GITSTATE_PROJECTS is space-separated).",
        ),
        click.option(
            "--requires",
            "capabilities",
            multiple=True,
            metavar="CAP",
            envvar="GITSTATE_REQUIRES",
            help="Capabilities the agents have (repeatable).",
        ),
        click.option(
            "--max-failures",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            envvar="GITSTATE_MAX_FAILURES",
            help="Consecutive failed tasks that stop claiming (the circuit breaker).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            envvar="GITSTATE_LOG_FORMAT",
            help="Progress lines on stderr: text, or one JSON object per line.",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(1, 65535),
            envvar="GITSTATE_METRICS_PORT",
            help="Serve Prometheus metrics on 127.0.0.1:PORT.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _supervisor(options: Any, log_format: str, metrics_port: int | None) -> Any:
    from gitstate.runner import Supervisor, logger

    app = _app()
    top = app.repo.toplevel or app.repo.common_dir
    supervisor = Supervisor(top, app.branch, options, logger(log_format))
    if metrics_port is not None:
        from gitstate.metrics import Metrics

        supervisor.metrics = Metrics(metrics_port)
    return supervisor


@cli.command()
@_supervisor_options
@click.option(
    "--time-box",
    metavar="DURATION",
    envvar="GITSTATE_TIME_BOX",
    help="Finish within this long (10m, 1h); default: until the work is done.",
)
@click.option(
    "--push",
    "push_remote",
    metavar="REMOTE",
    envvar="GITSTATE_PUSH",
    help="Push the state branch and task branches to REMOTE at the end.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False), envvar="GITSTATE_JUNIT", help="Write a JUnit XML report here."
)
@json_option
def run(
    agents: int,
    projects: tuple[str, ...],
    capabilities: tuple[str, ...],
    max_failures: int,
    log_format: str,
    metrics_port: int | None,
    time_box: str | None,
    push_remote: str | None,
    junit: str | None,
    as_json: bool,
) -> None:
    """One pass, as a CI pipeline runs it: agents and the coordinator, time-boxed.

    Runs AGENTS agents and merges their work until nothing is left to do or
    the time box ends. It stops claiming in time to finish; at the end, running
    tasks are stopped, their work committed to their branches and released (the
    next pass resumes from there); then a final merge, the push, and a summary
    (also as JUnit XML, and to $GITHUB_STEP_SUMMARY when that is set).
    Exit codes: 0 done, 5 a task failed for good, 6 the circuit breaker stopped
    claiming, 1 gitstate itself failed. Every option can also come from its
    GITSTATE_* variable (GITSTATE_AGENTS, GITSTATE_TIME_BOX, ...).

    \b
    Example:
      gitstate run --agents 4 --time-box 50m --push origin --junit report.xml
    """
    from pathlib import Path

    from gitstate.names import check_project_name
    from gitstate.runner import Options, markdown, table
    from gitstate.runner import as_json as summary_json
    from gitstate.runner import junit as junit_xml
    from gitstate.timefmt import parse_duration

    names = tuple(check_project_name(p) for item in projects for p in item.split())
    box = parse_duration(time_box, "--time-box") if time_box else None
    caps = tuple(c for item in capabilities for c in item.split()) or None
    options = Options(
        agents=agents,
        time_box=box,
        projects=names,
        push=push_remote,
        capabilities=caps,
        max_failures=max_failures,
    )
    summary = _supervisor(options, log_format, metrics_port).run(until_done=True)
    if junit:
        Path(junit).write_text(junit_xml(summary))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(markdown(summary))
    click.echo(_dumps_json(summary_json(summary)) if as_json else table(summary))
    sys.exit(summary.exit_code)


def _dumps_json(payload: dict[str, Any]) -> str:
    from gitstate.render import dumps

    return dumps(payload)


@cli.command()
@_supervisor_options
@click.option(
    "--grace",
    metavar="DURATION",
    default="30s",
    show_default=True,
    envvar="GITSTATE_GRACE",
    help="On SIGTERM, how long running tasks may finish.",
)
def daemon(
    agents: int,
    projects: tuple[str, ...],
    capabilities: tuple[str, ...],
    max_failures: int,
    log_format: str,
    metrics_port: int | None,
    grace: str,
) -> None:
    """Run agents and the coordinator until stopped (a service).

    SIGTERM or SIGINT stop it gracefully: no new claims, running tasks get the
    grace period to finish, the rest are released with their work on their
    branches, and it exits 0. After a crash or a reboot it picks up within
    seconds: tasks its own agents held are given back at start.
    """
    import signal

    from gitstate.names import check_project_name
    from gitstate.runner import Options
    from gitstate.timefmt import parse_duration

    names = tuple(check_project_name(p) for item in projects for p in item.split())
    caps = tuple(c for item in capabilities for c in item.split()) or None
    options = Options(
        agents=agents,
        projects=names,
        capabilities=caps,
        max_failures=max_failures,
        grace=float(parse_duration(grace, "--grace")),
    )
    supervisor = _supervisor(options, log_format, metrics_port)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.request_stop())
    supervisor.log(
        "start", {"message": f"daemon started with {agents} agents ({', '.join(supervisor.names)})"}
    )
    summary = supervisor.run(until_done=False, final_merge=False)
    supervisor.log(
        "stop", {"message": f"daemon stopped: {summary.merged} merged, {summary.released} released"}
    )


@cli.command()
@click.argument("kind", type=click.Choice(["systemd", "launchd"]))
@click.option(
    "--agents", type=click.IntRange(1, 64), default=2, show_default=True, help="Agents the daemon runs."
)
@click.option("--project", "projects", multiple=True, metavar="P", help="Only these projects (repeatable).")
def service(kind: str, agents: int, projects: tuple[str, ...]) -> None:
    """Print a systemd unit or a launchd plist that runs `gitstate daemon` for this repository.

    \b
    Example:
      gitstate service systemd > ~/.config/systemd/user/gitstate.service
      systemctl --user enable --now gitstate
    """
    from gitstate.names import check_project_name
    from gitstate.service import launchd, systemd

    app = _app()
    top = app.repo.toplevel or app.repo.common_dir
    for name in projects:
        check_project_name(name)
    click.echo((systemd if kind == "systemd" else launchd)(top, agents, projects), nl=False)


@cli.command("merge-driver", hidden=True)
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("ours", type=click.Path(dir_okay=False))
@click.argument("theirs", type=click.Path(dir_okay=False))
@click.argument("path")
def merge_driver(base: str, ours: str, theirs: str, path: str) -> None:
    """What git runs to merge a STATE.yaml (git config merge.gitstate.driver)."""
    from pathlib import Path

    from gitstate.driver import merge_files

    code, messages = merge_files(Path(base), Path(ours), Path(theirs), path)
    for line in messages:
        click.echo(line, err=True)
    sys.exit(code)


@cli.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check this clone: merge driver, STATE.yaml files, stale locks, worktrees (exit 1: problems)."""
    from gitstate.doctor import examine

    problems, notes = examine(_app().store)
    if as_json:
        _echo_json({"problems": problems, "notes": notes})
    else:
        for line in notes:
            click.echo(f"ok: {line}")
        for line in problems:
            click.echo(f"problem: {line}")
    if problems:
        sys.exit(1)


# -- hooks ------------------------------------------------------------------------------------


@cli.command(hidden=True)
@click.argument("name", type=click.Choice(["pre-commit"]))
@click.argument("args", nargs=-1)
def hook(name: str, args: tuple[str, ...]) -> None:
    """What the scripts in hooks/ run (pre-commit: check staged STATE.yaml files)."""
    from gitstate.hooks import staged_errors

    problems = staged_errors(_app().repo, os.environ)
    for line in problems:
        click.echo(f"gitstate: {line}", err=True)
    if problems:
        click.echo("gitstate: commit refused; fix the lines above (or commit with --no-verify)", err=True)
        sys.exit(1)


# -- next and status ----------------------------------------------------------------------------


@cli.command("next")
@click.argument("project_name", metavar="[PROJECT]", required=False)
@click.option(
    "--requires",
    "capabilities",
    multiple=True,
    metavar="CAP",
    help="A capability the agent has (repeatable); without any, capabilities are not checked.",
)
@json_option
def next_cmd(project_name: str | None, capabilities: tuple[str, ...], as_json: bool) -> None:
    """Show the task a claim would take now, without taking it (exit 3: none ready)."""
    from gitstate import tasks
    from gitstate.render import first_line, task_json

    store = _app().store
    found_project, item = tasks.next_task(store, project_name, capabilities or None)
    if as_json:
        _echo_json({"task": task_json(found_project, item, store.clock.now())})
    else:
        click.echo(f"{found_project.name}/{item.id}  priority {item.priority}  {first_line(item.title)}")


@cli.command()
@json_option
def status(as_json: bool) -> None:
    """Tasks per status and ready count, for every project."""
    from gitstate.model import counts
    from gitstate.render import status_table

    store = _app().store
    now = store.clock.now()
    found = store.read_all()
    if as_json:
        summary = [{"name": p.name, "counts": counts(p, now)} for p in found]
        _echo_json({"branch": store.branch, "projects": summary})
    elif not found:
        click.echo(f"no projects on {store.branch} yet; add one with: gitstate project add NAME")
    else:
        click.echo(status_table(found, now))


@cli.command()
@click.option(
    "--dir", "target", metavar="PATH", help="Build the repository here (default: a new temporary folder)."
)
def demo(target: str | None) -> None:
    """Build a scratch repository from the example projects and show its state.

    Your own repositories and $HOME are not touched; the scratch repository is
    left behind for you to explore.
    """
    from pathlib import Path

    from gitstate import demo as example
    from gitstate.git import Repository
    from gitstate.render import TASK_HEADERS, status_table, table, task_rows
    from gitstate.store import Store

    path = example.run(Path(target).resolve() if target else None, click.echo)
    with Repository.discover(path) as repo:
        store = Store(repo)
        now = store.clock.now()
        found = store.read_all()
        click.echo("\n$ gitstate status")
        click.echo(status_table(found, now))
        click.echo("\n$ gitstate task list")
        click.echo(table(TASK_HEADERS, [row for p in found for row in task_rows(p, p.tasks.values(), now)]))
        click.echo("\n$ git log --oneline -5")
        log = repo.git("log", "--oneline", "-5", "--no-decorate").stdout.decode().rstrip()
        click.echo(log)
    click.echo(
        f"\nExplore it:\n  cd {path}\n  gitstate next\n  gitstate task show webapp t-checkout\n"
        "  git log --format='%h %s%n%(trailers)' -3\n  cat projects/webapp/STATE.yaml"
    )
