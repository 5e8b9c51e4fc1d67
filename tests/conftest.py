"""Hermetic fixtures: every test gets its own HOME, git config, identity and clock.

Dates are pinned with GIT_AUTHOR_DATE/GIT_COMMITTER_DATE, which gitstate also
reads as "now", so commit ids and recorded timestamps are the same on every run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gitstate.cli import cli
from gitstate.git import Repository
from gitstate.store import Store

LONG = os.environ.get("GITSTATE_LONG") == "1"  # GITSTATE_LONG=1: the long versions of the trials
NOW = "2026-01-01T00:00:00Z"
EPOCH = 1767225600  # NOW as seconds


def hermetic_settings(home: Path, epoch: int = EPOCH) -> dict[str, str]:
    """The variables every test's processes see: their own HOME and git config, a pinned
    identity and a pinned clock (``epoch``, which gitstate reads as "now")."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author",
        "GIT_COMMITTER_EMAIL": "author@example.com",
        "GIT_AUTHOR_DATE": f"{epoch} +0000",
        "GIT_COMMITTER_DATE": f"{epoch} +0000",
        "GIT_EDITOR": "false",
        "GIT_TERMINAL_PROMPT": "0",
    }


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("GIT_", "GITSTATE_")) and name != "GITSTATE_LONG":
            monkeypatch.delenv(name)
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    for name, value in hermetic_settings(home).items():
        monkeypatch.setenv(name, value)


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on main with one commit (a README) and gitstate initialised."""
    path = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-qm", "first")
    result = CliRunner().invoke(cli, ["-C", str(path), "init", "--no-hooks"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def store(repo: Path) -> Iterator[Store]:
    with Repository.discover(repo) as handle:
        yield Store(handle)


Run = Callable[..., Result]


@pytest.fixture
def gs(repo: Path) -> Run:
    """Run the CLI in ``repo``; asserts the exit code (``code=``, default 0)."""

    def run(*args: str, code: int = 0, cwd: Path | None = None) -> Result:
        where = cwd or repo
        result = CliRunner().invoke(cli, ["-C", str(where), *args], catch_exceptions=False)
        assert result.exit_code == code, (
            f"exit {result.exit_code}, wanted {code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        if code == 0:
            assert result.stderr == "", result.stderr  # success is quiet on stderr: no warnings
        return result

    return run


def state_text(repo: Path, project: str, rev: str = "main") -> str:
    return git(repo, "show", f"{rev}:projects/{project}/STATE.yaml")


def fsck(repo: Path) -> None:
    proc = subprocess.run(
        ["git", "-C", str(repo), "fsck", "--strict", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr
