"""Benchmark: agents doing claim -> no-op -> done, against a naive worktree loop.

    python bench/bench_agents.py [--tasks 120] [--agents 1,4,20]

Baselines, measured in the same run on a repository of 100 files:
  naive loop   one task at a time: `git worktree add -b`, the no-op, `git commit`,
               `git worktree remove` (tasks per second)
  git commit   `git commit -qam` of a one-line change (for the cost of one claim)

Each agent is a `gitstate work` process; throughput is tasks / wall time from
starting the agents to the last one exiting (their start-up included). The
naive loop runs right before and right after each measurement, and the ratio
uses the mean of the two, because the disk's speed drifts. Double claims are
counted from the claim commits' trailers (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import env  # noqa: E402

from gitstate import agent, projects, tasks  # noqa: E402
from gitstate.git import Repository  # noqa: E402
from gitstate.store import Store  # noqa: E402

NAIVE = """
set -e
cd "$1"
for i in $(seq 1 "$2"); do
  git worktree add -q -b "naive-$i" "../naive-$i" 2>/dev/null
  (cd "../naive-$i" && true && git -c user.name=n -c user.email=n@example.com commit -q --allow-empty -m "task $i")
  git worktree remove --force "../naive-$i"
done
"""


def make_repo(environ: dict[str, str], tasks_count: int) -> Path:
    path = Path(tempfile.mkdtemp(prefix="gitstate-agents-")) / "repo"
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
        store = Store(repo)
        projects.create(store, "bench", {"command": "true"})
        for n in range(tasks_count):
            tasks.add(store, "bench", f"no-op {n}", None, f"t-{n:04d}")
    return path


def naive(environ: dict[str, str], count: int) -> float:
    path = make_repo(environ, 0)
    start = time.perf_counter()
    subprocess.run(["bash", "-c", NAIVE, "naive", str(path), str(count)], check=True, env=environ)
    return count / (time.perf_counter() - start)


def git_commit(environ: dict[str, str], rounds: int) -> float:
    path = make_repo(environ, 0)
    times = []
    for n in range(rounds):
        (path / "file000.txt").write_text(f"change {n}\n")
        start = time.perf_counter()
        subprocess.run(["git", "-C", str(path), "commit", "-qam", f"c{n}"], check=True, env=environ)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def claim_cost(environ: dict[str, str], rounds: int) -> tuple[float, float]:
    """Median seconds of one claim without and with its worktree (Python API, warm process)."""
    path = make_repo(environ, 2 * rounds)
    bare, full = [], []
    with Repository.discover(path, environ) as repo:
        store = Store(repo)
        for n in range(rounds):
            start = time.perf_counter()
            agent.claim(store, f"a{n}", "bench", worktree=False)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            agent.claim(store, f"b{n}", "bench")
            full.append(time.perf_counter() - start)
    return statistics.median(bare), statistics.median(full)


def throughput(environ: dict[str, str], agents: int, count: int) -> dict[str, float]:
    path = make_repo(environ, count)
    run_env = {**environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gitstate", "-C", str(path), "work", "bench", "--agent", f"agent-{n}"],
            env=run_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for n in range(agents)
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(err.decode())
    wall = time.perf_counter() - start
    log = subprocess.run(
        [
            "git",
            "-C",
            str(path),
            "log",
            "--format=%(trailers:key=Gitstate-Event,valueonly,separator=%x2C) %(trailers:key=Gitstate-Task,valueonly,separator=%x2C)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout
    claims: Counter[str] = Counter()
    done = 0
    for line in log.splitlines():  # a commit may finish one task and claim the next
        events, _, ids = line.partition(" ")
        pairs = list(zip(events.split(","), ids.split(","), strict=False))
        claims.update(task for event, task in pairs if event == "claim")
        done += sum(1 for event, _ in pairs if event == "done")
    worktrees = subprocess.run(
        ["git", "-C", str(path), "worktree", "list"], capture_output=True, text=True, check=True, env=environ
    ).stdout.count("\n")
    return {
        "agents": agents,
        "tasks": count,
        "done": done,
        "seconds": wall,
        "tasks_per_s": count / wall,
        "double_claims": sum(1 for n in claims.values() if n > 1),
        "claimed": len(claims),
        "worktrees_left": worktrees - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=120)
    parser.add_argument("--agents", default="1,4,20")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each configuration (medians are shown)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    environ = env()
    os.environ.update(environ)
    commit = git_commit(environ, 15)
    bare, full = claim_cost(environ, 15)
    # The disk's speed drifts on a shared machine, and the naive loop is mostly
    # file creation: measure it right before and after each run, and compare
    # the run with the mean of those two.
    runs = []
    for n in args.agents.split(","):
        repeats = []
        for _ in range(args.repeat):
            before = naive(environ, 40)
            run = throughput(environ, int(n), args.tasks)
            after = naive(environ, 40)
            naive_rate = (before + after) / 2
            repeats.append({**run, "naive_tasks_per_s": naive_rate, "ratio": run["tasks_per_s"] / naive_rate})
        middle = sorted(repeats, key=lambda r: r["ratio"])[len(repeats) // 2]
        runs.append(
            {
                **middle,
                "ratios": [round(r["ratio"], 2) for r in repeats],
                "double_claims": sum(r["double_claims"] for r in repeats),
                "worktrees_left": max(r["worktrees_left"] for r in repeats),
            }
        )
    naive_rate = statistics.median(r["naive_tasks_per_s"] for r in runs)
    if args.json:
        print(
            json.dumps(
                {
                    "naive_tasks_per_s": naive_rate,
                    "git_commit_s": commit,
                    "claim_s": bare,
                    "claim_with_worktree_s": full,
                    "runs": runs,
                },
                indent=2,
            )
        )
        return
    print(f"naive loop (worktree add -b, no-op, commit, remove): median {naive_rate:.1f} tasks/s")
    print(
        f"git commit: {commit * 1000:.1f} ms; claim: {bare * 1000:.1f} ms ({bare / commit:.2f}x); "
        f"claim with worktree: {full * 1000:.1f} ms ({full / commit:.2f}x)"
    )
    print(
        f"median of {args.repeat} runs each (the run with the median ratio is shown; all ratios in brackets)"
    )
    print(
        f"{'agents':>6} {'tasks':>6} {'done':>5} {'seconds':>8} {'tasks/s':>8} {'naive':>7} {'ratio':>6} {'all ratios':>20} {'double claims':>14} {'worktrees left':>15}"
    )
    for r in runs:
        print(
            f"{r['agents']:>6} {r['tasks']:>6} {r['done']:>5} {r['seconds']:>8.1f} {r['tasks_per_s']:>8.1f} "
            f"{r['naive_tasks_per_s']:>7.1f} {r['ratio']:>5.2f}x {r['ratios']!s:>20} "
            f"{r['double_claims']:>14} {r['worktrees_left']:>15}"
        )


if __name__ == "__main__":
    main()
