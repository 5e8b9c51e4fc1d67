"""Benchmark: state writes and reads against a plain `git commit` and the interpreter's start.

    python bench/bench_store.py [--rounds 15]

Every figure is a median of interleaved rounds measured in this one run, and
every ratio divides two figures from this run, so a noisy shared machine moves
both sides together. Prints a table; --json prints the numbers.

Baselines:
  git commit   `git commit -qam` of a one-line change to the same STATE.yaml
  import       `python -c "import git, click"` (the interpreter plus the libraries)

"api write" is a long-running writer's steady state (the goal applies to it);
"api write, after another writer" is its first write after a person's commit
moved the branch and rewrote the index (no goal; shown so the cost is known).
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitstate import tasks  # noqa: E402
from gitstate.git import Repository  # noqa: E402
from gitstate.store import Store  # noqa: E402

GOALS = {  # (tasks, what) -> highest acceptable ratio, from the issue
    (100, "api write"): 2.0,
    (1000, "api write"): 3.0,
    (100, "cli task add"): 2.0,
    (1000, "cli task add"): 3.0,
    (100, "cli task edit"): 2.0,
    (1000, "cli task edit"): 3.0,
    (1000, "cli next --json"): 2.0,
    (10000, "cli next --json"): 3.0,
    (1000, "cli status --json"): 2.0,
    (10000, "cli status --json"): 3.0,
}


def env() -> dict[str, str]:
    home = tempfile.mkdtemp(prefix="gitstate-bench-home-")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITSTATE_"))},
        "HOME": home,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }


def state_yaml(count: int) -> str:
    out = ["version: 1\nproject: bench\ndescription: benchmark project\ntasks:\n"]
    for i in range(count):
        out.append(
            f"  t-{i:07d}:\n    title: Task number {i} of the benchmark\n    status: pending\n"
            f"    priority: {i % 10}\n    description: Refactor module {i} and add tests for it.\n"
            "    created_at: '2026-01-01T00:00:00Z'\n    updated_at: '2026-01-01T00:00:00Z'\n"
        )
    return "".join(out)


def make_repo(count: int, environ: dict[str, str]) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"gitstate-bench-{count}-"))
    run = lambda *a: subprocess.run(
        ["git", "-C", str(path), *a], check=True, env=environ, capture_output=True
    )
    run("init", "-q", "-b", "main")
    (path / "projects/bench").mkdir(parents=True)
    (path / "projects/bench/STATE.yaml").write_text(state_yaml(count))
    run("add", "-A")
    run("commit", "-qm", "benchmark state")
    gitstate(path, environ, "init", "--no-hooks")  # the baseline is a plain `git commit`
    return path


def gitstate(path: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gitstate", "-C", str(path), *args],
        env=environ,
        capture_output=True,
        check=True,
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# Children are started by a small launcher process, not by this one: a child's
# peak RSS counts the memory of the process it was forked from, and this
# process holds the benchmark's data.
LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    argv, env = json.loads(line)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    print(json.dumps([wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status), err]), flush=True)
"""
_launcher: subprocess.Popen[str] | None = None


def child(argv: list[str], environ: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak resident KiB of one child process."""
    global _launcher  # noqa: PLW0603
    if _launcher is None:
        _launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    assert _launcher.stdin is not None and _launcher.stdout is not None
    _launcher.stdin.write(json.dumps([argv, environ]) + "\n")
    _launcher.stdin.flush()
    wall, rss, code, err = json.loads(_launcher.stdout.readline())
    if code not in (0, 3):
        raise RuntimeError(f"{argv} failed ({code}): {err}")
    return wall, rss


def git_commit_once(path: Path, environ: dict[str, str], n: int) -> float:
    state = path / "projects/bench/STATE.yaml"
    text = state.read_text()
    marker = "    priority: 0\n"
    at = text.index(marker)
    state.write_text(text[:at] + f"    priority: {100 + n}\n" + text[at + len(marker) :])
    return timed(
        lambda: subprocess.run(
            ["git", "-C", str(path), "commit", "-qam", f"edit {n}"], env=environ, check=True
        )
    )


def measure(count: int, rounds: int, environ: dict[str, str]) -> dict[str, object]:
    path = make_repo(count, environ)
    py = [sys.executable]
    cli = [*py, "-m", "gitstate", "-C", str(path)]
    with Repository.discover(path, environ) as handle:
        store = Store(handle)
        cold = timed(lambda: store.read("bench"))
        samples: dict[str, list[float]] = {}
        memory: dict[str, int] = {}

        def add(name: str, seconds: float, rss: int | None = None) -> None:
            samples.setdefault(name, []).append(seconds)
            if rss is not None:
                memory[name] = max(memory.get(name, 0), rss)

        def edit(priority: int) -> None:
            tasks.edit(store, "bench", "t-0000001", {"priority": priority})

        for n in range(rounds):
            add("git commit", git_commit_once(path, environ, n))
            store.read("bench")  # parse the person's commit once, as the next command would
            add("import", *child([*py, "-c", "import git, click"], environ))
            if count <= 1000:
                # The first write after the person's commit finds a new branch tip,
                # new trees and a rewritten index; the next ones are a long-running
                # writer's steady state.
                add("api write, after another writer", timed(lambda n=n: edit(1000 + n)))
                for k in range(3):
                    add("api write", timed(lambda n=n, k=k: edit(2000 + 3 * n + k)))
                add("cli task add", *child([*cli, "task", "add", "bench", f"added {n}"], environ))
                add(
                    "cli task edit",
                    *child([*cli, "task", "edit", "bench", "t-0000002", "--priority", str(n)], environ),
                )
            if count >= 1000:
                add("cli next --json", *child([*cli, "next", "--json"], environ))
                add("cli status --json", *child([*cli, "status", "--json"], environ))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {"tasks": count, "cold_parse_s": cold, "median_s": medians, "peak_kib": memory}


def report(results: list[dict[str, object]]) -> str:
    lines = [
        f"{'tasks':>6}  {'what':<32} {'median':>9}  {'baseline':<12} {'ratio':>6}  {'goal':>5}  {'peak RSS':>9}",
    ]
    for result in results:
        medians: dict[str, float] = result["median_s"]  # type: ignore[assignment]
        memory: dict[str, int] = result["peak_kib"]  # type: ignore[assignment]
        count = int(result["tasks"])  # type: ignore[call-overload]
        for name, seconds in medians.items():
            if name in ("git commit", "import"):
                base = ""
                ratio = ""
            else:
                base_name = "git commit" if name.startswith("api write") else "import"
                base = base_name
                ratio = f"{seconds / medians[base_name]:.2f}x"
            goal = GOALS.get((count, name))
            rss = f"{memory[name] / 1024:.0f} MiB" if name in memory else ""
            lines.append(
                f"{count:>6}  {name:<32} {seconds * 1000:>7.1f}ms  {base:<12} {ratio:>6}  "
                f"{'' if goal is None else f'<={goal:g}x':>5}  {rss:>9}"
            )
        lines.append(
            f"{count:>6}  {'cold parse':<32} {float(result['cold_parse_s']) * 1000:>7.1f}ms  (once per new blob: a person's commit, a merge, a fresh clone)"
        )  # type: ignore[arg-type]
    return "\n".join(lines)


def main() -> None:
    child([sys.executable, "-c", "pass"], env())  # start the launcher while this process is small
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    environ = env()
    results = [measure(int(size), args.rounds, environ) for size in args.sizes.split(",")]
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    main()
