"""Agents under pressure: racing claimers, an agent killed mid-task, many tasks through `work`."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gitstate import agent, projects, tasks
from gitstate.coordinator import Coordinator
from gitstate.errors import NothingReady
from gitstate.git import Repository
from gitstate.model import Status
from gitstate.store import Store
from tests.conftest import LONG, fsck, git

ROOT = Path(__file__).resolve().parents[1]


def claim_until_empty(repo: str, name: str) -> list[str]:
    taken = []
    with Repository.discover(repo) as handle:
        store = Store(handle, lock_timeout=120)
        while True:
            try:
                taken.append(agent.claim(store, name, "api", worktree=False).task.id)
            except NothingReady:
                return taken


def claim_events(repo: Path) -> Counter[str]:
    log = git(
        repo,
        "log",
        "--format=%(trailers:key=Gitstate-Event,valueonly,separator=%x2C) %(trailers:key=Gitstate-Task,valueonly,separator=%x2C)",
        "main",
    )
    claims: Counter[str] = Counter()
    for line in log.splitlines():  # a commit may finish one task and claim the next
        events, _, ids = line.partition(" ")
        event_list, id_list = events.split(","), ids.split(",")
        if len(event_list) == 1:
            event_list *= len(id_list)
        claims.update(task for event, task in zip(event_list, id_list, strict=True) if event == "claim")
    return claims


def test_twenty_processes_racing_for_two_hundred_tasks(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    for n in range(200):
        tasks.add(store, "api", f"task {n}", None, f"t-{n:03d}")
    with multiprocessing.get_context("spawn").Pool(20) as pool:
        results = pool.starmap(claim_until_empty, [(str(repo), f"agent-{n}") for n in range(20)])
    taken = [task_id for ids in results for task_id in ids]
    assert sorted(taken) == sorted(f"t-{n:03d}" for n in range(200))  # each exactly once
    final = store.read("api")
    owners = {t.id: t.assignee for t in final.tasks.values()}
    for name, ids in zip([f"agent-{n}" for n in range(20)], results, strict=True):
        assert all(owners[task_id] == name for task_id in ids)
    assert claim_events(repo) == Counter({f"t-{n:03d}": 1 for n in range(200)})
    assert all(t.status == Status.IN_PROGRESS and t.attempts == 1 for t in final.tasks.values())
    fsck(repo)


def test_racing_claims_with_worktrees(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    for n in range(24):
        tasks.add(store, "api", f"task {n}", None, f"t-{n:03d}")

    with multiprocessing.get_context("spawn").Pool(6) as pool:
        results = pool.starmap(claim_with_worktrees, [(str(repo), f"agent-{n}") for n in range(6)])
    taken = [task_id for ids in results for task_id in ids]
    assert sorted(taken) == sorted(f"t-{n:03d}" for n in range(24))
    listed = git(repo, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 25  # the main checkout and one per task
    fsck(repo)


def claim_with_worktrees(repo: str, name: str) -> list[str]:
    taken = []
    with Repository.discover(repo) as handle:
        store = Store(handle, lock_timeout=120)
        while True:
            try:
                claimed = agent.claim(store, name, "api")
            except NothingReady:
                return taken
            assert claimed.worktree is not None and (claimed.worktree.path / ".git").is_file()
            taken.append(claimed.task.id)


def gitstate(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gitstate", "-C", str(repo), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_agent_killed_mid_task_is_recovered_and_the_next_attempt_continues(
    repo: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real time here: leases must actually run out.
    for name in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.delenv(name)
    command = (
        'if [ "$GITSTATE_ATTEMPT" = 1 ]; then '
        "echo step one > progress.txt; git add progress.txt; git commit -qm 'step one'; "
        "echo $$ > ../started; sleep 600; "
        "else test -f progress.txt && echo step two >> progress.txt; fi"
    )
    with Repository.discover(repo) as handle:
        live = Store(handle)
        projects.create(live, "api", {"command": command, "lease": 2, "max_retries": 3})
        tasks.add(live, "api", "resumable", None, "t-1")
        tasks.add(live, "api", "bystander", {"priority": -1}, "t-2")
        first = gitstate(repo, "work", "api", "--agent", "doomed", "--once")
        started = repo / ".git/gitstate/worktrees/api/started"
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline, first.communicate(timeout=5)
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the agent...
        os.killpg(int(started.read_text()), signal.SIGKILL)  # ...and the command it ran
        first.wait()
        started.unlink()
        held = live.read("api").tasks["t-1"]
        assert (held.status, held.assignee) == (Status.IN_PROGRESS, "doomed")
        time.sleep(2.2)  # one lease
        second = gitstate(repo, "work", "api", "--agent", "rescuer", "--once")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        done = live.read("api").tasks["t-1"]
        assert (done.status, done.attempts, done.assignee) == (Status.COMPLETED, 2, "rescuer")
        assert git(repo, "show", "gitstate/api/t-1:progress.txt") == "step one\nstep two\n"
        assert live.read("api").tasks["t-2"].status == Status.PENDING  # nothing else disturbed
    events = git(repo, "log", "--format=%(trailers:key=Gitstate-Event,valueonly)", "main").split()
    assert events[:4] == ["done", "claim", "reap", "claim"]
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # the dead agent's is gone
    fsck(repo)


def test_many_tasks_through_work_leave_nothing_behind_once_merged_or_cancelled(
    repo: Path, store: Store
) -> None:
    count = 1000 if LONG else 120  # GITSTATE_LONG=1 runs the full thousand
    projects.create(store, "api", {"command": "true", "check": "true", "max_retries": 0})
    for n in range(count):
        failing = {"command": "exit 1"} if n % 10 == 0 else None
        tasks.add(store, "api", f"no-op {n}", failing, f"t-{n:04d}")
    workers = [gitstate(repo, "work", "api", "--agent", f"w{n}") for n in range(4)]
    for proc in workers:
        _, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, err
    assert claim_events(repo) == Counter({f"t-{n:04d}": 1 for n in range(count)})
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "for-each-ref", "refs/gitstate/leases") == ""
    report = Coordinator(store).run()
    assert len(report.merged()) == count - count // 10
    for task in store.read("api").tasks.values():
        if task.status == Status.FAILED:
            tasks.cancel(store, "api", task.id)
    final = store.read("api")
    assert Counter(t.status for t in final.tasks.values()) == {
        Status.MERGED: count - count // 10,
        Status.CANCELLED: count // 10,
    }
    agent.gc(store)
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "for-each-ref", "refs/heads/gitstate", "refs/gitstate") == ""
    assert not any((repo / ".git/gitstate/worktrees").rglob(".git"))
    assert git(repo, "status", "--porcelain") == ""
    fsck(repo)
