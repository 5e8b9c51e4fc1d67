"""Commands that answer from history and undo through it: log, task history, rollback."""

from __future__ import annotations

import click

from gitstate.cli.base import cli, echo_json, get_app, json_option, print_task
from gitstate.cli.state import task
from gitstate.errors import InvalidInput


@cli.command("log")
@click.argument("project_name", metavar="[PROJECT]", required=False)
@click.option("--task", "task_id", metavar="ID", help="Only this task's events.")
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
        for item in found:
            click.echo(json.dumps(item.as_json(), ensure_ascii=False))
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
@click.argument("project_name", metavar="PROJECT")
@click.argument("task_id", metavar="ID")
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
@click.argument("project_name", metavar="PROJECT")
@click.argument("task_id", metavar="[ID]", required=False)
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
