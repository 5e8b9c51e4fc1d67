"""Lifecycle hooks: telling a command or a webhook that a task was claimed, completed, failed or merged.

A project's ``hooks:`` in STATE.yaml (``model.Hooks``) name a shell command per
event (``on_claim``, ``on_complete``, ``on_fail``, ``on_merge``) and a webhook.
``fire`` is called once the state commit that made the event is published. It
builds the event's JSON payload, every text in it redacted, and hands it to a
detached helper process (this module run as a script, started through
``executor.spawn_detached``), then returns: a slow or broken hook never holds
the pipeline up and never changes state.

The helper runs the command with the payload on stdin, a summary in
``GITSTATE_EVENT``, ``GITSTATE_PROJECT``, ``GITSTATE_TASK``, ``GITSTATE_STATUS``,
``GITSTATE_COMMIT`` and ``GITSTATE_AGENT``, the repository's top level as its
directory, and none of the caller's ``GIT_*`` or ``GITSTATE_*`` variables. It
POSTs the same payload to the webhook. Both get the hook timeout. Whatever goes
wrong is written, redacted, to ``<git-common-dir>/gitstate/hooks.log``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gitstate import __version__, executor
from gitstate.errors import InvalidInput
from gitstate.model import HOOK_EVENTS, Hooks, Project, Task
from gitstate.redact import redact
from gitstate.timefmt import format_timestamp

if TYPE_CHECKING:
    from gitstate.store import Store

SCHEMA_VERSION = 1
LOG_NAME = "hooks.log"
LOG_LIMIT = 1024 * 1024  # bytes; the log is rotated to hooks.log.1 beyond this
TEXT_LIMIT = 4000
KILL_GRACE = 2.0
_ROOT = str(Path(__file__).resolve().parent.parent)

# -- the CLI's options -----------------------------------------------------------------------------


def parse_option(text: str) -> tuple[str, str | None]:
    """``EVENT=COMMAND`` (``--hook``) as a ``hooks:`` entry: ``("on_merge", "make deploy")``.

    EVENT is claim, complete, fail or merge (``on_`` in front is accepted); an
    empty COMMAND gives None, which removes that hook.
    """
    event, sep, command = text.partition("=")
    event = event.strip().removeprefix("on_")
    if not sep or not event:
        raise InvalidInput(
            "--hook must look like EVENT=COMMAND, e.g. --hook merge='make deploy'; "
            f"events: {', '.join(HOOK_EVENTS)}"
        )
    if event not in HOOK_EVENTS:
        guess = difflib.get_close_matches(event, HOOK_EVENTS, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise InvalidInput(f"--hook: unknown event {event!r}{hint}; events: {', '.join(HOOK_EVENTS)}")
    return f"on_{event}", command or None


def option_fields(
    hooks: Iterable[str] = (),
    webhook: str | None = None,
    events: str | Sequence[str] | None = None,
    timeout: str | None = None,
) -> dict[str, Any]:
    """``projects.create``/``edit`` fields from ``--hook`` (repeatable), ``--webhook``,
    ``--hook-events`` and ``--hook-timeout``; ``{}`` when none was given.

    An empty ``--webhook`` removes the webhook; ``--hook-events all`` (or empty)
    sends it every event again. Values are checked by ``projects``.
    """
    entries: dict[str, Any] = {}
    for text in hooks:
        key, command = parse_option(text)
        if key in entries:
            raise InvalidInput(f"--hook {key.removeprefix('on_')} is given twice; give each event once")
        entries[key] = command
    if webhook is not None:
        entries["webhook"] = webhook or None
    if events is not None:
        names = [e.strip() for e in events.split(",")] if isinstance(events, str) else list(events)
        names = [name for name in names if name]
        entries["events"] = None if names in ([], ["all"]) else names
    if timeout is not None:
        entries["timeout"] = timeout or None
    return {"hooks": entries} if entries else {}


# -- firing ----------------------------------------------------------------------------------------


def fire(
    store: Store, event: str, project: Project, task: Task, *, commit: str, agent: str | None = None
) -> None:
    """Tell ``project``'s hooks that ``task`` had ``event`` in ``commit``; returns at once.

    Call it after that commit is published. It never raises: a hook that cannot
    even be started is logged and forgotten.
    """
    hooks = project.settings.hooks
    if hooks.command(event) is None and not hooks.posts(event):
        return
    log = log_path(store.repo.common_dir)
    where = f"{project.name}/{task.id} {event}"
    try:
        body = payload(event, project.name, task, commit=commit, agent=agent, now=store.clock.now())
        _spawn(store, hooks, event, body, log=log, where=where)
    except Exception as exc:  # noqa: BLE001 (a hook must never fail the change that made the event)
        write_log(log, where, f"could not start the hook: {exc}")


def payload(
    event: str, project: str, task: Task, *, commit: str, agent: str | None, now: datetime
) -> dict[str, Any]:
    """The event as hooks receive it (JSON-ready); every text is redacted."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event": event,
        "project": _clean(project),
        "task": {
            "id": task.id,
            "title": _clean(task.title),
            "status": task.status.value,
            "priority": task.priority,
            "assignee": _clean(task.assignee),
            "branch": _clean(task.branch),
            "attempts": task.attempts,
            "result": _clean(task.result),
            "error": _clean(task.error),
        },
        "commit": commit,
        "agent": _clean(agent),
        "time": format_timestamp(now),
    }


def hook_environment(environ: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, str]:
    """``environ`` without git's and gitstate's own variables, plus the event's summary."""
    env = {name: value for name, value in environ.items() if not name.startswith(("GIT_", "GITSTATE_"))}
    env.update(
        GITSTATE_EVENT=body["event"],
        GITSTATE_PROJECT=body["project"],
        GITSTATE_TASK=body["task"]["id"],
        GITSTATE_STATUS=body["task"]["status"],
        GITSTATE_COMMIT=body["commit"],
        GITSTATE_AGENT=body["agent"] or "",
    )
    return env


def resolve_webhook(webhook: str, environ: Mapping[str, str]) -> str | None:
    """The URL ``webhook`` names: itself, or the value of ``$NAME`` (None when unset or empty)."""
    if not webhook.startswith("$"):
        return webhook
    return environ.get(webhook[1:]) or None


def log_path(common_dir: Path) -> Path:
    return common_dir / "gitstate" / LOG_NAME


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    clean = redact(text)
    return clean if len(clean) <= TEXT_LIMIT else clean[:TEXT_LIMIT] + "…"


def _spawn(store: Store, hooks: Hooks, event: str, body: dict[str, Any], *, log: Path, where: str) -> None:
    command = hooks.command(event)
    url = None
    if hooks.webhook is not None and hooks.posts(event):
        url = resolve_webhook(hooks.webhook, os.environ)
        if url is None:
            write_log(
                log, where, f"webhook {hooks.webhook}: the variable is not set or empty; nothing was posted"
            )
        elif urlsplit(url).scheme not in ("http", "https"):
            write_log(log, where, f"webhook {hooks.webhook}: not an http(s) URL; nothing was posted")
            url = None
    if command is None and url is None:
        return
    tree = store.repo.main_worktree()
    envelope = {
        "payload": body,
        "command": command,
        "webhook": url,
        "label": _label(hooks.webhook),
        "timeout": hooks.seconds(),
        "cwd": str(tree.path if tree is not None else store.repo.common_dir),
        "log": str(log),
        "where": where,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    executor.spawn_detached(
        _helper(),
        env=hook_environment(os.environ, body),
        stdin=json.dumps(envelope, ensure_ascii=False).encode(),
        cwd=log.parent,  # not the repository: Python must not import anything from there
    )


def _helper() -> list[str]:
    # -P keeps the working directory off sys.path; the path inserted is this
    # gitstate's own, so the helper runs the same code as its caller.
    code = f"import sys; sys.path.insert(0, {_ROOT!r}); from gitstate.lifecycle import main; sys.exit(main())"
    return [sys.executable, "-P", "-c", code]


def _label(webhook: str | None) -> str:
    """How the log names a webhook: ``$NAME``, or only the scheme and host of a URL."""
    if webhook is None or webhook.startswith("$"):
        return webhook or ""
    parts = urlsplit(webhook)
    return f"{parts.scheme}://{parts.hostname}"


def write_log(log: Path, where: str, message: str) -> None:
    """Append one redacted entry to the hooks log (rotated past ``LOG_LIMIT``); never raises."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = redact(f"{stamp} {where}: {message}").rstrip("\n").replace("\n", "\n    ") + "\n"
    with contextlib.suppress(OSError):
        log.parent.mkdir(parents=True, exist_ok=True)
        if log.exists() and log.stat().st_size > LOG_LIMIT:
            os.replace(log, log.with_name(log.name + ".1"))
        with open(log, "a", encoding="utf-8") as out:
            out.write(text)


# -- the detached helper ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    """What the helper was handed: the payload to deliver and where to report problems."""

    body: bytes
    timeout: float
    log: Path
    where: str

    def report(self, message: str) -> None:
        write_log(self.log, self.where, message)


def main() -> int:
    """The helper: read the envelope from stdin, run the command and post the webhook."""
    try:
        envelope = json.loads(sys.stdin.buffer.read())
        event = _Event(
            json.dumps(envelope["payload"], ensure_ascii=False).encode(),
            float(envelope["timeout"]),
            Path(envelope["log"]),
            str(envelope["where"]),
        )
    except (ValueError, KeyError, TypeError, OSError):
        return 2
    jobs = []
    if envelope.get("command"):
        run = functools.partial(_run_command, event, str(envelope["command"]), Path(envelope["cwd"]))
        jobs.append(threading.Thread(target=_guarded, args=(event, run), daemon=True))
    if envelope.get("webhook"):
        post = functools.partial(_post, event, str(envelope["webhook"]), str(envelope.get("label", "")))
        jobs.append(threading.Thread(target=_guarded, args=(event, post), daemon=True))
    for job in jobs:
        job.start()
    deadline = time.monotonic() + event.timeout + KILL_GRACE + 1.0
    for job in jobs:
        job.join(max(0.0, deadline - time.monotonic()))
        if job.is_alive():
            event.report(f"a hook was still running after {event.timeout:g}s; left behind")
    return 0


def _guarded(event: _Event, job: Callable[[], None]) -> None:
    try:
        job()
    except Exception as exc:  # noqa: BLE001 (the helper's failures are logged, never raised)
        event.report(f"hook failed: {type(exc).__name__}: {exc}")


def _run_command(event: _Event, command: str, cwd: Path) -> None:
    output = event.log.parent / "hook-runs" / f"{os.getpid()}-{threading.get_ident()}.out"
    try:
        outcome = executor.run(
            command,
            cwd=cwd,
            env=os.environ,
            timeout=event.timeout,
            log=output,
            grace=KILL_GRACE,
            stdin=event.body,
        )
    finally:
        with contextlib.suppress(OSError):
            output.unlink()
    if not outcome.ok:
        event.report(f"command {outcome.summary()}")


def _post(event: _Event, url: str, label: str) -> None:
    # Imported here: only the helper posts, and http.client costs every command start-up time.
    import http.client
    import urllib.error
    import urllib.request

    class SameScheme(urllib.request.HTTPRedirectHandler):
        """Follows redirects only within the request's scheme (never https to http)."""

        def redirect_request(  # noqa: PLR0917 (urllib's signature)
            self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
        ) -> urllib.request.Request | None:
            if urlsplit(newurl).scheme != urlsplit(req.full_url).scheme:
                raise urllib.error.HTTPError(
                    req.full_url, code, "redirect to another scheme refused", headers, fp
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    if urlsplit(url).scheme not in ("http", "https"):
        event.report(f"webhook {label}: not an http(s) URL; nothing was posted")
        return
    request = urllib.request.Request(  # noqa: S310 (the scheme was checked: http or https only)
        url,
        data=event.body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"gitstate/{__version__}"},
    )
    opener = urllib.request.build_opener(SameScheme)
    try:
        with opener.open(request, timeout=event.timeout) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        event.report(f"webhook {label} answered HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        event.report(f"webhook {label} failed: {reason}")


if __name__ == "__main__":
    sys.exit(main())
