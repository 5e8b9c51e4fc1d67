"""The agent loop behind ``gitstate work``: claim, run the task's command, then done or fail.

While the command runs, the loop renews the task's lease every third of the
lease; if renewing fails (the task was reaped and may belong to someone else
now), the command is stopped and nothing is recorded for it. A command that
finishes the task itself (by running ``gitstate done``) is left alone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gitstate import agent, executor
from gitstate.errors import GitStateError, NothingReady
from gitstate.model import Status, Task
from gitstate.store import Store
from gitstate.worktrees import Worktrees

NO_COMMAND = (
    "no command to run: set one with `gitstate project edit PROJECT --command ...` "
    "or `gitstate task edit PROJECT ID --command ...`"
)


@dataclass(frozen=True)
class Ran:
    project: str
    task: Task
    outcome: executor.Outcome | None
    final: Task | None


def work(
    store: Store,
    name: str,
    *,
    project: str | Sequence[str] | None = None,
    capabilities: Iterable[str] | None = None,
    max_tasks: int | None = None,
    once: bool = False,
    wait: bool = False,
    poll: float = 5.0,
    stop: threading.Event | None = None,
    no_more: threading.Event | None = None,
    on_ran: Callable[[Ran], None] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> list[Ran]:
    """Take and run tasks until none is ready (or the limits are reached).

    ``no_more`` stops claiming (the running task finishes); ``stop`` also ends
    the running task, whose work so far is saved on its branch and released.
    ``on_ran`` hears about each task as it ends.
    """
    stop = stop or threading.Event()
    no_more = no_more or threading.Event()
    caps = None if capabilities is None else tuple(capabilities)
    ran: list[Ran] = []
    trees = Worktrees(store.repo)
    idle = trees.idle_path(name)
    following: agent.Claim | None = None
    with agent.working_as(store, name):
        try:
            while not stop.is_set() and not no_more.is_set() and (max_tasks is None or len(ran) < max_tasks):
                claimed, following = following, None
                if claimed is None:
                    try:
                        claimed = agent.claim(store, name, project, caps, env=dict(os.environ), reuse=idle)
                    except NothingReady as exc:
                        if not wait:
                            say(f"{name}: nothing to do: {exc}")
                            break
                        no_more.wait(poll)
                        continue
                where = f"{claimed.project.name}/{claimed.task.id}"
                say(f"{name}: took {where} (attempt {claimed.task.attempts})")
                # With a project named, finishing a task and taking the next one
                # are one commit (the next one is that project's best anyway).
                single = isinstance(project, str) or (project is not None and len(project) == 1)
                more = single and not once and (max_tasks is None or len(ran) + 1 < max_tasks)
                more = more and not no_more.is_set()
                try:
                    item, following = run_claimed(store, claimed, name, stop, chain=more, capabilities=caps)
                except Exception as exc:
                    _abandon(store, claimed, name, exc)
                    raise
                ran.append(item)
                if on_ran is not None:
                    on_ran(item)
                status = item.final.status if item.final else "left to its new holder"
                say(f"{name}: {item.project}/{item.task.id} {status}")
                if once:
                    break
        finally:
            if following is not None:  # stopped with a task taken but not started: give it back
                agent.release(
                    store, following.project.name, following.task.id, agent=name, reason="agent stopped"
                )
            if idle.exists():  # the worktree kept between tasks goes when the agent stops
                trees.remove(idle)
    return ran


def run_claimed(
    store: Store,
    claimed: agent.Claim,
    name: str,
    stop: threading.Event,
    *,
    chain: bool = False,
    capabilities: tuple[str, ...] | None = None,
) -> tuple[Ran, agent.Claim | None]:
    """Run one claimed task to its end. With ``chain``, a success also claims the
    project's next ready task in the same commit; that claim is returned."""
    project, task, tree = claimed.project, claimed.task, claimed.worktree
    following = None
    with agent.holding(store, project.name, task.id):
        command = task.command or project.settings.command
        if not command or tree is None:
            final = agent.fail(store, project.name, task.id, error=NO_COMMAND, agent=name, park=name)
            return Ran(project.name, task, None, final), None
        env = {**os.environ, **agent.task_environment(project, task, tree, store.branch)}

        def heartbeat() -> bool:
            return agent.renew(store, project.name, task.id, name, task.attempts) is not None

        logs = Worktrees(store.repo).logs / project.name / task.id
        outcome = executor.run(
            command,
            cwd=tree.path,
            env=env,
            timeout=project.timeout(task),
            log=logs / f"attempt-{task.attempts}.log",
            heartbeat=heartbeat,
            every=max(1.0, project.lease() / 3),
            stop=stop,
        )
        if outcome.reason == "lost_lease" or not _still_ours(store, project.name, task, name):
            return Ran(project.name, task, outcome, None), None
        result = outcome.tail or "exited 0"
        if outcome.ok and chain:
            final, following = agent.done_and_claim(
                store,
                project.name,
                task.id,
                result=result,
                agent=name,
                capabilities=capabilities,
                env=dict(os.environ),
            )
        elif outcome.ok:
            final = agent.done(store, project.name, task.id, result=result, agent=name, park=name)
        elif outcome.reason == "stopped":
            reason = "stopped before it finished; its work so far is saved on the task branch"
            final = agent.release(store, project.name, task.id, agent=name, reason=reason, park=name)
        else:
            final = agent.fail(store, project.name, task.id, error=outcome.summary(), agent=name, park=name)
        return Ran(project.name, task, outcome, final), following


def _abandon(store: Store, claimed: agent.Claim, name: str, exc: BaseException) -> None:
    """The agent stops on an error in the middle of a task: give the task back now, not
    when its lease runs out (with its work saved, if its branch can still be written)."""
    reason = f"the agent stopped: {' '.join(str(exc).split())[:300] or type(exc).__name__}"
    project, task_id = claimed.project.name, claimed.task.id
    try:
        if not _still_ours(store, project, claimed.task, name):
            return
        try:
            agent.release(store, project, task_id, agent=name, reason=reason)
        except GitStateError:  # its branch cannot be written (a stale lock, say): main alone
            agent.release(store, project, task_id, agent=name, reason=reason, save=False)
    except GitStateError:
        pass  # then its lease runs out and a reap gives it back


def _still_ours(store: Store, project: str, task: Task, name: str) -> bool:
    now = store.read(project).task(task.id)
    return (
        now is not None
        and now.status == Status.IN_PROGRESS
        and now.assignee == name
        and now.attempts == task.attempts
    )
