"""The one writer of state: read at a ref, change, commit, compare-and-swap, retry.

Every change is one commit on the state branch whose tree differs from its
parent in one ``projects/<name>/STATE.yaml``. The commit is built from objects
written directly (never through the user's index or working tree) and
published by moving the branch with a compare-and-swap. On one machine, writers
take a file lock first, so they queue instead of racing; across machines (or
against a person's ``git commit``), a lost compare-and-swap re-reads the branch
and re-applies the change to the new state.

When a work tree has the state branch checked out, the changed STATE.yaml is
written there and staged afterwards, so ``git status`` stays as clean as it
was. If that file has uncommitted edits, the change is refused before anything
is published: a person's edits are never overwritten.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gitstate import locks, statefile
from gitstate.cache import ParseCache
from gitstate.checkout import Checkouts
from gitstate.errors import (
    AlreadyExists,
    Busy,
    DirtyStateFile,
    InvalidState,
    NotFound,
    RepositoryError,
    StateFileError,
)
from gitstate.git import Oid, Repository
from gitstate.model import Project, check_graph
from gitstate.names import check_project_name
from gitstate.statefile import StateDoc, state_path
from gitstate.timefmt import Clock

DEFAULT_LOCK_TIMEOUT = 30.0
MAX_ATTEMPTS = 40


@dataclass(frozen=True)
class Change:
    """What a change function returns: the new project and how to describe it."""

    project: Project
    event: str
    summary: str
    tasks: tuple[str, ...] = ()
    agent: str | None = None
    events: tuple[str, ...] = ()  # one per task, when the tasks had different events
    trailers: tuple[str, ...] = ()  # more "Key: value" lines, e.g. Gitstate-Check


@dataclass(frozen=True)
class Built:
    """A commit made on top of the branch's tip, ready to publish."""

    commit: Oid
    paths: tuple[str, ...]  # the STATE.yaml files it changes: checked for a person's edits first
    project: Project | None = None
    cache: tuple[Oid, StateDoc, str] | None = None  # (blob, parsed, text) of a STATE.yaml it wrote


@dataclass(frozen=True)
class Committed:
    commit: Oid
    project: Project
    changed: bool = True


def default_branch(repo: Repository) -> str:
    """``gitstate.branch`` from git config, else main, else master, else HEAD's branch."""
    configured = repo.config("gitstate.branch")
    if configured:
        return configured
    for name in ("main", "master"):
        if repo.resolve(f"refs/heads/{name}") is not None:
            return name
    head = (repo.git_dir / "HEAD").read_text().strip() if (repo.git_dir / "HEAD").exists() else ""
    if head.startswith("ref: refs/heads/"):
        return head[len("ref: refs/heads/") :]
    raise RepositoryError(
        "cannot tell which branch holds the state: HEAD is detached and there is no main or "
        "master branch; run `gitstate init --branch NAME`"
    )


class Store:
    """Reads and writes project state on one branch of ``repo``."""

    def __init__(
        self,
        repo: Repository,
        branch: str | None = None,
        *,
        clock: Clock | None = None,
        agent: str | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.branch = branch or default_branch(repo)
        self.ref = f"refs/heads/{self.branch}"
        self.clock = clock or Clock(repo.env)
        self.agent = agent
        self.lock_timeout = lock_timeout
        self.notify = notify or (lambda message: None)
        self.cache = ParseCache(repo.common_dir / "gitstate" / "cache")
        self.checkouts = Checkouts(repo, self.ref, self.notify)

    # -- reading ------------------------------------------------------------------------------

    def head(self) -> Oid:
        commit = self.repo.resolve(self.ref)
        if commit is None:
            raise RepositoryError(
                f"branch {self.branch!r} has no commits yet; run `gitstate init` to create it"
            )
        return commit

    def resolve(self, rev: str) -> Oid:
        """The commit ``rev`` names (a tag is followed to its commit)."""
        commit = self.repo.resolve(f"{rev}^{{commit}}") if rev and not rev.startswith("-") else None
        if commit is None:
            raise NotFound(f"revision {rev!r} does not exist; `git log` lists revisions")
        return commit

    def read(self, name: str, at: str | None = None) -> Project:
        """One project as of ``at`` (a commit id; default: the branch's tip)."""
        return self._load(at or self.head(), name)[0].project

    def project_names(self, at: str | None = None) -> list[str]:
        commit = at or self.head()
        found = self.repo.info(f"{commit}:projects")
        if found is None or found[1] != "tree":
            return []
        return sorted(e.name for e in self.repo.read_tree(found[0]) if e.is_tree)

    def read_all(self, at: str | None = None) -> list[Project]:
        commit = at or self.head()
        projects = []
        for name in self.project_names(commit):
            with contextlib.suppress(NotFound):  # a folder without STATE.yaml is not a project
                projects.append(self._load(commit, name)[0].project)
        return projects

    def _load(self, commit: str, name: str) -> tuple[StateDoc, str, Oid]:
        path = state_path(check_project_name(name))
        found = self.repo.info(f"{commit}:{path}")
        if found is None:
            raise NotFound(
                f"project {name!r} does not exist on {self.branch}; "
                "`gitstate project list` shows the projects"
            )
        oid = found[0]
        doc = self.cache.get(oid)
        if doc is None:
            text = self._blob_text(oid, path)
            doc = statefile.parse(text, path)
            self.cache.put(oid, doc, text)
        return doc, self.cache.text(oid) or "", oid

    def _blob_text(self, oid: str, path: str) -> str:
        try:
            return self.repo.read(oid)[1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateFileError(path, None, f"is not UTF-8 text ({exc.reason})") from None

    # -- writing ------------------------------------------------------------------------------

    def update(self, name: str, change: Callable[[Project], Change | None]) -> Committed:
        """Apply ``change`` to the current state of project ``name`` and publish it.

        ``change`` may run more than once (after a lost race it sees the newer
        state); it returns None to make no commit.
        """
        path = state_path(check_project_name(name))

        def step(commit: Oid) -> tuple[StateDoc | None, str, Oid | None, Change | None]:
            doc, text, oid = self._load(commit, name)
            return doc, text or self._blob_text(oid, path), oid, change(doc.project)

        return self._transact(path, step)

    def create(self, project: Project, *, agent: str | None = None) -> Committed:
        """Add a new project's STATE.yaml; refused when the project exists."""
        path = state_path(check_project_name(project.name))

        def step(commit: Oid) -> tuple[StateDoc | None, str, Oid | None, Change | None]:
            if self.repo.info(f"{commit}:{path}") is not None:
                raise AlreadyExists(
                    f"project {project.name!r} already exists; change it with `gitstate project edit`"
                )
            return None, "", None, Change(project, "create", f"create project {project.name}", agent=agent)

        return self._transact(path, step)

    def _transact(
        self,
        path: str,
        step: Callable[[Oid], tuple[StateDoc | None, str, Oid | None, Change | None]],
    ) -> Committed:
        unchanged: list[Project] = []

        def build(head: Oid) -> Built | None:
            doc, text, _, change = step(head)
            if change is None or (doc is not None and change.project == doc.project):
                assert doc is not None  # noqa: S101 (only updates return no change)
                unchanged[:] = [doc.project]
                return None
            try:
                check_graph(change.project.tasks)
            except InvalidState as exc:
                raise InvalidState(f"{change.project.name}: {exc}") from None
            if doc is None:
                new_text, new_doc = statefile.render_new(change.project)
            else:
                new_text, new_doc = statefile.apply(doc, text, change.project)
            blob = self.repo.write_object("blob", new_text.encode())
            tree = self.repo.replace_path(self.repo.commit_tree_oid(head), path, blob)
            commit = self.commit(tree, [head], change, doc.project if doc else None)
            return Built(commit, (path,), change.project, (blob, new_doc, new_text))

        commit, built = self.publish(build)
        if built is None:
            return Committed(commit, unchanged[0], changed=False)
        assert built.project is not None  # noqa: S101 (set by build)
        return Committed(commit, built.project)

    def commit(self, tree: str, parents: Sequence[str], change: Change, old: Project | None) -> Oid:
        """A commit object for ``change``: author, date and message with its trailers."""
        author = self.repo.identity(change.agent or self.agent or "gitstate")
        who = change.agent or self.agent or author.name
        message = commit_message(change, old, who)
        return self.repo.write_commit(tree, parents, message, author, date=self.clock.git_date())

    def publish(self, build: Callable[[Oid], Built | None]) -> tuple[Oid, Built | None]:
        """Move the branch to the commit ``build`` makes on top of the tip (None: no change).

        Under the state lock: read the tip, build, refuse if a checkout has
        uncommitted edits to the STATE.yaml files the commit changes, then
        compare-and-swap; a lost race builds again on the new tip. Checkouts
        catch up afterwards, outside the lock.
        """
        with self._locked():
            for attempt in range(MAX_ATTEMPTS):
                head = self.head()
                built = build(head)
                if built is None:
                    return head, None
                try:
                    checkouts = self.checkouts.check(built.paths, head)
                except DirtyStateFile:
                    if self.repo.resolve(self.ref) == head:
                        raise
                    continue  # the branch moved (and the checkout with it): start again
                if self.repo.update_ref(self.ref, built.commit, head):
                    if built.cache is not None:
                        self.cache.put(*built.cache)
                    break
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
            else:
                raise Busy(
                    f"{self.ref} kept moving: {MAX_ATTEMPTS} attempts in a row lost the race to other "
                    "writers; retry in a moment"
                )
        if checkouts:
            self.checkouts.catch_up(checkouts, head, built.paths)
        return built.commit, built

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        path = locks.lock_path(self.repo.common_dir, self.ref.replace("/", "%"))
        return locks.held(path, self.lock_timeout, what=f"the state of {self.branch}", notify=self.notify)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def commit_message(change: Change, old: Project | None, agent: str) -> str:
    """Subject, blank line, trailers: ``git log --grep`` and ``%(trailers)`` read them."""
    trailers = [f"Gitstate-Project: {change.project.name}"]
    trailers += [f"Gitstate-Task: {task_id}" for task_id in change.tasks]
    trailers += [f"Gitstate-Event: {event}" for event in change.events or (change.event,)]
    trailers.append(f"Gitstate-Agent: {_one_line(agent)}")
    for task_id in change.tasks:
        new = change.project.tasks.get(task_id)
        before = old.tasks.get(task_id) if old else None
        if new is not None and (before is None or before.status != new.status):
            was = before.status.value if before else "new"
            trailers.append(f"Gitstate-Status: {task_id} {was} -> {new.status.value}")
    trailers += [_one_line(line) for line in change.trailers]
    return f"gitstate: {_one_line(change.summary, 100)}\n\n" + "\n".join(trailers) + "\n"
