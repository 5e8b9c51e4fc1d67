"""File locks between gitstate processes on one machine (``flock``).

Locks live under ``<git-common-dir>/gitstate/locks``. The kernel drops a
``flock`` when its holder dies, so a killed process never leaves a lock
behind. Across machines nothing here applies: there the compare-and-swap on
the branch is what keeps writers apart.

Quick probes (is anyone working on this task? is this agent name taken?) use
filelock. Waiting for a contended lock does not: filelock waits by polling,
which either leaves the lock idle between polls (gitstate holds it for
milliseconds) or, with many agents polling often, burns the CPU they need.
Here the waiter blocks in the kernel, which wakes it the moment the lock is
free; a helper thread makes that wait give up after the timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from gitstate.errors import Busy

SPEAK_AFTER = 1.0


def lock_path(common_dir: Path, *parts: str) -> Path:
    path = common_dir.joinpath("gitstate", "locks", *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".lock")


class _Waiter:
    """Blocks on ``flock`` in a thread; whoever is late (waiter or taker) cleans up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.mutex = threading.Lock()
        self.state = "waiting"  # then "held", or "abandoned" when the taker gave up
        self.done = threading.Event()

    def run(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        with self.mutex:
            if self.state == "abandoned":
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
                return
            self.state = "held"
        self.done.set()

    def take(self, timeout: float, on_slow: Callable[[], None]) -> bool:
        """Wait up to ``timeout`` for the lock; ``on_slow`` runs once the wait gets long."""
        if not self.done.wait(min(timeout, SPEAK_AFTER)) and timeout > SPEAK_AFTER:
            on_slow()
            self.done.wait(timeout - SPEAK_AFTER)
        with self.mutex:
            if self.state == "held":
                return True
            self.state = "abandoned"
            return False


@contextlib.contextmanager
def held(
    path: Path,
    timeout: float,
    *,
    what: str,
    notify: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the lock at ``path``; Busy after ``timeout`` seconds, naming ``what``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        waiter = _Waiter(fd)
        threading.Thread(target=waiter.run, daemon=True, name="gitstate-lock").start()

        def slow() -> None:
            if notify is not None:
                notify(f"waiting for another gitstate process holding {what} ({path})")

        if not waiter.take(timeout, slow):  # the waiting thread now owns (and closes) fd
            raise Busy(
                f"another gitstate process has held {what} for {timeout:g}s ({path}); "
                "retry, or raise GITSTATE_LOCK_TIMEOUT"
            ) from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_free(path: Path) -> bool:
    """Whether nobody holds the lock at ``path`` (taken and dropped at once to find out)."""
    from filelock import FileLock, Timeout

    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


@contextlib.contextmanager
def exclusive(path: Path, refusal: str) -> Iterator[None]:
    """Hold the lock at ``path`` or fail at once with ``refusal`` (Busy)."""
    from filelock import FileLock, Timeout

    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise Busy(refusal) from None
    try:
        yield
    finally:
        lock.release()
