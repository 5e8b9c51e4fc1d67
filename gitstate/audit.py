"""Audit from git history: events read from commit trailers, and a task's past states.

Every commit gitstate makes carries ``Gitstate-Project``, ``Gitstate-Task``,
``Gitstate-Event``, ``Gitstate-Agent`` and ``Gitstate-Status`` trailers, so
one ``git log`` process reads the whole history, however long (never a
process per commit). Both read the state branch's own line of history
(``--first-parent``), where every event is recorded once (a task branch's
commits repeat what its claim and completion already said), and the lines of
other clones that ``sync`` merges brought in: their second parents are read
the same way, so a few ``git log`` processes cover any number of clones.

A task's history reads the task in each commit that changed its project's
STATE.yaml, so commits without trailers count too: a person's edit, a plain
``git revert``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitstate.errors import GitStateError, InvalidInput, NotFound
from gitstate.git import Oid
from gitstate.model import Task
from gitstate.names import check_project_name, check_task_id
from gitstate.statefile import state_path
from gitstate.store import Store
from gitstate.timefmt import format_timestamp

# One %(trailers) costs git a single parse of each message; a %(trailers:key=...)
# per key would parse it once per key, and more than double the time of the log.
_FORMAT = "%H%x1f%ct%x1f%(trailers:only,unfold,separator=%x1e)%x1f%s%x00"


@dataclass(frozen=True)
class Event:
    """One thing gitstate did to one task (or to a project, when ``task`` is None)."""

    time: datetime
    commit: str
    project: str
    task: str | None
    event: str
    agent: str | None
    old: str | None
    new: str | None
    subject: str

    def as_json(self) -> dict[str, Any]:
        return {
            "time": format_timestamp(self.time),
            "commit": self.commit,
            "project": self.project,
            "task": self.task,
            "event": self.event,
            "agent": self.agent,
            "old_status": self.old,
            "new_status": self.new,
        }


@dataclass(frozen=True)
class _Record:
    commit: str
    time: datetime
    project: str
    tasks: list[str]
    kinds: list[str]
    agent: str
    statuses: list[str]
    subject: str

    def kind_of(self, task_id: str | None) -> str:
        if task_id in self.tasks and len(self.kinds) == len(self.tasks):
            return self.kinds[self.tasks.index(task_id)]
        return self.kinds[0] if self.kinds else "?"


def _records(store: Store, *args: str) -> Iterator[_Record]:
    out = store.repo.git("log", "-z", f"--format={_FORMAT}", *args).stdout.decode("utf-8", errors="replace")
    for chunk in out.split("\0"):
        raw = chunk.strip("\n")
        if not raw:
            continue
        commit, stamp, trailers, subject = raw.split("\x1f", 3)
        found: dict[str, list[str]] = {"Project": [], "Task": [], "Event": [], "Agent": [], "Status": []}
        for line in trailers.split("\x1e"):
            key, _, value = line.partition(": ")
            if key.startswith("Gitstate-") and key[9:] in found:
                found[key[9:]].append(value)
        yield _Record(
            commit,
            datetime.fromtimestamp(int(stamp), UTC),
            found["Project"][0] if found["Project"] else "",
            found["Task"],
            found["Event"],
            found["Agent"][0] if found["Agent"] else "",
            found["Status"],
            subject,
        )


def events(
    store: Store,
    *,
    project: str | None = None,
    task: str | None = None,
    agent: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> Iterator[Event]:
    """gitstate's events reachable from the state branch, newest first, filtered."""
    args = ["--grep=^Gitstate-Event: ", "--all-match", "--extended-regexp"]
    if project is not None:
        args.append(f"--grep=^Gitstate-Project: {check_project_name(project)}$")
    if task is not None:
        args.append(f"--grep=^Gitstate-Task: {check_task_id(task)}$")
    if agent is not None:
        if not agent.strip() or any(c in agent for c in "\n\r\0"):
            raise InvalidInput(f"--agent {agent!r} is not a name; give the name as `gitstate log` shows it")
        args.append(f"--grep=^Gitstate-Agent: {_literal(agent)}$")
    if kind is not None:
        args.append(f"--grep=^Gitstate-Event: {_literal(kind)}$")
    if since is not None:
        # Not --since: that stops the walk at the first older commit, and one
        # commit from a machine with a slow clock would hide everything after it.
        args.append(f"--since-as-filter={int(since.timestamp())}")
    count = 0
    for record in _records(store, "--first-parent", *args, *_lines(store)):
        for item in _expand(record):
            if (
                (task and item.task != task)
                or (agent and item.agent != agent)
                or (kind and item.event != kind)
            ):
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            yield item


def _lines(store: Store) -> list[str]:
    """Where the state branch's lines of history start: its tip, and the other side of
    every ``sync`` merge of another clone's state (found in rounds: a side may hold syncs)."""
    starts = [store.ref]
    seen: set[str] = set()
    new = [store.ref]
    while new:
        out = store.repo.git(
            "log", "--first-parent", "--format=%H %P", "--grep=^Gitstate-Event: sync$", *new, "--not", *seen
        ).stdout.decode()
        new = []
        for line in out.splitlines():
            commit, *parents = line.split()
            seen.add(commit)
            new += [p for p in parents[1:] if p not in seen]
        seen.update(new)
        starts += new
    return starts


def _literal(text: str) -> str:
    """``text`` as an extended regular expression that matches only itself."""
    return re.sub(r"([.+*?()\[\]{}|^$\\])", r"\\\1", text)


def _expand(record: _Record) -> Iterator[Event]:
    moves: dict[str, tuple[str | None, str | None]] = {}
    for line in record.statuses:
        moved, _, change = line.partition(" ")
        was, _, now = change.partition(" -> ")
        moves[moved] = (was, now)
    ids: list[str | None] = [*record.tasks] or [None]
    for task_id in ids:
        old, new = moves.get(task_id or "", (None, None))
        yield Event(
            record.time,
            record.commit,
            record.project,
            task_id,
            record.kind_of(task_id),
            record.agent or None,
            old,
            new,
            record.subject,
        )


@dataclass(frozen=True)
class State:
    """The task as one commit left it (``task`` None: not created yet, or removed)."""

    time: datetime
    commit: str
    event: str
    subject: str
    task: Task | None


def history(store: Store, project: str, task_id: str) -> list[State]:
    """Every state the task went through on the state branch, oldest first, with its commit."""
    check_task_id(task_id)
    path = state_path(check_project_name(project))
    records = list(_records(store, "--first-parent", *_lines(store), "--", path))
    states: list[State] = []
    last: Task | None = None
    for record in reversed(records):
        if record.tasks and task_id not in record.tasks:
            continue  # gitstate's own commit about other tasks: this one did not change
        now = _task_at(store, project, task_id, record.commit)
        if now != last:
            kind = record.kind_of(task_id) if record.kinds else _hand_made(record.subject)
            states.append(State(record.time, record.commit, kind, record.subject, now))
            last = now
    if not states:
        raise NotFound(f"task {task_id!r} never existed in project {project!r} on {store.branch}")
    return states


def merge_of(store: Store, project: str, task_id: str) -> Oid:
    """The last commit on the state branch that merged the task, by its trailers."""
    found = last_event(store, project, task_id, ("merge",))
    if found is None:
        raise NotFound(f"no merge of {project}/{task_id} is on {store.branch}; nothing to roll back")
    return found[1]


def last_event(store: Store, project: str, task_id: str, kinds: tuple[str, ...]) -> tuple[str, Oid] | None:
    """The newest of the task's events of these ``kinds`` on the state branch's lines: (kind, commit)."""
    for record in _records(
        store,
        "--first-parent",
        "--all-match",
        "--extended-regexp",
        f"--grep=^Gitstate-Event: ({'|'.join(map(_literal, kinds))})$",
        f"--grep=^Gitstate-Task: {check_task_id(task_id)}$",
        f"--grep=^Gitstate-Project: {check_project_name(project)}$",
        *_lines(store),
    ):
        kind = record.kind_of(task_id)  # one commit may carry several tasks' events
        if kind in kinds:
            return kind, Oid(record.commit)
    return None


def _task_at(store: Store, project: str, task_id: str, commit: str) -> Task | None:
    try:
        return store.read(project, commit).task(task_id)
    except (NotFound, GitStateError):
        return None  # the project was missing or its file invalid at that commit


def _hand_made(subject: str) -> str:
    """The event of a commit gitstate did not make: what a person did with plain git."""
    return "revert" if subject.startswith('Revert "') else "edit"
