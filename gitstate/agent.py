"""Agents' side of a task: claim it, finish it, give it back; leases, reaping, cleanup.

* ``claim`` takes the best ready task in one compare-and-swap commit on the
  state branch (assignee, attempt, lease, branch), so two claimers can never
  both win. The task branch ``gitstate/<project>/<id>`` starts at that commit,
  or is kept if an earlier attempt left work on it; a worktree is made for it.
* ``done`` commits what the agent left in the worktree together with the
  task's ``completed`` entry in STATE.yaml, on the task branch (state and code
  in one commit, which the coordinator merges), then records the completion on
  the state branch so the coordinator and ``status`` see it.
* ``fail`` and ``release`` save work in progress on the branch and send the
  task back to pending with the attempt counted (failed once ``max_retries``
  is used up).
* A live agent renews its lease in ``refs/gitstate/leases/<project>/<id>``: a
  ref, not a commit, so heartbeats add nothing to history. ``reap`` (which
  every claim runs first) returns tasks whose lease ran out; their worktrees
  are reclaimed once no local process holds them.
* ``gc`` removes worktrees, branches and leases that no open task owns.
* Once a claim, completion or failure is published, the project's lifecycle
  hooks hear about it (``lifecycle.fire``, which returns at once).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gitstate import lifecycle, locks, statefile
from gitstate.errors import Busy, GitStateError, InvalidInput, NotFound, NothingReady, RepositoryError
from gitstate.git import Oid, Repository, Worktree
from gitstate.model import Project, Settings, Status, Task, move, ready_tasks, select_next
from gitstate.names import check_agent_name, check_project_name, check_task_id
from gitstate.redact import redact
from gitstate.statefile import state_path
from gitstate.store import Change, Committed, Store, commit_message
from gitstate.timefmt import format_timestamp, parse_timestamp
from gitstate.worktrees import Worktrees

BRANCH_PREFIX = "gitstate"
LEASE_PREFIX = "refs/gitstate/leases"
CLAIM_ATTEMPTS = 20
TEXT_LIMIT = 4000


def branch_name(project: str, task_id: str) -> str:
    return f"{BRANCH_PREFIX}/{project}/{task_id}"


def lease_ref(project: str, task_id: str) -> str:
    return f"{LEASE_PREFIX}/{project}/{task_id}"


@dataclass(frozen=True)
class Claim:
    project: Project
    task: Task
    worktree: Worktree | None


def clip(text: str | None) -> str | None:
    if text is None:
        return None
    clean = redact(text).strip()
    return clean if len(clean) <= TEXT_LIMIT else "…" + clean[-TEXT_LIMIT:]


# -- claiming -------------------------------------------------------------------------------------


def claim(
    store: Store,
    agent: str,
    project: str | Sequence[str] | None = None,
    capabilities: Iterable[str] | None = None,
    *,
    worktree: bool = True,
    env: dict[str, str] | None = None,
    reuse: Path | None = None,
) -> Claim:
    """Take the best ready task. ``NothingReady`` says why there is none.

    ``reuse`` is this agent's parked worktree, moved into place for the task.
    """
    check_agent_name(agent)
    caps = None if capabilities is None else tuple(capabilities)
    reap(store)
    for _ in range(CLAIM_ATTEMPTS):
        chosen = _choose(store, project, caps)
        taken: list[Task] = []

        def change(current: Project, name: str = chosen[0].name, taken: list[Task] = taken) -> Change | None:
            task = _take(current, agent, caps, store.clock.now())
            if task is None:
                return None
            taken[:] = [task]
            summary = f"claim {name}/{task.id} (attempt {task.attempts}) by {agent}"
            return Change(current.with_task(task), "claim", summary, (task.id,), agent)

        committed = store.update(chosen[0].name, change)
        if not committed.changed:
            continue  # another claimer took the last ready task of that project: choose again
        claimed = _start(
            store, committed.project, taken[0], committed.commit, worktree=worktree, env=env, reuse=reuse
        )
        lifecycle.fire(store, "claim", committed.project, taken[0], commit=committed.commit, agent=agent)
        return claimed
    raise NothingReady("every ready task was taken by other claimers while choosing; try again")


def _take(current: Project, agent: str, caps: tuple[str, ...] | None, now: datetime) -> Task | None:
    """The best ready task of ``current``, as ``agent``'s claim would record it."""
    ready = ready_tasks(current, now, caps)
    if not ready:
        return None
    return move(
        current.name,
        ready[0],
        Status.IN_PROGRESS,
        now,
        assignee=agent,
        attempts=ready[0].attempts + 1,
        lease_expires=now + timedelta(seconds=current.lease()),
        branch=branch_name(current.name, ready[0].id),
    )


def _choose(
    store: Store, project: str | Sequence[str] | None, caps: tuple[str, ...] | None
) -> tuple[Project, Task]:
    if isinstance(project, str):
        projects = [store.read(project)]
    else:
        projects = [store.read(name) for name in project] if project else store.read_all()
    if not projects:
        raise NothingReady("there are no projects yet; add one with `gitstate project add NAME`")
    found = select_next(projects, store.clock.now(), caps)
    if isinstance(found, str):
        raise NothingReady(found)
    return found


def _start(
    store: Store,
    project: Project,
    task: Task,
    commit: Oid,
    *,
    worktree: bool,
    env: dict[str, str] | None,
    reuse: Path | None,
) -> Claim:
    """Make the task branch and worktree; give the task back if that fails."""
    assert task.branch is not None  # noqa: S101 (set by claim)
    ref = f"refs/heads/{task.branch}"
    try:
        if store.repo.resolve(ref) is None and not store.repo.update_ref(ref, commit, None):
            _appeared(ref)
        tree = None
        if worktree:
            trees = Worktrees(store.repo)
            if trees.path_for(project.name, task.id).exists():
                _wait_for_holder(store, project.name, task.id)
            tree = trees.create(project.name, task.id, task.branch, reuse)
            trees.set_up(
                tree,
                project.settings,
                env or task_environment(project, task, tree, store.branch),
                project.timeout(task),
            )
    except BaseException:
        with contextlib.suppress(GitStateError):
            _unclaim(store, project.name, task)
        raise
    return Claim(project, task, tree)


def _wait_for_holder(store: Store, project: str, task_id: str, seconds: float = 60.0) -> None:
    """A process that lost this task's lease stops soon; let it, before taking its folder."""
    deadline = time.monotonic() + seconds
    while not _nobody_holds(store, project, task_id):
        if time.monotonic() > deadline:
            raise Busy(
                f"a process on this machine still works on {project}/{task_id} after losing it; "
                "stop it (or wait), then claim again"
            )
        time.sleep(0.1)


def _appeared(ref: str) -> None:
    raise RepositoryError(f"{ref} appeared while claiming; run `gitstate gc` and claim again")


def _unclaim(store: Store, project: str, task: Task) -> None:
    def change(current: Project) -> Change | None:
        now_task = current.task(task.id)
        if now_task is None or now_task.status != Status.IN_PROGRESS or now_task.attempts != task.attempts:
            return None
        back = move(
            project,
            now_task,
            Status.PENDING,
            store.clock.now(),
            assignee=None,
            lease_expires=None,
            attempts=now_task.attempts - 1,
        )
        return Change(
            current.with_task(back), "unclaim", f"unclaim {project}/{task.id}: setting up failed", (task.id,)
        )

    store.update(project, change)
    remove_worktree(store, project, task.id)


def task_environment(project: Project, task: Task, tree: Worktree | None, base: str = "") -> dict[str, str]:
    """The GITSTATE_* variables a task's command receives (on top of the agent's own).

    ``GITSTATE_LAST_ERROR`` says why the previous attempt did not land (say, a
    conflict with what reached ``GITSTATE_BASE_BRANCH`` meanwhile, which the
    agent can merge and resolve in the worktree).
    """
    return {
        "GITSTATE_PROJECT": project.name,
        "GITSTATE_TASK": task.id,
        "GITSTATE_TITLE": task.title,
        "GITSTATE_DESCRIPTION": task.description or task.title,
        "GITSTATE_BRANCH": task.branch or "",
        "GITSTATE_WORKTREE": str(tree.path) if tree else "",
        "GITSTATE_ATTEMPT": str(task.attempts),
        "GITSTATE_AGENT": task.assignee or "",
        "GITSTATE_BASE_BRANCH": base,
        "GITSTATE_LAST_ERROR": task.error or "",
    }


# -- finishing ------------------------------------------------------------------------------------


def held(store: Store, project: str, task_id: str, agent: str | None) -> tuple[Project, Task]:
    """The task, which must be in progress (and held by ``agent`` when one is named)."""
    current = store.read(project)
    task = current.task(task_id)
    if task is None:
        raise NotFound(
            f"task {task_id!r} is not in project {project!r}; `gitstate task list {project}` shows its tasks"
        )
    if task.status != Status.IN_PROGRESS:
        raise InvalidInput(f"task {project}/{task_id} is {task.status}, not in progress; nothing to finish")
    if agent is not None and task.assignee != agent:
        raise InvalidInput(f"task {project}/{task_id} is held by {task.assignee}, not {agent}")
    return current, task


def done(
    store: Store,
    project: str,
    task_id: str,
    *,
    result: str | None = None,
    agent: str | None = None,
    park: str | None = None,
) -> Task:
    """Commit the agent's work with the task marked completed, on the task branch.

    The worktree is removed, or parked for agent ``park``'s next task.
    """
    task, finished = _finish(store, project, task_id, result, agent)
    committed = _record(store, project, task, finished, event="done", summary=f"done {project}/{task_id}")
    lifecycle.fire(
        store, "complete", committed.project, finished, commit=committed.commit, agent=finished.assignee
    )
    _drop_lease(store, project, task_id)
    _retire(store, project, task_id, park)
    return finished


def done_and_claim(
    store: Store,
    project: str,
    task_id: str,
    *,
    result: str | None,
    agent: str,
    capabilities: Iterable[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Task, Claim | None]:
    """``done``, and the claim of the same project's next ready task, in one commit.

    This is the work loop's step: one write on the state branch instead of
    two. The finished task's worktree is reused for the next one.
    """
    task, finished = _finish(store, project, task_id, result, agent)
    caps = None if capabilities is None else tuple(capabilities)
    reap(store)
    taken: list[Task] = []

    def change(current: Project) -> Change:
        _unchanged(current, project, task)
        after = current.with_task(finished)
        following = _take(after, agent, caps, store.clock.now())
        if following is None:
            return Change(after, "done", f"done {project}/{task_id}", (task_id,), agent)
        taken[:] = [following]
        summary = f"done {project}/{task_id}; claim {project}/{following.id} (attempt {following.attempts})"
        return Change(
            after.with_task(following), "done", summary, (task_id, following.id), agent, ("done", "claim")
        )

    committed = store.update(project, change)
    lifecycle.fire(store, "complete", committed.project, finished, commit=committed.commit, agent=agent)
    _drop_lease(store, project, task_id)
    if not taken:
        _retire(store, project, task_id, agent)
        return finished, None
    reuse = Worktrees(store.repo).path_for(project, task_id)  # moved straight to the next task
    claimed = _start(
        store, committed.project, taken[0], committed.commit, worktree=True, env=env, reuse=reuse
    )
    lifecycle.fire(store, "claim", committed.project, taken[0], commit=committed.commit, agent=agent)
    return finished, claimed


def _finish(
    store: Store, project: str, task_id: str, result: str | None, agent: str | None
) -> tuple[Task, Task]:
    """Commit the work on the task branch; (the task as it was, the task completed)."""
    current, task = held(store, project, task_id, agent)
    finished = move(
        project,
        task,
        Status.COMPLETED,
        store.clock.now(),
        result=clip(result),
        error=None,
        lease_expires=None,
    )
    statefile.check_task(finished)
    tree = _worktree_of(store, project, task_id)
    _commit_on_branch(store, current, finished, tree, "done")  # the worktree goes next: no need to refresh it
    return task, finished


def fail(
    store: Store, project: str, task_id: str, *, error: str, agent: str | None = None, park: str | None = None
) -> Task:
    """Save work in progress; back to pending with the attempt counted, or failed."""
    return _give_back(store, project, task_id, agent=agent, error=error or "failed", event="fail", park=park)


def release(
    store: Store,
    project: str,
    task_id: str,
    *,
    agent: str | None = None,
    reason: str | None = None,
    park: str | None = None,
    save: bool = True,
) -> Task:
    """Like ``fail``, for an agent that stops without judging the work (a deadline, a person).

    ``save=False`` gives the task back on the state branch alone, leaving its
    worktree and branch as they are (for when the branch cannot be written).
    """
    return _give_back(
        store, project, task_id, agent=agent, error=reason, event="release", park=park, save=save
    )


def _give_back(
    store: Store,
    project: str,
    task_id: str,
    *,
    agent: str | None,
    error: str | None,
    event: str,
    park: str | None,
    save: bool = True,
) -> Task:
    current, task = held(store, project, task_id, agent)
    tree = _worktree_of(store, project, task_id) if save else None
    if tree is not None:
        save_work(store, project, task, tree, f"work in progress ({event} after attempt {task.attempts})")
    back = requeue(current, task, store.clock.now(), clip(error))
    committed = _record(
        store, project, task, back, event=event, summary=f"{event} {project}/{task_id}: {back.status}"
    )
    if event == "fail":
        lifecycle.fire(store, "fail", committed.project, back, commit=committed.commit, agent=task.assignee)
    _drop_lease(store, project, task_id)
    if save:
        _retire(store, project, task_id, park)
    return back


def requeue(project: Project, task: Task, now: datetime, error: str | None) -> Task:
    """An in-progress (or completed) task given back: pending, or failed when out of attempts."""
    if task.attempts > project.max_retries(task):
        return move(project.name, task, Status.FAILED, now, error=error, assignee=None, lease_expires=None)
    return move(project.name, task, Status.PENDING, now, error=error, assignee=None, lease_expires=None)


def restart(project: str, task: Task, now: datetime, error: str | None) -> Task:
    """A task whose work left the branch (its merge reverted) pending again, from scratch."""
    return move(
        project,
        task,
        Status.PENDING,
        now,
        error=error,
        attempts=0,
        assignee=None,
        branch=None,
        lease_expires=None,
    )


def drop_landed_branch(store: Store, branch: str) -> None:
    """Delete a task branch whose commits are all in the state branch's history already.

    The next claim then starts a new branch from the tip, where a reverted
    merge's work is gone, instead of resuming the old one.
    """
    ref = f"refs/heads/{branch}"
    tip = store.repo.resolve(ref)
    if tip is not None and store.repo.merge_base(tip, store.head()) == tip:
        store.repo.delete_ref(ref, tip)


def _record(store: Store, project: str, before: Task, after: Task, *, event: str, summary: str) -> Committed:
    """Write ``after`` on the state branch if the task is still in the state ``before`` saw."""

    def change(current: Project) -> Change | None:
        _unchanged(current, project, before)
        return Change(current.with_task(after), event, summary, (before.id,), before.assignee)

    return store.update(project, change)


def _unchanged(current: Project, project: str, before: Task) -> None:
    now_task = current.task(before.id)
    if now_task is None or (now_task.status, now_task.attempts) != (before.status, before.attempts):
        status = f"{now_task.status}, attempt {now_task.attempts}" if now_task else "gone"
        raise InvalidInput(
            f"task {project}/{before.id} changed meanwhile (now {status}); its lease probably expired"
        )


def _worktree_of(store: Store, project: str, task_id: str) -> Worktree | None:
    path = Worktrees(store.repo).path_for(project, task_id)
    if not (path / ".git").is_file():
        return None
    try:
        return store.repo.worktree_at(path)
    except RepositoryError:  # its `.git` file was cut short (`git worktree add` killed): no work in it
        return None


def save_work(store: Store, project: str, task: Task, tree: Worktree, what: str) -> Oid | None:
    """Commit whatever is uncommitted in ``tree`` to the task branch; None if nothing was."""
    ref = f"refs/heads/{branch_name(project, task.id)}"
    tip = store.repo.resolve(ref)
    if tip is None or store.repo.head_of(tree) != ref:
        return None
    if not (tree.git_dir / "index").is_file():
        # Its checkout never finished (a claim killed while making the worktree): the
        # missing files are not deletions, and staging them would commit the removal of
        # every file on the branch.
        return None
    # Files copied in from the person's checkout (.env...) are never the task's work.
    staged = store.repo.stage_all(tree, store.read(project).settings.copy_files)
    if staged == store.repo.commit_tree_oid(tip):
        return None
    change = Change(Project(Settings(name=project)), "save", f"{what} on {project}/{task.id}", (task.id,))
    message = commit_message(change, None, task.assignee or "gitstate")
    author = store.repo.identity(task.assignee or "gitstate")
    commit = store.repo.write_commit(staged, [tip], message, author, date=store.clock.git_date())
    if not store.repo.update_ref(ref, commit, tip):
        raise RepositoryError(f"{ref} moved while gitstate saved work to it; nothing was lost, retry")
    return commit


def _commit_on_branch(
    store: Store, current: Project, finished: Task, tree: Worktree | None, event: str
) -> Oid:
    """One commit on the task branch: the worktree's changes plus the task's new entry."""
    repo = store.repo
    ref = f"refs/heads/{branch_name(current.name, finished.id)}"
    tip = repo.resolve(ref)
    if tip is None:
        raise NotFound(f"branch {ref} is gone; the task's work cannot be recorded (run `gitstate release`)")
    if tree is not None and repo.head_of(tree) != ref:
        raise RepositoryError(f"{tree.path} no longer has {ref} checked out; check it out again, then retry")
    copied = current.settings.copy_files  # (.env...) never committed: they are not the task's work
    base = repo.stage_all(tree, copied) if tree is not None else repo.commit_tree_oid(tip)
    path = state_path(current.name)
    found = repo.info(f"{base}:{path}")
    if found is None:
        raise InvalidInput(f"{path} was deleted on {ref}; restore it, then run `gitstate {event}` again")
    doc = store.cache.get(found[0])
    text = store.cache.text(found[0]) or repo.read(found[0])[1].decode("utf-8", errors="replace")
    if doc is None:
        doc = statefile.parse(text, path)  # the agent may have edited it: report file:line
    text2, doc2 = statefile.apply(doc, text, doc.project.with_task(finished))
    blob = repo.write_object("blob", text2.encode())
    store.cache.put(blob, doc2, text2)
    change = Change(
        doc2.project, event, f"{event} {current.name}/{finished.id}", (finished.id,), finished.assignee
    )
    message = commit_message(change, doc.project, finished.assignee or "gitstate")
    author = repo.identity(finished.assignee or "gitstate")
    commit = repo.write_commit(
        repo.replace_path(base, path, blob), [tip], message, author, date=store.clock.git_date()
    )
    if not repo.update_ref(ref, commit, tip):
        raise RepositoryError(f"{ref} moved while gitstate committed to it; retry")
    return commit


def _retire(store: Store, project: str, task_id: str, park: str | None) -> None:
    trees = Worktrees(store.repo)
    path = trees.path_for(project, task_id)
    if park is not None and (path / ".git").is_file():
        trees.park(path, park)
    elif path.exists():
        trees.remove(path)


def remove_worktree(store: Store, project: str, task_id: str) -> None:
    trees = Worktrees(store.repo)
    path = trees.path_for(project, task_id)
    if path.exists():
        trees.remove(path)


# -- leases ---------------------------------------------------------------------------------------


def renew(
    store: Store, project: str, task_id: str, agent: str, attempt: int | None = None
) -> datetime | None:
    """Extend the lease of a task ``agent`` holds; None when it no longer holds it."""
    current = store.read(project)
    task = current.task(task_id)
    if task is None or task.status != Status.IN_PROGRESS or task.assignee != agent:
        return None
    if attempt is not None and task.attempts != attempt:
        return None
    expires = store.clock.now() + timedelta(seconds=current.lease())
    body = f"expires {format_timestamp(expires)}\nagent {agent}\nattempt {task.attempts}\n"
    ref = lease_ref(project, task_id)
    blob = store.repo.write_object("blob", body.encode())
    old = store.repo.resolve_any(ref)
    if not store.repo.update_ref(ref, blob, old):
        return None
    return expires


def lease_expiry(store: Store, project: str, task: Task, now: datetime | None = None) -> datetime | None:
    """When the task's lease runs out: the claim's, or the latest renewal of this attempt.

    With ``now``, a lease that the claim itself still covers is returned without
    looking for renewals.
    """
    best = task.lease_expires
    if now is not None and best is not None and best > now:
        return best
    found = store.repo.info(lease_ref(project, task.id))
    if found is not None and found[1] == "blob":
        fields = dict(
            line.partition(" ")[::2]
            for line in store.repo.read(found[0])[1].decode(errors="replace").splitlines()
        )
        with contextlib.suppress(GitStateError, KeyError, ValueError):
            if fields.get("attempt") == str(task.attempts) and fields.get("agent") == task.assignee:
                renewed = parse_timestamp(fields["expires"])
                best = renewed if best is None or renewed > best else best
    return best


def _drop_lease(store: Store, project: str, task_id: str) -> None:
    ref = lease_ref(project, task_id)
    old = store.repo.resolve_any(ref)
    if old is not None:
        store.repo.delete_ref(ref, old)


def holding(store: Store, project: str, task_id: str) -> contextlib.AbstractContextManager[None]:
    """Mark this process as the live holder of a task (reap and gc leave its worktree alone)."""
    return locks.held(_holder_lock(store, project, task_id), float("inf"), what=f"task {project}/{task_id}")


def working_as(store: Store, name: str) -> contextlib.AbstractContextManager[None]:
    """Mark this process as the live agent ``name`` on this machine (one process per name)."""
    refusal = f"another `gitstate work --agent {name}` runs on this machine; give each agent its own name"
    return locks.exclusive(_agent_lock(store, name), refusal)


def _holder_lock(store: Store, project: str, task_id: str) -> Path:
    return locks.lock_path(store.repo.common_dir, "tasks", f"{project}%{task_id}")


def _agent_lock(store: Store, name: str) -> Path:
    return locks.lock_path(store.repo.common_dir, "agents", name)


def _nobody_holds(store: Store, project: str, task_id: str) -> bool:
    return locks.is_free(_holder_lock(store, project, task_id))


def reap(store: Store) -> list[tuple[str, Task]]:
    """Give back every task whose lease ran out; returns what was given back."""
    now = store.clock.now()
    reaped = []
    for project in store.read_all():
        for task in project.tasks.values():
            if task.status != Status.IN_PROGRESS:
                continue
            expiry = lease_expiry(store, project.name, task, now)
            if expiry is not None and expiry > now:
                continue
            when = format_timestamp(expiry) if expiry else "never set"
            reason = f"lease expired ({when}); {task.assignee or 'the agent'} stopped renewing it"
            back = _reap_one(store, project.name, task, reason)
            if back is not None:
                reaped.append((project.name, back))
    return reaped


def recover(store: Store, names: Iterable[str]) -> list[tuple[str, Task]]:
    """Give back, at once, tasks that these agents of this machine held when they died.

    For a supervisor restarting after a crash (or a reboot): an agent name it
    runs that no live process on this machine answers to cannot be working on
    anything, so its tasks need not wait for their leases.
    """
    mine = {name for name in names if locks.is_free(_agent_lock(store, name))}
    recovered = []
    for project in store.read_all():
        for task in project.tasks.values():
            if task.status != Status.IN_PROGRESS or task.assignee not in mine:
                continue
            if not _nobody_holds(store, project.name, task.id):
                continue
            reason = f"{task.assignee} stopped before finishing (its supervisor restarted)"
            back = _reap_one(store, project.name, task, reason)
            if back is not None:
                recovered.append((project.name, back))
    return recovered


def _reap_one(store: Store, project: str, task: Task, reason: str) -> Task | None:
    result: list[Task] = []

    def change(current: Project) -> Change | None:
        now_task = current.task(task.id)
        if now_task is None or (now_task.status, now_task.attempts) != (task.status, task.attempts):
            return None  # finished or given back meanwhile
        back = requeue(current, now_task, store.clock.now(), reason)
        result[:] = [back]
        return Change(
            current.with_task(back), "reap", f"reap {project}/{task.id}: {back.status}", (task.id,), "reaper"
        )

    committed = store.update(project, change)
    if not result:
        return None
    lifecycle.fire(store, "fail", committed.project, result[0], commit=committed.commit, agent="reaper")
    tree = _worktree_of(store, project, task.id)
    if tree is not None and _nobody_holds(store, project, task.id):
        with contextlib.suppress(GitStateError):
            save_work(
                store,
                project,
                task,
                tree,
                f"work in progress of attempt {task.attempts}, saved when it was given back",
            )
        remove_worktree(store, project, task.id)
    _drop_lease(store, project, task.id)
    return result[0]


# -- cleanup --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cleanup:
    worktrees: tuple[str, ...]
    branches: tuple[str, ...]
    leases: tuple[str, ...]


def gc(store: Store) -> Cleanup:
    """Remove worktrees, branches and leases that no open task owns."""
    trees = Worktrees(store.repo)
    # Records of worktrees whose `git worktree add` was killed go first: some
    # make `git worktree list` fail, and planning needs it.
    removed = [f"half-made worktree {name}" for name in trees.forget_half_made()]
    removed += [f"merge folder {name}" for name in store.repo.forget_merge_folders()]
    plan = _plan(store)
    for project, label, path, task in plan.worktrees:
        if task is not None and task.status in (Status.PENDING, Status.FAILED) and (path / ".git").is_file():
            with contextlib.suppress(GitStateError):
                tree = store.repo.worktree_at(path)
                save_work(store, project, task, tree, "work in progress saved by gc")
        trees.remove(path)
        removed.append(label)
    with trees.locked():
        store.repo.worktree_prune()
    branches = [
        ref for ref, oid in plan.refs if ref.startswith("refs/heads/") and store.repo.delete_ref(ref, oid)
    ]
    leases = [
        ref for ref, oid in plan.refs if ref.startswith(LEASE_PREFIX) and store.repo.delete_ref(ref, oid)
    ]
    return Cleanup(tuple(removed), tuple(branches), tuple(leases))


def gc_candidates(store: Store) -> list[str]:
    """What ``gc`` would remove now (worktree labels and refs)."""
    half_made = Worktrees(store.repo).half_made()
    if half_made:  # until gc removes these, `git worktree list` may fail: report them alone
        return [f"half-made worktree {record.name}" for record in half_made]
    plan = _plan(store)
    return [label for _, label, _, _ in plan.worktrees] + [ref for ref, _ in plan.refs]


@dataclass(frozen=True)
class _Plan:
    worktrees: list[tuple[str, str, Path, Task | None]]  # (project, label, path, its task)
    refs: list[tuple[str, Oid]]


def _plan(store: Store) -> _Plan:
    tasks = {(p.name, t.id): t for p in store.read_all() for t in p.tasks.values()}
    trees = Worktrees(store.repo)
    worktrees: list[tuple[str, str, Path, Task | None]] = []
    for (project, task_id), path in sorted(trees.existing().items()):
        task = tasks.get((project, task_id))
        if (task is None or task.status != Status.IN_PROGRESS) and _nobody_holds(store, project, task_id):
            worktrees.append((project, f"{project}/{task_id}", path, task))
    for name, path in trees.idle().items():
        if locks.is_free(_agent_lock(store, name)):
            worktrees.append(("", f"idle worktree of {name}", path, None))
    for name, path in trees.check_trees().items():
        if locks.is_free(trees.checks_lock(name)):
            worktrees.append(("", f"check worktree of {name}", path, None))
    refs = _unowned(store, f"refs/heads/{BRANCH_PREFIX}/", tasks, keep=_open)
    refs += _unowned(store, f"{LEASE_PREFIX}/", tasks, keep=lambda t: t.status == Status.IN_PROGRESS)
    return _Plan(worktrees, refs)


def _open(task: Task) -> bool:
    return task.status not in (Status.MERGED, Status.CANCELLED)


def _unowned(
    store: Store, prefix: str, tasks: dict[tuple[str, str], Task], keep: Callable[[Task], bool]
) -> list[tuple[str, Oid]]:
    checked_out = {branch for _, branch in store.repo.worktree_list() if branch}
    main = store.repo.main_worktree()
    if main is not None:
        head = store.repo.head_of(main)
        if head:
            checked_out.add(head)
    found = []
    for ref, oid in sorted(store.repo.refs(prefix).items()):
        parts = ref[len(prefix) :].split("/")
        task = tasks.get((parts[0], parts[1])) if len(parts) == 2 else None
        if (task is None or not keep(task)) and ref not in checked_out:
            found.append((ref, oid))
    return found


# -- finding the task from inside its worktree ----------------------------------------------------


def task_here(repo: Repository) -> tuple[str, str]:
    """(project, id) of the task whose worktree the command runs in."""
    head = repo.head_of(Worktree(repo.toplevel, repo.git_dir)) if repo.toplevel else None
    prefix = f"refs/heads/{BRANCH_PREFIX}/"
    if head and head.startswith(prefix):
        parts = head[len(prefix) :].split("/")
        if len(parts) == 2:
            return check_project_name(parts[0]), check_task_id(parts[1])
    raise InvalidInput(
        "this is not a task worktree (its branch is not gitstate/<project>/<id>); give PROJECT and ID"
    )
