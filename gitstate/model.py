"""Tasks, projects, the status machine and ready-task selection.

Pure: nothing here touches git, YAML or the terminal, so every rule can be
tested with plain values. Objects are immutable; a change makes a new object.

Status machine::

    pending -> in_progress -> completed -> merged
    in_progress -> pending      (release, lease expiry, retry)
    in_progress | completed -> failed     (attempts used up)
    completed -> pending        (the coordinator could not land it)
    pending | failed -> cancelled
    failed -> pending           (retry)
    merged -> pending           (rollback: its merge reverted)

A task is *ready* when it is pending, every dependency is merged, and its
``not_before`` has passed. The next task is the ready one with the highest
priority; ties go to the one tried fewest times (so a failing task goes behind
untried ones), then the oldest (``created_at``), then the project name, then
the smallest id.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gitstate.errors import IllegalTransition, InvalidState

DEFAULT_MAX_RETRIES = 2
DEFAULT_TIMEOUT = 30 * 60
DEFAULT_LEASE = 15 * 60
DEFAULT_HOOK_TIMEOUT = 10
HOOK_EVENTS = ("claim", "complete", "fail", "merge")


class Status(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    MERGED = "merged"
    FAILED = "failed"
    CANCELLED = "cancelled"


TRANSITIONS: Mapping[Status, tuple[Status, ...]] = {
    Status.PENDING: (Status.IN_PROGRESS, Status.CANCELLED),
    Status.IN_PROGRESS: (Status.COMPLETED, Status.PENDING, Status.FAILED),
    Status.COMPLETED: (Status.MERGED, Status.PENDING, Status.FAILED),
    Status.MERGED: (Status.PENDING,),
    Status.FAILED: (Status.PENDING, Status.CANCELLED),
    Status.CANCELLED: (),
}


@dataclass(frozen=True, slots=True)
class Task:
    """One task. Optional fields left at their defaults are not written to the file."""

    id: str
    title: str
    status: Status = Status.PENDING
    priority: int = 0
    description: str = ""
    depends_on: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    command: str | None = None
    assignee: str | None = None
    branch: str | None = None
    attempts: int = 0
    max_retries: int | None = None
    timeout: int | None = None
    lease_expires: datetime | None = None
    not_before: datetime | None = None
    result: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[Task], tuple[Any, ...]]:
        # Positional state pickles three times faster than dataclass's default,
        # and the parse cache pickles every task on every write.
        return (Task, _task_state(self))


TASK_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Task) if f.name != "id")
_task_state = operator.attrgetter("id", *TASK_FIELDS)


@dataclass(frozen=True, slots=True)
class Hooks:
    """Whom a project tells when its tasks are claimed, completed, failed or merged.

    ``on_*`` are shell commands; ``webhook`` is an http(s) URL or ``$NAME`` (the
    URL is in environment variable NAME). ``events=None`` sends the webhook every
    event; ``timeout=None`` means ``DEFAULT_HOOK_TIMEOUT`` seconds.
    """

    on_claim: str | None = None
    on_complete: str | None = None
    on_fail: str | None = None
    on_merge: str | None = None
    webhook: str | None = None
    events: tuple[str, ...] | None = None
    timeout: int | None = None

    def command(self, event: str) -> str | None:
        """The command for ``event`` (one of ``HOOK_EVENTS``), or None."""
        value: str | None = getattr(self, f"on_{event}", None)
        return value

    def posts(self, event: str) -> bool:
        """Whether the webhook receives ``event``."""
        return self.webhook is not None and (self.events is None or event in self.events)

    def seconds(self) -> int:
        return self.timeout or DEFAULT_HOOK_TIMEOUT


@dataclass(frozen=True, slots=True)
class Settings:
    """Project metadata and the defaults its tasks inherit."""

    name: str
    description: str = ""
    command: str | None = None
    check: str | None = None
    max_retries: int | None = None
    timeout: int | None = None
    lease: int | None = None
    requires: tuple[str, ...] = ()
    copy_files: tuple[str, ...] = ()
    setup: str | None = None
    created_at: datetime | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    hooks: Hooks = Hooks()


@dataclass(frozen=True, slots=True)
class Project:
    settings: Settings
    tasks: Mapping[str, Task] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.settings.name

    def task(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def with_task(self, task: Task) -> Project:
        tasks = dict(self.tasks)
        tasks[task.id] = task
        return dataclasses.replace(self, tasks=tasks)

    def max_retries(self, task: Task) -> int:
        for value in (task.max_retries, self.settings.max_retries):
            if value is not None:
                return value
        return DEFAULT_MAX_RETRIES

    def timeout(self, task: Task) -> int:
        return task.timeout or self.settings.timeout or DEFAULT_TIMEOUT

    def lease(self) -> int:
        return self.settings.lease or DEFAULT_LEASE

    def requires(self, task: Task) -> frozenset[str]:
        return frozenset(task.requires) | frozenset(self.settings.requires)


def move(project: str, task: Task, to: Status, now: datetime, **changes: Any) -> Task:
    """``task`` in status ``to``, refusing moves the status machine does not allow."""
    allowed = TRANSITIONS[task.status]
    if to not in allowed:
        moves = ", ".join(allowed) if allowed else "nothing (it is final)"
        raise IllegalTransition(
            f"task {project}/{task.id} is {task.status}; it can move to {moves}, not {to}"
        )
    return dataclasses.replace(task, status=to, updated_at=now, **changes)


def check_graph(tasks: Mapping[str, Task]) -> None:
    """Refuse dangling and cyclic ``depends_on``; the error names the task."""
    for task in tasks.values():
        for dep in task.depends_on:
            if dep == task.id:
                raise InvalidState(f"task {task.id} depends on itself; remove it from depends_on", task.id)
            if dep not in tasks:
                raise InvalidState(
                    f"task {task.id} depends on {dep!r}, which is not a task in this project", task.id
                )
    cycle = find_cycle(tasks)
    if cycle:
        raise InvalidState(
            f"task {cycle[0]} is in a dependency cycle: {' -> '.join([*cycle, cycle[0]])}", cycle[0]
        )


def find_cycle(tasks: Mapping[str, Task]) -> list[str]:
    """One dependency cycle as a list of ids, or [] (iterative DFS: no recursion limit)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(tasks):
        if root in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(tasks[root].depends_on))]
        state[root] = 1
        path.append(root)
        while stack:
            node, deps = stack[-1]
            for dep in deps:
                if dep not in tasks:
                    continue
                if state.get(dep) == 1:
                    return path[path.index(dep) :]
                if dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    stack.append((dep, iter(tasks[dep].depends_on)))
                    break
            else:
                stack.pop()
                path.pop()
                state[node] = 2
    return []


def blocked_by(project: Project, task: Task, now: datetime) -> list[str]:
    """Why a pending task is not ready: unmerged dependencies and an unreached start time."""
    reasons = [
        f"{dep} ({project.tasks[dep].status})"
        for dep in task.depends_on
        if dep in project.tasks and project.tasks[dep].status != Status.MERGED
    ]
    if task.not_before is not None and task.not_before > now:
        reasons.append(f"not before {task.not_before:%Y-%m-%dT%H:%M:%SZ}")
    return reasons


def is_ready(project: Project, task: Task, now: datetime) -> bool:
    return task.status == Status.PENDING and not blocked_by(project, task, now)


def claim_order(task: Task, project: str = "") -> tuple[int, int, bool, datetime | None, str, str]:
    # Highest priority first, then fewest attempts, then oldest, then project,
    # then smallest id; tasks without a creation time (written by hand) sort
    # after dated ones.
    created = task.created_at
    return (-task.priority, task.attempts, created is None, created, project, task.id)


def ready_tasks(project: Project, now: datetime, capabilities: Iterable[str] | None = None) -> list[Task]:
    """Ready tasks in the order they are taken. ``capabilities=None`` means any agent."""
    caps = None if capabilities is None else frozenset(capabilities)
    ready = [
        task
        for task in project.tasks.values()
        if is_ready(project, task, now) and (caps is None or project.requires(task) <= caps)
    ]
    ready.sort(key=claim_order)
    return ready


def select_next(
    projects: Iterable[Project], now: datetime, capabilities: Iterable[str] | None = None
) -> tuple[Project, Task] | str:
    """The task a claim takes now, or a sentence saying why there is none."""
    caps = None if capabilities is None else frozenset(capabilities)
    best: tuple[tuple[int, int, bool, datetime | None, str, str], Project, Task] | None = None
    pending = blocked = lacking = total = 0
    missing: set[str] = set()
    for project in projects:
        for task in project.tasks.values():
            total += 1
            if task.status != Status.PENDING:
                continue
            pending += 1
            if blocked_by(project, task, now):
                blocked += 1
                continue
            needs = project.requires(task)
            if caps is not None and not needs <= caps:
                lacking += 1
                missing |= needs - caps
                continue
            order = claim_order(task, project.name)
            if best is None or order < best[0]:
                best = (order, project, task)
    if best is not None:
        return best[1], best[2]
    if total == 0:
        return "there are no tasks"
    if pending == 0:
        return f"no task is pending (all {total} are in progress, done, failed or cancelled)"
    parts = []
    if blocked:
        parts.append(f"{blocked} wait for dependencies or a start time")
    if lacking:
        parts.append(f"{lacking} need capabilities this agent lacks ({', '.join(sorted(missing))})")
    return f"no pending task is ready: {'; '.join(parts)}"


def counts(project: Project, now: datetime) -> dict[str, int]:
    """Tasks per status, plus ``ready``; derived on every read, never stored."""
    result = {status.value: 0 for status in Status}
    ready = 0
    for task in project.tasks.values():
        result[task.status] += 1
        if task.status == Status.PENDING and not blocked_by(project, task, now):
            ready += 1
    result["ready"] = ready
    result["total"] = len(project.tasks)
    return result
