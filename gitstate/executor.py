"""Running one task's command: its own process group, a timeout, a redacted log.

The command is the project's (or the task's) shell command, run with
``/bin/sh -c`` in the task's worktree. Task text reaches it only through
environment variables (``GITSTATE_TITLE``...), never pasted into the command
string, so a title like ``$(rm -rf ~)`` is inert data.

The command gets a new session, so it and everything it starts share one
process group: a timeout, a lost lease or a stop signal ends the whole group
(SIGTERM, then SIGKILL after a grace period), and nothing it started outlives
it. Output (stdout and stderr together) is redacted line by line before it
reaches the log file; the log's tail becomes the task's result or error.

``spawn_detached`` starts a process that outlives the caller and is never
waited for (lifecycle hooks): gitstate's pipeline must not wait on them.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gitstate.redact import Redactor

TAIL_LINES = 30
TAIL_CHARS = 2000
GRACE = 5.0


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``exited`` (see ``code``), ``timeout``, ``lost_lease`` or ``stopped``."""

    reason: str
    code: int | None
    tail: str
    log: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.code == 0

    def summary(self) -> str:
        if self.reason == "exited":
            head = "exited 0" if self.code == 0 else f"exited with code {self.code}"
        else:
            head = {"timeout": "timed out", "lost_lease": "lost its lease", "stopped": "stopped"}[self.reason]
        return f"{head} after {self.seconds:.1f}s" + (f":\n{self.tail}" if self.tail else "")


def run(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log: Path,
    heartbeat: Callable[[], bool] | None = None,
    every: float = 60.0,
    stop: threading.Event | None = None,
    grace: float = GRACE,
    stdin: bytes | None = None,
) -> Outcome:
    """Run ``command``; ``heartbeat`` is called every ``every`` seconds and returns
    False when the run must end (the lease was lost). ``stdin`` is fed to the
    command (default: nothing, /dev/null)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if stdin is not None:
            # From a thread: a command that never reads its input must not block the run.
            threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        reader = threading.Thread(target=_copy, args=(proc.stdout, out, tail), daemon=True)
        reader.start()
        reason = _supervise(proc, start, timeout=timeout, heartbeat=heartbeat, every=every, stop=stop)
        if reason != "exited":
            _end_group(proc, grace)
        code = proc.wait()
        _kill_group(proc.pid, signal.SIGKILL)  # whatever it left running in the background
        reader.join(timeout=2)
    text = "".join(tail).strip()
    return Outcome(
        reason,
        code if reason == "exited" else None,
        text[-TAIL_CHARS:],
        log,
        time.monotonic() - start,
    )


def _supervise(
    proc: subprocess.Popen[bytes],
    start: float,
    *,
    timeout: float,
    heartbeat: Callable[[], bool] | None,
    every: float,
    stop: threading.Event | None,
) -> str:
    next_beat = start + every
    while True:
        now = time.monotonic()
        if stop is not None and stop.is_set():
            return "stopped"
        if now - start >= timeout:
            return "timeout"
        if heartbeat is not None and now >= next_beat:
            if not heartbeat():
                return "lost_lease"
            next_beat = now + every
        wait = min(0.1, max(0.0, start + timeout - now))
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        return "exited"


def _feed(stream: IO[bytes] | None, data: bytes) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError):  # BrokenPipeError: the command did not want it all
        stream.write(data)
    with contextlib.suppress(OSError):
        stream.close()


def _copy(stream: IO[bytes] | None, out: IO[str], tail: collections.deque[str]) -> None:
    if stream is None:
        return
    redactor = Redactor()
    for raw in iter(stream.readline, b""):
        line = redactor.feed(raw.decode("utf-8", errors="replace"))
        out.write(line)
        out.flush()
        tail.append(line)
    stream.close()


def _end_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    _kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _kill_group(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return


# The detached process is started by a short-lived /bin/sh that puts it in the
# background and exits: it is reparented to init, so it is never a zombie of a
# long-running gitstate and nobody has to wait for it. The explicit ``0<&3``
# keeps the payload on its stdin (sh gives background jobs /dev/null otherwise).
_DETACH = 'exec 3<&0; "$@" 0<&3 3<&- &'


def spawn_detached(argv: Sequence[str], *, env: Mapping[str, str], stdin: bytes, cwd: Path) -> None:
    """Start ``argv`` in a new session with ``stdin`` as its input and no output; return at once."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", _DETACH, "sh", *argv],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # More than a pipe holds (64 KiB) would block until the command reads it:
    # a thread feeds it instead, and, not being a daemon, finishes before exit.
    threading.Thread(target=_feed, args=(proc.stdin, stdin), name="detached-stdin").start()
    proc.wait()  # the shell, which exits once the command is in the background
