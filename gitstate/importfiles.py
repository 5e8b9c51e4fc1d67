"""Reading an import file: loading its YAML, JSON or JSONL, and gitstate's own ``list`` format.

``load_document`` parses the text, at most ``MAX_BYTES`` of it (a byte order
mark is ignored). A JSONL file (beads' export) is one JSON object per line,
and each record keeps its line number for messages. Other text is read as
JSON, then as YAML unless the file or format is JSON-only. YAML is read with
the safe loader, and anchors, aliases and tags are refused before anything is
built from the document.

Each format's reader turns the document into ``Draft``s: a task's fields under
gitstate's names, its id in the file and the ids it depends on, not yet placed
in a project (``gitstate.importer`` does that). ``map_status`` maps a format's
statuses onto gitstate's (the table is in ``gitstate.importer``).

``list``
    gitstate's own field names: a YAML or JSON list of tasks, a mapping
    ``{tasks: [...]}``, a mapping of id to fields (STATE.yaml's ``tasks:``,
    or a whole STATE.yaml), or a one-project ``gitstate export`` document.
    Keys gitstate derives on read (``project``, ``ready``, ``blocked_by``)
    are ignored, and so are fields named in an export's ``inherited`` list
    (they came from the project's defaults). ``assignee``, ``branch`` and
    ``lease_expires`` are dropped: they describe a claim in another
    repository. A task without an id gets a ``t-`` id derived from its
    position and title, so a dry run shows the ids the import will use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent

from gitstate.errors import InvalidInput
from gitstate.model import Status
from gitstate.statefile import MAX_BYTES
from gitstate.yamlblock import MAX_DEPTH

_LIST_DERIVED = ("project", "ready", "blocked_by")  # computed on read; never stored
_LIST_DROPPED = ("assignee", "branch", "lease_expires")  # a claim in another repository
INHERITABLE = ("max_retries", "timeout")  # may come from the project's defaults


@dataclass
class Draft:
    """One task read from the file, before ids and dependencies are resolved."""

    key: str  # its id in the file; "" when it has none
    label: str  # how messages name it: "task 12", "line 4 (bd-a1b2)"
    wanted: str | None  # the gitstate id it maps to; None: make one
    fields: dict[str, Any]  # gitstate task fields, as statefile.read_task takes them
    deps: list[str] = field(default_factory=list)  # keys of the tasks it depends on
    skip: str | None = None  # why it is not imported


@dataclass(frozen=True)
class Parsed:
    """A file's tasks as its format's reader found them."""

    format: str
    drafts: list[Draft]
    derive: Callable[[str], str]  # the gitstate id a key maps to, for tasks outside the file


# -- statuses ---------------------------------------------------------------------------------


def _statuses(**by_status: str) -> dict[str, tuple[Status, bool]]:
    """``pending="open deferred*"`` -> each foreign value's status; ``*``: meta keeps the original."""
    return {
        value.rstrip("*"): (Status(status), value.endswith("*"))
        for status, values in by_status.items()
        for value in values.split()
    }


# Each format's statuses (the table in gitstate.importer's docstring).
_STATUSES: Mapping[str, Mapping[str, tuple[Status, bool]]] = {
    "list": _statuses(
        pending="pending in_progress* completed*", merged="merged", failed="failed", cancelled="cancelled"
    ),
    "ggen": _statuses(
        pending="pending running* in_progress*",
        merged="done completed",
        failed="failed",
        cancelled="cancelled",
    ),
    "beads": _statuses(pending="open in_progress* blocked* deferred* hooked* pinned*", merged="closed"),
    "taskmaster": _statuses(
        pending="pending in-progress* review* blocked* deferred*", merged="done", cancelled="cancelled"
    ),
}


def map_status(kind: str, raw: Any, label: str, source: str) -> tuple[Status, bool]:
    """The gitstate status for format ``kind``'s ``raw`` status, and whether meta keeps ``raw``."""
    found = _STATUSES[kind].get(raw) if isinstance(raw, str) else None
    if found is None:
        known = ", ".join(_STATUSES[kind])
        raise InvalidInput(f"{source}: {label}: unknown status {raw!r}; use one of {known}")
    return found


# -- loading the file -------------------------------------------------------------------------


def load_document(text: str, source: str, format: str) -> tuple[Any, list[int] | None]:
    """The parsed document, and for JSONL each record's line number."""
    if len(text) > MAX_BYTES:
        raise InvalidInput(f"{source} is larger than {MAX_BYTES // 2**20} MiB; split it and import the parts")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InvalidInput(f"{source} is empty; give a file with at least one task")
    if _is_jsonl(text, source, format):
        return _load_jsonl(text, source)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        problem = exc
    except RecursionError:
        raise InvalidInput(f"{source} is nested too deeply to be a task list") from None
    except ValueError as exc:  # a number too long to read, say
        raise InvalidInput(f"{source}: {_unreadable(exc)}; fix the file and import it again") from None
    if source.endswith(".json") or format in ("ggen", "taskmaster"):
        raise InvalidInput(
            f"{source}:{problem.lineno}:{problem.colno}: not valid JSON ({problem.msg}); "
            "fix the file and import it again"
        )
    return _load_yaml(text, source), None


def _unreadable(exc: ValueError) -> str:
    """What Python says about a value it cannot read, without its advice to programmers."""
    return "a value cannot be read: " + " ".join(str(exc).split(";")[0].split()).lower()


def _is_jsonl(text: str, source: str, format: str) -> bool:
    if format not in ("auto", "beads"):
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines[0].lstrip().startswith("{"):
        return False
    if format == "beads" or source.endswith(".jsonl"):
        return True
    try:
        first = json.loads(lines[0])
    except (ValueError, RecursionError):
        return False  # a JSON document spread over lines
    # One line may be a minified JSON document ({"tasks": [...]}) rather than one issue.
    return isinstance(first, dict) and (len(lines) > 1 or {"id", "title"} <= first.keys())


def _load_jsonl(text: str, source: str) -> tuple[list[Any], list[int]]:
    records: list[Any] = []
    numbers: list[int] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{source}:{number}: line {number} is not valid JSON ({exc.msg} at column {exc.colno}); "
                "fix or remove the line and import again"
            ) from None
        except RecursionError:
            raise InvalidInput(f"{source}:{number}: line {number} is nested too deeply") from None
        except ValueError as exc:  # a number too long to read, say
            raise InvalidInput(
                f"{source}:{number}: line {number}: {_unreadable(exc)}; fix or remove the line"
            ) from None
        if not isinstance(record, dict):
            raise InvalidInput(
                f"{source}:{number}: line {number} is {kind_of(record)}, not an issue object; "
                "each line must be one JSON object"
            )
        records.append(record)
        numbers.append(number)
    return records, numbers


def _load_yaml(text: str, source: str) -> Any:
    try:
        # Look at the events first: nothing is built from a document with
        # anchors (exponential "billion laughs" expansion) or tags.
        for event in _safe_yaml().parse(text):
            where = f"{source}:{event.start_mark.line + 1}"
            if isinstance(event, AliasEvent) or getattr(event, "anchor", None):
                raise InvalidInput(f"{where}: uses a YAML anchor or alias (&, *); write the values out")
            tag = getattr(event, "tag", None)
            if tag is not None and getattr(tag, "value", tag):
                raise InvalidInput(f"{where}: uses a YAML tag ({getattr(tag, 'value', tag)}); remove it")
        return _safe_yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = " ".join((exc.problem or exc.context or "invalid YAML").split())
        raise InvalidInput(f"{where}: not valid YAML ({problem}); fix the file and import it again") from None
    except (YAMLError, RecursionError, ValueError) as exc:
        problem = _unreadable(exc) if type(exc) is ValueError else " ".join(str(exc).split())
        raise InvalidInput(
            f"{source}: not valid YAML ({problem}); fix the file and import it again"
        ) from None


def _safe_yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.max_depth = MAX_DEPTH
    return yaml


# -- list: gitstate's own fields --------------------------------------------------------------


def read_list(data: Any, source: str) -> Parsed:
    drafts = []
    for position, (key, fields) in enumerate(_list_entries(data, source), 1):
        label = f"task {show_key(key)}" if key else f"entry {position}"
        drafts.append(_list_draft(key, label, fields, source))
    return Parsed("list", drafts, lambda key: key)


def _list_entries(data: Any, source: str) -> list[tuple[str, Any]]:
    """(id or "", fields) for each task, whichever of the accepted shapes ``data`` has."""
    if isinstance(data, dict) and isinstance(data.get("projects"), list) and "schema_version" in data:
        found = data["projects"]
        if len(found) != 1 or not isinstance(found[0], dict):
            raise InvalidInput(
                f"{source} is an export of {len(found)} projects; import one project's tasks at a time, "
                "e.g. export it alone with `gitstate export PROJECT --json`"
            )
        data = found[0].get("tasks") or []
    if isinstance(data, dict) and "tasks" in data:
        data = data["tasks"] if data["tasks"] is not None else []
    if isinstance(data, list):
        entries = []
        for position, item in enumerate(data, 1):
            if not isinstance(item, dict):
                raise InvalidInput(
                    f"{source}: entry {position} is {kind_of(item)}, not a mapping of task fields"
                )
            key = item.get("id")
            if key is not None and not isinstance(key, str):
                raise InvalidInput(
                    f"{source}: entry {position} has id {key!r}; task ids are text such as t-1"
                )
            entries.append((key or "", item))
        return entries
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        for key, item in data.items():
            if "id" in item and item["id"] != key:
                raise InvalidInput(
                    f"{source}: task {show_key(str(key))} says its id is {item['id']!r}; make them match"
                )
        return [(str(key), item) for key, item in data.items()]
    raise InvalidInput(
        f"{source} holds {kind_of(data)} that is not a task list; give a list of tasks, a mapping with "
        "'tasks', or a mapping of task id to fields"
    )


def _list_draft(key: str, label: str, raw: Mapping[str, Any], source: str) -> Draft:
    fields = {str(k): v for k, v in raw.items() if k != "id" and k not in (*_LIST_DERIVED, *_LIST_DROPPED)}
    if fields.get("title") is None or fields["title"] == "":
        raise InvalidInput(f"{source}: {label} has no title; give every task a 'title'")
    for name in ("not_before", "created_at", "updated_at"):
        value = fields.get(name)
        if isinstance(value, date) and not isinstance(value, datetime):
            fields[name] = datetime(value.year, value.month, value.day, tzinfo=UTC)  # YAML's bare dates
    inherited = fields.pop("inherited", None) or []
    if not isinstance(inherited, list):
        raise InvalidInput(f"{source}: {label}: 'inherited' must be a list of field names")
    for name in inherited:
        if name in INHERITABLE:
            fields.pop(name, None)
    deps = fields.pop("depends_on", None) or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InvalidInput(f"{source}: {label}: 'depends_on' must be a list of task ids such as [t-1, t-2]")
    status, noted = map_status("list", fields.get("status", "pending"), label, source)
    fields["status"] = status.value
    if noted:
        meta = fields.get("meta") or {}
        if not isinstance(meta, dict):
            raise InvalidInput(f"{source}: {label}: 'meta' must be a mapping")
        fields["meta"] = {**meta, "source_status": raw["status"]}
    return Draft(key, label, key or None, fields, list(deps))


# -- naming things in messages ----------------------------------------------------------------


def show_key(key: str) -> str:
    """A foreign id as messages print it: as is when plain, else quoted (one line, short)."""
    return key if re.fullmatch(r"[\w.:@/+-]{1,80}", key) else repr(key)[:80]


def kind_of(value: Any) -> str:
    """What ``value`` is, as messages say it: "a mapping", "a list", "text"."""
    if value is None:
        return "nothing"
    kinds = {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }
    return kinds.get(type(value), type(value).__name__)
