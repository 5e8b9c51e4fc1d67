"""Commands agents run: claim, done, fail, release, renew, reap, gc, work."""

from __future__ import annotations

import os

import click

from gitstate.cli.base import (
    F,
    cli,
    complete_projects,
    complete_tasks,
    echo_json,
    get_app,
    json_option,
    print_task,
)
from gitstate.errors import InvalidInput

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

    chosen = name or get_app().agent
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
    return task_here(get_app().repo)


@cli.command()
@click.argument("project_name", metavar="[PROJECT]", required=False, shell_complete=complete_projects)
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

    store = get_app().store
    name = _agent(agent_name)
    assert name is not None  # noqa: S101 (required)
    taken = agent.claim(
        store, name, project_name, capabilities or None, worktree=not no_worktree, env=dict(os.environ)
    )
    path = str(taken.worktree.path) if taken.worktree else None
    if as_json:
        echo_json({"task": task_json(taken.project, taken.task, store.clock.now()), "worktree": path})
        return
    where = f"{taken.project.name}/{taken.task.id}"
    click.echo(f"claimed {where} (attempt {taken.task.attempts}): {first_line(taken.task.title)}")
    click.echo(f"branch:   {taken.task.branch}")
    if path:
        click.echo(f"worktree: {path}")


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False, shell_complete=complete_projects)
@click.argument("task_id", metavar="ID]", required=False, shell_complete=complete_tasks)
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
        get_app().store, project, task_id, result=result, agent=_agent(agent_name, required=False)
    )
    print_task(
        project, finished, as_json, f"{project}/{task_id} completed; its branch awaits the coordinator"
    )


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False, shell_complete=complete_projects)
@click.argument("task_id", metavar="ID]", required=False, shell_complete=complete_tasks)
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
    back = agent.fail(
        get_app().store, project, task_id, error=error, agent=_agent(agent_name, required=False)
    )
    print_task(
        project, back, as_json, f"{project}/{task_id} is {back.status} (attempt {back.attempts} counted)"
    )


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False, shell_complete=complete_projects)
@click.argument("task_id", metavar="ID]", required=False, shell_complete=complete_tasks)
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
        get_app().store, project, task_id, reason=reason, agent=_agent(agent_name, required=False)
    )
    print_task(
        project, back, as_json, f"{project}/{task_id} is {back.status} (attempt {back.attempts} counted)"
    )


@cli.command()
@click.argument("project_name", metavar="[PROJECT", required=False, shell_complete=complete_projects)
@click.argument("task_id", metavar="ID]", required=False, shell_complete=complete_tasks)
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
    expires = agent.renew(get_app().store, project, task_id, name)
    if expires is None:
        raise InvalidInput(f"{name} does not hold {project}/{task_id} any more; its lease may have expired")
    if as_json:
        echo_json({"project": project, "task": task_id, "lease_expires": format_timestamp(expires)})
    else:
        click.echo(f"lease on {project}/{task_id} runs until {format_timestamp(expires)}")


@cli.command()
@json_option
def reap(as_json: bool) -> None:
    """Give back tasks whose lease ran out (every claim does this too)."""
    from gitstate import agent

    reaped = agent.reap(get_app().store)
    if as_json:
        echo_json({"reaped": [{"project": p, "id": t.id, "status": t.status.value} for p, t in reaped]})
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

    cleaned = agent.gc(get_app().store)
    if as_json:
        echo_json(
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
@click.argument("project_name", metavar="[PROJECT]", required=False, shell_complete=complete_projects)
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

    store = get_app().store
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
        echo_json({"agent": name, "runs": runs})
