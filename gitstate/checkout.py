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

Before each catch-up the record also says where the checkout is going and
the index's checksum at that moment. git writes a file in place, so a
catch-up killed mid-way can leave STATE.yaml empty or cut short, next to a
stale ``index.lock``. While the index is still the one from before that
catch-up, such a file (missing, or a strict prefix of the version it was
going to) is recognised as the catch-up's, not a person's edit, and the next
catch-up finishes it; its content is in history either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gitstate import locks
from gitstate.errors import DirtyStateFile, GitStateError
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
        catch-up to a newer tip may still be on its way), or what a catch-up
        cut short left (``_leftovers``).
        """
        found = self.repo.checkouts_of(self.ref)
        for tree in found:
            with self._locked(tree):  # a catch-up half done is not an edit
                record = _read_record(tree)
                checksum = _index_checksum(tree)
                trusted = record is not None and _same(record.checksum, checksum)
                for path in paths:
                    at_head = self._blob(head, path)
                    at_sync = self._blob(record.commit, path) if record else at_head
                    file = _file_oid(tree.path / path)
                    staged = at_sync if trusted else self._staged(tree, path)
                    known = {at_head, at_sync}
                    if (file not in known or staged not in known) and record is not None:
                        if trusted or file == staged:  # see _ahead
                            known |= self._ahead(record.commit, head, path)
                        known |= self._leftovers(tree, record, checksum, path, file)
                    if file not in known or staged not in known:
                        raise DirtyStateFile(
                            f"{tree.path / path} has uncommitted changes; commit or stash them "
                            "(`git stash`), then run the command again"
                        )
        return found

    def catch_up(self, trees: Sequence[Worktree], before: Oid, paths: Sequence[str] = ()) -> None:
        """Bring each checkout from where it was (``before``, the tip it had) up to the branch's tip.

        ``paths`` (the files the change published) must then hold the tip's
        version; if they do not (a catch-up cut short left one behind), the
        catch-up is finished path by path.
        """
        for tree in trees:
            with self._locked(tree):
                tip = self.repo.resolve(self.ref)
                record = _read_record(tree)
                checksum = _index_checksum(tree)
                # The record says where gitstate left the checkout, as long as
                # nothing rewrote the index since; otherwise a person's git
                # command did, and the checkout is where the branch was before.
                trusted = record is not None and _same(record.checksum, checksum)
                start = record.commit if record and trusted else before
                if tip is None:
                    continue
                if start != tip:
                    record = (record or Record(_UNKNOWN, start)).heading_to(checksum, tip)
                    _write_record(tree, record)
                moved = start == tip or self.repo.update_checkout(tree, start, tip)
                if not moved and trusted and record is not None and _index_checksum(tree) != checksum:
                    # update_checkout refreshed the index's stat data, entries unchanged: the
                    # record still answers for it (and for a catch-up under way).
                    old, checksum = checksum, _index_checksum(tree)
                    moving_from = checksum if record.moving_from == old else record.moving_from
                    record = replace(record, checksum=checksum, moving_from=moving_from)
                    _write_record(tree, record)
                if not moved and record is not None and record.commit not in (start, tip):
                    # A person's git command rewrote the index but the checkout is still
                    # where gitstate left it (read-tree refuses unless the index agrees).
                    start = record.commit
                    moved = self.repo.update_checkout(tree, start, tip)
                if moved and self._in_step(tree, tip, paths):
                    if start != tip:
                        _write_record(tree, Record(_index_checksum(tree), tip))
                elif self._resume(tree, record, start, tip, paths):
                    _write_record(tree, Record(_index_checksum(tree), tip))
                else:
                    self._fell_short(tree, record, start, tip, paths)

    def _fell_short(
        self, tree: Worktree, record: Record | None, start: str, tip: str, paths: Sequence[str]
    ) -> None:
        """A catch-up that could not finish: forget where it was going unless it wrote
        part of the way (only then is a cut-short file the catch-up's), and say why."""
        if record is not None and record.moving_to:
            try:
                partly = self._partly_written(tree, record, start, tip, paths)
            except (GitStateError, OSError, UnicodeError):
                partly = False  # without the evidence, a cut-short file is refused: the safe side
            if not partly:
                _write_record(tree, replace(record, moving_from=None, moving_to=()))
        branch = self.ref.removeprefix("refs/heads/")
        if (tree.git_dir / "index.lock").exists():
            self.notify(
                f"warning: {tree.path} could not catch up with {branch}: {tree.git_dir / 'index.lock'} "
                "exists (another git process is running, or a crashed one left it); if no git command "
                "is running, remove that file: gitstate's next change brings the checkout up to date"
            )
        else:
            self.notify(
                f"warning: {tree.path} could not catch up with {branch}: it has local changes to files "
                f"{branch} changed since {start[:12]} (`git diff {start[:12]}` shows them); save them "
                "elsewhere and undo them, then gitstate's next change brings the checkout up to date"
            )

    def _partly_written(
        self, tree: Worktree, record: Record, start: str, tip: str, paths: Sequence[str]
    ) -> bool:
        checksum = _index_checksum(tree)
        for path in dict.fromkeys([*self.repo.changed_paths(start, tip), *paths]):
            file = _file_oid(tree.path / path)
            if file != self._blob(start, path) and file in self._leftovers(
                tree, record, checksum, path, file
            ):
                return True
        return False

    def _locked(self, tree: Worktree) -> contextlib.AbstractContextManager[None]:
        lock = locks.lock_path(self.repo.common_dir, "checkouts", _name(tree))
        return locks.held(lock, 60.0, what=f"the checkout at {tree.path}")

    def _blob(self, commit: str, path: str) -> str | None:
        found = self.repo.info(f"{commit}:{path}")
        return found[0] if found else None

    def _in_step(self, tree: Worktree, tip: str, paths: Sequence[str]) -> bool:
        return all(_file_oid(tree.path / path) == self._blob(tip, path) for path in paths)

    def _resume(
        self, tree: Worktree, record: Record | None, since: str, tip: str, paths: Sequence[str]
    ) -> bool:
        """Finish a catch-up cut short after git wrote files but not the index (a full
        disk, a kill).

        Only when every path that differs from the tip holds, in file and index,
        the version the checkout was at, the tip's, or what a catch-up cut short
        left (so no person's change is overwritten): those paths are then
        checked out from the tip.
        """
        try:
            return self._finish_catch_up(tree, record, since, tip, paths)
        except (GitStateError, OSError, UnicodeError):  # the disk still full, the index locked...
            return False

    def _finish_catch_up(
        self, tree: Worktree, record: Record | None, since: str, tip: str, paths: Sequence[str]
    ) -> bool:
        checksum = _index_checksum(tree)
        behind = []
        for path in dict.fromkeys([*self.repo.changed_paths(since, tip), *paths]):
            want, file, staged = self._blob(tip, path), _file_oid(tree.path / path), self._staged(tree, path)
            if file == want and staged == want:
                continue
            known = {self._blob(since, path), want} | self._leftovers(tree, record, checksum, path, file)
            if (
                file not in known
                and record is not None
                and (_same(record.checksum, checksum) or file == staged)
            ):
                known |= self._ahead(record.commit, tip, path)
            if file not in known or staged not in known:
                return False  # a change of a person's: leave it to them
            behind.append(path)
        present = [path for path in behind if self._blob(tip, path) is not None]
        for path in behind:
            if path not in present:
                self.repo.git("rm", "-q", "--cached", "--ignore-unmatch", "--", path, worktree=tree)
                (tree.path / path).unlink(missing_ok=True)
        if present:
            listing = "\0".join(present).encode() + b"\0"
            self.repo.git(
                "checkout", tip, "--pathspec-from-file=-", "--pathspec-file-nul", input=listing, worktree=tree
            )
        return True

    def _ahead(self, since: str, until: str, path: str) -> set[str | None]:
        """The versions of ``path`` the branch held after ``since``, up to ``until``.

        ``since`` is where gitstate last left the checkout. A catch-up after it
        may have moved the checkout on without recording it: killed after git
        finished (the file and the index agree on one of these versions), or
        cut short after writing the file but not the index (a full disk, the
        index still the one gitstate left). Either way the file holds one of
        these, never a person's edit back to an older version.
        """
        args = ("log", "--first-parent", "-n", "50", "--format=%H", f"{since}..{until}", "--", path)
        out = self.repo.git(*args, check=False)
        return {self._blob(commit, path) for commit in out.stdout.decode().split()}

    def _leftovers(
        self, tree: Worktree, record: Record | None, checksum: str, path: str, file: str | None
    ) -> set[str | None]:
        """Versions of ``path`` that catch-ups under way may have left in the checkout.

        While the index is the one from before them: the versions they were
        going to, and ``file`` when it is what git left when killed while
        writing one of those (missing, or a strict prefix of it).
        """
        if record is None or not record.moving_to or not _same(record.moving_from, checksum):
            return set()
        targets: set[str | None] = {self._blob(to, path) for to in record.moving_to}
        if file in targets or targets == {None}:
            return targets
        try:
            data = (tree.path / path).read_bytes()
        except FileNotFoundError:  # git removes the old file before it writes the new one
            return targets | {None}
        except OSError:
            return targets
        for oid in targets - {None}:
            target = self.repo.read(str(oid))[1]
            if len(data) < len(target) and target.startswith(data):
                return targets | {file}
        return targets

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


@dataclass(frozen=True)
class Record:
    """Where gitstate left a checkout: the index's checksum then, and the commit. While
    catch-ups are under way: the index's checksum before them and where they went."""

    checksum: str
    commit: str
    moving_from: str | None = None
    moving_to: tuple[str, ...] = ()

    def heading_to(self, checksum: str, tip: str) -> Record:
        # Catch-ups that died left the index as it was: their targets stay evidence.
        earlier = self.moving_to[-7:] if self.moving_from == checksum else ()
        return replace(self, moving_from=checksum, moving_to=(*dict.fromkeys((*earlier, tip)),))


_UNKNOWN = "unknown"  # the checksum of a record written before gitstate knew the index: never matches


def _same(recorded: str | None, checksum: str) -> bool:
    # "" is an index without a checksum (index.skipHash, or none): it proves nothing.
    return bool(checksum) and recorded == checksum


def _read_record(tree: Worktree) -> Record | None:
    try:
        data = json.loads((tree.git_dir / _RECORD).read_text())
        moving = data.get("moving") or {"from": None, "to": []}
        return Record(
            str(data["checksum"]),
            str(data["commit"]),
            None if moving["from"] is None else str(moving["from"]),
            tuple(str(to) for to in moving["to"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_record(tree: Worktree, record: Record) -> None:
    data: dict[str, object] = {"checksum": record.checksum, "commit": record.commit}
    if record.moving_to:
        data["moving"] = {"from": record.moving_from, "to": list(record.moving_to)}
    target = tree.git_dir / _RECORD
    tmp = target.with_name(f".{_RECORD}.{os.getpid()}")
    with contextlib.suppress(OSError):  # without the record, the next writer asks git
        tmp.write_text(json.dumps(data))
        os.replace(tmp, target)


def _file_oid(path: Path) -> str | None:
    try:
        return object_id("blob", path.read_bytes())
    except (FileNotFoundError, IsADirectoryError):
        return None
