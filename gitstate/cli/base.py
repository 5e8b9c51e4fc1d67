"""The root of the command line: the ``gitstate`` group, shared options and helpers.

Errors become messages here and nowhere else (``Group.invoke``): a
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
from click.shell_completion import CompletionItem

from gitstate import __version__
from gitstate.errors import EXIT_FAILED, GitStateError, InvalidInput

if TYPE_CHECKING:
    from gitstate.git import Repository
    from gitstate.store import Store

F = TypeVar("F", bound=Callable[..., Any])


class Failure(click.ClickException):
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


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (GitStateError, OSError) as exc:
            raise Failure(exc, bool(ctx.meta.get("gitstate.json"))) from None


# Where each top-level command is defined. A command loads only its own module: the
# other modules' click decorators would cost every command start-up time.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("init", "project", "next", "status"), ("state",)),
    "task": ("state", "history"),  # history adds `task history` and `task import`
    **dict.fromkeys(("claim", "done", "fail", "release", "renew", "reap", "gc", "work"), ("agents",)),
    **dict.fromkeys(("log", "rollback", "export"), ("history",)),
    **dict.fromkeys(
        ("merge", "run", "daemon", "service", "merge-driver", "doctor", "hook", "demo"), ("ops",)
    ),
}


class Root(Group):
    """The root group: loads a command's module when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        import importlib

        for module in COMMAND_MODULES.get(cmd_name, ()):
            importlib.import_module(f"gitstate.cli.{module}")
        return super().get_command(ctx, cmd_name)


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


def get_app() -> App:
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


def echo_json(payload: dict[str, Any]) -> None:
    from gitstate.render import dumps

    click.echo(dumps(payload))


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
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


def common_options(f: F) -> F:
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


def fields_from(options: dict[str, Any], extra: Iterable[str] = ()) -> dict[str, Any]:
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
        fields["not_before"] = parse_when(options["not_before"], get_app().store.clock.now(), "--not-before")
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


def print_task(project_name: str, item: Any, as_json: bool, text: str) -> None:
    if not as_json:
        click.echo(text)
        return
    from gitstate.render import task_json

    store = get_app().store
    echo_json({"task": task_json(store.read(project_name), item, store.clock.now())})


# -- next and status ----------------------------------------------------------------------------


# -- shell completion -----------------------------------------------------------------------------


def _completing(ctx: click.Context, read: Callable[[Store], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """What ``read`` finds in the repository the command line names; nothing on any error
    (a completion must never print a traceback into the user's prompt)."""
    from gitstate.git import Repository
    from gitstate.store import Store

    root = ctx.find_root().params
    try:
        with Repository.discover(root.get("directory")) as repo:
            return read(Store(repo, root.get("branch")))
    except (GitStateError, OSError):
        return []


def complete_projects(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    found = _completing(ctx, lambda store: [(name, "") for name in store.project_names()])
    return [CompletionItem(name) for name, _ in found if name.startswith(incomplete)]


def complete_tasks(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The ids of the project named earlier on the command line (else of every project),
    each with its title."""
    from gitstate.render import first_line

    project = ctx.params.get("project_name")

    def read(store: Store) -> list[tuple[str, str]]:
        found = [store.read(project)] if project else store.read_all()
        return sorted({(t.id, t.title) for p in found for t in p.tasks.values()})

    return [
        CompletionItem(task_id, help=first_line(title, 50))
        for task_id, title in _completing(ctx, read)
        if task_id.startswith(incomplete)
    ]
