"""The pre-commit hook refuses invalid STATE.yaml files, with the CLI's messages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitstate import projects, tasks
from gitstate.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hooked(repo: Path, store: Store) -> Path:
    projects.create(store, "api")
    tasks.add(store, "api", "one", task_id="t-1")
    shutil.copy(ROOT / "hooks" / "pre-commit", repo / ".git" / "hooks" / "pre-commit")
    return repo


def commit(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", *args], capture_output=True, text=True, env=env, check=False
    )


def test_invalid_file_is_refused_with_file_and_line(hooked: Path) -> None:
    state = hooked / "projects/api/STATE.yaml"
    state.write_text(state.read_text().replace("status: pending", "status: done"))
    subprocess.run(["git", "-C", str(hooked), "add", "-A"], check=True)
    result = commit(hooked, "-m", "typo")
    assert result.returncode == 1
    assert result.stderr == (
        "gitstate: projects/api/STATE.yaml:9: task t-1: unknown status 'done'; "
        "use one of pending, in_progress, completed, merged, failed, cancelled\n"
        "gitstate: commit refused; fix the lines above (or commit with --no-verify)\n"
    )


def test_illegal_status_move_is_refused_even_with_commit_dash_a(hooked: Path) -> None:
    state = hooked / "projects/api/STATE.yaml"
    state.write_text(state.read_text().replace("status: pending", "status: merged"))
    result = commit(hooked, "-a", "-m", "skip ahead")  # git points GIT_INDEX_FILE at a temporary index
    assert result.returncode == 1
    assert (
        "task t-1 went from pending to merged; from pending it can move to in_progress, cancelled"
        in result.stderr
    )


def test_valid_hand_edit_is_accepted(hooked: Path) -> None:
    state = hooked / "projects/api/STATE.yaml"
    state.write_text(state.read_text().replace("status: pending", "status: cancelled") + "# a note\n")
    result = commit(hooked, "-a", "-m", "cancel by hand")
    assert (result.returncode, result.stderr) == (0, "")


def test_commits_without_state_files_are_not_slowed_by_errors(hooked: Path) -> None:
    (hooked / "other.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(hooked), "add", "other.txt"], check=True)
    assert commit(hooked, "-m", "other").returncode == 0
