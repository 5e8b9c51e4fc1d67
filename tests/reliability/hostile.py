"""Hostile input: STATE.yaml documents (valid, subtly invalid, garbage) and hostile names and values.

Documents are laid out by hand, the way people write them (comments, blank
lines, 2 or 4 spaces, fields in any order, plain, single- and double-quoted
and block scalars, flow and block lists), from values the generator chose, so
the expected model is known. Every line a field sits on is known too, so an
invalid mutation of one field knows the line gitstate's message must name.

The checks:

* ``check_valid``: ``statefile.parse`` reads exactly the values that were
  written, agrees with the full parser, and an edit of one task changes only
  that task's lines (the rest are byte-identical) and reads back as the edit.
* ``check_invalid``: the document is refused with a ``StateFileError`` whose
  message is one line starting ``<path>:<line>:`` at the mutated line.
* ``check_any``: any text at all is accepted (and then round-trips) or refused
  with a ``StateFileError``; nothing else is ever raised.
* ``hostile_cli``: hostile names and values through every CLI option that
  reaches git, a path or a ref: refused in one line with no commit, or (text
  fields) stored as data and shown back exactly; no command ever runs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from gitstate import statefile
from gitstate.errors import GitStateError, StateFileError
from gitstate.model import Project, Settings, Status, Task

PATH = "projects/api/STATE.yaml"
BASE = datetime(2026, 1, 1, tzinfo=UTC)
_SPECIAL = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}

# -- valid documents, laid out by hand -------------------------------------------------------------

TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85\ufeff\ufffe\uffff"
    ),
    min_size=1,
    max_size=24,
).filter(lambda s: s.strip() == s and bool(s))
LINES = st.lists(
    st.text(
        st.characters(whitelist_categories=("L", "N"), whitelist_characters=" .,-"), min_size=1, max_size=16
    )
    .map(str.strip)
    .filter(bool),
    min_size=2,
    max_size=3,
).map("\n".join)
NAMES = st.sampled_from(["python", "gpu", "node", "rust"])
MOMENTS = st.integers(0, 10**6).map(lambda s: BASE + timedelta(seconds=s))


@dataclass
class Doc:
    """A hand-laid-out STATE.yaml, the model it holds, and where each task's fields are (1-based lines)."""

    text: str
    project: Project
    lines: dict[str, dict[str, int]] = field(default_factory=dict)  # task id -> field -> line
    header: dict[str, int] = field(default_factory=dict)


def _scalar(draw: st.DrawFn, value: str, *, block_ok: bool, pad: str) -> str:
    plain = (
        re.fullmatch(r"[A-Za-z][A-Za-z0-9 _.,()/+-]*[A-Za-z0-9)]|[A-Za-z]", value) is not None
        and value.lower() not in _SPECIAL
        and ": " not in value
        and " #" not in value
    )
    styles = ["single", "double"] + (["plain"] if plain else [])
    if "\n" in value:
        styles = ["double"] + (
            ["literal"] if block_ok and all(line.strip() == line for line in value.split("\n")) else []
        )
    style = draw(st.sampled_from(styles))
    if style == "plain":
        return value
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    if style == "literal":
        return "|-\n" + "".join(f"{pad}  {line}\n" for line in value.split("\n")).rstrip("\n")
    return json.dumps(
        value, ensure_ascii=False
    )  # JSON escapes U+10000 as a surrogate pair, which YAML does not join


def _list(draw: st.DrawFn, items: Sequence[str], pad: str) -> str:
    if not items or draw(st.booleans()):
        return "[" + ", ".join(items) + "]"
    return "\n" + "\n".join(f"{pad}  - {item}" for item in items)


def _moment(draw: st.DrawFn, moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return draw(st.sampled_from([f"'{text}'", f'"{text}"', text]))


@st.composite
def valid_docs(draw: st.DrawFn, max_tasks: int = 6) -> Doc:
    indent = draw(st.sampled_from([2, 4]))
    count = draw(st.integers(0, max_tasks))
    ids = draw(
        st.lists(
            st.from_regex(r"t-[a-z0-9]{1,6}", fullmatch=True), min_size=count, max_size=count, unique=True
        )
    )
    out: list[str] = []
    header: dict[str, int] = {}

    def emit(text: str) -> int:
        first = len(out) + 1
        out.extend(part + "\n" for part in text.split("\n"))
        return first

    def maybe_comment(pad: str = "") -> None:
        if draw(st.integers(0, 5)) == 0:
            emit(f"{pad}# {draw(st.sampled_from(['note', 'todo: later', 'déjà vu', '']))}".rstrip())
        if draw(st.integers(0, 7)) == 0:
            out.append("\n")

    maybe_comment()
    header["version"] = emit("version: 1")
    header["project"] = emit("project: api" + draw(st.sampled_from(["", "  # the name"])))
    description = draw(st.one_of(st.just(""), TEXT))
    if description:
        header["description"] = emit(f"description: {_scalar(draw, description, block_ok=False, pad='')}")
    settings: dict[str, Any] = {"name": "api", "description": description}
    if draw(st.booleans()):
        header["defaults"] = emit("defaults:")
        lease = draw(st.sampled_from([60, 300, 900]))
        emit(f"  lease: {draw(st.sampled_from([str(lease), f'{lease}s', f'{lease // 60}m']))}")
        settings["lease"] = lease
        if draw(st.booleans()):
            retries = draw(st.integers(0, 3))
            emit(f"  max_retries: {retries}")
            settings["max_retries"] = retries
    maybe_comment()
    header["tasks"] = emit("tasks:" if ids else draw(st.sampled_from(["tasks: {}", "tasks:"])))
    pad = " " * indent
    tasks: dict[str, Task] = {}
    lines: dict[str, dict[str, int]] = {}
    for number, task_id in enumerate(ids):
        values: dict[str, Any] = {"title": draw(st.one_of(TEXT, LINES))}
        optional: dict[str, st.SearchStrategy[Any]] = {
            "status": st.sampled_from(list(Status)),
            "priority": st.integers(-5, 5),
            "description": st.one_of(TEXT, LINES),
            "depends_on": st.lists(st.sampled_from(ids[:number]), unique=True, max_size=2)
            if number
            else st.just([]),
            "requires": st.lists(NAMES, unique=True, max_size=2),
            "assignee": st.sampled_from(["bob", "agent-1"]),
            "attempts": st.integers(0, 4),
            "max_retries": st.integers(0, 3),
            "timeout": st.sampled_from([90, 300, 3600]),
            "lease_expires": MOMENTS,
            "not_before": MOMENTS,
            "result": TEXT,
            "error": st.one_of(TEXT, LINES),
            "created_at": MOMENTS,
            "updated_at": MOMENTS,
            "meta": st.dictionaries(
                st.sampled_from(["owner", "ticket"]), st.one_of(TEXT, st.integers(-9, 99)), max_size=2
            ),
        }
        for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=6)):
            values[key] = draw(optional[key])
        order = draw(st.permutations(sorted(values)))
        maybe_comment(pad)
        where = {"": emit(f"{pad}{task_id}:" + draw(st.sampled_from(["", "  # a task"])))}
        fpad = pad + "  "
        for key in order:
            value = values[key]
            if key in ("title", "description", "result", "error"):
                rendered = _scalar(draw, value, block_ok=True, pad=fpad)
            elif key in ("depends_on", "requires"):
                rendered = _list(draw, value, fpad)
            elif key == "status":
                rendered = draw(st.sampled_from([value.value, f"'{value.value}'"]))
            elif key == "timeout":
                rendered = draw(st.sampled_from([str(value), f"{value}s", f'"{value}s"']))
            elif key in ("lease_expires", "not_before", "created_at", "updated_at"):
                rendered = _moment(draw, value)
            elif key == "meta":
                rendered = (
                    "{"
                    + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
                    + "}"
                )
            else:
                rendered = str(value)
            where[key] = emit(f"{fpad}{key}: {rendered}")
            if draw(st.integers(0, 9)) == 0:
                emit(f"{fpad}# about {key}")
        lines[task_id] = where
        fields = dict(values)
        for key in ("depends_on", "requires"):
            if key in fields:
                fields[key] = tuple(fields[key])
        if "status" in fields:
            fields["status"] = Status(fields["status"])
        tasks[task_id] = Task(id=task_id, **fields)
    maybe_comment()
    return Doc("".join(out), Project(Settings(**settings), tasks), lines, header)


# -- invalid mutations ------------------------------------------------------------------------------

BAD_VALUES: dict[str, list[str]] = {
    "status": ["doing", "DONE", "1", "[pending]", "null"],
    "priority": ["high", "1.5", "[1]", "true", "'3'"],
    "attempts": ["-1", "many", "{a: 1}"],
    "title": ["[a, b]", "{x: 1}", "null", "''", "12"],
    "depends_on": ["t-zz", "{a: b}", "[t-nope]", "[Bad Id]"],
    "requires": ["gpu", "[has space]", "[-x]"],
    "timeout": ["5x", "-3", "[1]", "0"],
    "not_before": ["yesterday", "2026-13-45", "[1]"],
    "meta": ["[1, 2]", "text"],
}


@st.composite
def invalid_docs(draw: st.DrawFn) -> tuple[str, int | None, str]:
    """(text, the line the refusal must name or None, what was done)."""
    doc = draw(valid_docs(max_tasks=4).filter(lambda d: bool(d.project.tasks)))
    lines = statefile.split_lines(doc.text)
    task_id = draw(st.sampled_from(sorted(doc.lines)))
    where = doc.lines[task_id]
    kind = draw(
        st.sampled_from(
            [
                "value",
                "unknown_field",
                "duplicate_field",
                "conflict",
                "cycle",
                "tab",
                "cr",
                "tag",
                "anchor",
                "version",
                "project",
                "control",
                "duplicate_task",
            ]
        )
    )
    if kind == "value":
        key = draw(st.sampled_from(sorted(BAD_VALUES)))
        bad = draw(st.sampled_from(BAD_VALUES[key]))
        pad = lines[where[""] - 1][: len(lines[where[""] - 1]) - len(lines[where[""] - 1].lstrip(" "))] + "  "
        if key in where:  # replace that field's line (and a block value's lines below it)
            line = _replace(lines, where[key] - 1, f"{pad}{key}: {bad}\n")
        else:
            lines.insert(where[""], f"{pad}{key}: {bad}\n")
            line = where[""] + 1
        if bad == "[t-nope]":  # a dependency on no task: named at the task that has it
            line = where[""]
        return "".join(lines), line, f"{key}: {bad}"
    if kind == "unknown_field":
        pad = _pad(lines[where[""] - 1]) + "  "
        lines.insert(where[""], f"{pad}titel: misspelt\n")
        return "".join(lines), where[""] + 1, "unknown field"
    if kind == "duplicate_field":
        at = where["title"] - 1
        if lines[at].rstrip().endswith("|-"):
            return (
                "".join([*lines[:at], f"{_pad(lines[at])}title: x\n", *lines[at:]]),
                at + 2,
                "duplicate title",
            )
        lines.insert(at + 1, lines[at])
        return "".join(lines), at + 2, "duplicate title"
    if kind == "duplicate_task":
        block_start = where[""] - 1
        end = block_start + 1
        indent = len(_pad(lines[block_start]))
        while end < len(lines) and (
            not lines[end].strip() or len(_pad(lines[end])) > indent or lines[end].lstrip().startswith("#")
        ):
            end += 1
        copy = lines[block_start:end]
        lines[end:end] = copy
        return "".join(lines), None, "a task twice"
    if kind == "conflict":
        at = draw(st.integers(0, len(lines)))
        marker = draw(st.sampled_from(["<<<<<<< HEAD\n", "=======\n", ">>>>>>> theirs\n", "||||||| base\n"]))
        lines.insert(at, marker)
        return "".join(lines), at + 1, "conflict marker"
    if kind == "cycle":
        free = [t for t in sorted(doc.lines) if "depends_on" not in doc.lines[t]]
        if not free:  # every task already lists dependencies: misspell a field instead
            pad = _pad(lines[where[""] - 1]) + "  "
            lines.insert(where[""], f"{pad}titel: misspelt\n")
            return "".join(lines), where[""] + 1, "unknown field"
        first, second = free[0], free[-1]  # the same task twice: it depends on itself
        for at, other in sorted(
            [(doc.lines[first][""], second), (doc.lines[second][""], first)], reverse=True
        ):
            lines.insert(at, f"{_pad(lines[at - 1])}  depends_on: [{other}]\n")
            if first == second:
                break
        return "".join(lines), None, "dependency cycle"
    if kind == "tab":
        at = where["title"] - 1
        lines[at] = "\t" + lines[at].lstrip(" ")
        return "".join(lines), None, "tab indentation"
    if kind == "cr":
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = lines[at].rstrip("\n") + "\r\n"
        return "".join(lines), at + 1, "CR line ending"
    if kind == "tag":
        pad = _pad(lines[where[""] - 1]) + "  "
        tag = draw(
            st.sampled_from(
                [
                    "!!python/object/apply:os.system ['touch /tmp/gitstate-pwned']",
                    "!custom x",
                    "!!binary aGVsbG8=",
                ]
            )
        )
        lines.insert(where[""], f"{pad}command: {tag}\n")
        return "".join(lines), where[""] + 1, "YAML tag"
    if kind == "anchor":
        pad = _pad(lines[where[""] - 1]) + "  "
        lines.insert(where[""], f"{pad}meta: &shared {{a: 1}}\n")
        return "".join(lines), None, "anchor"
    if kind == "version":
        at = doc.header["version"] - 1
        lines[at] = draw(st.sampled_from(["version: 2\n", "version: '1'\n", "version: [1]\n"]))
        return "".join(lines), at + 1, "version"
    if kind == "project":
        at = doc.header["project"] - 1
        lines[at] = draw(st.sampled_from(["project: web\n", "project: [api]\n", "project:\n"]))
        return "".join(lines), at + 1, "project"
    at = where["title"] - 1  # control
    char = draw(st.sampled_from(["\x00", "\x07", "\x1b", "\x7f"]))
    line = _replace(lines, at, f'{_pad(lines[at])}title: "with {json.dumps(char)[1:-1]} inside"\n')
    return "".join(lines), line, "control character"


def _pad(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" "))]


def _replace(lines: list[str], at: int, new: str) -> int:
    """Replace the field at ``at`` (with the lines of a block value below it); its 1-based line."""
    pad = _pad(lines[at])
    end = at + 1
    while end < len(lines) and lines[end].startswith((pad + " ", pad + "-")):
        end += 1
    lines[at:end] = [new]
    return at + 1


# -- the checks ---------------------------------------------------------------------------------------


def _one_line(exc: BaseException, line: int | None) -> str | None:
    """Why ``exc`` is not a clean refusal naming ``PATH`` (and ``line``); None when it is."""
    if not isinstance(exc, StateFileError):
        return f"raised {type(exc).__name__}, not StateFileError: {exc!r}"
    message = str(exc)
    if "\n" in message:
        return f"the message has several lines: {message!r}"
    if not message.startswith(PATH):
        return f"the message does not start with the file: {message!r}"
    if line is not None and not message.startswith(f"{PATH}:{line}:"):
        return f"the message does not name line {line}: {message!r}"
    return None


def check_valid(doc: Doc, edit: Callable[[Task], Task]) -> None:
    """Parse reads the written values; an edit touches only its task's lines and reads back."""
    try:
        parsed = statefile.parse(doc.text, PATH)
    except GitStateError as exc:
        raise AssertionError(f"a valid document was refused: {exc}\n{doc.text}") from None
    assert parsed.project == doc.project, (
        f"parse read other values\n{doc.text}\n{parsed.project}\n{doc.project}"
    )
    assert statefile.parse_whole(doc.text, PATH).project == doc.project, "the full parser disagrees"
    if not doc.project.tasks:
        return
    task_id = sorted(doc.project.tasks)[0]
    changed = edit(doc.project.tasks[task_id])
    new_project = doc.project.with_task(changed)
    try:
        text, after = statefile.apply(parsed, doc.text, new_project)
    except GitStateError:
        return  # the edit itself is refused (a value the file cannot hold): nothing was written
    assert after.project == new_project
    assert statefile.parse(text, PATH).project == new_project, f"the edit does not read back\n{text}"
    old, new = statefile.split_lines(doc.text), statefile.split_lines(text)
    if task_id in parsed.tasks:
        start, end = parsed.tasks[task_id]
        assert old[:start] == new[:start], f"lines before {task_id} changed\n{doc.text}\n---\n{text}"
        tail = len(old) - end
        assert old[end:] == new[len(new) - tail :], f"lines after {task_id} changed\n{doc.text}\n---\n{text}"
    else:
        start, end = parsed.top["tasks"]
        assert old[:start] == new[:start], f"lines before the tasks changed\n{doc.text}\n---\n{text}"


def check_invalid(text: str, line: int | None, what: str) -> None:
    try:
        statefile.parse(text, PATH)
    except Exception as exc:  # noqa: BLE001 (judged below: only StateFileError is right)
        problem = _one_line(exc, line)
        assert problem is None, f"{what}: {problem}\n{text}"
    else:
        raise AssertionError(f"{what}: accepted an invalid document\n{text}")


def check_any(text: str) -> bool:
    """Any text: accepted (and an edit round-trips) or refused cleanly. True when accepted."""
    try:
        parsed = statefile.parse(text, PATH)
    except Exception as exc:  # noqa: BLE001 (judged below)
        problem = _one_line(exc, None)
        assert problem is None, f"{problem}\n{text!r}"
        return False
    for task in list(parsed.project.tasks.values())[:1]:
        new = parsed.project.with_task(dataclasses.replace(task, priority=task.priority + 1))
        try:
            edited, _ = statefile.apply(parsed, text, new)
        except GitStateError:
            continue
        assert statefile.parse(edited, PATH).project == new
    return True


# -- hand-made nasty documents --------------------------------------------------------------------

NASTY: list[tuple[str, str]] = [
    ("empty", ""),
    ("only a comment", "# nothing\n"),
    ("a list", "- a\n- b\n"),
    ("a scalar", "just text\n"),
    ("BOM", "\ufeffversion: 1\nproject: api\ntasks: {}\n"),
    ("BOM before tasks", "version: 1\nproject: api\n\ufefftasks: {}\n"),
    ("tabs", "version: 1\nproject: api\ntasks:\n\tt-1:\n\t\ttitle: x\n"),
    (
        "billion laughs",
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nversion: 1\nproject: api\n",
    ),
    ("deep flow nesting", "version: 1\nproject: api\nmeta: {x: " + "[" * 5000 + "]" * 5000 + "}\n"),
    (
        "deep block nesting",
        "version: 1\nproject: api\nmeta:\n" + "".join(" " * (2 * n + 2) + f"k{n}:\n" for n in range(400)),
    ),
    ("merge key", "version: 1\nproject: api\ntasks:\n  t-1:\n    <<: {title: merged}\n"),
    (
        "python tag",
        "version: 1\nproject: api\ntasks:\n  t-1:\n    title: !!python/object/apply:os.system ['touch /tmp/gitstate-pwned']\n",
    ),
    ("complex key", "version: 1\nproject: api\ntasks:\n  ? [t-1]\n  : {title: x}\n"),
    ("null key", "version: 1\nproject: api\ntasks:\n  ~: {title: x}\n"),
    ("int key", "version: 1\nproject: api\ntasks:\n  12: {title: x}\n"),
    ("yes key", "version: 1\nproject: api\ntasks:\n  yes: {title: x}\n"),
    ("directive", "%YAML 1.1\n---\nversion: 1\nproject: api\n"),
    ("two documents", "version: 1\nproject: api\n---\nversion: 1\nproject: api\n"),
    ("huge value", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: " + "x" * 2_000_000 + "\n"),
    (
        "many tasks",
        "version: 1\nproject: api\ntasks:\n"
        + "".join(f"  t-{n}:\n    title: task {n}\n" for n in range(3000)),
    ),
    (
        "dependency chain",
        "version: 1\nproject: api\ntasks:\n"
        + "".join(f"  t-{n}:\n    title: x\n    depends_on: [t-{n + 1}]\n" for n in range(2000))
        + "  t-2000:\n    title: end\n",
    ),
    (
        "long cycle",
        "version: 1\nproject: api\ntasks:\n"
        + "".join(f"  t-{n}:\n    title: x\n    depends_on: [t-{(n + 1) % 500}]\n" for n in range(500)),
    ),
    ("NUL", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: a\x00b\n"),
    ("lone surrogate escape", 'version: 1\nproject: api\ntasks:\n  t-1:\n    title: "\\ud800"\n'),
    ("unicode line separator", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: a\u2028b\n"),
    ("NEL", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: a\x85b\n"),
    ("escaped NEL", 'version: 1\nproject: api\ntasks:\n  t-1:\n    title: "a\\Nb"\n'),
    (
        "huge int",
        "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    priority: " + "9" * 5000 + "\n",
    ),
    ("float priority", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    priority: .inf\n"),
    ("nan attempts", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    attempts: .nan\n"),
    (
        "date not_before",
        "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    not_before: 2026-01-01\n",
    ),
    (
        "year 0",
        "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    not_before: '0000-01-01T00:00:00Z'\n",
    ),
    (
        "naive datetime",
        "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    created_at: 2026-01-01 10:00:00\n",
    ),
    (
        "huge timeout",
        "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    timeout: 99999999999999999999d\n",
    ),
    ("task id with slash", "version: 1\nproject: api\ntasks:\n  a/../b:\n    title: x\n"),
    ("task id dash", "version: 1\nproject: api\ntasks:\n  -t:\n    title: x\n"),
    ("tasks a list", "version: 1\nproject: api\ntasks:\n- t-1\n"),
    ("defaults a list", "version: 1\nproject: api\ndefaults: [1]\n"),
    ("meta with aliases", "version: 1\nproject: api\nmeta: {a: &x 1, b: *x}\n"),
    ("key without value", "version: 1\nproject: api\ntasks:\n  t-1:\n    title:\n"),
    ("indentation mix", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: a\n   t-2:\n    title: b\n"),
    ("trailing garbage", "version: 1\nproject: api\ntasks: {}\n]]]\n"),
    ("unterminated quote", "version: 1\nproject: api\ntasks:\n  t-1:\n    title: 'oops\n"),
    ("only CR", "version: 1\rproject: api\rtasks: {}\r"),
]


# -- hostile names and values through the CLI ----------------------------------------------------------

MARKER = "/tmp/gitstate-hostile-pwned"  # no command may ever create it (tests use a per-run path)

HOSTILE_NAMES = [
    "-x",
    "--help",
    "--upload-pack=touch {marker}",
    "--exec=touch {marker}",
    "ext::sh -c touch% {marker}",
    "..",
    "../escape",
    "a/b",
    "/abs",
    "a\nb",
    "$(touch {marker})",
    "`touch {marker}`",
    "a;touch {marker}",
    "a|touch {marker}",
    "a b",
    "x" * 300,
    "\u0430pi",  # Cyrillic a
    "api\u200b",  # zero-width space
    "\uff41\uff50\uff49",  # full-width
    "a\x1bb",
    "HEAD",
    "refs/heads/main",
    "main.lock",
    "@{-1}",
    "a..b",
    "a:b",
    "a~1",
    "a^",
    "a*",
    "a?",
    "[a]",
    "a\\b",
    "",
    " ",
    "true",
    "null",
    "t-ok\x00evil",
]

HOSTILE_TEXT = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "line one\nline two: with a colon",
    "'quoted' and \"double\" and \\ backslash",
    "# not a comment",
    "- not a list",
    "{not: a mapping}",
    "&anchor *alias !tag",
    "<<<<<<< HEAD",
    "%YAML 1.1",
    "x" * 100_000,
    "Überprüfen ✓ 日本語 🎉",
    "\u202egnp.exe",  # right-to-left override
    "ends with a space ",
    "  starts with spaces",
    "null",
    "true",
    "0x1F",
    "1e3",
    "~",
]


def fill(template: str, marker: str) -> str:
    return template.replace("{marker}", marker)


@dataclass
class Probe:
    """One hostile command line: ``args`` (with ``{marker}`` filled in), and what may happen."""

    args: tuple[str, ...]
    data: str | None = None  # a text field that must be stored and shown back exactly (task id "t-x")
    field: str = "title"


def probes(marker: str, *, text_limit: int = 100_000) -> list[Probe]:
    """Every hostile value through every option that reaches git, a path, a ref or STATE.yaml."""
    out: list[Probe] = []
    for template in HOSTILE_NAMES:
        name = fill(template, marker)
        if "\x00" in name:
            continue  # argv cannot hold NUL: the in-process runner covers it
        out += [
            Probe(("-C", name, "status")),
            Probe(("--branch", name, "status")),
            Probe(("--branch", name, "task", "add", "api", "x")),
            Probe(("--agent", name, "task", "add", "api", "x")),
            Probe(("project", "add", name)),
            Probe(("task", "add", name, "x")),
            Probe(("task", "add", "api", "x", "--id", name)),
            Probe(("task", "show", "api", name)),
            Probe(("task", "edit", "api", "t-1", "--depends-on", name)),
            Probe(("task", "add", "api", "x", "--requires", name)),
            Probe(("project", "edit", "api", "--copy-file", name)),
            Probe(("claim", name, "--agent", "a")),
            Probe(("claim", "api", "--agent", name)),
            Probe(("init", "--branch", name)),
            Probe(("run", "--agents", "1", "--time-box", "20s", "--push", name)),
            Probe(("run", "--agents", "1", "--time-box", "20s", "--project", name)),
            Probe(("merge", name)),
            Probe(("done", "api", name)),
            Probe(("task", "add", "api", "x", "--meta", f"{name}=v")),
        ]
    for template in HOSTILE_TEXT:
        text = fill(template, marker)[:text_limit]
        out += [
            Probe(("task", "add", "api", "--id", "t-x", "--", text), data=text, field="title"),
            Probe(
                ("task", "add", "api", "x", "--id", "t-x", "--description", text),
                data=text,
                field="description",
            ),
            Probe(("task", "add", "api", "x", "--id", "t-x", "--meta", f"k={text}"), data=text, field="meta"),
        ]
    return out


def marker_paths(marker: str) -> list[Path]:
    return [Path(marker), *Path(marker).parent.glob(Path(marker).name + "*")]


def hostile_cli(tally: Any, box: Any, marker: str, *, every: int = 1, subprocesses: int = 8) -> None:
    """Run ``probes`` (every ``every``-th) in-process, and the first ``subprocesses`` as real processes."""
    import contextlib
    import os

    from click.testing import CliRunner

    from gitstate.cli import cli

    runner = CliRunner()
    chosen = probes(marker)[::every]
    nul = [Probe(("task", "add", "api", "x", "--id", "t-ok\x00evil")), Probe(("project", "add", "a\x00b")),
           Probe(("--agent", "a\x00b", "task", "add", "api", "x")), Probe(("task", "add", "api", "a\x00b"))]  # fmt: skip
    with contextlib.chdir(box.root):  # relative -C values resolve here: outside any repository
        for number, probe in enumerate([*nul, *chosen]):
            args = tuple(a.replace("t-x", f"t-x{number}") if a == "t-x" else a for a in probe.args)
            where = [] if args[0] == "-C" else ["-C", str(box.repo)]
            refs, branch = box.refs(), box.git("config", "gitstate.branch", check=False)
            outcome = runner.invoke(cli, [*where, *args], env=box.env)
            tally.trials += 1
            tally.fuzzed += 1
            crashed = outcome.exception is not None and not isinstance(outcome.exception, SystemExit)
            tally.check(not crashed, f"{args!r}: raised {outcome.exception!r}")
            tally.check(
                not any(p.exists() for p in marker_paths(marker)), f"{args!r}: a command ran (marker)"
            )
            if outcome.exit_code != 0:
                lines = [line for line in outcome.stderr.splitlines() if line.strip()]
                ok = outcome.exit_code == 2 or (len(lines) == 1 and lines[0].startswith("error: "))
                tally.check(ok, f"{args!r}: exit {outcome.exit_code}, stderr {outcome.stderr[:300]!r}")
                tally.check(box.refs() == refs, f"{args!r}: failed but moved a ref")
                tally.check(probe.data is None, f"{args!r}: text was refused: {outcome.stderr[:300]!r}")
            elif probe.data is not None:
                task_id = args[args.index("--id") + 1]
                shown = runner.invoke(
                    cli, ["-C", str(box.repo), "task", "show", "api", task_id, "--json"], env=box.env
                )
                task = json.loads(shown.stdout)["task"]
                value = task["meta"].get("k") if probe.field == "meta" else task[probe.field]
                tally.check(value == probe.data, f"{args!r}: stored {str(value)[:80]!r}, not the text given")
            if box.git("config", "gitstate.branch", check=False) != branch:  # `init --branch NAME` worked
                box.git("config", "gitstate.branch", branch.strip())
            for ref in set(box.refs()) - set(refs):
                if ref.startswith("refs/heads/") and not ref.startswith(
                    ("refs/heads/gitstate/", "refs/heads/main")
                ):
                    box.git("update-ref", "-d", ref)
        for probe in chosen[:subprocesses]:  # the real entry point prints the same one line
            result = box.gs(*probe.args)
            tally.trials += 1
            if result.code not in {0, 2}:
                lines = [line for line in result.err.splitlines() if line.strip()]
                tally.check(
                    len(lines) == 1 and lines[0].startswith("error: "), f"{probe.args!r}: {result.err!r}"
                )
            tally.check("Traceback" not in result.err, f"{probe.args!r}: traceback {result.err[-500:]!r}")
    tally.check(not any(p.exists() for p in marker_paths(marker)), "a hostile value ran a command")
    os.environ.pop("GITSTATE_HOSTILE", None)
