"""A few real processes: the installed entry points behave like the in-process CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import git

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "gitstate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == code, proc.stderr
    return proc


def test_python_dash_m_from_a_subdirectory(repo: Path) -> None:
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    run("project", "add", "api", cwd=sub)
    made = json.loads(run("task", "add", "api", "from a subprocess", "--json", cwd=sub).stdout)
    assert made["task"]["title"] == "from a subprocess"
    listed = json.loads(run("task", "list", "--json", cwd=repo).stdout)
    assert [t["id"] for t in listed["tasks"]] == [made["task"]["id"]]
    assert git(repo, "status", "--porcelain") == ""


def test_errors_have_no_traceback_and_the_documented_codes(repo: Path, tmp_path: Path) -> None:
    outside = run("status", cwd=tmp_path, code=1)
    assert outside.stdout == ""
    assert (
        outside.stderr
        == f"error: {tmp_path} is not in a git repository; run `git init` there, or pass -C PATH\n"
    )
    usage = run("task", "add", cwd=repo, code=2)
    assert "Missing argument 'PROJECT'" in usage.stderr
    run("project", "add", "api", cwd=repo)
    none = run("next", "api", cwd=repo, code=3)
    assert none.stderr == "error: there are no tasks\n"


def test_console_script_is_installed() -> None:
    # The README's test command installs the package, so the script sits next to python.
    script = Path(sys.executable).parent / "gitstate"
    assert script.exists(), f"{script} is missing: install with pip install -e '.[test]'"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("gitstate, version ")
