"""Prometheus metrics for ``run`` and ``daemon`` (``--metrics-port``), served on 127.0.0.1 only.

Uses prometheus_client (``pip install 'gitstate[metrics]'``): tasks by project
and status, claims, merges, failures, and check durations.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from gitstate.errors import InvalidInput
from gitstate.model import Project, Status

if TYPE_CHECKING:
    from gitstate.coordinator import Report
    from gitstate.worker import Ran


class Metrics:
    def __init__(self, port: int) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise InvalidInput(
                "--metrics-port needs prometheus_client: pip install 'gitstate[metrics]'"
            ) from None
        self.registry = prom.CollectorRegistry()
        self.tasks_gauge = prom.Gauge(
            "gitstate_tasks", "Tasks by project and status", ["project", "status"], registry=self.registry
        )
        self.claims = prom.Counter(
            "gitstate_claims", "Tasks claimed by this process's agents", registry=self.registry
        )
        self.failures = prom.Counter("gitstate_failures", "Task attempts that failed", registry=self.registry)
        self.merges = prom.Counter("gitstate_merges", "Task branches merged", registry=self.registry)
        self.checks = prom.Counter(
            "gitstate_check_runs", "Check runs by the coordinator", registry=self.registry
        )
        self.check_seconds = prom.Histogram(
            "gitstate_check_duration_seconds", "How long checks took", registry=self.registry
        )
        try:
            self.server, self.thread = prom.start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:
            raise InvalidInput(f"--metrics-port {port}: {exc.strerror}; pick another port") from None

    def tasks(self, projects: Iterable[Project], now: datetime) -> None:
        del now
        for project in projects:
            counts = dict.fromkeys(Status, 0)
            for task in project.tasks.values():
                counts[task.status] += 1
            for status, count in counts.items():
                self.tasks_gauge.labels(project.name, status.value).set(count)

    def ran(self, ran: Ran) -> None:
        self.claims.inc()
        if ran.outcome is not None and not ran.outcome.ok and ran.outcome.reason in ("exited", "timeout"):
            self.failures.inc()

    def merged(self, report: Report) -> None:
        self.merges.inc(len(report.merged()))
        self.checks.inc(report.checks)
        for seconds in report.check_seconds:
            self.check_seconds.observe(seconds)

    def close(self) -> None:
        self.server.shutdown()
