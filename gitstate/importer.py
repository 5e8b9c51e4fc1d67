"""Import tasks from other trackers into a project in one commit; export projects as JSON.

``plan_import`` reads a file and says what it would add (pure: no git);
``import_tasks`` adds it through the store as ONE commit (event ``import``),
re-planned on fresh state if another writer got there first; ``export`` is the
JSON document of every (or the named) project's settings and tasks.

This module holds what every format shares: telling the formats apart, and
turning the file's drafts into the project's tasks (ids, dependencies, the
graph check, refusing secrets) in one ``Change``. Loading the file and
gitstate's own ``list`` format are in ``gitstate.importfiles``; how ggen,
beads and Task Master tasks map onto gitstate's is in ``gitstate.trackers``.

Formats: ``list``, ``ggen``, ``beads``, ``taskmaster``; ``auto`` tells them
apart by their content.

Statuses. Nothing imported is in progress here: no agent holds a lease in this
repository, so work under way elsewhere comes in ``pending``. Work finished
elsewhere comes in ``merged`` with no branch (its code is wherever that tool
put it), so tasks that depend on it are ready. The exception is gitstate's own
``completed``, whose work waits on a branch that has not landed: it comes in
``pending``, so it is done again rather than taken as landed. When the status
says more than gitstate keeps, the original is in ``meta.source_status``.
Foreign tasks start with no attempts used (``list`` keeps its ``attempts``).

======================  =========================================================
gitstate status         list / ggen / beads / taskmaster values
======================  =========================================================
pending                 list pending, in_progress*, completed*;
                        ggen pending, running*, in_progress*;
                        beads open, in_progress*, blocked*, deferred*, hooked*,
                        pinned*; taskmaster pending, in-progress*, review*,
                        blocked*, deferred*  (* noted in meta.source_status)
merged                  list merged; ggen done, completed; beads closed;
                        taskmaster done
failed                  list failed; ggen failed
cancelled               list cancelled; ggen cancelled; taskmaster cancelled
(not imported)          beads tombstone (deleted)
======================  =========================================================

Ids. A task gets the id the file gives it, or for a foreign id that gitstate
does not allow, one derived from it (``gitstate.trackers`` says how); a
``list`` task without an id gets a ``t-`` id. An id that already exists in the
project is refused with its name, never renamed: that is almost always the
same file imported twice.

Dependencies are rewritten to the new ids. One on a task that is neither in the
file nor in the project (under the id it would have been given) is an error
naming both, except that a ``merged`` or ``cancelled`` task drops it (nothing
waits on a finished task) and a dependency on a skipped task is dropped; both
are listed in ``meta.dropped_depends_on``. The resulting project must pass
``check_graph``: no cycles, no dangling ids.

Bad input (unparsable JSON, YAML or JSONL line, wrong shape, unknown status,
a task without a title, text that looks like a secret) is one ``InvalidInput``
line naming the file and the line or task; nothing is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gitstate import names
from gitstate.errors import InvalidInput, InvalidState, NotFound
from gitstate.importfiles import INHERITABLE, Draft, Parsed, kind_of, load_document, read_list, show_key
from gitstate.model import Project, Status, Task, check_graph
from gitstate.redact import refuse_secrets
from gitstate.render import SCHEMA_VERSION, first_line, project_json, table, task_json
from gitstate.statefile import MAX_BYTES, FieldError, read_task
from gitstate.store import Change, Store
from gitstate.timefmt import format_timestamp
from gitstate.trackers import read_beads, read_ggen, read_taskmaster

FORMATS = ("list", "ggen", "beads", "taskmaster")
__all__ = ["FORMATS", "MAX_BYTES", "Plan", "export", "import_tasks", "plan_import"]
_FINAL = (Status.MERGED, Status.CANCELLED)


@dataclass(frozen=True)
class Plan:
    """What an import adds: the tasks as they will be written, and what it leaves out."""

    format: str
    added: tuple[Task, ...]
    skipped: tuple[tuple[str, str], ...]  # (foreign id, why)
    id_map: Mapping[str, str]  # foreign id -> gitstate id
    project: Project  # the project with the tasks added
    source: str
    now: datetime
    commit: str | None = None  # the import's commit; None for a dry run or a plan

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.source,
            "project": self.project.name,
            "commit": self.commit,
            "added": [task_json(self.project, task, self.now) for task in self.added],
            "skipped": [{"id": key, "reason": why} for key, why in self.skipped],
            "id_map": dict(self.id_map),
        }

    def summary(self) -> str:
        verb = "imported" if self.commit else "would import"
        count = f"{len(self.added)} task{'' if len(self.added) == 1 else 's'}" if self.added else "nothing"
        lines = [f"{verb} {count} into {self.project.name} from {self.source} ({self.format})"]
        if self.added:
            origin = {new: old for old, new in self.id_map.items()}
            rows = [
                [t.id, t.status.value, t.priority, origin.get(t.id, "-"), first_line(t.title)]
                for t in self.added
            ]
            lines.append(table(("TASK", "STATUS", "PRI", "FROM", "TITLE"), rows))
        lines += [f"skipped {key}: {why}" for key, why in self.skipped]
        return "\n".join(lines)


# -- the public operations --------------------------------------------------------------------


def plan_import(
    project: Project,
    text: str,
    *,
    source: str,
    format: str = "auto",
    tag: str | None = None,
    now: datetime,
) -> Plan:
    """What importing ``text`` into ``project`` would add; raises ``InvalidInput`` on bad input."""
    return _resolve(project, _read(text, source=source, format=format, tag=tag), source, now)


def import_tasks(
    store: Store,
    project: str,
    text: str,
    *,
    source: str,
    format: str = "auto",
    tag: str | None = None,
    dry_run: bool = False,
) -> Plan:
    """Add the file's tasks to ``project`` as one commit (none for a dry run or an empty file)."""
    parsed = _read(text, source=source, format=format, tag=tag)
    if dry_run:
        return _resolve(_existing(store, project), parsed, source, store.clock.now())
    plans: list[Plan] = []

    def change(current: Project) -> Change | None:
        plan = _resolve(current, parsed, source, store.clock.now())
        plans[:] = [plan]
        if not plan.added:
            return None
        count = f"{len(plan.added)} task{'' if len(plan.added) == 1 else 's'}"
        summary = f"import {count} into {project} from {source} ({plan.format})"
        return Change(plan.project, "import", summary, tuple(t.id for t in plan.added))

    try:
        committed = store.update(project, change)
    except NotFound:
        raise _no_project(project) from None
    return dataclasses.replace(plans[0], commit=committed.commit if committed.changed else None)


def export(store: Store, projects: list[str] | None = None) -> dict[str, Any]:
    """Every (or the named) project's settings and tasks as one JSON document.

    Tasks are as ``gitstate task show --json`` prints them, plus ``inherited``:
    the fields whose value comes from the project's defaults, which an import
    leaves unset so the tasks inherit again.
    """
    head = store.head()
    now = store.clock.now()
    chosen = store.read_all(head) if projects is None else [_existing(store, n, head) for n in projects]
    return {
        "schema_version": SCHEMA_VERSION,
        "exported_at": format_timestamp(now),
        "branch": store.branch,
        "commit": head,
        "projects": [_project_export(project, now) for project in chosen],
    }


def _project_export(project: Project, now: datetime) -> dict[str, Any]:
    tasks = [
        {**task_json(project, task, now), "inherited": [k for k in INHERITABLE if getattr(task, k) is None]}
        for task in project.tasks.values()
    ]
    return {**project_json(project, now), "tasks": tasks}


def _existing(store: Store, name: str, at: str | None = None) -> Project:
    try:
        return store.read(name, at)
    except NotFound:
        raise _no_project(name) from None


def _no_project(name: str) -> NotFound:
    return NotFound(
        f"project {name!r} does not exist; create it first with `gitstate project add {name}` "
        "(`gitstate project list` shows the projects)"
    )


# -- telling the formats apart ----------------------------------------------------------------


def _read(text: str, *, source: str, format: str = "auto", tag: str | None = None) -> Parsed:
    """The file's tasks, not yet placed in a project."""
    if format not in ("auto", *FORMATS):
        raise InvalidInput(f"format {format!r} is not known; use auto, {', '.join(FORMATS)}")
    data, lines = load_document(text, source, format)
    kind = format if format != "auto" else _detect(data, lines is not None, source)
    if tag is not None and kind != "taskmaster":
        raise InvalidInput(f"{source}: a tag only selects tasks in a Task Master file, and this is {kind}")
    if kind == "list":
        return read_list(data, source)
    if kind == "ggen":
        return read_ggen(data, source)
    if kind == "beads":
        return read_beads(data, lines, source)
    return read_taskmaster(data, source, tag)


def _detect(data: Any, jsonl: bool, source: str) -> str:
    if jsonl:
        return "beads"
    if isinstance(data, list):
        return "beads" if any(_looks_like_bead(item) for item in data) else "list"
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} holds {kind_of(data)}, not tasks; give a list or a mapping of tasks")
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        items = [t for t in tasks if isinstance(t, dict)]
        if (
            "checkpoint" in data
            or "progress" in data
            or any("desc" in t or "retry_count" in t for t in items)
        ):
            return "ggen"
        if any(_looks_like_taskmaster(t) for t in items):
            return "taskmaster"
        return "list"
    if (
        tasks is None
        and data
        and all(isinstance(v, dict) and isinstance(v.get("tasks"), list) for v in data.values())
    ):
        return "taskmaster"  # tagged: {"master": {"tasks": [...]}, ...}
    return "list"


def _looks_like_bead(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    deps = item.get("dependencies")
    return (
        "issue_type" in item
        or item.get("status") in ("open", "closed", "tombstone", "hooked", "pinned")  # beads' own words
        or (isinstance(deps, list) and any(isinstance(d, dict) and "depends_on_id" in d for d in deps))
    )


def _looks_like_taskmaster(item: Mapping[str, Any]) -> bool:
    return bool({"testStrategy", "details", "subtasks"} & item.keys()) or (
        isinstance(item.get("id"), int) and "dependencies" in item
    )


# -- placing the tasks in the project ---------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """Where the drafts go: the project, and the ids the file's tasks get in it."""

    project: Project
    parsed: Parsed
    source: str
    now: datetime
    by_key: Mapping[str, str]  # key in the file -> new id
    gone: frozenset[str]  # keys of skipped tasks


def _resolve(project: Project, parsed: Parsed, source: str, now: datetime) -> Plan:
    """Ids, dependencies and checks against ``project``; does not change ``parsed``."""
    live = [d for d in parsed.drafts if d.skip is None]
    gone = frozenset(d.key for d in parsed.drafts if d.skip is not None)
    _refuse_duplicate_keys(parsed.drafts, source)
    ids = _assign_ids(project, live, source)
    by_key = {d.key: new for d, new in zip(live, ids, strict=True) if d.key}
    place = _Place(project, parsed, source, now, by_key, gone)
    added = tuple(_build(d, new, place) for d, new in zip(live, ids, strict=True))
    result = dataclasses.replace(project, tasks={**project.tasks, **{t.id: t for t in added}})
    try:
        check_graph(result.tasks)
    except InvalidState as exc:
        raise InvalidInput(f"{source}: {exc}; fix the dependencies in the file") from None
    skipped = tuple((d.key, d.skip) for d in parsed.drafts if d.skip is not None)
    return Plan(parsed.format, added, skipped, by_key, result, source, now)


def _refuse_duplicate_keys(drafts: Iterable[Draft], source: str) -> None:
    seen: dict[str, str] = {}
    for draft in drafts:
        if not draft.key:
            continue
        if draft.key in seen:
            raise InvalidInput(
                f"{source}: {draft.label} has the same id as {seen[draft.key]}; give each task its own id"
            )
        seen[draft.key] = draft.label


def _assign_ids(project: Project, live: list[Draft], source: str) -> list[str]:
    used: dict[str, str] = {}
    for draft in live:
        wanted = draft.wanted
        if wanted is None:
            continue
        try:
            names.check_task_id(wanted)
        except InvalidInput as exc:
            raise InvalidInput(f"{source}: {draft.label}: {exc}") from None
        if wanted in project.tasks:
            became = "" if wanted == draft.key else f" would become {wanted}, which"
            raise InvalidInput(
                f"{source}: {draft.label}{became} already exists in project {project.name} (was this file "
                "imported already?); change the id in the file or import into another project"
            )
        if wanted in used:
            raise InvalidInput(
                f"{source}: {draft.label} and {used[wanted]} would both be task {wanted}; "
                "give them different ids"
            )
        used[wanted] = draft.label
    ids = []
    for position, draft in enumerate(live):
        if draft.wanted is None:
            made = _made_id(position, draft.fields.get("title"), project.tasks.keys() | used.keys())
            used[made] = draft.label
            ids.append(made)
        else:
            ids.append(draft.wanted)
    return ids


def _made_id(position: int, title: Any, taken: set[str]) -> str:
    """A ``t-`` id from the entry's position and title: the same in a dry run and the real one."""
    for attempt in itertools.count():
        digest = hashlib.sha256(f"{attempt}\0{position}\0{title}".encode()).digest()
        number = int.from_bytes(digest[:5], "big")
        chars = [names.ID_ALPHABET[(number >> (5 * i)) & 31] for i in range(names.ID_LENGTH)]
        candidate = "t-" + "".join(chars)
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _build(draft: Draft, new_id: str, place: _Place) -> Task:
    fields = dict(draft.fields)
    deps, dropped = _dependencies(draft, place)
    fields["depends_on"] = deps
    if dropped:
        fields["meta"] = {**(fields.get("meta") or {}), "dropped_depends_on": dropped}
    fields = {k: v for k, v in fields.items() if v is not None}
    fields.setdefault("created_at", place.now)
    fields.setdefault("updated_at", place.now)
    try:
        task = read_task(new_id, fields)
    except FieldError as exc:
        raise InvalidInput(f"{place.source}: {draft.label}: {exc}") from None
    _refuse_secrets(task, draft.label, place.source)
    return task


def _dependencies(draft: Draft, place: _Place) -> tuple[list[str], list[str]]:
    """(new ids it depends on, keys dropped because nothing is left to wait for)."""
    final = draft.fields.get("status") in {s.value for s in _FINAL}
    deps: list[str] = []
    dropped: list[str] = []
    for key in draft.deps:
        target = place.by_key.get(key)
        if target is None and key not in place.gone:
            derived = place.parsed.derive(key)
            target = derived if derived in place.project.tasks else None
            if target is None and not final:
                raise InvalidInput(
                    f"{place.source}: {draft.label} depends on {show_key(key)}, which is neither in the file "
                    f"nor a task of project {place.project.name}; add it to the file or remove the dependency"
                )
        if target is None:
            dropped.append(key)
        elif target not in deps:
            deps.append(target)
    return deps, dropped


def _refuse_secrets(task: Task, label: str, source: str) -> None:
    texts = {
        "the title": task.title,
        "the description": task.description,
        "the command": task.command,
        "the result": task.result,
        "the error": task.error,
        "meta": dict(task.meta),
    }
    try:
        refuse_secrets({name: value for name, value in texts.items() if value})
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {label}: {exc}") from None
