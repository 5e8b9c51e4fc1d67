"""Keeping a person's checkout of the state branch in step with the branch.

When a work tree has the state branch checked out, a state change would leave
its STATE.yaml (and index) behind the branch, and ``git status`` would show a
change nobody made. So after each change, the branch's newest file is written
into every such work tree and staged there (outside the state lock, so writers
do not wait for it). Before a change, a file with uncommitted edits (in the
work tree or the index) stops it: a person's edits are never overwritten.

Asking git for a path's index entry costs a process. After staging a file,
gitstate records the index's own checksum (the SHA-1 git writes at its end)
and the entries it staged, in ``<git-dir>/gitstate-index``; while the index
still ends with that checksum it is byte-for-byte the index gitstate wrote,
and the record answers instead of git.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from gitstate import locks
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
        """Checkouts of the branch; refuses if one has uncommitted edits to ``path``.

        The file counts as clean when it and its index entry hold the branch's
        ``blob``, or what gitstate itself last wrote there (another writer's
        catch-up may still be on its way).
        """
        found = self.repo.checkouts_of(self.ref)
        for tree in found:
            with self._locked(tree):  # a catch-up half done is not an edit
                file = _file_oid(tree.path / path)
                clean = file in (blob, self._synced(tree, path)) and self._staged(tree, path) == file
            if not clean:
                raise DirtyStateFile(
                    f"{tree.path / path} has uncommitted changes; commit or stash them "
                    "(`git stash`), then run the command again"
                )
        return found

    def _locked(self, tree: Worktree) -> contextlib.AbstractContextManager[None]:
        lock = locks.lock_path(self.repo.common_dir, "checkouts", _name(tree))
        return locks.held(lock, 60.0, what=f"the checkout at {tree.path}")

    def catch_up(
        self, trees: list[Worktree], path: str, before: Oid | None, wrote: tuple[Oid, bytes]
    ) -> None:
        """Bring ``path`` in each checkout up to the branch's tip, and stage it.

        Runs after the change is published, outside the state lock; each checkout
        has its own lock, and always takes the tip, so writers finishing in any
        order leave it at the newest state. ``wrote`` is (blob, bytes) of the
        change just made, to spare reading it back.
        """
        for tree in trees:
            with self._locked(tree):
                self._catch_up(tree, path, before, wrote)

    def _catch_up(self, tree: Worktree, path: str, before: Oid | None, wrote: tuple[Oid, bytes]) -> None:
        tip = self.repo.resolve(self.ref)
        found = self.repo.info(f"{tip}:{path}") if tip else None
        want = found[0] if found else None
        target = tree.path / path
        file = _file_oid(target)
        staged = self._staged(tree, path)
        if file == want and staged == want:
            return
        if file not in (before, self._synced(tree, path)) or staged != file:
            self.notify(f"warning: {target} changed while gitstate wrote it; left as you edited it")
            return
        if want is None:
            target.unlink(missing_ok=True)
        else:
            data = wrote[1] if want == wrote[0] else self.repo.read(want)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.gitstate-{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        self._stage(tree, path, want)

    def _synced(self, tree: Worktree, path: str) -> str | None:
        known = _read_record(tree)
        return known[1].get(path) if known else None

    def _stage(self, tree: Worktree, path: str, blob: Oid | None) -> None:
        known = _read_record(tree)
        before = _index_checksum(tree)
        for attempt in range(20):
            proc = self.repo.git("update-index", "--add", "--remove", "--", path, worktree=tree, check=False)
            if proc.returncode == 0:
                # Entries recorded for the index as it was stay true: only ``path`` changed.
                entries = known[1] if known and known[0] == before else {}
                entries = {k: v for k, v in entries.items() if k != path}
                if blob is not None:
                    entries[path] = blob
                _write_record(tree, _index_checksum(tree), entries)
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


def _name(tree: Worktree) -> str:
    return hashlib.sha1(str(tree.git_dir).encode()).hexdigest()[:16]  # noqa: S324 (a name, not security)


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
