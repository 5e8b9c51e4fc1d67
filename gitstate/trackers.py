"""Reading other trackers' files: how ggen, beads and Task Master tasks become drafts.

Each reader takes the loaded document and returns its ``Draft``s for
``gitstate.importer`` to place in the project, with the id a task that is not
in the file would have been given (a dependency on one imported earlier).

Ids. A foreign id that is already a valid gitstate id is kept (``bd-a1b2``);
others are derived from it, always the same way: runs of characters gitstate
does not allow become ``-`` and, if the result does not start with a letter,
the format's prefix goes in front (Task Master ``12`` -> ``tm-12``, subtask
``12.3`` -> ``tm-12-3``, tag ``feature`` -> ``tm-feature-12``; ggen ``4`` ->
``ggen-4``; beads ``bd-a3f8.1`` -> ``bd-a3f8-1``). Foreign tasks keep their
origin in ``meta`` (``imported_from``, ``source_id``, and ``tag`` for Task
Master).

``ggen``
    ggen-autonomous's ``.state.json``: the title is the first line of
    ``desc``; ``retry_count`` is kept in meta, ``result`` and ``error`` as
    they are.
``beads``
    beads' JSONL export (or a JSON list of issues). Priority ``p`` (0 is the
    most urgent) becomes ``4 - p``. Dependencies of type ``blocks`` and
    ``waits-for`` become ``depends_on``; ``parent-child`` is kept as
    ``meta.parent`` and other types under ``meta.links`` (both with beads'
    ids), because they do not hold work back. ``design``,
    ``acceptance_criteria`` and ``notes`` are appended to the description;
    ``labels``, ``assignee``, ``issue_type`` and ``closed_at`` go to meta,
    ``close_reason`` to ``result``.
``taskmaster``
    Task Master's ``tasks.json``, tagged (``{"master": {"tasks": [...]}}``;
    ``tag`` picks one, default ``master``) or not (``{"tasks": [...]}``).
    ``details`` and ``testStrategy`` are appended to the description;
    priority high/medium/low is 3/2/1 (critical 4; subtasks without one take
    their parent's). Each subtask becomes a task and its parent depends on
    it, unless the subtask is cancelled (a cancelled dependency would hold the
    parent back for ever). A subtask's numeric dependency names a sibling
    subtask when one has that id, else a top-level task; ``"3.2"`` names
    subtask 2 of task 3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from gitstate import names
from gitstate.errors import InvalidInput
from gitstate.importfiles import Draft, Parsed, kind_of, map_status, show_key
from gitstate.model import Status
from gitstate.timefmt import format_timestamp, parse_timestamp

_TM_PRIORITY = {"critical": 4, "high": 3, "medium": 2, "low": 1}
_BEADS_BLOCKING = frozenset({"blocks", "waits-for"})


# -- ggen-autonomous --------------------------------------------------------------------------


def read_ggen(data: Any, source: str) -> Parsed:
    drafts = []
    for position, item in enumerate(_task_list(data, source), 1):
        key = _foreign_id(item, position, source)
        label = f"task {show_key(key)}"
        text = item.get("desc", item.get("description"))
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(
                f"{source}: {label} has no 'desc'; give every task a description to use as its title"
            )
        title = text.strip().split("\n", 1)[0].strip()
        raw_status = item.get("status", "pending")
        status, noted = map_status("ggen", raw_status, label, source)
        meta = _provenance("ggen", key, raw_status if noted else None)
        retries = item.get("retry_count")
        if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
            meta["retry_count"] = retries
        fields: dict[str, Any] = {
            "title": title,
            "description": text.strip() if text.strip() != title else "",
            "status": status.value,
            "result": _result_text(item.get("result")),
            "error": _result_text(item.get("error")),
            "meta": meta,
            **_times(item, "created_at", "updated_at"),
        }
        deps = _id_list(item.get("dependencies", item.get("depends_on")), label, "dependencies", source)
        drafts.append(Draft(key, label, _derive("ggen", key), fields, deps))
    return Parsed("ggen", drafts, lambda key: _derive("ggen", key))


# -- beads ------------------------------------------------------------------------------------


def read_beads(data: Any, lines: list[int] | None, source: str) -> Parsed:
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InvalidInput(f"{source} holds {kind_of(data)}; a beads export has one issue object per line")
    drafts: list[Draft] = []
    edges: list[tuple[str, str, str, str]] = []  # (issue, depends on, type, where)
    for position, item in enumerate(data, 1):
        where = f"line {lines[position - 1]}" if lines else f"issue {position}"
        if not isinstance(item, dict):
            raise InvalidInput(f"{source}: {where} is {kind_of(item)}, not an issue object")
        key = _foreign_id(item, position, source, where)
        draft = _bead_draft(item, key, f"{where} ({show_key(key)})", source)
        drafts.append(draft)
        edges += _bead_edges(item, key, draft.label, source)
    _attach_bead_edges(drafts, edges, source)
    return Parsed("beads", drafts, lambda key: _derive("bd", key))


def _bead_draft(item: Mapping[str, Any], key: str, label: str, source: str) -> Draft:
    raw_status = item.get("status", "open")
    if raw_status == "tombstone":
        return Draft(key, label, None, {}, skip="deleted in beads (tombstone)")
    status, noted = map_status("beads", raw_status, label, source)
    priority = item.get("priority", 2)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
        raise InvalidInput(f"{source}: {label}: priority {priority!r} is not 0-4 (0 is the most urgent)")
    meta = _provenance("beads", key, raw_status if noted else None)
    for name in ("issue_type", "assignee", "labels", "closed_at", "metadata"):
        if item.get(name) not in (None, "", [], {}):
            meta[name] = _plain(item[name], label, name, source)
    description = _sections(
        label,
        source,
        ("", item.get("description")),
        ("Design", item.get("design")),
        ("Acceptance criteria", item.get("acceptance_criteria")),
        ("Notes", item.get("notes")),
    )
    fields: dict[str, Any] = {
        "title": _title(item.get("title"), label, source),
        "description": description,
        "status": status.value,
        "priority": 4 - priority,
        "result": _result_text(item.get("close_reason")) if status == Status.MERGED else None,
        "meta": meta,
        **_times(item, "created_at", "updated_at"),
    }
    return Draft(key, label, _derive("bd", key), fields)


def _bead_edges(
    item: Mapping[str, Any], key: str, label: str, source: str
) -> list[tuple[str, str, str, str]]:
    deps = item.get("dependencies") or []
    if not isinstance(deps, list):
        raise InvalidInput(f"{source}: {label}: 'dependencies' must be a list of dependency objects")
    edges = []
    for dep in deps:
        target = dep.get("depends_on_id") if isinstance(dep, dict) else None
        if not isinstance(target, str | int) or isinstance(target, bool):
            raise InvalidInput(f"{source}: {label}: a dependency has no 'depends_on_id'")
        kind = dep.get("type") or "blocks"
        owner = dep.get("issue_id") or key
        edges.append((str(owner), str(target), str(kind), label))
    return edges


def _attach_bead_edges(drafts: list[Draft], edges: list[tuple[str, str, str, str]], source: str) -> None:
    by_key = {d.key: d for d in drafts}
    for owner, target, kind, label in edges:
        draft = by_key.get(owner)
        if draft is None:
            raise InvalidInput(
                f"{source}: {label}: a dependency names issue {show_key(owner)}, which is not in the file"
            )
        if draft.skip:
            continue
        meta = draft.fields["meta"]
        if kind in _BEADS_BLOCKING:
            if target not in draft.deps:
                draft.deps.append(target)
        elif kind == "parent-child":
            meta["parent"] = target
        else:
            links = meta.setdefault("links", {})
            if target not in links.setdefault(kind, []):
                links[kind].append(target)


# -- Task Master ------------------------------------------------------------------------------


def read_taskmaster(data: Any, source: str, tag: str | None) -> Parsed:
    tasks, name = _tm_tag(data, source, tag)
    prefix = "tm" if name == "master" else f"tm-{_sanitize(name)}"
    drafts: list[Draft] = []
    for position, item in enumerate(tasks, 1):
        if not isinstance(item, dict):
            raise InvalidInput(
                f"{source}: task {position} in tag {name} is {kind_of(item)}, not a task object"
            )
        key = _tm_key(item.get("id"), f"task {position} in tag {name}", source)
        label = f"task {key}"
        subtasks = item.get("subtasks") or []
        if not isinstance(subtasks, list):
            raise InvalidInput(f"{source}: {label}: 'subtasks' must be a list")
        siblings = {_tm_sub_key(key, s, source) for s in subtasks}
        parent = _tm_draft(item, key, label, prefix=prefix, tag=name, source=source)
        children = [
            _tm_draft(
                {**sub, "priority": sub.get("priority", item.get("priority"))},
                _tm_sub_key(key, sub, source),
                f"subtask {_tm_sub_key(key, sub, source)}",
                prefix=prefix,
                tag=name,
                source=source,
                family=(key, siblings),
            )
            for sub in subtasks
        ]
        # The parent waits for its subtasks, but not for cancelled ones: a
        # cancelled dependency would hold it back for ever.
        parent.deps += [c.key for c in children if c.fields["status"] != Status.CANCELLED.value]
        drafts += [*children, parent]
    return Parsed("taskmaster", drafts, lambda key: _derive(prefix, key))


def _tm_tag(data: Any, source: str, tag: str | None) -> tuple[list[Any], str]:
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} holds {kind_of(data)}; a Task Master file is a JSON object")
    if isinstance(data.get("tasks"), list):
        if tag not in (None, "master"):
            raise InvalidInput(f"{source} has no tags (one task list); leave out the tag")
        return data["tasks"], "master"
    tags = [k for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("tasks"), list)]
    if not tags:
        raise InvalidInput(
            f'{source} has no task list; a Task Master file holds {{"master": {{"tasks": [...]}}}}'
        )
    wanted = tag or "master"
    if wanted not in tags:
        raise InvalidInput(
            f"{source} has no tag {wanted!r}; its tags are {', '.join(map(str, tags))}: pick one with --tag"
        )
    return data[wanted]["tasks"], wanted


def _tm_draft(
    item: Mapping[str, Any],
    key: str,
    label: str,
    *,
    prefix: str,
    tag: str,
    source: str,
    family: tuple[str, set[str]] | None = None,  # a subtask's parent and the keys of its siblings
) -> Draft:
    raw_status = item.get("status", "pending")
    status, noted = map_status("taskmaster", raw_status, label, source)
    priority = item.get("priority") or "medium"
    if not isinstance(priority, str) or priority not in _TM_PRIORITY:
        raise InvalidInput(
            f"{source}: {label}: priority {priority!r} is not one of {', '.join(_TM_PRIORITY)}"
        )
    meta = {**_provenance("taskmaster", key, raw_status if noted else None), "tag": tag}
    for name in ("assignee", "metadata"):
        if item.get(name) not in (None, "", {}):
            meta[name] = _plain(item[name], label, name, source)
    raw_deps = item.get("dependencies") or []
    if not isinstance(raw_deps, list):
        raise InvalidInput(f"{source}: {label}: 'dependencies' must be a list of task ids")
    deps = []
    for raw in raw_deps:
        dep = _tm_dep(raw, family)
        if dep is None:
            raise InvalidInput(
                f'{source}: {label}: dependency {raw!r} is not a Task Master id such as 3 or "3.2"'
            )
        deps.append(dep)
    fields: dict[str, Any] = {
        "title": _title(item.get("title"), label, source),
        "description": _sections(
            label,
            source,
            ("", item.get("description")),
            ("Details", item.get("details")),
            ("Test strategy", item.get("testStrategy")),
        ),
        "status": status.value,
        "priority": _TM_PRIORITY[priority],
        "meta": meta,
    }
    return Draft(key, label, _derive(prefix, key), fields, deps)


def _tm_key(raw: Any, where: str, source: str) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, str) and re.fullmatch(r"\d+(\.\d+)?", raw.strip()):
        return raw.strip()
    raise InvalidInput(f"{source}: {where} has id {raw!r}; Task Master ids are whole numbers")


def _tm_sub_key(parent: str, sub: Any, source: str) -> str:
    if not isinstance(sub, dict):
        raise InvalidInput(f"{source}: task {parent}: a subtask is {kind_of(sub)}, not a task object")
    key = _tm_key(sub.get("id"), f"a subtask of task {parent}", source)
    return key if "." in key else f"{parent}.{key}"


def _tm_dep(raw: Any, family: tuple[str, set[str]] | None) -> str | None:
    """The key a Task Master dependency names (None: not an id).

    In a subtask, a bare number names a sibling subtask when one has that id,
    else a top-level task.
    """
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    text = str(raw).strip()
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        return None
    if family is not None and "." not in text and f"{family[0]}.{text}" in family[1]:
        return f"{family[0]}.{text}"
    return text


# -- helpers shared by the foreign formats ----------------------------------------------------


def _task_list(data: Any, source: str) -> list[dict[str, Any]]:
    tasks = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(tasks, list):
        raise InvalidInput(f"{source} has no 'tasks' list; a ggen state file holds {{\"tasks\": [...]}}")
    for position, item in enumerate(tasks, 1):
        if not isinstance(item, dict):
            raise InvalidInput(f"{source}: task {position} is {kind_of(item)}, not a task object")
    return tasks


def _foreign_id(item: Mapping[str, Any], position: int, source: str, where: str | None = None) -> str:
    raw = item.get("id")
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).strip():
        raise InvalidInput(f"{source}: {where or f'task {position}'} has no 'id'; give every task its id")
    return str(raw).strip()


def _provenance(kind: str, key: str, status: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"imported_from": kind, "source_id": key}
    if status is not None:
        meta["source_status"] = status
    return meta


def _title(raw: Any, label: str, source: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(f"{source}: {label} has no title; give every task a 'title'")
    return raw.strip()


def _sections(label: str, source: str, *parts: tuple[str, Any]) -> str:
    """Text fields joined into one description, each after its heading."""
    out = []
    for heading, text in parts:
        if text is None or text == "":
            continue
        if not isinstance(text, str):
            raise InvalidInput(
                f"{source}: {label}: '{heading or 'description'}' must be text, not {kind_of(text)}"
            )
        if text.strip():
            out.append(f"{heading}:\n{text.strip()}" if heading else text.strip())
    return "\n\n".join(out)


def _result_text(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    return raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)


def _times(item: Mapping[str, Any], *keys: str) -> dict[str, datetime]:
    """The source's timestamps that read as times; others are left to the clock."""
    out = {}
    for key in keys:
        raw = item.get(key)
        if isinstance(raw, str):
            # Python's ISO reader stops at microseconds; beads writes nanoseconds.
            raw = re.sub(r"(\.\d{6})\d+", r"\1", raw)
        if isinstance(raw, str | datetime):
            try:
                out[key] = parse_timestamp(raw)
            except InvalidInput:
                continue
    return out


def _id_list(raw: Any, label: str, name: str, source: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(d, str | int) and not isinstance(d, bool) for d in raw
    ):
        raise InvalidInput(f"{source}: {label}: '{name}' must be a list of task ids")
    return [str(d) for d in raw]


def _plain(value: Any, label: str, name: str, source: str) -> Any:
    """``value`` as JSON-like data that STATE.yaml's meta holds (times become text)."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v, label, name, source) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, label, name, source) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidInput(f"{source}: {label}: '{name}' holds {type(value).__name__}, which meta cannot keep")


def _derive(prefix: str, key: str) -> str:
    """The gitstate id for a foreign id: kept when valid, else sanitised and prefixed."""
    if _valid_id(key):
        return key
    body = _sanitize(key)
    candidate = body if _valid_id(body) else f"{prefix}-{body}" if body else prefix
    return candidate[:63].rstrip("-")


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")


def _valid_id(text: str) -> bool:
    try:
        names.check_task_id(text)
    except InvalidInput:
        return False
    return True
