"""Supervising agents and the coordinator: one time-boxed pass (``run``), or for good (``daemon``).

Agents are threads of this process, each with its own repository handle and
store (neither is shared between threads), each running the ``work`` loop;
the coordinator runs in the supervising thread. One process keeps the memory
small and lets the supervisor stop everything at once.

A pass stops claiming in time to finish cleanly. At its hard stop, running
tasks are stopped, their work so far is committed to their branches and they
are released, so the next pass resumes from the branch. Then a final merge
(whose checks may not run past the time box), the push, and the summary.

A circuit breaker stops claiming after a run of consecutive failures across
tasks (the agent command itself is broken, say), instead of burning every
task's retries.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitstate import agent, remote, worker
from gitstate.coordinator import Coordinator
from gitstate.git import Repository
from gitstate.model import Status, is_ready
from gitstate.store import Store

EXIT_TASK_FAILED = 5
EXIT_BREAKER = 6


def _default_prefix() -> str:
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host.strip('-.') or 'host'}-agent"


@dataclass(frozen=True)
class Options:
    agents: int = 2
    time_box: float | None = None  # seconds; None: until the work is done (run) or stopped (daemon)
    projects: tuple[str, ...] = ()
    push: str | None = None
    capabilities: tuple[str, ...] | None = None
    max_failures: int = 5  # consecutive failed tasks that trip the circuit breaker
    grace: float = 30.0  # daemon: how long running tasks may finish once asked to stop
    prefix: str = field(default_factory=_default_prefix)


@dataclass
class Line:
    project: str
    task: str
    title: str
    result: str = ""
    attempt: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Summary:
    lines: dict[tuple[str, str], Line] = field(default_factory=dict)
    merged: int = 0
    failed: int = 0
    released: int = 0
    remaining: int = 0
    checks: int = 0
    breaker: str | None = None
    pushed: str | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.breaker:
            return EXIT_BREAKER
        return EXIT_TASK_FAILED if self.failed else 0


class Supervisor:
    def __init__(
        self,
        path: Path,
        branch: str | None,
        options: Options,
        log: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.path = path
        self.branch = branch
        self.options = options
        self.log = log
        self.no_more = threading.Event()  # stop claiming
        self.stop = threading.Event()  # stop running tasks too
        self.summary = Summary()
        self._lock = threading.Lock()
        self._failures = 0
        self._crashed: list[BaseException] = []
        self.names = [f"{options.prefix}-{n + 1}" for n in range(options.agents)]
        self.metrics: Any = None

    # -- the pass -----------------------------------------------------------------------------

    def run(self, *, until_done: bool, final_merge: bool = True) -> Summary:
        """Run agents and the coordinator; returns when the work is done (``until_done``),
        the time box ends, or ``request_stop`` is called (the daemon's SIGTERM)."""
        start = time.monotonic()
        done = threading.Event()
        if isinstance(self.log, Logger):
            self.log.follow(lambda: self._status_line(start), done)
        try:
            return self._run(start, until_done=until_done, final_merge=final_merge)
        finally:
            done.set()

    def _status_line(self, start: float) -> str:
        s = self.summary
        ran = sum(1 for line in s.lines.values() if line.attempt)
        return (
            f"[{time.monotonic() - start:5.0f}s] {ran} tasks run, {s.merged} merged, {s.released} released, "
            f"{s.checks} checks" + (" - circuit breaker tripped" if s.breaker else "")
        )

    def _run(self, start: float, *, until_done: bool, final_merge: bool) -> Summary:
        box = self.options.time_box
        claim_end = hard_end = box_end = None
        if box is not None:
            box_end = start + box
            hard_end = box_end - min(max(1.0, box * 0.1), 30.0)
            claim_end = hard_end - min(box * 0.1, 60.0)
        with Repository.discover(self.path) as repo:
            if self.options.push:  # a remote that cannot take the push is refused before the pass
                repo.check_remote(self.options.push)
            store = Store(repo, self.branch, notify=lambda m: self.log("note", {"message": m}))
            for project, task in agent.recover(store, self.names):
                self.log("recovered", {"task": f"{project}/{task.id}", "status": task.status.value})
            threads = [threading.Thread(target=self._agent, args=(name,), name=name) for name in self.names]
            for thread in threads:
                thread.start()
            try:
                self._supervise(store, until_done, claim_end, hard_end, box_end)
            finally:
                self.no_more.set()
                self._wait_for_agents(threads, hard_end)
            self._finish(store, box_end, final_merge=final_merge)
        self.summary.seconds = time.monotonic() - start
        if self._crashed:
            raise self._crashed[0]
        return self.summary

    def request_stop(self) -> None:
        """Stop claiming; running tasks may finish within the grace period (daemon's SIGTERM)."""
        self.no_more.set()

    def _supervise(
        self,
        store: Store,
        until_done: bool,
        claim_end: float | None,
        hard_end: float | None,
        box_end: float | None,
    ) -> None:
        while not self.no_more.is_set():
            now = time.monotonic()
            if claim_end is not None and now >= claim_end:
                self.log("time", {"message": "stopped claiming to finish within the time box"})
                break
            self._merge(store, claim_end)
            self._update_metrics(store)
            if until_done and self._all_done(store):
                break
            if self._crashed:
                break
            self.no_more.wait(0.25)

    def _wait_for_agents(self, threads: list[threading.Thread], hard_end: float | None) -> None:
        deadline = hard_end if hard_end is not None else time.monotonic() + self.options.grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            self.log("time", {"message": "stopping running tasks; their work so far goes to their branches"})
            self.stop.set()
            for thread in threads:
                thread.join(60)

    def _finish(self, store: Store, box_end: float | None, *, final_merge: bool) -> None:
        if final_merge:
            self._merge(store, box_end - 0.5 if box_end is not None else None)
        self._tally(store)
        if self.options.push:
            pushed = remote.push(store, self.options.push)
            self.summary.pushed = self.options.push
            self.log("pushed", {"remote": self.options.push, "merged_remote_first": pushed.merged_remote})

    # -- pieces -------------------------------------------------------------------------------

    def _agent(self, name: str) -> None:
        projects = self.options.projects or None
        try:
            with Repository.discover(self.path) as repo:
                store = Store(
                    repo, self.branch, notify=lambda m: self.log("note", {"agent": name, "message": m})
                )
                worker.work(
                    store,
                    name,
                    project=projects[0] if projects and len(projects) == 1 else projects,
                    capabilities=self.options.capabilities,
                    wait=True,
                    poll=0.5,
                    stop=self.stop,
                    no_more=self.no_more,
                    on_ran=self._ran,
                    say=lambda m: self.log("agent", {"agent": name, "message": m}),
                )
        except BaseException as exc:  # noqa: BLE001 (an agent thread that dies must not go unnoticed)
            self._crashed.append(exc)
            self.log("error", {"agent": name, "message": f"{type(exc).__name__}: {exc}"})
            self.no_more.set()

    def _ran(self, ran: worker.Ran) -> None:
        outcome = ran.outcome
        with self._lock:
            line = self.summary.lines.setdefault(
                (ran.project, ran.task.id), Line(ran.project, ran.task.id, ran.task.title)
            )
            line.attempt = ran.task.attempts
            line.seconds += outcome.seconds if outcome else 0.0
            if outcome is not None and outcome.reason == "stopped":
                self.summary.released += 1
                line.detail = "released at the time box; its work is on its branch"
            if outcome is not None and outcome.ok:
                self._failures = 0
            elif outcome is None or outcome.reason in ("exited", "timeout"):
                self._failures += 1
                line.detail = (ran.final.error or "") if ran.final else ""
                if self._failures >= self.options.max_failures and not self.summary.breaker:
                    self.summary.breaker = (
                        f"{self._failures} tasks failed in a row (the last, {ran.project}/{ran.task.id}: "
                        f"{(line.detail or 'failed').splitlines()[0]}); stopped claiming so the other "
                        "tasks keep their retries. Fix the agent command, then run again"
                    )
                    self.log("breaker", {"message": self.summary.breaker})
                    self.no_more.set()
            if self.metrics is not None:
                self.metrics.ran(ran)

    def _merge(self, store: Store, deadline: float | None) -> None:
        coordinator = Coordinator(store, deadline=deadline, say=lambda m: self.log("merge", {"message": m}))
        report = coordinator.run(self.options.projects or None)
        with self._lock:
            self.summary.checks += report.checks
            for landing in report.landings:
                line = self.summary.lines.setdefault(
                    (landing.project, landing.task), Line(landing.project, landing.task, "")
                )
                if landing.outcome == "merged":
                    self.summary.merged += 1
                elif landing.outcome != "deferred":
                    line.detail = landing.detail
        if self.metrics is not None:
            self.metrics.merged(report)

    def _all_done(self, store: Store) -> bool:
        now = store.clock.now()
        for project in self._projects(store):
            for task in project.tasks.values():
                if task.status in (Status.IN_PROGRESS, Status.COMPLETED) or is_ready(project, task, now):
                    return False
        return True

    def _projects(self, store: Store) -> list[Any]:
        names = self.options.projects or store.project_names()
        return [store.read(name) for name in names]

    def _tally(self, store: Store) -> None:
        remaining = 0
        for project in self._projects(store):
            for task in project.tasks.values():
                line = self.summary.lines.get((project.name, task.id))
                if line is not None:
                    line.title = line.title or task.title
                    line.result = task.status.value
                    line.attempt = task.attempts
                    if task.status == Status.FAILED:
                        self.summary.failed += 1
                if task.status in (Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED):
                    remaining += 1
        self.summary.remaining = remaining

    def _update_metrics(self, store: Store) -> None:
        if self.metrics is not None:
            self.metrics.tasks(self._projects(store), store.clock.now())


# -- output -----------------------------------------------------------------------------------------


def table(summary: Summary) -> str:
    rows = [
        f"{'TASK':<30} {'RESULT':<12} {'ATTEMPT':>7} {'SECONDS':>8}",
        *(
            f"{line.project + '/' + line.task:<30} {line.result:<12} {line.attempt:>7} {line.seconds:>8.1f}"
            for line in summary.lines.values()
        ),
        "",
        f"merged {summary.merged}, failed {summary.failed}, released {summary.released}, "
        f"remaining {summary.remaining}; {summary.checks} check runs; {summary.seconds:.1f}s",
    ]
    if summary.breaker:
        rows.append(f"circuit breaker: {summary.breaker}")
    return "\n".join(rows)


def as_json(summary: Summary) -> dict[str, Any]:
    return {
        "merged": summary.merged,
        "failed": summary.failed,
        "released": summary.released,
        "remaining": summary.remaining,
        "checks": summary.checks,
        "seconds": round(summary.seconds, 3),
        "breaker": summary.breaker,
        "pushed": summary.pushed,
        "exit_code": summary.exit_code,
        "tasks": [
            {
                "project": line.project,
                "id": line.task,
                "title": line.title,
                "result": line.result,
                "attempt": line.attempt,
                "seconds": round(line.seconds, 3),
                "detail": line.detail,
            }
            for line in summary.lines.values()
        ],
    }


def junit(summary: Summary) -> str:
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name="gitstate pass",
        tests=str(len(summary.lines)),
        failures=str(sum(1 for line in summary.lines.values() if line.result == "failed")),
        skipped=str(sum(1 for line in summary.lines.values() if line.result not in ("merged", "failed"))),
        time=f"{summary.seconds:.3f}",
    )
    for line in summary.lines.values():
        case = ET.SubElement(
            suite,
            "testcase",
            classname=line.project,
            name=f"{line.task} {line.title}".strip(),
            time=f"{line.seconds:.3f}",
        )
        if line.result == "failed":
            ET.SubElement(
                case, "failure", message=(line.detail or "failed").splitlines()[0][:200]
            ).text = line.detail
        elif line.result != "merged":
            ET.SubElement(case, "skipped", message=f"{line.result}: {line.detail}".strip(": "))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def markdown(summary: Summary) -> str:
    lines = ["### gitstate pass", "", "| task | result | attempt | seconds |", "|---|---|---:|---:|"]
    for line in summary.lines.values():
        title = line.title.replace("|", "\\|").splitlines()[0] if line.title else ""
        lines.append(
            f"| `{line.project}/{line.task}` {title} | {line.result} | {line.attempt} | {line.seconds:.1f} |"
        )
    lines += [
        "",
        f"**merged {summary.merged}**, failed {summary.failed}, released {summary.released}, "
        f"remaining {summary.remaining}; {summary.checks} check runs in {summary.seconds:.1f}s",
    ]
    if summary.breaker:
        lines.append(f"\n**Circuit breaker:** {summary.breaker}")
    return "\n".join(lines) + "\n"


class Logger:
    """Progress for a supervisor on stderr: plain lines, one JSON object per line, or, on
    a terminal, the lines with a live status line kept under them."""

    def __init__(self, fmt: str, stream: Any = sys.stderr) -> None:
        self.fmt = fmt
        self.stream = stream
        self.live = fmt == "text" and bool(getattr(stream, "isatty", lambda: False)())
        self.status: Callable[[], str] | None = None
        self._lock = threading.Lock()
        self._shown = ""

    def __call__(self, kind: str, fields: dict[str, Any]) -> None:
        if self.fmt == "json":
            text = json.dumps({"time": time.time(), "event": kind, **fields})
        else:
            message = fields.get("message") or " ".join(f"{k}={v}" for k, v in fields.items())
            text = f"{time.strftime('%H:%M:%S')} {message}"
        with self._lock:
            if self.live:
                self.stream.write("\r\x1b[K" + text + "\n" + self._shown)
                self.stream.flush()
            else:
                print(text, file=self.stream, flush=True)

    def follow(self, status: Callable[[], str], stop: threading.Event) -> None:
        """Redraw the status line every half second until ``stop`` (terminals only)."""
        if not self.live:
            return

        def loop() -> None:
            while not stop.wait(0.5):
                with self._lock:
                    self._shown = status()
                    self.stream.write("\r\x1b[K" + self._shown)
                    self.stream.flush()
            with self._lock:
                self.stream.write("\r\x1b[K")
                self.stream.flush()

        threading.Thread(target=loop, daemon=True, name="gitstate-progress").start()


def logger(fmt: str, stream: Any = sys.stderr) -> Logger:
    return Logger(fmt, stream)
