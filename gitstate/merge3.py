"""Three-way merge of a project's state, per task and per field. Pure.

Used by the STATE.yaml merge driver (``git merge`` in any clone) and by the
coordinator. For each task, a field changed on one side only takes that
side's value. A field changed on both sides, differently, is settled by these
rules, or reported as a conflict:

* ``status`` moves by precedence: merged > cancelled > completed > failed >
  in_progress > pending. The side whose status wins also gives ``assignee``,
  ``branch``, ``result`` and ``error``, which describe that status.
* ``depends_on`` and ``requires`` (and a project's ``requires`` and
  ``copy_files``): the union, in the order first seen.
* ``attempts``: the larger. ``updated_at`` and ``lease_expires``: the later.
  ``created_at``: the earlier.
* ``meta``: merged key by key the same way; a key changed on both sides is a
  conflict.
* Anything else (title, description, priority, command, timeouts, settings):
  a conflict. A task added on both sides with the same id but different
  content is a conflict too: ids never silently collide.

Deleting a task is not something gitstate does; a side that deleted a task
the other side changed is a conflict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitstate.errors import InvalidState
from gitstate.model import Project, Settings, Status, Task, check_graph

RANK = {
    Status.PENDING: 0,
    Status.IN_PROGRESS: 1,
    Status.FAILED: 2,
    Status.COMPLETED: 3,
    Status.CANCELLED: 4,
    Status.MERGED: 5,
}
_FOLLOW_STATUS = frozenset({"status", "assignee", "branch", "result", "error"})
_UNION = frozenset({"depends_on", "requires", "copy_files"})
_LATER = frozenset({"updated_at", "lease_expires"})


@dataclass(frozen=True)
class Conflict:
    task: str | None  # None: the project's settings
    field: str
    ours: Any
    theirs: Any

    def __str__(self) -> str:
        where = f"task {self.task}" if self.task else "project settings"
        return f"{where}, {self.field}: ours {self.ours!r}, theirs {self.theirs!r}"


def merge(base: Project | None, ours: Project, theirs: Project) -> tuple[Project, list[Conflict]]:
    """The merged project (ours where in conflict) and the conflicts."""
    conflicts: list[Conflict] = []
    settings = _merge_settings(base.settings if base else None, ours.settings, theirs.settings, conflicts)
    base_tasks = base.tasks if base else {}
    tasks: dict[str, Task] = {}
    for task_id in [*ours.tasks, *(t for t in theirs.tasks if t not in ours.tasks)]:
        merged = _merge_one(
            base_tasks.get(task_id), ours.tasks.get(task_id), theirs.tasks.get(task_id), conflicts
        )
        if merged is not None:
            tasks[task_id] = merged
    result = Project(settings, tasks)
    try:
        check_graph(result.tasks)
    except InvalidState as exc:
        conflicts.append(Conflict(exc.task, "depends_on", "valid", str(exc)))
    return result, conflicts


def _merge_one(
    base: Task | None, ours: Task | None, theirs: Task | None, conflicts: list[Conflict]
) -> Task | None:
    if ours is None or theirs is None:
        present = ours if ours is not None else theirs
        if present is None or base is None:
            return present  # added on one side only
        if present == base:
            return None  # deleted on one side, untouched on the other
        sides = ("deleted", "changed") if ours is None else ("changed", "deleted")
        conflicts.append(Conflict(present.id, "(task)", *sides))
        return present
    if theirs in (ours, base):
        return ours
    if ours == base:
        return theirs
    if base is None:
        conflicts.append(Conflict(ours.id, "(task)", "added", "added with other content (the same id)"))
        return ours
    winner = ours if _beats(ours, theirs) else theirs
    # When both sides moved the status, to different places, the winning side's
    # status comes with the fields that describe it, changed or not.
    fought = ours.status != theirs.status and base.status not in (ours.status, theirs.status)
    values: dict[str, Any] = {}
    for field in (f.name for f in dataclasses.fields(Task)):
        if fought and field in _FOLLOW_STATUS:
            values[field] = getattr(winner, field)
            continue
        b, o, t = getattr(base, field), getattr(ours, field), getattr(theirs, field)
        values[field] = _field(ours.id, field, b, o, t, winner=getattr(winner, field), conflicts=conflicts)
    return Task(**values)


def _beats(ours: Task, theirs: Task) -> bool:
    """Whether our status wins: by precedence, then the later update, then ours."""
    if RANK[ours.status] != RANK[theirs.status]:
        return RANK[ours.status] > RANK[theirs.status]
    if ours.updated_at is not None and theirs.updated_at is not None:
        return ours.updated_at >= theirs.updated_at
    return True


def _field(
    task: str | None, field: str, b: Any, o: Any, t: Any, *, winner: Any, conflicts: list[Conflict]
) -> Any:
    if t in (o, b):
        return o
    if o == b:
        return t
    if field in _FOLLOW_STATUS:
        return winner
    if field in _UNION:
        return tuple(dict.fromkeys([*o, *t]))
    if field == "attempts":
        return max(o, t)
    if field in _LATER:
        return o if t is None or (o is not None and o >= t) else t
    if field == "created_at":
        return o if t is None or (o is not None and o <= t) else t
    if field == "meta":
        return _merge_meta(task, b or {}, o or {}, t or {}, conflicts)
    conflicts.append(Conflict(task, field, o, t))
    return o


def _merge_meta(
    task: str | None,
    base: Mapping[str, Any],
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    conflicts: list[Conflict],
) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        missing = object()
        b, o, t = base.get(key, missing), ours.get(key, missing), theirs.get(key, missing)
        if t in (o, b):
            value = o
        elif o == b:
            value = t
        else:
            conflicts.append(
                Conflict(task, f"meta.{key}", None if o is missing else o, None if t is missing else t)
            )
            value = o
        if value is not missing:
            merged[key] = value
    return merged


def _merge_settings(
    base: Settings | None, ours: Settings, theirs: Settings, conflicts: list[Conflict]
) -> Settings:
    if theirs in (ours, base):
        return ours
    if ours == base:
        return theirs
    values: dict[str, Any] = {}
    for field in (f.name for f in dataclasses.fields(Settings)):
        b = getattr(base, field) if base else getattr(ours, field)
        values[field] = _field(
            None, field, b, getattr(ours, field), getattr(theirs, field), winner=None, conflicts=conflicts
        )
    return Settings(**values)
