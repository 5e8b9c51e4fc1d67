"""Round-trip YAML, one block at a time.

gitstate never re-emits a whole STATE.yaml. A change rewrites only the lines of
the entries it touches (one task, or one top-level key): those lines are loaded
with ruamel's round-trip loader, changed in place, dumped, and checked by loading
the result again. Comments, key order and quoting elsewhere are never read by
the emitter, so they cannot change; inside the block, ruamel keeps them.

This is what keeps writes fast: a 1,000-task file costs ~1 s to load in
round-trip mode, one block costs about a millisecond.

``YAML()`` instances keep parser state on themselves and are not thread-safe,
so each call makes its own.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.scalarstring import LiteralScalarString

OMIT = object()
"""A field value meaning "leave this key out"."""
KEEP = object()
"""A field value meaning "the file already says this": the key is not touched."""

MAX_DEPTH = 64
Style = tuple[int, int, int]
"""Indentation as ruamel takes it: (mapping, sequence content, sequence dash offset)."""
STYLE: Style = (2, 4, 2)


class _Constructor(RoundTripConstructor):
    """Round-trip construction, except that a number or a date YAML cannot build (a
    5,000-digit integer, 2026-13-45) stays text: the field's reader then refuses it,
    naming its line, instead of the whole load failing without one."""

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        try:
            return super().construct_yaml_timestamp(node, values)
        except ValueError:
            return self.construct_scalar(node)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


def make_yaml(style: Style = STYLE) -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.width = 4096  # never re-wrap a person's long lines
    yaml.preserve_quotes = True
    yaml.indent(mapping=style[0], sequence=style[1], offset=style[2])
    yaml.max_depth = MAX_DEPTH
    return yaml


def load(text: str) -> Any:
    return make_yaml().load(text)


def dump(data: Any, style: Style = STYLE) -> str:
    out = io.StringIO()
    make_yaml(style).dump(data, out)
    return out.getvalue()


def guess_style(data: Any, lines: Sequence[str]) -> Style:
    """The indentation a loaded block was written with, so a rewrite keeps it."""
    mapping = dash = content = None
    stack = [data]
    while stack and (mapping is None or content is None):
        node = stack.pop()
        if isinstance(node, CommentedSeq):
            stack.extend(node)
            continue
        if not isinstance(node, CommentedMap):
            continue
        for key, child in node.items():
            column = node.lc.key(key)[1]
            block = isinstance(child, CommentedMap | CommentedSeq) and child and not child.fa.flow_style()
            if block and isinstance(child, CommentedMap) and mapping is None:
                mapping = child.lc.key(next(iter(child)))[1] - column
            elif block and isinstance(child, CommentedSeq) and content is None:
                line, col = child.lc.item(0)
                text = lines[line] if line < len(lines) else ""
                dash = text.find("-") - column
                content = col - column
            stack.append(child)
    mapping = mapping if mapping and mapping > 0 else STYLE[0]
    if content is None or dash is None or dash < 0 or content <= dash:
        return (mapping, mapping + STYLE[2], STYLE[2]) if mapping != STYLE[0] else STYLE
    return (mapping, content, dash)


def to_plain(value: Any) -> Any:
    """ruamel's commented and scalar types as plain Python values."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.datetime):
        return dt.datetime.fromisoformat(value.isoformat())
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    return value


def to_yaml(value: Any, *, block: bool = False) -> Any:
    """A plain value as ruamel will emit it: short lists inline, multi-line text as ``|``."""
    if isinstance(value, str) and "\n" in value and block:
        return LiteralScalarString(value)
    if isinstance(value, list | tuple):
        seq = CommentedSeq([to_yaml(v) for v in value])
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        cmap = CommentedMap()
        for key, item in value.items():
            cmap[key] = to_yaml(item, block=True)
        return cmap
    return value


def _like(old: Any, new: Any) -> Any:
    """``new``, laid out like the value it replaces (a block list stays a block list)."""
    if isinstance(old, CommentedSeq) and isinstance(new, CommentedSeq) and not old.fa.flow_style():
        new.fa.set_block_style()
    return new


def has_comment(cmap: CommentedMap, key: Any) -> bool:
    tokens = cmap.ca.items.get(key)
    return bool(tokens) and any(token is not None for token in tokens)


def update_mapping(cmap: CommentedMap, fields: Sequence[tuple[str, Any]]) -> None:
    """Set ``fields`` (in canonical order) on ``cmap``, touching only what changed.

    A key whose value is unchanged keeps its quoting and comments. A new key goes
    after the nearest earlier canonical key. A key set to ``OMIT`` is removed,
    unless a comment hangs on it: then it stays, empty, so the comment survives.
    """
    order = [name for name, _ in fields]
    for position, (name, value) in enumerate(fields):
        if value is KEEP:
            continue
        if value is OMIT:
            if name in cmap and has_comment(cmap, name):
                cmap[name] = None
            elif name in cmap:
                del cmap[name]
            continue
        if name in cmap:
            if to_plain(cmap[name]) != to_plain(value):
                cmap[name] = _like(cmap[name], to_yaml(value, block=True))
            continue
        index = 0
        for earlier in reversed(order[:position]):
            if earlier in cmap:
                index = list(cmap).index(earlier) + 1
                break
        cmap.insert(index, name, to_yaml(value, block=True))


def is_trailer_line(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def split_trailer(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """A block's lines, and the blank and comment lines that end it."""
    end = len(lines)
    while end > 1 and is_trailer_line(lines[end - 1]):
        end -= 1
    return list(lines[:end]), list(lines[end:])


def dedent(lines: Iterable[str], indent: int) -> str:
    out = []
    for line in lines:
        prefix = len(line) - len(line.lstrip(" "))
        out.append(line[min(prefix, indent) :])
    return "".join(out)


def _indent(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return [pad + line if line.strip() else line for line in text.splitlines(keepends=True)]


class BlockMismatch(Exception):
    """A re-emitted block does not load back to the intended value."""


def edit_block(
    lines: Sequence[str],
    indent: int,
    mutate: Callable[[CommentedMap], None],
    check: Callable[[CommentedMap], bool],
) -> list[str]:
    """Rewrite a block of mapping entries that starts at column ``indent``.

    ``mutate`` changes the loaded mapping; ``check`` must accept the re-emitted
    block loaded again (else ``BlockMismatch``). Trailing blank and comment lines
    stay verbatim after the block, unless they turn out to be part of a value
    (a literal block ending in such lines): then they go through the edit too.
    """
    body, trailer = split_trailer(lines)
    text = dedent(body, indent)
    data = load(text) if body else CommentedMap()
    if trailer and to_plain(data) != to_plain(load(dedent(lines, indent))):
        body, trailer = list(lines), []
        text = dedent(body, indent)
        data = load(text)
    if not isinstance(data, CommentedMap):
        raise BlockMismatch("the block is not a mapping")
    style = guess_style(data, text.split("\n")) if body else STYLE
    mutate(data)
    text = dump(data, style) if data else ""
    if not check(load(text) or CommentedMap()):
        raise BlockMismatch("the re-emitted block does not load back to the same value")
    return _indent(text, indent) + trailer
