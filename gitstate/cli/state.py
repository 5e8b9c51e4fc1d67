"""Commands that read and edit projects and tasks: init, project, task, next, status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from gitstate.cli.base import (
    F,
    Group,
    cli,
    common_options,
    complete_projects,
    complete_tasks,
    echo_json,
    fields_from,
    get_app,
    json_option,
    print_task,
)

# -- init ---------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--branch", "init_branch", help="Keep the state on this branch (default: main, else master, else HEAD's)."
)
@click.option("--no-hooks", is_flag=True, help="Do not install the git hooks that check STATE.yaml commits.")
def init(init_branch: str | None, no_hooks: bool) -> None:
    """Set up gitstate in this repository (safe to run again).

    Records the state branch, configures the STATE.yaml merge driver, and
    installs the pre-commit and pre-merge-commit hooks (a hook you already
    have is kept as NAME.legacy and runs first).
    """
    import sys

    from gitstate import hooks
    from gitstate.projects import init as do_init
    from gitstate.timefmt import Clock

    app = get_app()
    name, done = do_init(app.repo, init_branch or app.branch, Clock(app.repo.env))
    if not no_hooks:
        done += hooks.install(app.repo, sys.executable)
    for line in done:
        click.echo(line)
    click.echo(f"gitstate keeps state on branch {name}; add a project: gitstate project add NAME")


# -- projects -----------------------------------------------------------------------------------


@cli.group(cls=Group)
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
    f = click.option(
        "--hook-timeout", metavar="DURATION", help="How long each lifecycle hook may run (10s)."
    )(f)
    f = click.option(
        "--hook-events",
        metavar="EVENTS",
        help="Events the webhook gets, comma-separated: claim,complete,fail,merge (default: all).",
    )(f)
    f = click.option(
        "--webhook",
        metavar="URL",
        help="POST each event as JSON to URL; '$NAME' reads the URL from variable NAME; '' removes it.",
    )(f)
    f = click.option(
        "--hook",
        "hooks",
        multiple=True,
        metavar="EVENT=COMMAND",
        help="Run COMMAND when a task is claimed, completed, failed or merged (repeatable; EVENT= removes).",
    )(f)
    return common_options(f)


def _project_fields(options: dict[str, Any]) -> dict[str, Any]:
    from gitstate import lifecycle, projects
    from gitstate.errors import InvalidInput

    fields = fields_from(options, projects.SETTINGS)
    hooks = lifecycle.option_fields(
        options["hooks"], options["webhook"], options["hook_events"], options["hook_timeout"]
    )
    if hooks and "hooks" in fields:
        raise InvalidInput("--clear hooks conflicts with --hook, --webhook, --hook-events and --hook-timeout")
    return {**fields, **hooks}


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

    app = get_app()
    made = projects.create(app.store, name, _project_fields(options))
    if as_json:
        echo_json({"project": project_json(made, app.store.clock.now())})
    else:
        click.echo(f"created project {name} (projects/{name}/STATE.yaml)")


@project.command("edit")
@click.argument("name", shell_complete=complete_projects)
@_project_options
@json_option
def project_edit(name: str, as_json: bool, **options: Any) -> None:
    """Change project NAME's settings.

    \b
    Example:
      gitstate project edit api --lease 30m --clear command
      gitstate project edit api --hook merge='make deploy' --webhook '$API_WEBHOOK'
    """
    from gitstate import projects
    from gitstate.render import project_json

    app = get_app()
    changed = projects.edit(app.store, name, _project_fields(options))
    if as_json:
        echo_json({"project": project_json(changed, app.store.clock.now())})
    else:
        click.echo(f"updated project {name}")


@project.command("list")
@json_option
def project_list(as_json: bool) -> None:
    """List the projects with their task counts."""
    from gitstate.model import counts
    from gitstate.render import project_json, table

    store = get_app().store
    now = store.clock.now()
    found = store.read_all()
    if as_json:
        echo_json({"projects": [project_json(p, now) for p in found]})
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
@click.argument("name", shell_complete=complete_projects)
@json_option
def project_show(name: str, as_json: bool) -> None:
    """Show project NAME's settings and counts."""
    from gitstate.render import project_detail, project_json

    store = get_app().store
    found = store.read(name)
    now = store.clock.now()
    click.echo(_echo_text(project_json(found, now), as_json, lambda: project_detail(found, now)))


def _echo_text(payload: dict[str, Any], as_json: bool, text: Callable[[], str]) -> str:
    from gitstate.render import dumps

    return dumps({"project": payload}) if as_json else text()


# -- tasks --------------------------------------------------------------------------------------


@cli.group(cls=Group)
def task() -> None:
    """Add, change and inspect tasks."""


def _task_options(f: F) -> F:
    f = click.option("--not-before", metavar="WHEN", help="Do not start before this time (2026-12-01, +2h).")(
        f
    )
    f = click.option(
        "--depends-on",
        multiple=True,
        metavar="ID",
        shell_complete=complete_tasks,
        help="Task that must be merged first (repeatable).",
    )(f)
    f = click.option("--priority", type=int, help="Higher runs first (default 0).")(f)
    return common_options(f)


@task.command("add")
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
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

    app = get_app()
    made = tasks.add(app.store, project_name, title, fields_from(options, tasks.CLEARABLE), task_id)
    print_task(project_name, made, as_json, f"added {project_name}/{made.id}")


@task.command("edit")
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
@click.argument("task_id", metavar="ID", shell_complete=complete_tasks)
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

    fields = fields_from(options, tasks.CLEARABLE)
    if title is not None:
        fields["title"] = title
    changed = tasks.edit(get_app().store, project_name, task_id, fields)
    print_task(project_name, changed, as_json, f"updated {project_name}/{task_id}")


@task.command("cancel")
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
@click.argument("task_id", metavar="ID", shell_complete=complete_tasks)
@click.option("--reason", help="Why; kept in the task's error field.")
@json_option
def task_cancel(project_name: str, task_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel a pending or failed task."""
    from gitstate import tasks

    changed = tasks.cancel(get_app().store, project_name, task_id, reason)
    print_task(project_name, changed, as_json, f"cancelled {project_name}/{task_id}")


@task.command("retry")
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
@click.argument("task_id", metavar="ID", shell_complete=complete_tasks)
@json_option
def task_retry(project_name: str, task_id: str, as_json: bool) -> None:
    """Send a failed task back to pending with fresh attempts."""
    from gitstate import tasks

    changed = tasks.retry(get_app().store, project_name, task_id)
    print_task(project_name, changed, as_json, f"{project_name}/{task_id} is pending again")


@task.command("show")
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
@click.argument("task_id", metavar="ID", shell_complete=complete_tasks)
@click.option("--at", "rev", metavar="REV", help="As it was at this revision (a commit, tag, branch~3, ...).")
@json_option
def task_show(project_name: str, task_id: str, rev: str | None, as_json: bool) -> None:
    """Show every field of task ID, now or as it was at REV.

    \b
    Example:
      gitstate task show api t-3kq9x2m --at main~5
    """
    from gitstate import tasks
    from gitstate.render import task_detail, task_json

    store = get_app().store
    commit = store.resolve(rev) if rev else None
    found = store.read(project_name, commit)
    item = tasks.get(found, task_id)
    now = store.clock.now()
    if as_json:
        echo_json({"task": task_json(found, item, now), "at": commit or store.head()})
    else:
        click.echo(
            task_detail(found, item, now) + (f"\n  {'at:':14} {rev} ({commit[:12]})" if commit else "")
        )


@task.command("list")
@click.argument("project_name", metavar="[PROJECT]", required=False, shell_complete=complete_projects)
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

    store = get_app().store
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
        echo_json({"tasks": [task_json(p, t, now) for p, items in picked for t in items]})
        return
    rows = [row for p, items in picked for row in task_rows(p, items, now)]
    click.echo(table(TASK_HEADERS, rows) if rows else "no tasks match")


@cli.command("next")
@click.argument("project_name", metavar="[PROJECT]", required=False, shell_complete=complete_projects)
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

    store = get_app().store
    found_project, item = tasks.next_task(store, project_name, capabilities or None)
    if as_json:
        echo_json({"task": task_json(found_project, item, store.clock.now())})
    else:
        click.echo(f"{found_project.name}/{item.id}  priority {item.priority}  {first_line(item.title)}")


@cli.command()
@json_option
def status(as_json: bool) -> None:
    """Tasks per status and ready count, for every project."""
    from gitstate.model import counts
    from gitstate.render import status_table

    store = get_app().store
    now = store.clock.now()
    found = store.read_all()
    if as_json:
        summary = [{"name": p.name, "counts": counts(p, now)} for p in found]
        echo_json({"branch": store.branch, "projects": summary})
    elif not found:
        click.echo(f"no projects on {store.branch} yet; add one with: gitstate project add NAME")
    else:
        click.echo(status_table(found, now))
