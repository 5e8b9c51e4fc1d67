"""The one gateway to git: objects, trees, commits, compare-and-swap refs, worktrees.

Everything else in gitstate receives plain values from here (hex object ids,
tree entries, paths), never library objects.

How it talks to git, and why:

* Reads go through one long-lived ``git cat-file --batch-command`` per
  ``Repository`` (one fork for any number of objects and ref look-ups).
* Objects are written in-process as fsynced loose objects: hashing and zlib in
  Python cost far less than a ``git hash-object`` fork per object, and the
  user's index and working tree are never involved.
* Refs move only by compare-and-swap, in ``git update-ref --stdin``
  transactions, with ``core.fsync`` covering references so a power cut cannot
  lose a published update.
* Short-lived CLI commands must start fast, and importing GitPython costs more
  than the rest of a command (measured: ~60 ms of a ~70 ms ``import git,
  click``), so plumbing runs as ``git`` subprocesses here. GitPython serves
  pushes and fetches, where it reports each ref's result and refuses unsafe
  transports (``ext::`` URLs, ``--upload-pack``); it is imported only there.

A ``Repository`` is not thread-safe and must not cross a fork: give each
thread or process its own, and ``close()`` it (or use ``with``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, NewType

from gitstate.errors import Busy, GitFailed, RepositoryError

_MERGING = "merging"  # under <git-dir>/gitstate: the folders merge-tree works in

Oid = NewType("Oid", str)
"""A hex object id, e.g. ``'3f72e04c9b...'`` (40 characters)."""

ZERO = Oid("0" * 40)
EMPTY_TREE = Oid("4b825dc642cb6eb9a060e54bf8d69288fbee4904")
TREE_MODE = "40000"
BLOB_MODE = "100644"

# Variables git exports to hooks and aliases; inherited, they would point our
# git commands at the wrong repository, index or work tree.
_PATH_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
)
_DURABLE = ("-c", "core.fsync=committed,reference")


def clean_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    for name in _PATH_VARIABLES:
        env.pop(name, None)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    return env


@dataclass(frozen=True, slots=True)
class TreeEntry:
    mode: str
    name: str
    oid: Oid

    @property
    def is_tree(self) -> bool:
        return self.mode == TREE_MODE


@dataclass(frozen=True, slots=True)
class Worktree:
    path: Path
    git_dir: Path


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    email: str


def object_id(kind: str, body: bytes) -> Oid:
    return Oid(hashlib.sha1(f"{kind} {len(body)}\0".encode() + body).hexdigest())  # noqa: S324


def _crud(text: str) -> str:
    # git strips these from identities; a '<' or newline would corrupt the header.
    return " ".join(text.replace("<", "").replace(">", "").split())


class Repository:
    """A git repository found from a path, with its object reader and ref writer."""

    def __init__(
        self,
        git_dir: Path,
        common_dir: Path,
        toplevel: Path | None,
        bare: bool,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.toplevel = toplevel
        self.bare = bare
        self.env = clean_environ(environ)
        self._catfile: subprocess.Popen[bytes] | None = None
        self._updater: subprocess.Popen[bytes] | None = None
        self._config: dict[str, str] | None = None
        # Trees and commits never change, so what was read or written is kept:
        # a writer rebuilding the same paths again reads nothing from git.
        self._trees: dict[str, list[TreeEntry]] = {}
        self._commit_trees: dict[str, Oid] = {}
        self._attributes: dict[str, dict[str, bytes]] = {}

    # -- discovery and process plumbing -----------------------------------------------------

    @classmethod
    def discover(cls, path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Repository:
        """The repository containing ``path`` (default: the current directory)."""
        where = Path(path or ".").resolve()
        shown = str(where) if str(where).isprintable() else repr(str(where))  # one line, whatever it holds
        if not where.is_dir():
            raise RepositoryError(f"{shown} is not a directory")
        env = dict(os.environ if environ is None else environ)
        env["LC_ALL"] = "C"
        args = ["--absolute-git-dir", "--git-common-dir", "--is-bare-repository", "--show-object-format"]
        out = _run_rev_parse(where, [*args, "--show-toplevel"], env)
        if out is None:
            out = _run_rev_parse(where, args, env)
        if out is None:
            raise RepositoryError(
                f"{shown} is not in a git repository; run `git init` there, or pass -C PATH"
            )
        git_dir, common, bare, fmt, *rest = out
        if fmt != "sha1":
            raise RepositoryError(
                f"this repository uses {fmt} object ids; gitstate supports sha1 repositories"
            )
        common_dir = (where / common).resolve() if not os.path.isabs(common) else Path(common)
        toplevel = Path(rest[0]) if rest else None
        return cls(Path(git_dir), common_dir, toplevel, bare == "true", environ)

    @classmethod
    def create(cls, path: Path, branch: str) -> Repository:
        """A new, empty repository at ``path`` with ``branch`` as its unborn HEAD."""
        proc = subprocess.run(
            ["git", "init", "-q", "-b", branch, "--", str(path)],
            capture_output=True,
            env=clean_environ(),
            check=False,
        )
        if proc.returncode != 0:
            raise GitFailed(["init", str(path)], proc.returncode, proc.stderr.decode(errors="replace"))
        return cls.discover(path)

    @property
    def worktree(self) -> Worktree:
        """This repository's own work tree (refused for a bare repository)."""
        if self.toplevel is None:
            raise RepositoryError(f"{self.git_dir} has no work tree here; run the command inside a checkout")
        return Worktree(self.toplevel, self.git_dir)

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for proc in (self._catfile, self._updater):
            if proc is not None:
                _close_pipes(proc)
                proc.wait()
        self._catfile = self._updater = None

    def git(
        self,
        *args: str,
        input: bytes | None = None,
        worktree: Worktree | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one git command in this repository (or in ``worktree``).

        It runs from the top of the work tree (or the git directory), so paths
        are always relative to the repository's root, wherever the user is.
        """
        # Repository-wide commands run against the common git directory: a
        # linked worktree's own directory disappears when that worktree is removed.
        where = ["--git-dir", str(self.common_dir)]
        cwd = self.common_dir
        if worktree is not None:
            where = ["--git-dir", str(worktree.git_dir), "--work-tree", str(worktree.path)]
            cwd = worktree.path
        argv = ["git", *where, *args]
        proc = subprocess.run(argv, input=input, capture_output=True, env=self.env, cwd=cwd, check=False)
        if check and proc.returncode != 0:
            raise GitFailed(list(args), proc.returncode, proc.stderr.decode(errors="replace"))
        return proc

    # -- reading ------------------------------------------------------------------------------

    def _reader(self) -> subprocess.Popen[bytes]:
        if self._catfile is None or self._catfile.poll() is not None:
            self._catfile = subprocess.Popen(
                ["git", "--git-dir", str(self.common_dir), "cat-file", "--batch-command"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self.env,
            )
        return self._catfile

    def _ask(self, command: str, name: str) -> tuple[Oid, str, int] | None:
        if "\n" in name or not name:
            raise RepositoryError(f"{name!r} is not a revision gitstate can look up")
        proc = self._reader()
        stdin, stdout = _pipes(proc)
        stdin.write(f"{command} {name}\n".encode())
        stdin.flush()
        header = stdout.readline().decode()
        if header in (f"{name} missing\n", f"{name} ambiguous\n"):  # the name may hold spaces
            return None
        parts = header.split()
        if len(parts) != 3 or not parts[2].isdigit():
            raise RepositoryError(f"git cat-file stopped answering ({header.strip() or 'no output'})")
        return Oid(parts[0]), parts[1], int(parts[2])

    def info(self, name: str) -> tuple[Oid, str] | None:
        """(object id, type) that a revision or ``rev:path`` names, or None."""
        found = self._ask("info", name)
        return None if found is None else (found[0], found[1])

    def read(self, oid: str) -> tuple[str, bytes]:
        found = self._ask("contents", oid)
        if found is None:
            raise RepositoryError(f"object {oid} is missing; run `git fsck`")
        _, kind, size = found
        stdout = _pipes(self._reader())[1]
        data = stdout.read(size + 1)
        if len(data) != size + 1:
            self.close()
            raise RepositoryError(f"git cat-file stopped while reading {oid}")
        return kind, data[:-1]

    def resolve(self, ref: str) -> Oid | None:
        """The commit a ref points at, or None when the ref does not exist."""
        found = self.info(ref)
        if found is None:
            return None
        if found[1] != "commit":
            raise RepositoryError(f"{ref} points at a {found[1]}, not a commit")
        return found[0]

    def resolve_any(self, ref: str) -> Oid | None:
        """The object a ref points at, whatever its type (None when it does not exist)."""
        found = self.info(ref)
        return None if found is None else found[0]

    def read_tree(self, oid: str) -> list[TreeEntry]:
        known = self._trees.get(oid)
        if known is not None:
            return list(known)
        kind, data = self.read(oid)
        if kind != "tree":
            raise RepositoryError(f"object {oid} is a {kind}, not a tree")
        entries = []
        pos = 0
        while pos < len(data):
            space = data.index(b" ", pos)
            nul = data.index(b"\0", space)
            mode = data[pos:space].decode()
            name = data[space + 1 : nul].decode("utf-8", errors="surrogateescape")
            oid_hex = data[nul + 1 : nul + 21].hex()
            entries.append(TreeEntry(mode, name, Oid(oid_hex)))
            pos = nul + 21
        self._remember_tree(Oid(oid), entries)
        return entries

    def _remember_tree(self, oid: Oid, entries: list[TreeEntry]) -> None:
        if len(self._trees) > 4096:
            self._trees.clear()
        self._trees[oid] = list(entries)

    def commit_tree_oid(self, commit: str) -> Oid:
        known = self._commit_trees.get(commit)
        if known is not None:
            return known
        kind, data = self.read(commit)
        if kind != "commit" or not data.startswith(b"tree "):
            raise RepositoryError(f"object {commit} is not a commit")
        tree = Oid(data[5:45].decode())
        self._commit_trees[commit] = tree
        return tree

    # -- writing ------------------------------------------------------------------------------

    def write_object(self, kind: str, body: bytes) -> Oid:
        """Store a loose object durably (fsynced before it is renamed into place)."""
        oid = object_id(kind, body)
        folder = self.common_dir / "objects" / oid[:2]
        final = folder / oid[2:]
        if final.exists():
            return oid
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"tmp_obj_{os.getpid()}_{oid[2:12]}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
            try:
                # Level 1 is git's own default for loose objects (core.looseCompression).
                data = memoryview(zlib.compress(f"{kind} {len(body)}\0".encode() + body, 1))
                while data:  # a nearly full disk takes part of a write: never rename a short object
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            why = f"cannot write to the object store: {exc.strerror}"
            raise OSError(exc.errno, why, str(folder)) from None
        return oid

    def write_tree(self, entries: Iterable[TreeEntry]) -> Oid:
        # git sorts tree entries by name, comparing directories as if "/" followed them.
        ordered = sorted(entries, key=lambda e: e.name.encode() + (b"/" if e.is_tree else b""))
        body = b"".join(
            f"{e.mode} ".encode()
            + e.name.encode("utf-8", errors="surrogateescape")
            + b"\0"
            + bytes.fromhex(e.oid)
            for e in ordered
        )
        oid = self.write_object("tree", body)
        self._remember_tree(oid, ordered)
        return oid

    def write_commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: str,
        author: Identity,
        *,
        date: tuple[int, str],
        committer: Identity | None = None,
    ) -> Oid:
        committer = committer or author
        stamp = f"{date[0]} {date[1]}"
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
        lines.append(f"author {_crud(author.name)} <{_crud(author.email)}> {stamp}")
        lines.append(f"committer {_crud(committer.name)} <{_crud(committer.email)}> {stamp}")
        body = "\n".join(lines) + "\n\n" + message.rstrip("\n") + "\n"
        oid = self.write_object("commit", body.encode())
        self._commit_trees[oid] = Oid(tree)
        return oid

    def replace_path(self, root: str | None, path: str, blob: str | None) -> Oid:
        """The tree ``root`` with ``path`` set to ``blob`` (or removed when None)."""
        head, _, rest = path.partition("/")
        entries = self.read_tree(root) if root else []
        old = next((e for e in entries if e.name == head), None)
        entries = [e for e in entries if e.name != head]
        if rest:
            sub = self.replace_path(old.oid if old and old.is_tree else None, rest, blob)
            if sub != EMPTY_TREE:
                entries.append(TreeEntry(TREE_MODE, head, sub))
        elif blob is not None:
            entries.append(TreeEntry(BLOB_MODE, head, Oid(blob)))
        return self.write_tree(entries)

    def update_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Move ``ref`` from ``old`` (None: must not exist) to ``new``. False if it moved first."""
        return self._transaction(ref, f"update {ref} {new} {old or ZERO}")

    def delete_ref(self, ref: str, old: str) -> bool:
        """Delete ``ref`` if it still points at ``old``. False if it moved (or is gone)."""
        return self._transaction(ref, f"delete {ref} {old}")

    def _transaction(self, ref: str, command: str) -> bool:
        # One long-lived ``git update-ref --stdin``: a process that writes often
        # pays for the fork once. A failed transaction ends that process, and
        # the next one starts another.
        proc = self._updater
        if proc is None or proc.poll() is not None:
            proc = self._updater = subprocess.Popen(
                [
                    "git",
                    "--git-dir",
                    str(self.common_dir),
                    *_DURABLE,
                    "update-ref",
                    "-m",
                    "gitstate",
                    "--stdin",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.common_dir,
            )
        stdin, stdout = _pipes(proc)
        try:
            stdin.write(f"start\n{command}\nprepare\ncommit\n".encode())
            stdin.flush()
            replies = [stdout.readline() for _ in range(3)]
        except BrokenPipeError:
            replies = []
        if replies == [b"start: ok\n", b"prepare: ok\n", b"commit: ok\n"]:
            return True
        _close_pipes(proc)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        proc.wait()
        self._updater = None
        lost = ("but expected", "reference already exists", "is missing but", "unable to resolve reference")
        if any(sign in err for sign in lost):
            return False
        if "File exists" in err and ".lock" in err:
            found = re.search(r"'([^']+\.lock)'", err)
            lock = found.group(1) if found else f"{ref}.lock"
            raise Busy(
                f"{ref} is locked by another git process ({lock}); if no git command is "
                "running, a crashed one left the lock: remove that file and retry"
            )
        raise GitFailed(["update-ref", ref], proc.returncode or 1, err)

    def merge_tree(self, ours: str, theirs: str, *, skip_driver: str | None = None) -> tuple[Oid, list[str]]:
        """The merged tree of two commits (no work tree or index touched), and conflicted paths.

        ``skip_driver`` names a merge driver to make a no-op for this merge (the
        caller merges those files itself, faster than a process per file).
        """
        options = ["-c", f"merge.{skip_driver}.driver=true"] if skip_driver else []
        with self._merge_folder(ours) as folder:
            proc = subprocess.run(
                [
                    "git",
                    "--git-dir",
                    str(self.common_dir),
                    "--work-tree",
                    str(folder),
                    *options,
                    "merge-tree",
                    "--write-tree",
                    "--name-only",
                    "-z",
                    "--no-messages",
                    ours,
                    theirs,
                ],
                capture_output=True,
                env=self.env,
                cwd=folder,
                check=False,
            )
        if proc.returncode not in (0, 1):
            raise GitFailed(
                ["merge-tree", ours, theirs], proc.returncode, proc.stderr.decode(errors="replace")
            )
        parts = proc.stdout.decode("utf-8", errors="surrogateescape").split("\0")
        conflicts = list(dict.fromkeys(p for p in parts[1:] if p)) if proc.returncode == 1 else []
        return Oid(parts[0]), conflicts

    @contextlib.contextmanager
    def _merge_folder(self, ours: str) -> Iterator[Path]:
        """A private folder for one ``merge-tree`` to take as its work tree.

        git reads the attributes that pick merge drivers from the work tree, and
        a merge driver's temporary files (``.merge_file_*``) go there too: in a
        person's checkout they would show in ``git status``, and a kill would
        leave them behind. This folder holds ``ours``' ``.gitattributes`` files
        instead (the attributes of the branch being merged into), and goes
        afterwards. A lock held beside it while it is in use tells
        ``forget_merge_folders`` which ones a kill left.
        """
        import shutil  # here, not at the top: it costs start-up time every command pays

        root = self.common_dir / "gitstate" / _MERGING
        root.mkdir(parents=True, exist_ok=True)
        folder = root / f"{os.getpid()}-{time.time_ns()}"
        lock = os.open(folder.with_name(folder.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            folder.mkdir(mode=0o700)
            for name, data in self._attribute_files(ours).items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.unlink(folder.with_name(folder.name + ".lock"))
            os.close(lock)

    def _attribute_files(self, commit: str) -> dict[str, bytes]:
        """The ``.gitattributes`` files in ``commit``: path -> content (the last few remembered)."""
        known = self._attributes.get(commit)
        if known is None:
            listing = self.git("ls-tree", "-r", "-z", commit).stdout.decode(errors="surrogateescape")
            known = {}
            for line in listing.split("\0"):
                info, _, path = line.partition("\t")
                mode, _, rest = info.partition(" ")
                parts = path.split("/")
                if (
                    parts[-1] == ".gitattributes"
                    and mode in ("100644", "100755")
                    and not {"", ".", "..", ".git"} & set(parts[:-1])  # a malformed tree stays inside
                ):
                    known[path] = self.read(rest.split()[-1])[1]
            if len(self._attributes) >= 8:
                self._attributes.clear()
            self._attributes[commit] = known
        return known

    def forget_merge_folders(self, min_age: float = 60.0) -> list[str]:
        """Remove the merge folders a killed merge left (no lock held on them, and older
        than ``min_age`` seconds); their names."""
        import shutil

        root = self.common_dir / "gitstate" / _MERGING
        gone = []
        names = {path.name.removesuffix(".lock") for path in root.iterdir()} if root.is_dir() else set()
        for name in sorted(names):
            folder, lock_file = root / name, root / f"{name}.lock"
            try:
                changed = max(p.lstat().st_mtime for p in (folder, lock_file) if p.exists())
            except (ValueError, OSError):
                continue
            if time.time() - changed < min_age:
                continue  # it may be a merge that has not taken its lock yet
            lock = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue  # a merge is working in it
            try:
                if folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
                    if not folder.exists():
                        gone.append(name)
                os.unlink(lock_file)
            except OSError:
                pass
            finally:
                os.close(lock)
        return gone

    def merge_base(self, one: str, other: str) -> Oid | None:
        proc = self.git("merge-base", one, other, check=False)
        return Oid(proc.stdout.decode().strip()) if proc.returncode == 0 else None

    def changed_paths(self, old: str, new: str) -> list[str]:
        """Paths that differ between two commits (or trees)."""
        out = self.git("diff-tree", "-r", "--name-only", "-z", "--no-commit-id", old, new).stdout
        return [p for p in out.decode("utf-8", errors="surrogateescape").split("\0") if p]

    def update_checkout(self, tree: Worktree, old: str, new: str) -> bool:
        """Move a checkout's index and files from commit ``old`` to ``new`` (``git read-tree -m -u``).

        Refuses, changing nothing, when a path it would touch has local changes
        (or an untracked file is in the way): returns False.
        """
        if self.git("read-tree", "-m", "-u", old, new, worktree=tree, check=False).returncode == 0:
            return True
        # read-tree trusts the index's stat data: a file whose stat changed but not its
        # content (chmod, touch, a copy of the repository) looks modified until the index
        # is refreshed. Refresh it and try once more; real local changes still refuse.
        self.git("update-index", "-q", "--refresh", worktree=tree, check=False)
        return self.git("read-tree", "-m", "-u", old, new, worktree=tree, check=False).returncode == 0

    def refs(self, prefix: str) -> dict[str, Oid]:
        """Every ref under ``prefix`` (e.g. ``refs/heads/gitstate/``) and what it points at."""
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)", prefix).stdout.decode()
        found: dict[str, Oid] = {}
        for line in out.splitlines():
            oid, _, name = line.partition(" ")
            found[name] = Oid(oid)
        return found

    # -- work trees ---------------------------------------------------------------------------

    def worktree_add(self, path: Path, branch: str) -> Worktree:
        """Register a work tree at ``path`` for ``branch`` (an existing branch), files not yet written."""
        self.git("worktree", "add", "--quiet", "--no-checkout", "--", str(path), branch)
        return self.worktree_at(path)

    def checkout(self, tree: Worktree, branch: str | None = None) -> None:
        """Write the files of ``tree``'s HEAD (after pointing it at ``branch``) into it."""
        if branch is not None:
            self.git("checkout", "--force", "--quiet", branch, "--", worktree=tree)
        else:
            self.git("reset", "--hard", "--quiet", worktree=tree)

    def detach(self, tree: Worktree) -> None:
        """Point ``tree``'s HEAD at its commit instead of its branch; no file changes."""
        self.git("checkout", "--quiet", "--detach", worktree=tree)

    def worktree_move(self, old: Path, new: Path) -> Worktree:
        self.git("worktree", "move", "--", str(old), str(new))
        return self.worktree_at(new)

    def worktree_remove(self, path: Path) -> None:
        """Remove a work tree, uncommitted changes and all (callers save what matters first)."""
        self.git("worktree", "remove", "--force", "--force", "--", str(path))

    def worktree_prune(self) -> None:
        self.git("worktree", "prune")

    def worktree_list(self) -> list[tuple[Path, str | None]]:
        """(path, checked-out branch ref or None) of every linked work tree."""
        out = self.git("worktree", "list", "--porcelain", "-z").stdout.decode(
            "utf-8", errors="surrogateescape"
        )
        found = []
        for record in out.split("\0\0")[1:]:  # the first record is the main work tree
            fields = dict(line.partition(" ")[::2] for line in record.split("\0") if line)
            if "worktree" in fields:
                found.append((Path(fields["worktree"]), fields.get("branch")))
        return found

    @staticmethod
    def worktree_at(path: Path) -> Worktree:
        """The work tree checked out at ``path`` (its ``.git`` file names its git directory)."""
        marker = _read_text(path / ".git")
        if not marker or not marker.startswith("gitdir: "):
            raise RepositoryError(f"{path} is not a linked git work tree")
        git_dir = Path(marker[len("gitdir: ") :])
        return Worktree(path, git_dir if git_dir.is_absolute() else (path / git_dir).resolve())

    def head_of(self, tree: Worktree) -> str | None:
        """The branch ref a work tree has checked out (None when detached)."""
        head = _read_text(tree.git_dir / "HEAD") or ""
        return head[len("ref: ") :] if head.startswith("ref: ") else None

    def stage_all(self, tree: Worktree, exclude: Sequence[str] = ()) -> Oid:
        """Stage everything in ``tree`` (new, changed, deleted) but ``exclude``; the index's tree."""
        skip = [f":(exclude,literal){path}" for path in exclude]
        self.git("add", "--all", "--", ".", *skip, worktree=tree)
        return Oid(self.git("write-tree", worktree=tree).stdout.decode().strip())

    def staged(self, pattern: str, index_file: str | None = None) -> dict[str, Oid]:
        """Paths matching ``pattern`` in the index (or in ``index_file``) and their blob ids."""
        env = dict(self.env)
        if index_file:
            env["GIT_INDEX_FILE"] = index_file
        proc = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "ls-files", "-s", "-z", "--", pattern],
            capture_output=True,
            env=env,
            cwd=self.toplevel or self.git_dir,
            check=False,
        )
        if proc.returncode != 0:
            raise GitFailed(["ls-files", pattern], proc.returncode, proc.stderr.decode(errors="replace"))
        found: dict[str, Oid] = {}
        for entry in proc.stdout.decode("utf-8", errors="surrogateescape").split("\0"):
            if entry:
                info, _, path = entry.partition("\t")
                found[path] = Oid(info.split()[1])
        return found

    # -- remotes (through GitPython, which parses push results and refuses unsafe URLs) -------

    def push(self, remote: str, refspecs: Sequence[str]) -> dict[str, tuple[bool, str]]:
        """Push without force; {remote ref: (accepted, git's summary)} for each refspec."""
        import git as gitpython  # the one place gitstate uses GitPython: its imports cost start-up time

        self._check_remote(remote)
        progress = gitpython.RemoteProgress()  # collects the lines git prints besides the results
        with gitpython.Repo(self.common_dir) as handle:
            try:
                infos = handle.remote(remote).push(list(refspecs), progress=progress, kill_after_timeout=300)
            except gitpython.GitCommandError as exc:
                raise GitFailed(
                    ["push", remote], exc.status if isinstance(exc.status, int) else 1, str(exc.stderr)
                ) from None
            # What the remote said about a refusal ("remote: error: cannot lock ref ...: Unable
            # to create '.../main.lock': File exists") is not in the results: keep it.
            said = [
                line.strip()
                for line in progress.other_lines + progress.error_lines
                if line.startswith("remote:") and ("error" in line or "fatal" in line)
            ]
            results: dict[str, tuple[bool, str]] = {}
            for info in infos:
                failed = bool(
                    info.flags & (info.ERROR | info.REJECTED | info.REMOTE_REJECTED | info.REMOTE_FAILURE)
                )
                summary = info.summary.strip()
                if failed and said:
                    summary = f"{summary}; {' '.join(said)[:500]}"
                results[info.remote_ref_string] = (not failed, summary)
            return results

    def fetch(self, remote: str, refspecs: Sequence[str]) -> None:
        import git as gitpython

        self._check_remote(remote)
        with gitpython.Repo(self.common_dir) as handle:
            try:
                handle.remote(remote).fetch(list(refspecs), kill_after_timeout=300)
            except gitpython.GitCommandError as exc:
                raise GitFailed(
                    ["fetch", remote], exc.status if isinstance(exc.status, int) else 1, str(exc.stderr)
                ) from None

    def check_remote(self, remote: str) -> None:
        """Refuse a remote name that is not a configured remote, or one whose URL runs a command."""
        self._check_remote(remote)

    def _check_remote(self, remote: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", remote) or remote.endswith(".lock"):
            raise RepositoryError(f"remote name {remote!r} is not valid; use a remote listed by `git remote`")
        if self.config(f"remote.{remote}.url") is None:
            raise RepositoryError(f"there is no remote {remote!r}; add it with `git remote add {remote} URL`")
        # GitPython checks the remote's name, not its URLs: the ext transport runs any command.
        for key in ("url", "pushurl"):
            url = (self.config(f"remote.{remote}.{key}") or "").strip()
            if re.match(r"(?i)ext(::|://)", url) or url.startswith("-"):
                raise RepositoryError(
                    f"remote {remote!r} has {key} {url!r}, which would run a command; gitstate refuses "
                    "ext:: URLs and URLs starting with '-'"
                )

    # -- configuration and identity -----------------------------------------------------------

    def config(self, key: str) -> str | None:
        if self._config is None:
            out = self.git("config", "-z", "--list", check=False).stdout.decode(errors="replace")
            values: dict[str, str] = {}
            for item in out.split("\0"):
                name, _, value = item.partition("\n")
                if name:
                    values[name.lower()] = value
            self._config = values
        return self._config.get(key.lower())

    def set_config(self, key: str, value: str) -> None:
        self.git("config", "--local", key, value)
        self._config = None

    def identity(self, fallback: str = "gitstate") -> Identity:
        """The committer: git's environment variables, then user.name/email, then ``fallback``."""
        name = self.env.get("GIT_COMMITTER_NAME") or self.config("user.name") or fallback
        email = self.env.get("GIT_COMMITTER_EMAIL") or self.config("user.email") or f"{fallback}@localhost"
        return Identity(name, email)

    # -- worktrees ----------------------------------------------------------------------------

    def checkouts_of(self, ref: str) -> list[Worktree]:
        """Work trees whose HEAD is ``ref`` (read from the HEAD files: no fork when none)."""
        found: list[Worktree] = []
        wanted = f"ref: {ref}"
        if _read_text(self.common_dir / "HEAD") == wanted and not self._common_is_bare():
            main = self.main_worktree()
            if main is not None:
                found.append(main)
        admin = self.common_dir / "worktrees"
        if admin.is_dir():
            for entry in sorted(admin.iterdir()):
                if _read_text(entry / "HEAD") == wanted:
                    gitfile = _read_text(entry / "gitdir")
                    if gitfile and Path(gitfile).parent.is_dir():
                        found.append(Worktree(Path(gitfile).parent, entry))
        return found

    def _common_is_bare(self) -> bool:
        if self.git_dir == self.common_dir:
            return self.bare
        return (self.config("core.bare") or "false").lower() == "true"

    def main_worktree(self) -> Worktree | None:
        """The repository's main checkout (None for a bare repository)."""
        if self.git_dir == self.common_dir and self.toplevel is not None:
            return Worktree(self.toplevel, self.git_dir)
        out = self.git("worktree", "list", "--porcelain").stdout.decode()
        first = out.split("\n\n", 1)[0].splitlines()
        if first and first[0].startswith("worktree ") and "bare" not in first:
            return Worktree(Path(first[0][len("worktree ") :]), self.common_dir)
        return None


def _run_rev_parse(where: Path, args: list[str], env: dict[str, str]) -> list[str] | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", *args], cwd=where, capture_output=True, env=env, check=False
        )
    except FileNotFoundError:
        raise RepositoryError("git is not installed or not on PATH; install git 2.38 or newer") from None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().splitlines()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    if proc.stdin is None or proc.stdout is None:  # pragma: no cover (always set by Popen here)
        raise RepositoryError("a git helper process has no pipes")
    return proc.stdin, proc.stdout


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
