"""Locks between processes: exclusion, waking waiters, giving up after the timeout."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gitstate import locks
from gitstate.errors import Busy

HOLD = "import fcntl,os,sys,time; fd=os.open(sys.argv[1],os.O_RDWR|os.O_CREAT); fcntl.flock(fd,fcntl.LOCK_EX); print('held',flush=True); time.sleep(float(sys.argv[2]))"


def holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_only_one_holder_at_a_time(tmp_path: Path) -> None:
    path = locks.lock_path(tmp_path, "x")
    inside = []
    peak = []

    def work() -> None:
        for _ in range(50):
            with locks.held(path, 10, what="x"):
                inside.append(1)
                peak.append(len(inside))
                time.sleep(0.0005)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(peak) == 1 and len(peak) == 200


def test_a_waiter_wakes_when_the_holder_dies(tmp_path: Path) -> None:
    path = locks.lock_path(tmp_path, "x")
    proc = holder(path, 0.3)
    start = time.monotonic()
    with locks.held(path, 10, what="x"):
        waited = time.monotonic() - start
    proc.wait()
    assert 0.2 < waited < 2


def test_timeout_gives_up_and_leaves_the_lock_usable(tmp_path: Path) -> None:
    path = locks.lock_path(tmp_path, "x")
    proc = holder(path, 1.0)
    said: list[str] = []
    with (
        pytest.raises(Busy, match=r"another gitstate process has held the thing for 0.2s"),
        locks.held(path, 0.2, what="the thing", notify=said.append),
    ):
        pass
    assert said == []  # under a second: no word
    proc.wait()
    time.sleep(0.1)  # the abandoned waiter takes the lock when it frees, then lets go
    start = time.monotonic()
    with locks.held(path, 5, what="x"):
        assert time.monotonic() - start < 0.5
    assert locks.is_free(path)
