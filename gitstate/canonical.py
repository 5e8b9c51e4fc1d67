"""Task blocks in gitstate's own plain layout, written and read without a YAML library.

Most task blocks are exactly what gitstate wrote: ``key: value`` lines with
one-line text, numbers, timestamps and short lists. Writing and reading those
with a line format is some fifty times faster than a round-trip YAML library,
which matters inside the state lock (every claim and completion rewrites a
block) and when a large file is read for the first time.

The format is a strict subset of YAML, chosen so that any YAML reader gets the
same values (the tests hold ruamel.yaml to that): text is plain only when it
is letters, digits and ``_ .,/()+-`` starting with a letter and is not a word
YAML reads as something else (``true``, ``null``...); otherwise it is single
quoted. Anything outside the subset (multi-line text, ``meta`` mappings,
comments inside the block, other quoting) returns None here, and the caller
uses the round-trip YAML path, which keeps whatever a person wrote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.,/()+ -]*(?<! )")
_ITEM = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_KEY = re.compile(r"[a-z_]+")
_SPECIAL = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})
_UNSAFE = frozenset("\t\x85\u2028\u2029\ufeff")


def _plain(text: str) -> bool:
    return bool(_PLAIN.fullmatch(text)) and text.lower() not in _SPECIAL


def _item(text: str) -> bool:
    return bool(_ITEM.fullmatch(text)) and text.lower() not in _SPECIAL


def _quotable(text: str) -> bool:
    return text.isprintable() and not _UNSAFE.intersection(text)


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        return None
    if _plain(value):
        return value
    if _quotable(value):
        return "'" + value.replace("'", "''") + "'"
    return None


def emit(task_id: str, fields: Sequence[tuple[str, Any]], indent: int, omit: object) -> list[str] | None:
    """The block for a task, or None when it needs the YAML library."""
    pad = " " * indent
    lines = [f"{pad}{task_id}:\n"]
    for key, value in fields:
        if value is omit:
            continue
        if isinstance(value, list):
            if not all(isinstance(item, str) and _item(item) for item in value):
                return None
            rendered: str | None = "[" + ", ".join(value) + "]"
        else:
            rendered = _scalar(value)
        if rendered is None:
            return None
        lines.append(f"{pad}  {key}: {rendered}\n")
    return lines


def read(block: Sequence[str], indent: int) -> tuple[str, dict[str, Any]] | None:
    """(task id, raw field values) of a block in the plain layout, or None if it is not one.

    Trailing blank and comment lines are allowed; nothing else outside the layout is.
    """
    pad = " " * indent
    end = len(block)
    while end > 1 and (not block[end - 1].strip() or block[end - 1].lstrip().startswith("#")):
        end -= 1
    head = block[0] if block else ""
    if not (head.startswith(pad) and head.endswith(":\n")) or head[indent] == " ":
        return None
    task_id = head[indent:-2]
    if not _item(task_id):
        return None
    fields: dict[str, Any] = {}
    field_pad = pad + "  "
    for line in block[1:end]:
        if not line.startswith(field_pad) or not line.endswith("\n"):
            return None
        key, sep, raw = line[len(field_pad) : -1].partition(": ")
        if not sep or not _KEY.fullmatch(key) or key in fields:
            return None
        value = _value(raw)
        if value is None:
            return None
        fields[key] = value[0]
    return task_id, fields


def _value(raw: str) -> tuple[Any] | None:
    if raw.startswith("'"):
        if len(raw) < 2 or not raw.endswith("'"):
            return None
        inner = raw[1:-1]
        if "'" in inner.replace("''", ""):
            return None
        text = inner.replace("''", "'")
        return (text,) if _quotable(text) else None
    if raw.startswith("["):
        if not raw.endswith("]"):
            return None
        inner = raw[1:-1]
        items = inner.split(", ") if inner else []
        return (items,) if all(_item(item) for item in items) else None
    if _INT.fullmatch(raw):
        return (int(raw),)
    return (raw,) if _plain(raw) else None
