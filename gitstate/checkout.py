"""Keeping a person's checkout of the state branch in step with the branch.

gitstate moves the state branch without touching anyone's work tree. A work
tree that has the branch checked out would then be behind it, and ``git
status`` would show changes nobody made. So after each change the checkout is
brought up to the branch's tip with ``git read-tree -m -u`` (what git itself
does for ``receive.denyCurrentBranch=updateInstead``): files and index move
from the commit the checkout was at to the tip, and the command refuses,
changing nothing, if a path it must touch has local edits. This runs outside
the state lock, under a lock of the checkout's own, and always goes to the
tip, so writers finishing in any order leave the checkout at the newest state.

Before a state change, a STATE.yaml with uncommitted edits (in the work tree
or the index) stops it: a person's edits are never overwritten.

gitstate records, in ``<git-dir>/gitstate-checkout``, the commit it last
brought the checkout to and the index's own checksum (the SHA-1 git writes at
its end) just after. While the index still ends with that checksum it is
byte-for-byte the index gitstate left, and the record answers for it instead
of a ``git ls-files`` process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from gitstate import locks
from gitstate.errors import DirtyStateFile
from gitstate.git import Oid, Repository, Worktree, object_id

_RECORD = "gitstate-checkout"
_CONFLICTED = "conflicted"


class Checkouts:
    def __init__(self, repo: Repository, ref: str, notify: Callable[[str], None]) -> None:
        self.repo = repo
        self.ref = ref
        self.notify = notify

    def check(self, paths: Sequence[str], head: Oid) -> list[Worktree]:
        """Checkouts of the branch (at ``head``); refuses if one has uncommitted edits to ``paths``.

        A file counts as clean when it and its index entry hold the branch's
        version, or the version gitstate last brought the checkout to (its
        catch-up to a newer tip may still be on its way).
        """
        found = self.repo.checkouts_of(self.ref)
        for tree in found:
            with self._locked(tree):  # a catch-up half done is not an edit
                record = _read_record(tree)
                trusted = record is not None and record[0] == _index_checksum(tree)
                for path in paths:
                    at_head = self._blob(head, path)
                    at_sync = self._blob(record[1], path) if record else at_head
                    file = _file_oid(tree.path / path)
                    staged = at_sync if trusted else self._staged(tree, path)
                    if file not in (at_head, at_sync) or staged != file:
                        raise DirtyStateFile(
                            f"{tree.path / path} has uncommitted changes; commit or stash them "
                            "(`git stash`), then run the command again"
                        )
        return found

    def catch_up(self, trees: Sequence[Worktree], before: Oid) -> None:
        """Bring each checkout from where it was (``before``, the tip it had) up to the branch's tip."""
        for tree in trees:
            with self._locked(tree):
                tip = self.repo.resolve(self.ref)
                record = _read_record(tree)
                # The record says where gitstate left the checkout, as long as
                # nothing rewrote the index since; otherwise a person's git
                # command did, and the checkout is where the branch was before.
                trusted = record is not None and record[0] == _index_checksum(tree)
                start = record[1] if record and trusted else before
                if tip is None or start == tip:
                    continue
                if self.repo.update_checkout(tree, start, tip):
                    _write_record(tree, _index_checksum(tree), tip)
                else:
                    self.notify(
                        f"warning: {tree.path} has {self.ref.removeprefix('refs/heads/')} checked out with "
                        "local changes where the branch moved; commit or stash them, then "
                        "`git reset --keep HEAD` there to catch up"
                    )

    def _locked(self, tree: Worktree) -> contextlib.AbstractContextManager[None]:
        lock = locks.lock_path(self.repo.common_dir, "checkouts", _name(tree))
        return locks.held(lock, 60.0, what=f"the checkout at {tree.path}")

    def _blob(self, commit: str, path: str) -> str | None:
        found = self.repo.info(f"{commit}:{path}")
        return found[0] if found else None

    def _staged(self, tree: Worktree, path: str) -> str | None:
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


def _read_record(tree: Worktree) -> tuple[str, str] | None:
    try:
        data = json.loads((tree.git_dir / _RECORD).read_text())
        return str(data["checksum"]), str(data["commit"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_record(tree: Worktree, checksum: str, commit: str) -> None:
    target = tree.git_dir / _RECORD
    tmp = target.with_name(f".{_RECORD}.{os.getpid()}")
    with contextlib.suppress(OSError):  # without the record, the next writer asks git
        tmp.write_text(json.dumps({"checksum": checksum, "commit": commit}))
        os.replace(tmp, target)


def _file_oid(path: Path) -> str | None:
    try:
        return object_id("blob", path.read_bytes())
    except (FileNotFoundError, IsADirectoryError):
        return None
