"""Task operations: add, edit, cancel, retry, and the task a claim would take next.

Each operation is a change function handed to the store, so it is re-applied
to fresh state if another writer got there first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from gitstate.errors import AlreadyExists, IllegalTransition, InvalidInput, NotFound, NothingReady
from gitstate.model import TASK_FIELDS, Project, Status, Task, move, select_next
from gitstate.names import check_task_id, new_task_id
from gitstate.redact import refuse_secrets
from gitstate.render import quoted_title
from gitstate.statefile import check_task
from gitstate.store import Change, Store

# Fields a person sets directly; the rest belong to the status machine.
EDITABLE = (
    "title",
    "description",
    "priority",
    "depends_on",
    "requires",
    "command",
    "max_retries",
    "timeout",
    "not_before",
    "meta",
)
# What `--clear` may empty: every editable field but the two a task always has.
CLEARABLE = tuple(name for name in EDITABLE if name not in ("title", "priority"))


def get(project: Project, task_id: str) -> Task:
    task = project.task(task_id)
    if task is None:
        raise NotFound(
            f"task {task_id!r} is not in project {project.name!r}; "
            f"`gitstate task list {project.name}` shows its tasks"
        )
    return task


def add(
    store: Store,
    project: str,
    title: str,
    fields: Mapping[str, Any] | None = None,
    task_id: str | None = None,
) -> Task:
    """Add a pending task; returns it with its new id."""
    fields = dict(fields or {})
    _check_editable(fields)
    refuse_secrets({"the title": title, **fields})
    if task_id is not None:
        check_task_id(task_id)
    made: list[Task] = []

    def change(current: Project) -> Change:
        if task_id is not None and task_id in current.tasks:
            raise AlreadyExists(f"task {task_id!r} already exists in {project}; pick another id")
        now = store.clock.now()
        new_id = task_id or new_task_id(current.tasks)
        task = check_task(Task(id=new_id, title=title, created_at=now, updated_at=now, **fields))
        made[:] = [task]
        summary = f"add {project}/{new_id} {quoted_title(title)}"
        return Change(current.with_task(task), "add", summary, (new_id,))

    store.update(project, change)
    return made[0]


def edit(store: Store, project: str, task_id: str, fields: Mapping[str, Any]) -> Task:
    """Change a task's own fields (not its status); returns the new task."""
    _check_editable(fields)
    refuse_secrets(fields)
    if not fields:
        raise InvalidInput("nothing to change; give at least one option such as --title or --priority")

    def change(current: Project) -> Change:
        old = get(current, task_id)
        task = check_task(dataclasses.replace(old, updated_at=store.clock.now(), **fields))
        return Change(current.with_task(task), "edit", f"edit {project}/{task_id}", (task_id,))

    return get(store.update(project, change).project, task_id)


def cancel(store: Store, project: str, task_id: str, reason: str | None = None) -> Task:
    refuse_secrets({"the reason": reason or ""})

    def change(current: Project) -> Change:
        task = move(project, get(current, task_id), Status.CANCELLED, store.clock.now())
        if reason:
            task = check_task(dataclasses.replace(task, error=reason))
        return Change(current.with_task(task), "cancel", f"cancel {project}/{task_id}", (task_id,))

    return get(store.update(project, change).project, task_id)


def retry(store: Store, project: str, task_id: str) -> Task:
    """Send a failed (or completed, not yet merged) task back to pending with fresh attempts.

    A completed task's branch is kept, so the next attempt resumes from its
    work, unless that work is already in history (a merge reverted with plain
    git): then the next attempt starts afresh.
    """
    from gitstate.agent import drop_landed_branch, restart  # here: agents' machinery costs start-up time

    before = get(store.read(project), task_id)
    if before.status == Status.COMPLETED and before.branch:
        # Before the task is pending again: once it is, a claim may start that branch anew.
        drop_landed_branch(store, before.branch)

    def change(current: Project) -> Change:
        old = get(current, task_id)
        if old.status == Status.IN_PROGRESS:  # a live agent's task: retrying would steal it
            raise IllegalTransition(
                f"task {project}/{task_id} is in_progress; the agent holding it gives it back with "
                "`gitstate release` (or `gitstate reap` once its lease expires)"
            )
        if old.status == Status.MERGED:
            raise IllegalTransition(
                f"task {project}/{task_id} is merged; take its work back out of main with "
                f"`gitstate rollback {project} {task_id}`"
            )
        if old.status == Status.COMPLETED:
            task = restart(project, old, store.clock.now(), None)
        else:
            task = move(project, old, Status.PENDING, store.clock.now(), attempts=0, error=None)
        return Change(current.with_task(task), "retry", f"retry {project}/{task_id}", (task_id,))

    return get(store.update(project, change).project, task_id)


def next_task(
    store: Store, project: str | None = None, capabilities: Iterable[str] | None = None
) -> tuple[Project, Task]:
    """The task a claim would take now; ``NothingReady`` says why there is none."""
    projects = [store.read(project)] if project else store.read_all()
    if not projects:
        raise NothingReady("there are no projects yet; add one with `gitstate project add NAME`")
    found = select_next(projects, store.clock.now(), capabilities)
    if isinstance(found, str):
        raise NothingReady(found)
    return found


def _check_editable(fields: Mapping[str, Any]) -> None:
    for name in fields:
        if name not in EDITABLE:
            state = "set by the status machine" if name in TASK_FIELDS else "not a task field"
            raise InvalidInput(f"{name!r} cannot be set directly: it is {state}")
