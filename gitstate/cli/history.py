"""Commands that answer from history, undo through it, and move tasks in and out.

log, task history, rollback; task import and export.
"""

from __future__ import annotations

import sys

import click

from gitstate.cli.base import (
    cli,
    complete_projects,
    complete_tasks,
    echo_json,
    get_app,
    json_option,
    print_task,
)
from gitstate.cli.state import task
from gitstate.errors import InvalidInput


@cli.command("log")
@click.argument("project_name", metavar="[PROJECT]", required=False, shell_complete=complete_projects)
@click.option(
    "--task", "task_id", metavar="ID", shell_complete=complete_tasks, help="Only this task's events."
)
@click.option("--agent", "agent_name", metavar="NAME", help="Only events recorded for this agent.")
@click.option(
    "--event", "kind", metavar="KIND", help="Only this kind: claim, done, merge, fail, rollback, ..."
)
@click.option(
    "--since", metavar="WHEN", help="Only events after this (a timestamp, or 2h, 3d: that long ago)."
)
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=1), help="At most this many events.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line (time, commit, project, task, event, agent, old and new status).",
)
def log_cmd(
    project_name: str | None,
    task_id: str | None,
    agent_name: str | None,
    kind: str | None,
    since: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """What happened, newest first: the events in the commits' trailers.

    One `git log` reads them all, however long the history.

    \b
    Example:
      gitstate log webapp --event merge --since 1d
      gitstate log --agent claude-1 --json | jq -r .task
    """
    import json

    from gitstate import audit
    from gitstate.render import table
    from gitstate.timefmt import format_timestamp, parse_since

    store = get_app().store
    when = parse_since(since, store.clock.now(), "--since") if since else None
    found = audit.events(
        store, project=project_name, task=task_id, agent=agent_name, kind=kind, since=when, limit=limit
    )
    if as_json:
        lines = [json.dumps(item.as_json(), ensure_ascii=False) for item in found]
        if lines:
            click.echo("\n".join(lines))
        return
    rows = []
    for item in found:
        moved = f"{item.old} -> {item.new}" if item.new else ""
        where = f"{item.project}/{item.task}" if item.task else item.project
        rows.append(
            [format_timestamp(item.time), item.commit[:10], where, item.event, item.agent or "-", moved]
        )
    if rows:
        click.echo(table(("TIME", "COMMIT", "TASK", "EVENT", "AGENT", "STATUS"), rows))
    else:
        click.echo("no events match")


@task.command("history")
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
@click.argument("task_id", metavar="ID", shell_complete=complete_tasks)
@json_option
def task_history(project_name: str, task_id: str, as_json: bool) -> None:
    """Every state task ID went through, oldest first, with the commit of each.

    Commits gitstate did not make count too: a hand edit, a `git revert`.

    \b
    Example:
      gitstate task history webapp t-cart
    """
    from gitstate import audit
    from gitstate.render import table, task_json
    from gitstate.timefmt import format_timestamp

    store = get_app().store
    states = audit.history(store, project_name, task_id)
    if as_json:
        now = store.clock.now()
        items = []
        for state in states:
            shown = task_json(store.read(project_name, state.commit), state.task, now) if state.task else None
            items.append(
                {
                    "time": format_timestamp(state.time),
                    "commit": state.commit,
                    "event": state.event,
                    "task": shown,
                }
            )
        echo_json({"project": project_name, "id": task_id, "history": items})
        return
    rows = []
    for state in states:
        status = state.task.status.value if state.task else "(absent)"
        holder = (state.task.assignee or "-") if state.task else "-"
        rows.append([format_timestamp(state.time), state.commit[:10], state.event, status, holder])
    click.echo(table(("TIME", "COMMIT", "EVENT", "STATUS", "ASSIGNEE"), rows))


@cli.command()
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
@click.argument("task_id", metavar="[ID]", required=False, shell_complete=complete_tasks)
@click.option("--to", "rev", metavar="REV", help="Restore PROJECT's STATE.yaml as it was at REV instead.")
@click.option("--cancel", is_flag=True, help="Cancel the task instead of sending it back to pending.")
@click.option(
    "--force", is_flag=True, help="Go ahead although merged work depends on it, or agents hold tasks."
)
@json_option
def rollback(
    project_name: str, task_id: str | None, rev: str | None, cancel: bool, force: bool, as_json: bool
) -> None:
    """Undo by adding history: revert task ID's merge, or restore STATE.yaml as of REV.

    With ID: one new commit reverts the task's merge (as `git revert -m 1`
    would) and sends the task back to pending, or cancels it. Refused when a
    merged task depends on it (unless --force) or when later work conflicts
    with the revert. With --to REV: one new commit whose
    projects/PROJECT/STATE.yaml is REV's. Nothing is rewritten.

    \b
    Example:
      gitstate rollback webapp t-cart
      gitstate rollback webapp --to main~3
    """
    from gitstate import rollback as undo

    store = get_app().store
    if (task_id is None) == (rev is None):
        raise InvalidInput(
            "give a task ID to revert its merge, or --to REV to restore the STATE.yaml; not both"
        )
    if rev is not None:
        if cancel:
            raise InvalidInput("--cancel is for a task's rollback; --to restores the file as it was")
        restored, commit = undo.restore(store, project_name, rev, force=force)
        if as_json:
            echo_json(
                {
                    "project": project_name,
                    "restored_from": rev,
                    "commit": commit,
                    "tasks": len(restored.tasks),
                }
            )
        else:
            click.echo(
                f"restored projects/{project_name}/STATE.yaml as of {rev} "
                f"({len(restored.tasks)} tasks) in {commit[:12]}"
            )
        return
    assert task_id is not None  # noqa: S101 (checked above)
    back, commit = undo.rollback_task(store, project_name, task_id, cancel=cancel, force=force)
    print_task(
        project_name, back, as_json, f"reverted {project_name}/{task_id} in {commit[:12]}; now {back.status}"
    )


@task.command("import")
@click.argument("project_name", metavar="PROJECT", shell_complete=complete_projects)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "kind",
    type=click.Choice(["auto", "list", "ggen", "beads", "taskmaster"]),
    default="auto",
    show_default=True,
    help="What FILE holds; auto tells them apart by content.",
)
@click.option("--tag", metavar="TAG", help="Task Master: the tag to import (default: master).")
@click.option("--dry-run", is_flag=True, help="Show what would be added; write nothing.")
@json_option
def task_import(
    project_name: str, file: str, kind: str, tag: str | None, dry_run: bool, as_json: bool
) -> None:
    """Add the tasks in FILE to PROJECT, in one commit (FILE - reads stdin).

    Reads a YAML or JSON list of tasks, ggen-autonomous's .state.json, a
    beads JSONL export, or Task Master's tasks.json. Ids are kept or mapped
    (the original goes in meta.source_id), dependencies follow them.

    \b
    Example:
      gitstate task import webapp .taskmaster/tasks/tasks.json --dry-run
    """
    from pathlib import Path

    from gitstate import importer

    if file == "-":
        text, source = sys.stdin.read(importer.MAX_BYTES + 1), "stdin"  # the rest is refused unread
    else:
        if Path(file).is_file() and Path(file).stat().st_size > importer.MAX_BYTES:
            raise InvalidInput(
                f"{file} is larger than {importer.MAX_BYTES // 2**20} MiB; split it and import the parts"
            )
        try:
            text = Path(file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{file} is not UTF-8 text; save it as UTF-8 and import again") from None
        source = Path(file).name
    plan = importer.import_tasks(
        get_app().store, project_name, text, source=source, format=kind, tag=tag, dry_run=dry_run
    )
    if as_json:
        echo_json(plan.as_json())
    else:
        click.echo(plan.summary())


@cli.command("export")
@click.argument("project_name", metavar="[PROJECT]", required=False, shell_complete=complete_projects)
@json_option
def export_cmd(project_name: str | None, as_json: bool) -> None:
    """Print every project (or PROJECT) with its settings and tasks as JSON, for other tools.

    \b
    Example:
      gitstate export webapp --json > webapp.json
    """
    from gitstate import importer
    from gitstate.render import dumps

    if not as_json:
        raise click.UsageError("export prints JSON only: pass --json")
    found = importer.export(get_app().store, [project_name] if project_name else None)
    found.pop("schema_version", None)
    click.echo(dumps(found))
