"""gitstate doctor names what is wrong with a clone and how to fix it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from click.testing import CliRunner

from gitstate.cli import cli
from tests.conftest import git


def doctor(repo: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-C", str(repo), "doctor"])
    return result.exit_code, result.stdout


def test_a_healthy_clone(repo: Path) -> None:
    code, out = doctor(repo)
    assert code == 0, out
    assert "ok: the STATE.yaml merge driver is configured\n" in out


def test_a_clone_without_the_merge_driver_is_reported(repo: Path) -> None:
    git(repo, "config", "--unset", "merge.gitstate.driver")
    code, out = doctor(repo)
    assert code == 1
    assert (
        "problem: the STATE.yaml merge driver is not configured in this clone, so git would merge "
        "STATE.yaml as text and could leave conflict markers; run `gitstate init`\n"
    ) in out
    CliRunner().invoke(cli, ["-C", str(repo), "init"])
    assert doctor(repo)[0] == 0


def test_stale_locks_and_broken_state_files_are_reported(repo: Path) -> None:
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    (repo / "projects/api").mkdir(parents=True)
    (repo / "projects/api/STATE.yaml").write_text(
        "version: 1\nproject: api\ntasks:\n  t-1: {title: x, status: done}\n"
    )
    lock.unlink()
    git(repo, "add", "projects")
    git(repo, "commit", "-qm", "broken by hand")
    lock.write_text("")
    os.utime(lock, (old, old))
    code, out = doctor(repo)
    assert code == 1
    assert "problem: projects/api/STATE.yaml:4: task t-1: unknown status 'done'" in out
    assert f"problem: stale lock {lock} (60 min old); " in out
