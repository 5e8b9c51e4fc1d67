"""Parsed STATE.yaml files, cached by blob id.

A blob id names exact bytes, so a cached parse can never be stale: no
invalidation, only eviction. The store puts every file it writes, so a command
usually finds its state here and never runs the (slow, round-trip) parser;
files that arrived another way (a person's commit, a merge, a fresh clone) are
parsed once and cached. Entries live under ``<git-common-dir>/gitstate/cache``
and are written atomically; a damaged or foreign entry is treated as missing.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path

from gitstate import __version__
from gitstate.statefile import StateDoc

# Entries written by another gitstate version are ignored: the model may differ.
_TAG = f"gitstate-parse-cache {__version__} 2"  # 2: Settings gained ``hooks``
KEEP = 256


class ParseCache:
    def __init__(self, folder: Path | None, keep: int = KEEP) -> None:
        self.folder = folder
        self.keep = keep
        # In memory, the text too: a writer needs it to edit, and reading it
        # again from git costs a round trip per write.
        self._memory: dict[str, tuple[StateDoc, str | None]] = {}

    def text(self, oid: str) -> str | None:
        return self._memory.get(oid, (None, None))[1]

    def get(self, oid: str) -> StateDoc | None:
        known = self._memory.get(oid)
        if known is not None or self.folder is None:
            return None if known is None else known[0]
        path = self.folder / f"{oid}.pickle"
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            tag, doc = pickle.loads(data)  # noqa: S301 (our own files, inside .git)
        except Exception:  # noqa: BLE001 (any damage means "not cached")
            tag, doc = None, None
        if tag != _TAG or not isinstance(doc, StateDoc):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        self._remember(oid, doc, None)
        return doc

    def put(self, oid: str, doc: StateDoc, text: str | None = None) -> None:
        self._remember(oid, doc, text)
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{oid}.{os.getpid()}.tmp"
            tmp.write_bytes(pickle.dumps((_TAG, doc), protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp, self.folder / f"{oid}.pickle")
            self._evict()
        except OSError:
            return  # a cache that cannot be written only costs speed

    def _remember(self, oid: str, doc: StateDoc, text: str | None) -> None:
        if len(self._memory) >= 8:
            self._memory.pop(next(iter(self._memory)))
        self._memory[oid] = (doc, text)

    def _evict(self) -> None:
        assert self.folder is not None  # noqa: S101 (checked by the caller)
        entries = list(self.folder.glob("*.pickle"))
        if len(entries) <= self.keep + self.keep // 4:
            return
        entries.sort(key=lambda p: p.stat().st_mtime)
        for old in entries[: len(entries) - self.keep]:
            with contextlib.suppress(OSError):
                old.unlink()
