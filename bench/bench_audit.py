"""Benchmark: reading the audit log of a long history.

    python bench/bench_audit.py [--events 10000] [--rounds 7]

Builds a repository whose state branch holds EVENTS commits carrying
gitstate's trailers (written with `git fast-import`: the messages are exactly
what gitstate writes; the trees are the project's STATE.yaml), then times, in
interleaved rounds, medians of:
  * `git log --first-parent --format=%H%(trailers)` over the whole history,
    the baseline: what any reader of the trailers must at least do;
  * `python -c "import click"`, the interpreter's start with the CLI library;
  * `gitstate log --json` (every event, one JSON object per line);
  * `gitstate log --task ID --json` (one task's events);
  * `gitstate task history PROJECT ID --json` (each state of one task).
"""

from __future__ import annotations

import argparse
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

from gitstate import projects  # noqa: E402
from gitstate.git import Repository  # noqa: E402
from gitstate.store import Store  # noqa: E402

EVENTS = ("add", "claim", "done", "merge")
MOVES = {"add": "new -> pending", "claim": "pending -> in_progress", "done": "in_progress -> completed"}
MOVES["merge"] = "completed -> merged"


def build(events: int, environ: dict[str, str]) -> tuple[Path, str]:
    """A repository with ``events`` event commits on main, four per task; returns (path, a task id)."""
    path = Path(tempfile.mkdtemp(prefix="gitstate-audit-")) / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=environ)
    with Repository.discover(path, environ) as repo:
        projects.init(repo, "main", Store(repo).clock)
        projects.create(Store(repo), "bench")
        head = Store(repo).head()
    stream: list[bytes] = []
    lines = ["version: 1", "project: bench", "tasks:"]
    for n in range(events):
        task, kind = f"t-{n // 4:07d}", EVENTS[n % 4]
        status = MOVES[kind].split(" -> ")[1]
        if kind == "add":
            lines += [f"  {task}:", f"    title: Task {n // 4}", f"    status: {status}"]
        else:
            lines[-1] = f"    status: {status}"
        text = ("\n".join(lines) + "\n").encode()
        message = (
            f"gitstate: {kind} bench/{task}\n\nGitstate-Project: bench\nGitstate-Task: {task}\n"
            f"Gitstate-Event: {kind}\nGitstate-Agent: agent-{n % 7}\nGitstate-Status: {task} {MOVES[kind]}\n"
        ).encode()
        stream.append(
            b"commit refs/heads/main\ncommitter bench <bench@example.com> %d +0000\n" % (1767225600 + n)
        )
        stream.append(b"data %d\n%s\n" % (len(message), message))
        if n == 0:
            stream.append(b"from %s\n" % head.encode())
        stream.append(b"M 100644 inline projects/bench/STATE.yaml\ndata %d\n%s\n" % (len(text), text))
    subprocess.run(
        ["git", "-C", str(path), "fast-import", "--quiet"], input=b"".join(stream), check=True, env=environ
    )
    return path, f"t-{events // 8:07d}"


def timed(argv: list[str], environ: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=environ, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    environ = env()
    path, task = build(args.events, environ)
    gitstate = [sys.executable, "-m", "gitstate"]
    runs = {
        "git log --first-parent --format=%H%(trailers)": [
            "git",
            "log",
            "--first-parent",
            "--format=%H%(trailers)",
        ],
        'python -c "import click"': [sys.executable, "-c", "import click"],
        "gitstate log --json": [*gitstate, "log", "--json"],
        f"gitstate log --task {task} --json": [*gitstate, "log", "--task", task, "--json"],
        f"gitstate task history bench {task} --json": [*gitstate, "task", "history", "bench", task, "--json"],
    }
    found = subprocess.run(
        [*gitstate, "log", "--json"], env=environ, cwd=path, capture_output=True, check=True
    )
    # Every event, the project's creation and the two commits of `gitstate init`.
    assert found.stdout.count(b"\n") == args.events + 3, found.stdout.count(b"\n")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, argv in runs.items():
            times[name].append(timed(argv, environ, path))
    median = {name: statistics.median(values) for name, values in times.items()}
    base_git = median["git log --first-parent --format=%H%(trailers)"]
    base_py = median['python -c "import click"']
    print(f"{args.events:,} events, medians of {args.rounds} interleaved rounds\n")
    print("| what | median | vs git log | vs interpreter start |")
    print("|---|---:|---:|---:|")
    for name, value in median.items():
        print(f"| `{name}` | {value * 1000:.0f} ms | {value / base_git:.2f}× | {value / base_py:.2f}× |")  # noqa: RUF001


if __name__ == "__main__":
    main()
