"""Passes and the daemon: time boxes, resuming, the circuit breaker, reports, signals, pushes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from gitstate import projects, tasks
from gitstate.cli import cli
from gitstate.errors import RepositoryError
from gitstate.git import Repository
from gitstate.model import Status
from gitstate.store import Store
from tests.conftest import fsck, git

ROOT = Path(__file__).resolve().parents[1]


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-C", str(repo), "run", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def statuses(store: Store) -> dict[str, Status]:
    return {t.id: t.status for t in store.read("api").tasks.values()}


@pytest.fixture
def real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("real_time")
def test_a_time_boxed_pass_stops_in_time_and_the_next_pass_finishes(repo: Path, store: Store) -> None:
    command = 'echo "$GITSTATE_ATTEMPT" >> "$GITSTATE_TASK.txt"; sleep 3'
    projects.create(store, "api", {"command": command, "check": "true"})
    for n in range(6):
        tasks.add(store, "api", f"three seconds {n}", None, f"t-{n}")
    start = time.monotonic()
    code, out, _ = run(repo, "--agents", "2", "--time-box", "10s")
    took = time.monotonic() - start
    assert code == 0, out
    assert took < 10 + 3  # within the box, give or take a few seconds
    after_first = statuses(store)
    merged = [t for t, s in after_first.items() if s == Status.MERGED]
    unfinished = [t for t, s in after_first.items() if s == Status.PENDING]
    assert len(merged) >= 2 and unfinished
    assert set(merged) | set(unfinished) == set(after_first)  # nothing lost, nothing left in progress
    for task_id in unfinished:  # their work so far is on their branches
        assert git(repo, "show", f"gitstate/api/{task_id}:{task_id}.txt") == "1\n"
    assert "released" in out.splitlines()[-1]
    code, out, _ = run(repo, "--agents", "2", "--time-box", "60s")
    assert code == 0, out
    assert set(statuses(store).values()) == {Status.MERGED}
    for task_id in unfinished:  # the second attempt continued from the first one's work
        assert git(repo, "show", f"main:{task_id}.txt") == "1\n2\n"
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") <= 2  # main, and the check scratch
    assert git(repo, "status", "--porcelain") == ""
    fsck(repo)


def test_reports_junit_and_github_step_summary(repo: Path, store: Store, tmp_path: Path) -> None:
    projects.create(store, "api", {"command": "true", "max_retries": 0})
    tasks.add(store, "api", "fine", None, "t-ok")
    tasks.add(store, "api", "broken", {"command": "echo nope; exit 3"}, "t-bad")
    summary_file = tmp_path / "step.md"
    junit = tmp_path / "report.xml"
    code, out, _ = run(
        repo, "--agents", "1", "--junit", str(junit), "--json", env={"GITHUB_STEP_SUMMARY": str(summary_file)}
    )
    assert code == 5  # a task failed for good
    payload = json.loads(out)
    assert (payload["merged"], payload["failed"], payload["exit_code"]) == (1, 1, 5)
    assert {t["id"]: t["result"] for t in payload["tasks"]} == {"t-ok": "merged", "t-bad": "failed"}
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.find("testcase/failure")
    assert failure is not None and "exited with code 3" in (failure.text or "")
    markdown = summary_file.read_text()
    assert markdown.startswith("### gitstate pass\n")
    assert "| `api/t-bad` broken | failed | 1 |" in markdown


def test_the_circuit_breaker_stops_a_broken_agent_command(repo: Path, store: Store) -> None:
    projects.create(store, "api", {"command": "exit 127"})
    for n in range(10):
        tasks.add(store, "api", f"task {n}", None, f"t-{n}")
    code, out, _ = run(repo, "--agents", "1", "--max-failures", "3")
    assert code == 6
    assert "circuit breaker: 3 tasks failed in a row" in out
    attempted = [t for t in store.read("api").tasks.values() if t.attempts]
    assert len(attempted) == 3  # the other seven keep all their retries
    assert all(t.status == Status.PENDING for t in store.read("api").tasks.values())


def test_options_come_from_the_environment(repo: Path, store: Store) -> None:
    projects.create(store, "api", {"command": "true"})
    projects.create(store, "web", {"command": "true"})
    tasks.add(store, "api", "a", None, "t-a")
    tasks.add(store, "web", "w", None, "t-w")
    code, out, _ = run(
        repo, env={"GITSTATE_AGENTS": "1", "GITSTATE_PROJECTS": "web", "GITSTATE_LOG_FORMAT": "json"}
    )
    assert code == 0, out
    assert store.read("web").tasks["t-w"].status == Status.MERGED
    assert store.read("api").tasks["t-a"].status == Status.PENDING


def test_push_merges_the_remotes_changes_instead_of_forcing(repo: Path, store: Store, tmp_path: Path) -> None:
    projects.create(store, "api", {"command": "true"})
    tasks.add(store, "api", "ours", None, "t-ours")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    git(repo, "remote", "add", "origin", str(origin))
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(origin), str(other)], check=True)
    with Repository.discover(other) as handle:  # another machine adds a task and pushes first
        tasks.add(Store(handle), "api", "theirs", None, "t-theirs")
    git(other, "push", "-q", "origin", "main")
    code, out, err = run(repo, "--agents", "1", "--push", "origin", "--project", "api")
    assert code == 0, out + err
    remote_state = subprocess.run(
        ["git", "--git-dir", str(origin), "show", "main:projects/api/STATE.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "t-ours:" in remote_state and "t-theirs:" in remote_state
    assert (
        git(repo, "rev-parse", "main")
        == subprocess.run(
            ["git", "--git-dir", str(origin), "rev-parse", "main"], capture_output=True, text=True, check=True
        ).stdout
    )


def test_push_refuses_unsafe_remotes(repo: Path) -> None:
    git(repo, "remote", "add", "evil", "ext::sh -c touch% /tmp/gitstate-pwned")
    with (
        Repository.discover(repo) as handle,
        pytest.raises(RepositoryError, match="remote 'evil' has url 'ext::sh -c touch% /tmp/gitstate-pwned'"),
    ):
        handle.push("evil", ["refs/heads/main:refs/heads/main"])
    assert not Path("/tmp/gitstate-pwned").exists()
    result = CliRunner().invoke(cli, ["-C", str(repo), "run", "--push", "--upload-pack=x"])
    assert result.exit_code == 1
    assert "remote name '--upload-pack=x' is not valid" in result.stderr


def daemon(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gitstate", "-C", str(repo), "daemon", "--log-format", "json", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.usefixtures("real_time")
def test_sigterm_to_the_daemon_loses_nothing(repo: Path, store: Store) -> None:
    projects.create(
        store,
        "api",
        {"command": 'echo started > "$GITSTATE_TASK.txt"; sleep 2; echo finished >> "$GITSTATE_TASK.txt"'},
    )
    for n in range(6):
        tasks.add(store, "api", f"task {n}", None, f"t-{n}")
    proc = daemon(repo, "--agents", "2", "--grace", "1s")
    wait_for(lambda: any(s == Status.IN_PROGRESS for s in statuses(store).values()))
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    final = store.read("api").tasks.values()
    assert not [t for t in final if t.status == Status.IN_PROGRESS]
    for task in final:
        if task.status == Status.PENDING and task.attempts:  # stopped mid-task: the work is on its branch
            assert git(repo, "show", f"gitstate/api/{task.id}:{task.id}.txt") == "started\n"
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") <= 2
    events = [json.loads(line)["event"] for line in err.splitlines()]
    assert events[0] == "start" and events[-1] == "stop"
    fsck(repo)


@pytest.mark.usefixtures("real_time")
def test_the_daemon_recovers_within_seconds_after_sigkill(repo: Path, store: Store) -> None:
    projects.create(store, "api", {"command": "sleep 600", "lease": 3600})
    tasks.add(store, "api", "long", None, "t-long")
    first = daemon(repo, "--agents", "1")
    wait_for(lambda: statuses(store)["t-long"] == Status.IN_PROGRESS)
    first.kill()
    first.wait()
    subprocess.run(["pkill", "-f", "sleep 600"], check=False)
    start = time.monotonic()
    second = daemon(repo, "--agents", "1", "--grace", "1s")
    try:
        wait_for(lambda: store.read("api").tasks["t-long"].attempts == 2, seconds=10)
        assert time.monotonic() - start < 5  # the lease was an hour: the restart gave the task back itself
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)


def test_service_definitions(repo: Path) -> None:
    unit = CliRunner().invoke(cli, ["-C", str(repo), "service", "systemd", "--agents", "3"]).stdout
    assert f"ExecStart={sys.executable} -m gitstate -C {repo} daemon --agents 3\n" in unit
    for line in ("Restart=always", "NoNewPrivileges=yes", "KillSignal=SIGTERM", "MemoryMax=4G"):
        assert line in unit
    plist = CliRunner().invoke(cli, ["-C", str(repo), "service", "launchd"]).stdout
    root = ET.fromstring(plist.split("\n", 2)[2])
    assert root.tag == "plist"
    assert "<key>KeepAlive</key>" in plist and "<string>daemon</string>" in plist


def test_metrics_are_served_on_localhost(repo: Path, store: Store) -> None:
    from gitstate.metrics import Metrics

    projects.create(store, "api")
    tasks.add(store, "api", "one", None, "t-1")
    metrics = Metrics(_free_port())
    try:
        metrics.tasks(store.read_all(), store.clock.now())
        host, port = metrics.server.server_address[:2]
        assert host == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'gitstate_tasks{project="api",status="pending"} 1.0' in body
    finally:
        metrics.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
