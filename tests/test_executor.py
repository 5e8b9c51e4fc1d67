"""Running a task's command: process groups, timeouts, logs, redaction."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gitstate import executor
from gitstate.redact import MARK, redact

SECRETS = {
    "openai": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234",
    "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrSt-uvwx",
    "github": "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "slack": "xoxb-123456789012-abcdefghijkl",
}


@pytest.mark.parametrize(("kind", "secret"), SECRETS.items())
def test_known_key_shapes_are_redacted(kind: str, secret: str) -> None:
    text = f"using {secret} now"
    assert redact(text) == f"using {MARK} now", kind


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl012", f"Authorization: Bearer {MARK}"),
        ("password=hunter2 user=bob", f"password={MARK} user=bob"),
        ('DB_PASSWORD: "s3cr3t value"', f"DB_PASSWORD: {MARK}"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", f"aws_secret_access_key = {MARK}"),
        ("api_key: abc123", f"api_key: {MARK}"),
        ("https://bob:pa55w0rd@example.com/repo.git", f"https://bob:{MARK}@example.com/repo.git"),
        ("nothing secret here: 42 tests passed", "nothing secret here: 42 tests passed"),
    ],
)
def test_key_value_secrets_are_redacted(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_private_key_blocks_are_redacted_across_lines() -> None:
    text = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----\nafter\n"
    assert redact(text) == f"before\n{MARK} (private key)\nafter\n"


def run(command: str, tmp_path: Path, **kwargs: object) -> executor.Outcome:
    options: dict[str, object] = {
        "cwd": tmp_path,
        "env": dict(os.environ),
        "timeout": 30.0,
        "log": tmp_path / "log" / "a.log",
    }
    options.update(kwargs)
    return executor.run(command, **options)  # type: ignore[arg-type]


def test_exit_code_output_and_redacted_log(tmp_path: Path) -> None:
    outcome = run(f"echo hello; echo token={SECRETS['github']} >&2; exit 3", tmp_path)
    assert (outcome.reason, outcome.code, outcome.ok) == ("exited", 3, False)
    assert outcome.tail == f"hello\ntoken={MARK}"
    assert outcome.log.read_text() == f"hello\ntoken={MARK}\n"
    assert SECRETS["github"] not in outcome.summary()
    assert outcome.summary().startswith("exited with code 3 after ")


def test_timeout_kills_the_whole_group_grandchildren_included(tmp_path: Path) -> None:
    script = "sh -c 'sleep 600 & echo $! > grandchild.pid; wait' & echo $! > child.pid; sleep 600"
    started = time.monotonic()
    outcome = run(script, tmp_path, timeout=1.0, grace=1.0)
    assert outcome.reason == "timeout"
    assert time.monotonic() - started < 10
    for name in ("child.pid", "grandchild.pid"):
        pid = int((tmp_path / name).read_text())
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"{name} survived the timeout"


def test_background_leftovers_do_not_outlive_a_finished_command(tmp_path: Path) -> None:
    outcome = run("sleep 600 & echo $! > bg.pid; echo started", tmp_path)
    assert outcome.ok
    pid = int((tmp_path / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_lost_lease_and_stop_end_the_run(tmp_path: Path) -> None:
    beats: list[float] = []

    def heartbeat() -> bool:
        beats.append(time.monotonic())
        return len(beats) < 2

    outcome = run("sleep 600", tmp_path, heartbeat=heartbeat, every=0.2, grace=1.0)
    assert (outcome.reason, len(beats)) == ("lost_lease", 2)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert run("sleep 600", tmp_path, stop=stop, grace=1.0).reason == "stopped"


def test_task_text_reaches_the_command_only_as_data(tmp_path: Path) -> None:
    hostile = "$(touch pwned1); `touch pwned2`; rm -rf ~\nline two; touch pwned3"
    env = {**os.environ, "GITSTATE_TITLE": hostile}
    outcome = run('printf "%s" "$GITSTATE_TITLE" > seen.txt', tmp_path, env=env)
    assert outcome.ok
    assert (tmp_path / "seen.txt").read_text() == hostile
    assert not list(tmp_path.glob("pwned*"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its parent counts as dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_detached_command_gets_all_its_input_without_holding_the_caller(tmp_path: Path) -> None:
    out = tmp_path / "got"
    data = ("é" * 100_000).encode()  # 200 KB: more than a pipe holds
    start = time.monotonic()
    executor.spawn_detached(
        ["/bin/sh", "-c", f"sleep 2; cat > {out}.part && mv {out}.part {out}"],
        env=dict(os.environ),
        stdin=data,
        cwd=tmp_path,
    )
    assert time.monotonic() - start < 1.5  # the command sleeps 2 s before it reads anything
    deadline = time.monotonic() + 20
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.read_bytes() == data
