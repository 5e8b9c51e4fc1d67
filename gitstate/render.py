"""What commands print: JSON documents (``schema_version`` 1) and plain-text tables.

The JSON schema only grows: fields are added, never renamed or removed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from gitstate.model import Project, Status, Task, blocked_by, counts, is_ready
from gitstate.timefmt import format_duration, format_timestamp

SCHEMA_VERSION = 1


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def task_json(project: Project, task: Task, now: datetime) -> dict[str, Any]:
    return {
        "project": project.name,
        "id": task.id,
        "title": task.title,
        "status": task.status.value,
        "priority": task.priority,
        "description": task.description,
        "depends_on": list(task.depends_on),
        "requires": list(task.requires),
        "command": task.command,
        "assignee": task.assignee,
        "branch": task.branch,
        "attempts": task.attempts,
        "max_retries": project.max_retries(task),
        "timeout": project.timeout(task),
        "lease_expires": _time(task.lease_expires),
        "not_before": _time(task.not_before),
        "result": task.result,
        "error": task.error,
        "created_at": _time(task.created_at),
        "updated_at": _time(task.updated_at),
        "meta": dict(task.meta),
        "ready": is_ready(project, task, now),
        "blocked_by": blocked_by(project, task, now) if task.status == Status.PENDING else [],
    }


def project_json(project: Project, now: datetime) -> dict[str, Any]:
    s = project.settings
    return {
        "name": project.name,
        "description": s.description,
        "created_at": _time(s.created_at),
        "defaults": {
            "command": s.command,
            "check": s.check,
            "max_retries": s.max_retries,
            "timeout": s.timeout,
            "lease": s.lease,
            "requires": list(s.requires),
            "copy_files": list(s.copy_files),
            "setup": s.setup,
        },
        "hooks": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(s.hooks).items()
            if value is not None
        },
        "meta": dict(s.meta),
        "counts": counts(project, now),
    }


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(
        {"schema_version": SCHEMA_VERSION, **payload}, indent=2, ensure_ascii=False, default=str
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def quoted_title(title: str, limit: int = 60) -> str:
    """A title on one line, quoted and shortened, for commit subjects."""
    flat = " ".join(title.split())
    return f'"{flat[:limit]}…"' if len(flat) > limit else f'"{flat}"'


def first_line(text: str, limit: int = 70) -> str:
    line = text.strip().split("\n", 1)[0]
    more = "\n" in text.strip() or len(line) > limit
    return (line[: limit - 1] if len(line) > limit else line) + ("…" if more else "")


def task_rows(project: Project, tasks: Iterable[Task], now: datetime) -> list[list[object]]:
    return [
        [
            f"{project.name}/{t.id}",
            t.status.value + ("*" if is_ready(project, t, now) else ""),
            t.priority,
            t.assignee or "-",
            first_line(t.title),
        ]
        for t in tasks
    ]


TASK_HEADERS = ("TASK", "STATUS", "PRI", "ASSIGNEE", "TITLE")


def status_table(projects: Iterable[Project], now: datetime) -> str:
    headers = ["PROJECT", "TOTAL", "READY", *(s.value.upper() for s in Status)]
    rows = []
    for project in projects:
        c = counts(project, now)
        rows.append([project.name, c["total"], c["ready"], *(c[s.value] for s in Status)])
    return table(headers, rows)


def task_detail(project: Project, task: Task, now: datetime) -> str:
    data = task_json(project, task, now)
    lines = [f"{project.name}/{task.id}: {task.title}"]
    for key in ("status", "priority", "assignee", "branch", "attempts", "max_retries"):
        lines.append(f"  {key + ':':14} {data[key] if data[key] is not None else '-'}")
    lines.append(f"  {'timeout:':14} {format_duration(data['timeout'])}")
    for key in ("depends_on", "requires"):
        lines.append(f"  {key + ':':14} {', '.join(data[key]) or '-'}")
    for key in ("command", "lease_expires", "not_before", "created_at", "updated_at"):
        if data[key]:
            lines.append(f"  {key + ':':14} {data[key]}")
    if task.status == Status.PENDING:
        why = ", ".join(data["blocked_by"]) or "ready"
        lines.append(f"  {'ready:':14} {'yes' if data['ready'] else 'no, waiting for ' + why}")
    for key in ("description", "result", "error"):
        if data[key]:
            body = "\n".join("    " + line for line in str(data[key]).splitlines())
            lines.append(f"  {key}:\n{body}")
    for key, value in task.meta.items():
        lines.append(f"  meta.{key}: {value}")
    return "\n".join(lines)


def project_detail(project: Project, now: datetime) -> str:
    data = project_json(project, now)
    lines = [f"{project.name}: {project.settings.description or '(no description)'}"]
    for key, raw in data["defaults"].items():
        value = raw
        if key in ("timeout", "lease") and raw is not None:
            value = format_duration(raw)
        elif isinstance(raw, list):
            value = ", ".join(raw) or None
        lines.append(f"  {key + ':':13} {value if value is not None else '(default)'}")
    for key, raw in data["hooks"].items():
        value = ", ".join(raw) if isinstance(raw, list) else raw
        lines.append(f"  {'hooks.' + key + ':':13} {format_duration(raw) if key == 'timeout' else value}")
    c = data["counts"]
    shown = ", ".join(f"{c[s.value]} {s.value}" for s in Status if c[s.value])
    lines.append(f"  {'tasks:':13} {c['total']} ({shown or 'none'}); {c['ready']} ready")
    return "\n".join(lines)
