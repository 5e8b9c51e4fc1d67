"""STATE.yaml, format version 1: reading it into the model and writing changes back.

``parse`` reads a whole file once (round-trip, so it knows every key's line),
validates it with ``file:line`` messages, and records where each top-level key
and each task starts and ends. ``apply`` turns a new ``Project`` into line edits
of only the blocks that changed (see ``yamlblock``) and moves the recorded
positions along, so the result never needs a full parse again.

The layout of a file::

    # comments anywhere survive
    version: 1
    project: api                  # must match the directory name
    description: ...
    created_at: '2026-11-24T12:00:00Z'
    defaults:                     # what tasks inherit
      command: claude -p "$GITSTATE_DESCRIPTION"
      check: pytest -q
      max_retries: 2
      timeout: 30m
      lease: 15m
      requires: [python]
    hooks:                        # whom to tell when tasks move (see ``lifecycle``)
      on_merge: ./notify.sh       # also on_claim, on_complete, on_fail
      webhook: $SHOP_WEBHOOK      # an http(s) URL, or $NAME: the URL is in that variable
      events: [fail, merge]       # what the webhook gets (default: all four)
      timeout: 10s
    meta: {}                      # yours; gitstate never reads it
    tasks:
      t-3kq9x2m:
        title: Write the login page
        status: pending
        ...
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gitstate import canonical, names, yamlblock
from gitstate.errors import GitStateError, InvalidInput, InvalidState, StateFileError
from gitstate.model import HOOK_EVENTS, TASK_FIELDS, Hooks, Project, Settings, Status, Task, check_graph
from gitstate.redact import redact
from gitstate.timefmt import format_duration, format_timestamp, parse_duration, parse_timestamp
from gitstate.yamlblock import KEEP, OMIT

VERSION = 1
MAX_BYTES = 64 * 1024 * 1024
TOP_KEYS = ("version", "project", "description", "created_at", "defaults", "hooks", "meta", "tasks")
DEFAULT_KEYS = ("command", "check", "max_retries", "timeout", "lease", "requires", "copy_files", "setup")
HOOK_KEYS = tuple(f.name for f in dataclasses.fields(Hooks))
_ENV_NAME = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_CONFLICT_MARKERS = ("<<<<<<< ", "<<<<<<<\n", "=======\n", ">>>>>>> ", ">>>>>>>\n", "||||||| ")
# Line separators other than "\n" are refused everywhere: YAML scanners count
# some of them as line breaks, which would put every later line number off.
_SEPARATORS = frozenset("\r\x85\u2028\u2029")
_BAD_CHARS = {chr(c) for c in range(32) if chr(c) not in "\n\t"} | {"\x7f"} | _SEPARATORS
# What YAML allows unescaped (c-printable), the complement (compiled when first needed: it
# takes milliseconds, and most commands read STATE.yaml from the parse cache); and lone
# surrogates, from "\ud800" escapes.
_UNPRINTABLE = "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
_SURROGATE = re.compile("[\ud800-\udfff]")

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class StateDoc:
    """A parsed file: the project, and where each block sits (0-based lines, end excluded)."""

    project: Project
    top: Mapping[str, Span]
    tasks: Mapping[str, Span]
    task_indent: int | None  # column of task keys; None unless tasks form a block mapping
    line_count: int


class FieldError(Exception):
    """A value of the wrong shape; ``parse`` adds the file and line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def state_path(project: str) -> str:
    return f"projects/{project}/STATE.yaml"


def split_lines(text: str) -> list[str]:
    """Lines with their ``\\n``; only ``\\n`` ends a line (YAML 1.2 and ruamel agree)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


# -- values: YAML -> model ---------------------------------------------------------------


def _text(key: str, value: Any, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise FieldError(key, f"'{key}' must be text, not {_kind(value)}")
    if required and not value.strip():
        raise FieldError(key, f"'{key}' must not be empty")
    bad = _BAD_CHARS.intersection(value)
    if bad:
        raise FieldError(key, f"'{key}' contains a control character ({sorted(bad)[0]!r})")
    if _SURROGATE.search(value):
        raise FieldError(key, f"'{key}' contains a lone surrogate (\\ud800-\\udfff), which is not text")
    return str(value)


def _int(key: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(key, f"'{key}' must be a whole number, not {_kind(value)}")
    if minimum is not None and value < minimum:
        raise FieldError(key, f"'{key}' must be at least {minimum}, not {value}")
    return int(value)


def _names(key: str, value: Any, check: Callable[[object], str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FieldError(key, f"'{key}' must be a list such as [a, b], not {_kind(value)}")
    try:
        items = tuple(check(item) for item in value)
    except GitStateError as exc:
        raise FieldError(key, f"'{key}': {exc}") from None
    if len(set(items)) != len(items):
        raise FieldError(key, f"'{key}' lists a name twice")
    return items


def _duration(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise FieldError(key, f"'{key}' must be a duration such as 90s, 5m or 2h")
    try:
        return parse_duration(value, f"'{key}'")
    except GitStateError as exc:
        raise FieldError(key, str(exc)) from None


def _time(key: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str | datetime):
        raise FieldError(key, f"'{key}' must be a timestamp such as '2026-11-24T09:30:00Z'")
    try:
        return parse_timestamp(value, f"'{key}'")
    except GitStateError as exc:
        raise FieldError(key, str(exc)) from None


def _status(key: str, value: Any) -> Status:
    try:
        return Status(value)
    except ValueError:
        choices = ", ".join(Status)
        raise FieldError(key, f"unknown status {value!r}; use one of {choices}") from None


def _meta(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(key, f"'{key}' must be a mapping, not {_kind(value)}")
    plain: dict[str, Any] = yamlblock.to_plain(value)
    for item, _ in _walk(plain, None):
        if isinstance(item, str) and _SEPARATORS.intersection(item):
            raise FieldError(key, f"'{key}' holds text with a CR or Unicode line separator")
        texts = [item, *item] if isinstance(item, dict) else [item]  # keys too
        if any(isinstance(t, str) and _SURROGATE.search(t) for t in texts):
            raise FieldError(key, f"'{key}' holds a lone surrogate (\\ud800-\\udfff), which is not text")
    return plain


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}.get(
        next((t for t in (dict, list, str, int, float) if isinstance(value, t)), type(value)),
        type(value).__name__,
    )


def _optional_int(key: str, value: Any) -> int | None:
    return None if value is None else _int(key, value, minimum=0)


_TASK_READERS: Mapping[str, Callable[[str, Any], Any]] = {
    "title": lambda k, v: _text(k, v, required=True),
    "status": _status,
    "priority": _int,
    "description": lambda k, v: _text(k, v) or "",
    "depends_on": lambda k, v: _names(k, v, names.check_task_id),
    "requires": lambda k, v: _names(k, v, names.check_capability),
    "command": _text,
    "assignee": _text,
    "branch": _text,
    "attempts": lambda k, v: _int(k, v, minimum=0),
    "max_retries": _optional_int,
    "timeout": _duration,
    "lease_expires": _time,
    "not_before": _time,
    "result": _text,
    "error": _text,
    "created_at": _time,
    "updated_at": _time,
    "meta": _meta,
}
_DEFAULT_READERS: Mapping[str, Callable[[str, Any], Any]] = {
    "command": _text,
    "check": _text,
    "max_retries": _optional_int,
    "timeout": _duration,
    "lease": _duration,
    "requires": lambda k, v: _names(k, v, names.check_capability),
    "copy_files": lambda k, v: _names(k, v, names.check_relative_path),
    "setup": _text,
}


def _hook_command(key: str, value: Any) -> str | None:
    return None if value is None else _text(key, value, required=True)


def _webhook(key: str, value: Any) -> str | None:
    """An http(s) URL without credentials, or ``$NAME`` (the URL is in that variable)."""
    url = _hook_command(key, value)
    if url is None:
        return None
    if any(c.isspace() for c in url):
        raise FieldError(key, f"'{key}' must be a URL or $NAME without spaces")
    if url.startswith("$"):
        if not _ENV_NAME.fullmatch(url):
            raise FieldError(key, f"'{key}' {url!r} is not a variable name; write it like $SHOP_WEBHOOK")
        return url
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if not port_ok or parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldError(
            key, f"'{key}' must be an http:// or https:// URL, or $NAME to read it from the environment"
        )
    if parts.username is not None or redact(url) != url:
        # The URL is left out of the message: it holds the secret.
        raise FieldError(
            key,
            f"'{key}' holds credentials (user:password@ or a token); keep them out of git: "
            f"put the URL in an environment variable and write {key}: $NAME",
        )
    return url


def _hook_events(key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise FieldError(key, f"'{key}' must be a list of events such as [fail, merge], not {_kind(value)}")
    if not value:
        raise FieldError(key, f"'{key}' is empty; list at least one event, or leave it out to send them all")
    for item in value:
        if item not in HOOK_EVENTS:
            raise FieldError(key, f"'{key}' lists unknown event {item!r}; events: {', '.join(HOOK_EVENTS)}")
    if len(set(value)) != len(value):
        raise FieldError(key, f"'{key}' lists an event twice")
    return tuple(str(item) for item in value)


_HOOK_READERS: Mapping[str, Callable[[str, Any], Any]] = {
    **{f"on_{event}": _hook_command for event in HOOK_EVENTS},
    "webhook": _webhook,
    "events": _hook_events,
    "timeout": _duration,
}


def read_hooks(value: Any) -> Hooks:
    """``Hooks`` from a loaded ``hooks:`` mapping (empty or None: no hooks); raises ``FieldError``."""
    if value is None:
        return Hooks()
    if not isinstance(value, dict):
        raise FieldError("hooks", f"'hooks' must be a mapping such as {{on_merge: CMD}}, not {_kind(value)}")
    values: dict[str, Any] = {}
    for key, item in value.items():
        reader = _HOOK_READERS.get(key)
        if reader is None:
            raise FieldError(key, _unknown("hook setting", key, HOOK_KEYS))
        values[key] = reader(key, item)
    return Hooks(**values)


def _unknown(kind: str, key: Any, known: Sequence[str]) -> str:
    guess = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean '{guess[0]}'?)" if guess else f"; known fields: {', '.join(known)}"
    return f"unknown {kind} {str(key)!r}{hint}"


def check_task(task: Task) -> Task:
    """Refuse a task the file could not hold, with the message a file would get."""
    raw = {k: v for k, v in task_fields(task) if v is not OMIT}
    try:
        read_task(task.id, raw)
    except FieldError as exc:
        raise InvalidInput(f"task {task.id}: {exc}") from None
    return task


def read_task(task_id: Any, fields: Any) -> Task:
    """A task from its loaded mapping; raises ``FieldError``."""
    try:
        names.check_task_id(task_id)
    except GitStateError as exc:
        raise FieldError("", str(exc)) from None
    if not isinstance(fields, dict):
        raise FieldError("", f"task {task_id} must be a mapping of fields, not {_kind(fields)}")
    values: dict[str, Any] = {}
    for key, value in fields.items():
        reader = _TASK_READERS.get(key)
        if reader is None:
            raise FieldError(key, _unknown("task field", key, TASK_FIELDS))
        values[key] = reader(key, value)
    if "title" not in values:
        raise FieldError("", f"task {task_id} has no 'title'")
    return Task(id=str(task_id), **values)


# -- values: model -> YAML ----------------------------------------------------------------


def _out(value: Any, default: Any = None) -> Any:
    if value == default or value is None:
        return OMIT
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Status):
        return value.value
    return dict(value) if isinstance(value, Mapping) else value


def task_fields(task: Task) -> list[tuple[str, Any]]:
    """The task's fields in file order, with ``OMIT`` for those left at their default."""
    out: list[tuple[str, Any]] = []
    for key in TASK_FIELDS:
        value = getattr(task, key)
        if key in ("title", "status", "priority"):
            out.append((key, _out(value, object())))
        elif key == "timeout":
            out.append((key, OMIT if value is None else format_duration(value)))
        elif key == "attempts":
            out.append((key, _out(value, 0)))
        elif key in ("description",):
            out.append((key, _out(value, "")))
        elif key in ("depends_on", "requires"):
            out.append((key, _out(value, ())))
        elif key == "meta":
            out.append((key, OMIT if not value else dict(value)))
        else:
            out.append((key, _out(value)))
    return out


def _defaults_fields(settings: Settings) -> list[tuple[str, Any]]:
    return [
        ("command", _out(settings.command)),
        ("check", _out(settings.check)),
        ("max_retries", _out(settings.max_retries)),
        ("timeout", OMIT if settings.timeout is None else format_duration(settings.timeout)),
        ("lease", OMIT if settings.lease is None else format_duration(settings.lease)),
        ("requires", _out(settings.requires, ())),
        ("copy_files", _out(settings.copy_files, ())),
        ("setup", _out(settings.setup)),
    ]


def hooks_fields(hooks: Hooks) -> list[tuple[str, Any]]:
    """The ``hooks:`` entries in file order, with ``OMIT`` for those not set."""
    return [
        *((f"on_{event}", _out(hooks.command(event))) for event in HOOK_EVENTS),
        ("webhook", _out(hooks.webhook)),
        ("events", _out(hooks.events)),
        ("timeout", OMIT if hooks.timeout is None else format_duration(hooks.timeout)),
    ]


def _hooks_say(hooks: Hooks) -> Callable[[str, Any], bool]:
    """Whether a raw YAML value already reads as ``hooks``'s value for that key."""

    def same(key: str, raw: Any) -> bool:
        try:
            return bool(_HOOK_READERS[key](key, raw) == getattr(hooks, key))
        except FieldError:
            return False

    return same


def _top_fields(settings: Settings) -> list[tuple[str, Any]]:
    defaults = {k: v for k, v in _defaults_fields(settings) if v is not OMIT}
    hooks = {k: v for k, v in hooks_fields(settings.hooks) if v is not OMIT}
    return [
        ("version", VERSION),
        ("project", settings.name),
        ("description", _out(settings.description, "")),
        ("created_at", _out(settings.created_at)),
        ("defaults", defaults or OMIT),
        ("hooks", hooks or OMIT),
        ("meta", OMIT if not settings.meta else dict(settings.meta)),
    ]


def _keep_unchanged(
    fields: list[tuple[str, Any]], current: Mapping[str, Any], same: Callable[[str, Any], bool]
) -> list[tuple[str, Any]]:
    return [(k, KEEP if same(k, current.get(k)) else v) for k, v in fields]


# -- parsing -------------------------------------------------------------------------------


def parse(text: str, path: str) -> StateDoc:
    """Read and validate a whole file. Raises ``StateFileError`` naming ``path:line``."""
    if len(text) > MAX_BYTES:
        raise StateFileError(path, None, f"is larger than {MAX_BYTES // 2**20} MiB; split it")
    lines = split_lines(text)
    for number, line in enumerate(lines, 1):
        if line.startswith(_CONFLICT_MARKERS):
            raise StateFileError(path, number, "has a merge conflict marker; resolve the conflict and commit")
        if _SEPARATORS.intersection(line):
            what = "a CR line ending" if "\r" in line else "a Unicode line separator"
            raise StateFileError(path, number, f"has {what}; save it with LF line endings only")
    unprintable = re.search(_UNPRINTABLE, text)  # YAML refuses these, without saying on which line
    if unprintable:
        number = text.count("\n", 0, unprintable.start()) + 1
        raise StateFileError(path, number, f"has a control character ({unprintable.group()!r}); remove it")
    return _parse_by_blocks(lines, path) or parse_whole(text, path)


def parse_whole(text: str, path: str) -> StateDoc:
    """The full round-trip parse (any layout, and the error messages)."""
    lines = split_lines(text)
    try:
        data = yamlblock.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark is not None else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        duplicate = re.match(r'found duplicate key "(.*?)" with value', problem)
        if duplicate and exc.context_mark is not None:
            first = exc.context_mark.line + 1
            problem = (
                f"duplicate key {duplicate.group(1)!r} in the mapping that starts at line {first}; "
                "each key may appear once"
            )
        raise StateFileError(path, where, f"invalid YAML: {problem}") from None
    except (YAMLError, RecursionError, ValueError) as exc:  # ValueError: int() of a 5,000-digit number
        raise StateFileError(path, None, f"invalid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        raise StateFileError(path, 1, "is empty; it needs at least 'version: 1' and 'project'")
    if not isinstance(data, CommentedMap):
        raise StateFileError(path, 1, "must be a mapping with 'version', 'project' and 'tasks'")
    _refuse_anchors_and_tags(data, path)
    return _build(data, path, len(lines))


def _line(cmap: CommentedMap, key: Any) -> int | None:
    try:
        return int(cmap.lc.key(key)[0]) + 1
    except (KeyError, TypeError, AttributeError):
        return None


def _walk(node: Any, line: int | None) -> Iterator[tuple[Any, int | None]]:
    """Every value in document order, each shared (aliased) container once."""
    stack = [(node, line)]
    seen: set[int] = set()
    while stack:
        item, where = stack.pop()
        yield item, where
        if isinstance(item, dict | list):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if isinstance(item, dict):
            children = [
                (value, _line(item, key) if isinstance(item, CommentedMap) else where)
                for key, value in item.items()
            ]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((value, where) for value in reversed(item))


def _refuse_anchors_and_tags(data: CommentedMap, path: str) -> None:
    # Anchors and aliases make one edit change several places (and allow
    # exponential "billion laughs" documents); tags make values that are not
    # plain data. STATE.yaml is plain data, so both are refused.
    for item, line in _walk(data, 1):
        anchor = getattr(item, "anchor", None)
        if anchor is not None and getattr(anchor, "value", None):
            raise StateFileError(path, line, "uses a YAML anchor or alias (&, *); write values out")
        tag = getattr(item, "tag", None)
        if tag is not None and getattr(tag, "value", None):
            raise StateFileError(path, line, f"uses a YAML tag ({tag.value}); remove it")
        if isinstance(item, CommentedMap) and item.merge:
            raise StateFileError(path, line, "uses a YAML merge key (<<); write the fields out")


def _header(data: CommentedMap, path: str) -> Settings:
    """The project's settings from the top-level keys (all but ``tasks``)."""

    def fail(key: Any, message: str, where: CommentedMap | None = data) -> StateFileError:
        return StateFileError(path, _line(where if where is not None else data, key), message)

    for key in data:
        if key not in TOP_KEYS:
            raise fail(key, _unknown("top-level key", key, TOP_KEYS))
    if data.get("version") != VERSION:
        raise fail("version", f"'version' must be {VERSION}, not {data.get('version')!r}")
    expected = path.split("/")[-2] if path.count("/") >= 2 else None
    name = data.get("project")
    if not isinstance(name, str):
        raise fail("project", "'project' must be the project's name")
    if expected is not None and name != expected:
        raise fail("project", f"'project' is {name!r} but the directory is {expected!r}; make them match")
    return _read_settings(data, fail)


def _build(data: CommentedMap, path: str, line_count: int) -> StateDoc:
    def fail(key: Any, message: str, where: CommentedMap | None = data) -> StateFileError:
        return StateFileError(path, _line(where if where is not None else data, key), message)

    settings = _header(data, path)
    raw_tasks = data.get("tasks")
    if raw_tasks is not None and not isinstance(raw_tasks, CommentedMap):
        raise fail("tasks", "'tasks' must be a mapping of task id to fields")
    tasks: dict[str, Task] = {}
    for task_id, fields in (raw_tasks or {}).items():
        try:
            tasks[str(task_id)] = read_task(task_id, fields)
        except FieldError as exc:
            where = fields if exc.key and isinstance(fields, CommentedMap) else raw_tasks
            raise fail(exc.key or task_id, f"task {task_id}: {exc}", where) from None
    try:
        check_graph(tasks)
    except InvalidState as exc:
        raise fail(exc.task, str(exc), raw_tasks) from None
    top, task_spans, indent = _layout(data, raw_tasks, line_count)
    return StateDoc(Project(settings, tasks), top, task_spans, indent, line_count)


def _read_settings(data: CommentedMap, fail: Callable[..., StateFileError]) -> Settings:
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise fail("defaults", "'defaults' must be a mapping")
    values: dict[str, Any] = {}
    for key, value in defaults.items():
        reader = _DEFAULT_READERS.get(key)
        if reader is None:
            raise fail(key, _unknown("default", key, DEFAULT_KEYS), defaults)
        try:
            values[key] = reader(key, value)
        except FieldError as exc:
            raise fail(key, str(exc), defaults) from None
    values["hooks"] = _read_hooks_at(data, fail)
    try:
        return Settings(
            name=data["project"],
            description=_text("description", data.get("description")) or "",
            created_at=_time("created_at", data.get("created_at")),
            meta=_meta("meta", data.get("meta")),
            **values,
        )
    except FieldError as exc:
        raise fail(exc.key, str(exc)) from None


def _read_hooks_at(data: CommentedMap, fail: Callable[..., StateFileError]) -> Hooks:
    """The ``hooks:`` mapping; an error names the line of the entry at fault."""
    hooks = data.get("hooks")
    try:
        return read_hooks(hooks)
    except FieldError as exc:
        if isinstance(hooks, CommentedMap) and exc.key in hooks:
            raise fail(exc.key, f"hooks: {exc}", hooks) from None
        raise fail("hooks", str(exc)) from None


def _parse_by_blocks(lines: list[str], path: str) -> StateDoc | None:
    """The common layout (header, then ``tasks:`` to the end), read block by block.

    Blocks in gitstate's plain layout are read without a YAML library; other
    blocks, and the header, with it. None when the file has another layout
    or any problem: the full parse then reads it and names the line.
    """
    try:
        start = lines.index("tasks:\n")
    except ValueError:
        return None
    indent = None
    keys: list[int] = []
    for number in range(start + 1, len(lines)):
        line = lines[number]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        column = len(line) - len(line.lstrip(" "))
        if indent is None:
            indent = column
        if column == 0 or column < indent:
            return None  # another top-level key after the tasks, or an odd indentation
        if column == indent:
            keys.append(number)
    try:
        header = yamlblock.load("".join(lines[:start])) or CommentedMap()
        if not isinstance(header, CommentedMap) or "tasks" in header:
            return None
        _refuse_anchors_and_tags(header, path)
        settings = _header(header, path)
        tasks: dict[str, Task] = {}
        spans = _spans(keys, len(lines))
        for first, end in spans:
            task = _read_block(lines[first:end], indent or 0, path)
            if task is None or task.id in tasks:
                return None
            tasks[task.id] = task
        check_graph(tasks)
    except (GitStateError, YAMLError, RecursionError, ValueError):
        return None
    names = sorted(header, key=lambda k: header.lc.key(k)[0])
    top = dict(zip(names, _spans([header.lc.key(k)[0] for k in names], start), strict=True))
    top["tasks"] = (start, len(lines))
    task_spans = dict(zip(tasks, spans, strict=True))
    return StateDoc(Project(settings, tasks), top, task_spans, indent if tasks else None, len(lines))


def _read_block(block: list[str], indent: int, path: str) -> Task | None:
    plain = canonical.read(block, indent)
    try:
        if plain is not None:
            return read_task(*plain)
        data = yamlblock.load(yamlblock.dedent(block, indent))
        if not isinstance(data, CommentedMap) or len(data) != 1:
            return None
        _refuse_anchors_and_tags(data, path)
        task_id, fields = next(iter(data.items()))
        return read_task(task_id, fields)
    except (FieldError, GitStateError, YAMLError, RecursionError, ValueError):
        return None


def _spans(starts: list[int], end: int) -> list[Span]:
    if not starts:  # `tasks:` followed by nothing but comments and blank lines
        return []
    return [(start, nxt) for start, nxt in zip(starts, [*starts[1:], end], strict=True)]


def _layout(
    data: CommentedMap, raw_tasks: CommentedMap | None, line_count: int
) -> tuple[dict[str, Span], dict[str, Span], int | None]:
    keys = sorted(data, key=lambda k: data.lc.key(k)[0])
    top_spans = _spans([data.lc.key(k)[0] for k in keys], line_count)
    top = dict(zip(keys, top_spans, strict=True))
    if not raw_tasks or raw_tasks.fa.flow_style():
        return top, {}, None
    ids = sorted(raw_tasks, key=lambda k: raw_tasks.lc.key(k)[0])
    columns = {raw_tasks.lc.key(k)[1] for k in ids}
    first_line = raw_tasks.lc.key(ids[0])[0]
    if len(columns) != 1 or first_line == top["tasks"][0]:
        return top, {}, None
    task_spans = _spans([raw_tasks.lc.key(k)[0] for k in ids], top["tasks"][1])
    return top, dict(zip(map(str, ids), task_spans, strict=True)), columns.pop()


# -- writing -------------------------------------------------------------------------------

Edit = tuple[int, int, list[str]]


def render_new(project: Project) -> tuple[str, StateDoc]:
    """A new STATE.yaml holding ``project``."""
    text = (
        "# gitstate project state (format version 1). Edit it by hand or with `gitstate`;\n"
        "# comments and key order survive gitstate's writes. Reference: README.md.\n"
        f"version: {VERSION}\nproject: {project.name}\ntasks: {{}}\n"
    )
    return apply(parse(text, state_path(project.name)), text, project)


def apply(doc: StateDoc, text: str, new: Project) -> tuple[str, StateDoc]:
    """``text`` changed to hold ``new``; only blocks that differ from ``doc`` are rewritten."""
    old = doc.project
    gone = [tid for tid in old.tasks if tid not in new.tasks]
    if gone:
        raise InvalidState(f"task {gone[0]} cannot be deleted; cancel it instead")
    lines = split_lines(text)
    if "tasks" not in doc.top:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        at = len(lines)
        lines.append("tasks: {}\n")
        doc = dataclasses.replace(doc, top={**doc.top, "tasks": (at, at + 1)}, tasks={})
        doc = dataclasses.replace(doc, task_indent=None)
    if new.settings != old.settings:
        lines, doc = _apply_settings(lines, doc, new.settings)
    changed = []
    added = []
    for tid, task in new.tasks.items():
        before = old.tasks.get(tid)
        if before is None:
            added.append(task)
        elif before is not task and before != task:
            changed.append(task)
    for task in (*changed, *added):
        check_task(task)
    if not changed and not added:
        return "".join(lines), dataclasses.replace(doc, project=new, line_count=len(lines))
    indent = doc.task_indent
    if indent is None or any(t.id not in doc.tasks for t in changed):
        return _rewrite_tasks(lines, doc, new)
    edits: list[Edit] = []
    for task in changed:
        start, end = doc.tasks[task.id]
        edits.append((start, end, _edit_task(lines[start:end], indent, task, old.tasks[task.id])))
    at = doc.top["tasks"][1]
    inserted: list[str] = []
    offsets: dict[str, Span] = {}
    for task in added:
        block = _edit_task([], indent, task)
        offsets[task.id] = (len(inserted), len(inserted) + len(block))
        inserted.extend(block)
    if inserted:
        edits.append((at, at, inserted))
    lines, moved = _splice(lines, edits)
    base = moved(at) - len(inserted)
    first = min(start for start, _, _ in edits)
    # Blocks before the first edit stay where they were; the rest move. The
    # last task ended where new ones were inserted: it must not grow over them.
    tasks = {
        tid: (s, e) if e <= first else (moved(s), base if inserted and e == at else moved(e))
        for tid, (s, e) in doc.tasks.items()
    }
    tasks.update({tid: (base + s, base + e) for tid, (s, e) in offsets.items()})
    top = {key: (moved(s), moved(e)) for key, (s, e) in doc.top.items()}
    return "".join(lines), StateDoc(new, top, tasks, indent, len(lines))


def _splice(lines: list[str], edits: list[Edit]) -> tuple[list[str], Callable[[int], int]]:
    """Apply non-overlapping line edits; return a map from old line numbers to new ones."""
    edits = sorted(edits, key=lambda e: (e[0], e[1]))
    out = list(lines)
    for start, end, block in reversed(edits):
        out[start:end] = block
    deltas = [(end, len(block) - (end - start)) for start, end, block in edits]

    def moved(line: int) -> int:
        return line + sum(delta for end, delta in deltas if end <= line)

    return out, moved


def _says(task: Task) -> Callable[[str, Any], bool]:
    """Whether a raw YAML value already reads as ``task``'s value for that field."""

    def same(key: str, raw: Any) -> bool:
        try:
            return bool(_TASK_READERS[key](key, raw) == getattr(task, key))
        except FieldError:
            return False

    return same


def _task_mutator(new: Task) -> Callable[[CommentedMap], None]:
    def mutate(data: CommentedMap) -> None:
        if not isinstance(data.get(new.id), CommentedMap):
            data[new.id] = CommentedMap()
        fields = data[new.id]
        yamlblock.update_mapping(fields, _keep_unchanged(task_fields(new), fields, _says(new)))

    return mutate


def _edit_task(block: Sequence[str], indent: int, new: Task, old: Task | None = None) -> list[str]:
    body, trailer = yamlblock.split_trailer(block)
    fresh = canonical.emit(new.id, task_fields(new), indent, OMIT)
    if fresh is not None and (
        not block or (old is not None and body == canonical.emit(old.id, task_fields(old), indent, OMIT))
    ):
        return fresh + trailer  # both in the plain layout: no YAML library needed
    mutate = _task_mutator(new)
    try:
        return yamlblock.edit_block(block, indent, mutate, lambda d: _loads_as(d, new))
    except yamlblock.BlockMismatch:
        # The hand-written block defeats an in-place edit (unusual scalars):
        # write it out canonically; the values are what must be right.
        return yamlblock.edit_block([], indent, mutate, lambda d: _loads_as(d, new))


def _loads_as(data: Any, task: Task) -> bool:
    if not isinstance(data, dict) or list(data) != [task.id]:
        return False
    try:
        return read_task(task.id, data[task.id]) == task
    except FieldError:
        return False


def _apply_settings(lines: list[str], doc: StateDoc, settings: Settings) -> tuple[list[str], StateDoc]:
    """Rewrite the top-level keys that changed; new keys go just before ``tasks``."""
    old_fields = dict(_top_fields(doc.project.settings))
    tasks_start = doc.top["tasks"][0]
    edits: list[Edit] = []
    for key, value in _top_fields(settings):
        if key in ("version", "project") or old_fields[key] == value:
            continue
        if key in doc.top:
            start, end = doc.top[key]
            edits.append((start, end, _edit_top(lines[start:end], key, value, settings)))
        elif value is not OMIT:
            edits.append((tasks_start, tasks_start, _edit_top([], key, value, settings)))
    lines, moved = _splice(lines, edits)
    # Keys before ``tasks`` may have been added or removed: measure them again
    # from the header alone, which is small.
    header_end = moved(tasks_start)
    header = yamlblock.load("".join(lines[:header_end])) or CommentedMap()
    keys = sorted(header, key=lambda k: header.lc.key(k)[0])
    top = dict(zip(keys, _spans([header.lc.key(k)[0] for k in keys], header_end), strict=True))
    for key, (start, end) in doc.top.items():
        if start >= tasks_start:
            top[key] = (moved(start), moved(end))
    tasks = {tid: (moved(s), moved(e)) for tid, (s, e) in doc.tasks.items()}
    project = dataclasses.replace(doc.project, settings=settings)
    return lines, dataclasses.replace(doc, project=project, top=top, tasks=tasks, line_count=len(lines))


def _edit_top(block: Sequence[str], key: str, value: Any, settings: Settings) -> list[str]:
    def mutate(data: CommentedMap) -> None:
        if key == "defaults" and isinstance(data.get(key), CommentedMap):
            yamlblock.update_mapping(data[key], _defaults_fields(settings))
        elif key == "hooks" and value is not OMIT and isinstance(data.get(key), CommentedMap):
            # Entry by entry, so a person's comments and spelling in ``hooks:`` survive.
            hooks = data[key]
            fields = _keep_unchanged(hooks_fields(settings.hooks), hooks, _hooks_say(settings.hooks))
            yamlblock.update_mapping(hooks, fields)
        else:
            yamlblock.update_mapping(data, [(key, value)])

    def check(data: CommentedMap) -> bool:
        return value is OMIT or key in data

    return yamlblock.edit_block(block, 0, mutate, check)


def _rewrite_tasks(lines: list[str], doc: StateDoc, new: Project) -> tuple[str, StateDoc]:
    """Re-emit the whole ``tasks`` block (it was empty, inline or oddly laid out)."""
    start, end = doc.top["tasks"]

    def mutate(data: CommentedMap) -> None:
        tasks = data.get("tasks")
        if not isinstance(tasks, CommentedMap):
            tasks = data["tasks"] = CommentedMap()
        tasks.fa.set_block_style()
        for task in new.tasks.values():
            _task_mutator(task)(tasks)

    def check(data: CommentedMap) -> bool:
        tasks = data.get("tasks") or {}
        return all(_loads_as({tid: tasks.get(tid)}, t) for tid, t in new.tasks.items())

    block = yamlblock.edit_block(lines[start:end], 0, mutate, check)
    lines, moved = _splice(lines, [(start, end, block)])
    tasks_map = yamlblock.load("".join(block))["tasks"]
    ids = sorted(tasks_map, key=lambda k: tasks_map.lc.key(k)[0])
    starts = [start + tasks_map.lc.key(k)[0] for k in ids]
    spans = dict(zip(map(str, ids), _spans(starts, start + len(block)), strict=True))
    indent = tasks_map.lc.key(ids[0])[1] if ids else None
    top = {key: (moved(s), moved(e)) for key, (s, e) in doc.top.items()}
    return "".join(lines), StateDoc(new, top, spans, indent, len(lines))
