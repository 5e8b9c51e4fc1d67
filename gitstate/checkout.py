"""Keeping a person's checkout of the state branch in step with the branch.

When a work tree has the state branch checked out, a state change would leave
its STATE.yaml (and index) behind the branch, and ``git status`` would show a
change nobody made. So after each change, the new file is written into every
such work tree and staged there. Before a change, a file with uncommitted
edits (in the work tree or the index) stops it: a person's edits are never
overwritten.

Asking git for a path's index entry costs a process. After staging a file,
gitstate records the index's own checksum (the SHA-1 git writes at its end)
and the entries it staged, in ``<git-dir>/gitstate-index``; while the index
still ends with that checksum it is byte-for-byte the index gitstate wrote,
and the record answers instead of git.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from gitstate.errors import DirtyStateFile
from gitstate.git import Oid, Repository, Worktree, object_id

_RECORD = "gitstate-index"
_CONFLICTED = "conflicted"


class Checkouts:
    def __init__(self, repo: Repository, ref: str, notify: Callable[[str], None]) -> None:
        self.repo = repo
        self.ref = ref
        self.notify = notify

    def check(self, path: str, blob: Oid | None) -> list[Worktree]:
        """Checkouts of the branch; refuses if ``path`` differs from ``blob`` in one."""
        found = self.repo.checkouts_of(self.ref)
        for tree in found:
            if _file_oid(tree.path / path) != blob or self._staged(tree, path) != blob:
                raise DirtyStateFile(
                    f"{tree.path / path} has uncommitted changes; commit or stash them "
                    "(`git stash`), then run the command again"
                )
        return found

    def update(self, trees: list[Worktree], path: str, old: Oid | None, data: bytes) -> None:
        """Write and stage the new ``path`` in each checkout found by ``check``."""
        for tree in trees:
            target = tree.path / path
            if _file_oid(target) != old:
                self.notify(f"warning: {target} changed while gitstate wrote it; left as you edited it")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.gitstate-{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            self._stage(tree, path, object_id("blob", data))

    def _stage(self, tree: Worktree, path: str, blob: Oid) -> None:
        known = _read_record(tree)
        before = _index_checksum(tree)
        for attempt in range(20):
            proc = self.repo.git("update-index", "--add", "--", path, worktree=tree, check=False)
            if proc.returncode == 0:
                # Entries recorded for the index as it was stay true: only ``path`` changed.
                entries = known[1] if known and known[0] == before else {}
                _write_record(tree, _index_checksum(tree), {**entries, path: blob})
                return
            time.sleep(0.005 * (attempt + 1))
        self.notify(
            f"warning: could not stage {path} in {tree.path} (its index is locked); "
            f"run `git add {path}` there"
        )

    def _staged(self, tree: Worktree, path: str) -> str | None:
        known = _read_record(tree)
        if known is not None and path in known[1] and _index_checksum(tree) == known[0]:
            return known[1][path]
        out = self.repo.git("ls-files", "-s", "-z", "--", path, worktree=tree).stdout.decode()
        entries = [e for e in out.split("\0") if e]
        if len(entries) != 1 or not entries[0].startswith("100"):
            return None if not entries else _CONFLICTED
        return entries[0].split()[1]


def _index_checksum(tree: Worktree) -> str:
    """The SHA-1 git writes at the end of an index ("" when missing or disabled)."""
    try:
        with open(tree.git_dir / "index", "rb") as index:
            index.seek(-20, os.SEEK_END)
            checksum = index.read(20)
    except OSError:
        return ""
    return "" if checksum == bytes(20) else checksum.hex()


def _read_record(tree: Worktree) -> tuple[str, dict[str, str]] | None:
    try:
        data = json.loads((tree.git_dir / _RECORD).read_text())
        return str(data["checksum"]), dict(data["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_record(tree: Worktree, checksum: str, entries: dict[str, str]) -> None:
    if not checksum:
        return
    target = tree.git_dir / _RECORD
    tmp = target.with_name(f".{_RECORD}.{os.getpid()}")
    with contextlib.suppress(OSError):  # without the record, the next writer asks git
        tmp.write_text(json.dumps({"checksum": checksum, "entries": entries}))
        os.replace(tmp, target)


def _file_oid(path: Path) -> str | None:
    try:
        return object_id("blob", path.read_bytes())
    except FileNotFoundError:
        return None
