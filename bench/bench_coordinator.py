"""Benchmark: the coordinator and the daemon.

    python bench/bench_coordinator.py

Prints, from one run:
  * merges per second with no check (completed branches landed by `gitstate merge`);
  * check runs used to land 32 completed branches with 0, 1 and 3 bad ones
    (a bad branch makes the check fail), against 2k*log2(n)+1;
  * the resident memory of a `gitstate daemon` running 20 agents;
  * the time from SIGKILL of a daemon holding a task, and its restart, to its
    first claim.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import env  # noqa: E402

from gitstate import agent, projects, tasks  # noqa: E402
from gitstate.coordinator import Coordinator  # noqa: E402
from gitstate.git import Repository  # noqa: E402
from gitstate.store import Store  # noqa: E402


def repo_with(environ: dict[str, str], check: str | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix="gitstate-coord-")) / "repo"
    path.mkdir()
    run = lambda *a: subprocess.run(
        ["git", "-C", str(path), *a], check=True, env=environ, capture_output=True
    )
    run("init", "-q", "-b", "main")
    for n in range(100):
        (path / f"file{n:03d}.txt").write_text(f"content {n}\n")
    run("add", "-A")
    run("commit", "-qm", "a repository of 100 files")
    with Repository.discover(path, environ) as repo:
        projects.init(repo, "main", Store(repo).clock)
        projects.create(Store(repo), "bench", {"check": check} if check else None)
    return path


def completed_branches(path: Path, environ: dict[str, str], count: int, bad: set[int]) -> None:
    with Repository.discover(path, environ) as repo:
        store = Store(repo)
        for n in range(count):
            tasks.add(store, "bench", f"task {n}", {"priority": count - n}, f"t-{n:03d}")
        for n in range(count):
            claimed = agent.claim(store, "bench-agent", "bench")
            assert claimed.worktree is not None
            (claimed.worktree.path / f"new{n:03d}.txt").write_text(f"{n}\n")
            if n in bad:
                (claimed.worktree.path / "bad.txt").write_text("makes the check fail\n")
            agent.done(store, "bench", claimed.task.id, agent="bench-agent")


def merges_per_second(environ: dict[str, str], count: int) -> float:
    path = repo_with(environ, None)
    completed_branches(path, environ, count, set())
    with Repository.discover(path, environ) as repo:
        start = time.perf_counter()
        report = Coordinator(Store(repo)).run()
        seconds = time.perf_counter() - start
    assert len(report.merged()) == count
    return count / seconds


def check_runs(environ: dict[str, str], count: int, bad: set[int]) -> tuple[int, int]:
    path = repo_with(environ, "test ! -e bad.txt")
    completed_branches(path, environ, count, bad)
    with Repository.discover(path, environ) as repo:
        report = Coordinator(Store(repo)).run()
    assert len(report.merged()) == count - len(bad)
    return report.checks, len(report.merged())


def daemon_memory(environ: dict[str, str], agents: int) -> float:
    path = repo_with(environ, None)
    with Repository.discover(path, environ) as repo:
        store = Store(repo)
        projects.edit(store, "bench", {"command": "sleep 1"})
        for n in range(agents * 3):
            tasks.add(store, "bench", f"task {n}", None, f"t-{n:03d}")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gitstate",
            "-C",
            str(path),
            "daemon",
            "--agents",
            str(agents),
            "--grace",
            "1s",
        ],
        env={**environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        peak = max(peak, rss)
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return peak / 1024


def restart_to_claim(environ: dict[str, str]) -> float:
    path = repo_with(environ, None)
    with Repository.discover(path, environ) as repo:
        store = Store(repo)
        projects.edit(store, "bench", {"command": "sleep 600", "lease": 3600})
        tasks.add(store, "bench", "held when the daemon dies", None, "t-held")
    command = [sys.executable, "-m", "gitstate", "-C", str(path), "daemon", "--agents", "1", "--grace", "1s"]
    run_env = {**environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        command, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    with Repository.discover(path, environ) as repo:
        store = Store(repo)
        while store.read("bench").tasks["t-held"].attempts < 1:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the daemon and the task it ran
        first.wait()
        start = time.perf_counter()
        second = subprocess.Popen(
            command, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        while store.read("bench").tasks["t-held"].attempts < 2:
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=60)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--branches", type=int, default=64, help="branches for the merge rate")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    environ = env()
    os.environ.update(environ)
    rate = merges_per_second(environ, args.branches)
    checks = {k: check_runs(environ, 32, bad) for k, bad in ((0, set()), (1, {13}), (3, {3, 17, 28}))}
    memory = daemon_memory(environ, 20)
    restarts = [restart_to_claim(environ) for _ in range(3)]
    result = {
        "merges_per_second": rate,
        "check_runs": {k: v[0] for k, v in checks.items()},
        "daemon_rss_mib_20_agents": memory,
        "restart_to_first_claim_s": statistics.median(restarts),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"merges per second, no check ({args.branches} branches): {rate:.1f}  (goal >= 20)")
    for k, (runs, merged) in checks.items():
        bound = 2 * k * math.log2(32) + 1
        print(f"32 branches, {k} bad: {runs} check runs, {merged} merged  (2k*log2(n)+1 = {bound:.0f})")
    print(f"daemon with 20 agents: peak RSS {memory:.0f} MiB  (goal < 100)")
    print(
        f"SIGKILL, restart, first claim: median {statistics.median(restarts):.2f}s of {len(restarts)}  (goal < 2)"
    )


if __name__ == "__main__":
    main()
