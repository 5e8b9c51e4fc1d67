"""Task worktrees: where they live, making and removing them, and setting them up.

A task's worktree is ``<git-common-dir>/gitstate/worktrees/<project>/<id>``
(or under ``git config gitstate.worktrees``): inside ``.git``, so it never
shows in ``git status`` or gets picked up by the tools that walk your
checkout, and one place for cleanup to look. Creating and removing worktrees
concurrently is racy in git itself (two ``git worktree add`` at once can fail
and leave a branch behind), so every add, remove and prune here holds one file
lock. A new worktree gets the untracked files the project lists in
``copy_files`` (``.env``...) from the main checkout, then runs the project's
``setup`` command.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from gitstate import executor, locks
from gitstate.errors import GitStateError
from gitstate.git import Repository, Worktree
from gitstate.model import Settings

LOCK_TIMEOUT = 120.0
IDLE = ".idle"  # <root>/.idle/<agent>: a worktree kept between one agent's tasks
CHECKS = ".checks"  # <root>/.checks/<project>: where the coordinator runs checks


class Worktrees:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        configured = repo.config("gitstate.worktrees")
        self.root = (
            Path(configured).expanduser() if configured else repo.common_dir / "gitstate" / "worktrees"
        )
        self.logs = repo.common_dir / "gitstate" / "logs"

    def path_for(self, project: str, task_id: str) -> Path:
        return self.root / project / task_id

    def locked(self) -> contextlib.AbstractContextManager[None]:
        path = locks.lock_path(self.repo.common_dir, "worktrees")
        return locks.held(path, LOCK_TIMEOUT, what="the worktree lock")

    def create(self, project: str, task_id: str, branch: str, reuse: Path | None = None) -> Worktree:
        """A worktree with ``branch`` checked out; a leftover one at its path is discarded first.

        ``reuse`` is an idle worktree (see ``park``) to move into place instead
        of making a new one: then only the files that differ are written.
        """
        path = self.path_for(project, task_id)
        # Only registering (or moving) the worktree needs the lock; writing its
        # files, the slow part, touches nothing shared, so agents do it side by side.
        with self.locked():
            self._discard(path)  # a leftover folder, or the record of a half-made worktree
            self._free(branch)
            path.parent.mkdir(parents=True, exist_ok=True)
            if reuse is not None and (reuse / ".git").is_file():
                tree = self.repo.worktree_move(reuse, path)
            else:
                reuse = None
                tree = self.repo.worktree_add(path, branch)
        self.repo.checkout(tree, branch if reuse is not None else None)
        return tree

    def _free(self, branch: str) -> None:
        """Detach idle worktrees that still have ``branch`` checked out (one parked just
        now, before it let go): git checks a branch out in one worktree only."""
        idle = (self.root / IDLE).resolve()
        for path, ref in self.repo.worktree_list():
            if ref == f"refs/heads/{branch}" and path.parent.resolve() == idle:
                self.repo.detach(self.repo.worktree_at(path))

    def scratch(self, name: str, commit: str) -> Worktree:
        """A worktree of its own for running checks, with ``commit`` checked out (detached).

        Kept between checks so only the files that differ are rewritten; files
        a check left behind are removed first, ignored ones (caches) kept.
        """
        path = self.root / CHECKS / name
        if (path / ".git").is_file() and not self.half_made(path):
            tree = self.repo.worktree_at(path)
            self.repo.git("checkout", "--force", "--quiet", "--detach", commit, "--", worktree=tree)
            self.repo.git("clean", "-ffdq", worktree=tree)
            return tree
        with self.locked():
            if path.exists():
                self._discard(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.repo.git("worktree", "add", "--quiet", "--detach", "--", str(path), commit)
        return self.repo.worktree_at(path)

    def checks_lock(self, name: str) -> Path:
        """Held while a check runs in project ``name``'s scratch worktree."""
        return locks.lock_path(self.repo.common_dir, "checks", name)

    def check_trees(self) -> dict[str, Path]:
        """Scratch worktrees for checks, by project."""
        folder = self.root / CHECKS
        return {entry.name: entry for entry in sorted(folder.iterdir())} if folder.is_dir() else {}

    def idle_path(self, agent: str) -> Path:
        return self.root / IDLE / agent

    def park(self, path: Path, agent: str) -> Path:
        """Keep a finished task's worktree (all its work committed) for the agent's next task."""
        idle = self.idle_path(agent)
        with self.locked():
            self._unjam()
            if idle.exists():
                self._discard(idle)
            idle.parent.mkdir(parents=True, exist_ok=True)
            tree = self.repo.worktree_move(path, idle)
        # Let go of the task's branch (its files stay): git refuses to check a
        # branch out in two worktrees, and the task's next attempt may need it.
        self.repo.detach(tree)
        return idle

    def set_up(self, tree: Worktree, settings: Settings, env: Mapping[str, str], timeout: float) -> None:
        """Copy the listed untracked files in, then run the project's setup command."""
        main = self.repo.main_worktree()
        for name in settings.copy_files:
            source = main.path / name if main is not None else None
            if source is None or not source.exists():
                continue  # nothing to copy (yet): the setup command can complain if it matters
            target = tree.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(source, target)
        if settings.setup:
            log = self.logs / tree.path.parent.name / tree.path.name / "setup.log"
            outcome = executor.run(settings.setup, cwd=tree.path, env=env, timeout=timeout, log=log)
            if not outcome.ok:
                raise GitStateError(f"the project's setup command {outcome.summary()} (log: {log})")

    def remove(self, path: Path) -> None:
        with self.locked():
            self._discard(path)

    def _discard(self, path: Path) -> None:
        self._unjam()
        half_made = self.half_made(path)
        for record in half_made:  # nothing `git worktree remove` could remove: forget it by hand
            shutil.rmtree(record, ignore_errors=True)
        if (path / ".git").is_file() and not half_made and self._registered(path):
            self.repo.worktree_remove(path)
        if path.exists():  # a directory git did not know (a crash before `worktree add` finished)
            shutil.rmtree(path, ignore_errors=True)
            self.repo.worktree_prune()

    def _unjam(self) -> None:
        """Forget half-made records that would make the next ``git worktree`` command fail.

        A ``git worktree add`` killed after creating ``commondir`` but before
        writing it leaves a record every ``git worktree`` command dies on,
        whatever worktree it is about. Run under the worktree lock, so no
        gitstate ``worktree add`` is under way; a person's spends microseconds
        in that state.
        """
        for record in self.half_made():
            try:
                jammed = not (record / "commondir").read_text().strip()
            except OSError:
                jammed = True
            if jammed:
                shutil.rmtree(record, ignore_errors=True)

    def _registered(self, path: Path) -> bool:
        """Whether git knows ``path`` as a worktree: ``path/.git`` names a record whose
        ``gitdir`` names ``path`` back. Either may be cut short by a kill (``git
        worktree move`` rewrites ``gitdir`` in place), and then only the folder is left."""
        try:
            written = (self.repo.worktree_at(path).git_dir / "gitdir").read_text().strip()
        except (GitStateError, OSError):
            return False
        return bool(written) and os.path.realpath(Path(written).parent) == os.path.realpath(path)

    def half_made(self, path: Path | None = None) -> list[Path]:
        """Records in ``.git/worktrees`` of worktrees whose ``git worktree add`` was killed.

        git locks a record while it makes it ("initializing") and never prunes
        a locked one; some (no ``commondir`` yet) make every later ``git
        worktree`` command fail. Half-made: locked "initializing", or locked
        and not yet saying where its worktree is (a person's ``git worktree
        lock`` keeps the rest). With ``path``, those of a worktree at ``path``
        (or that bear its name and say nothing of where); without, all of them.
        """
        admin = self.repo.common_dir / "worktrees"
        found = []
        for record in sorted(admin.iterdir()) if admin.is_dir() else ():
            try:
                reason = (record / "locked").read_text().strip()
            except OSError:
                continue  # not locked: `git worktree prune` removes what is left of it
            try:
                written = (record / "gitdir").read_text().strip()
            except OSError:
                written = ""
            if written and reason != "initializing":
                continue  # locked by a person (`git worktree lock`)
            target = os.path.realpath(Path(written).parent) if written else None
            if (
                path is None
                or target == os.path.realpath(path)
                or (target is None and re.fullmatch(re.escape(path.name) + r"[0-9]*", record.name))
            ):
                found.append(record)
        return found

    def forget_half_made(self) -> list[str]:
        """Remove every half-made worktree record (see ``half_made``); their names."""
        with self.locked():
            records = self.half_made()
            for record in records:
                shutil.rmtree(record, ignore_errors=True)
        return [record.name for record in records]

    def existing(self) -> dict[tuple[str, str], Path]:
        """Every task worktree git knows of, and stray folders under the root, by (project, id)."""
        found: dict[tuple[str, str], Path] = {}
        for path, _ in self.repo.worktree_list():
            key = self._task_of(path)
            if key is not None:
                found[key] = path
        if self.root.is_dir():
            for project in self.root.iterdir():
                if project.name in (IDLE, CHECKS):
                    continue
                for task in project.iterdir() if project.is_dir() else ():
                    found.setdefault((project.name, task.name), task)
        return found

    def idle(self) -> dict[str, Path]:
        """Parked worktrees by agent name."""
        folder = self.root / IDLE
        return {entry.name: entry for entry in sorted(folder.iterdir())} if folder.is_dir() else {}

    def _task_of(self, path: Path) -> tuple[str, str] | None:
        try:
            relative = path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return None
        parts = relative.parts
        return (parts[0], parts[1]) if len(parts) == 2 and parts[0] not in (IDLE, CHECKS) else None
