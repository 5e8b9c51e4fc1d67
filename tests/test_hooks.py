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


# -- installation by `gitstate init` --------------------------------------------------------------


def fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README.md").write_text("hi\n")
    subprocess.run(["git", "-C", str(path), "add", "README.md"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "first"], check=True)
    return path


def init(path: Path, *args: str) -> str:
    from click.testing import CliRunner

    from gitstate.cli import cli

    result = CliRunner().invoke(cli, ["-C", str(path), "init", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def break_state_file(repo: Path) -> None:
    state = repo / "projects/api/STATE.yaml"
    state.write_text(state.read_text().replace("status: pending", "status: done"))


def add_project(repo: Path) -> None:
    from gitstate.git import Repository

    with Repository.discover(repo) as handle:
        store = Store(handle)
        projects.create(store, "api")
        tasks.add(store, "api", "one", task_id="t-1")


def test_init_installs_the_hooks_and_keeps_the_users_own(tmp_path: Path) -> None:
    repo = fresh(tmp_path)
    hooks = repo / ".git" / "hooks"
    mine = '#!/bin/sh\necho "mine ran: $*" >> "$(git rev-parse --show-toplevel)/mine.log"\n'
    (hooks / "pre-commit").write_text(mine)
    (hooks / "pre-commit").chmod(0o755)
    out = init(repo)
    assert (
        f"installed the pre-commit hook in {hooks} (yours is kept as pre-commit.legacy and runs first)\n"
        in out
    )
    assert f"installed the pre-merge-commit hook in {hooks}\n" in out
    assert (hooks / "pre-commit.legacy").read_text() == mine
    installed = (hooks / "pre-commit").read_text()
    assert "gitstate-hook" in installed and f"python={sys.executable}" in installed
    assert os.access(hooks / "pre-commit", os.X_OK)
    add_project(repo)
    break_state_file(repo)
    result = commit(repo, "-am", "typo")
    assert result.returncode == 1 and "unknown status 'done'" in result.stderr
    assert (repo / "mine.log").read_text() == "mine ran: \n"  # the user's hook ran first
    # Running init again changes nothing and never stacks legacy hooks.
    again = init(repo)
    assert "hook" not in again
    assert sorted(p.name for p in hooks.iterdir() if not p.name.endswith(".sample")) == [
        "pre-commit",
        "pre-commit.legacy",
        "pre-merge-commit",
    ]


def test_a_failing_user_hook_still_stops_the_commit(tmp_path: Path) -> None:
    repo = fresh(tmp_path)
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'mine says no' >&2\nexit 3\n")
    hook.chmod(0o755)
    init(repo)
    (repo / "other.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "other.txt"], check=True)
    result = commit(repo, "-m", "other")
    assert (result.returncode, result.stderr) == (1, "mine says no\n")


def test_the_merge_hook_refuses_a_merge_that_breaks_a_state_file(tmp_path: Path) -> None:
    repo = fresh(tmp_path)
    init(repo)
    add_project(repo)
    subprocess.run(["git", "-C", str(repo), "checkout", "-qb", "side"], check=True)
    break_state_file(repo)
    assert commit(repo, "-qam", "typo on a side branch", "--no-verify").returncode == 0
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True)
    (repo / "other.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "other.txt"], check=True)
    assert commit(repo, "-m", "main moves on").returncode == 0
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    merged = subprocess.run(
        ["git", "-C", str(repo), "merge", "--no-edit", "side"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert merged.returncode != 0
    assert "projects/api/STATE.yaml:9: task t-1: unknown status 'done'" in merged.stderr


def test_hooks_go_where_core_hookspath_says_when_it_is_in_the_repository(tmp_path: Path) -> None:
    repo = fresh(tmp_path)
    subprocess.run(["git", "-C", str(repo), "config", "core.hooksPath", ".githooks"], check=True)
    assert f"installed the pre-commit hook in {repo / '.githooks'}" in init(repo)
    assert (repo / ".githooks" / "pre-commit").read_text() == (
        ROOT / "hooks" / "pre-commit"
    ).read_text()  # no local path
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_a_hooks_folder_shared_with_other_repositories_is_left_alone(tmp_path: Path) -> None:
    repo = fresh(tmp_path)
    shared = tmp_path / "shared-hooks"
    shared.mkdir()
    subprocess.run(["git", "-C", str(repo), "config", "core.hooksPath", str(shared)], check=True)
    out = init(repo)
    assert f"did not install git hooks: core.hooksPath is {shared}, outside this repository; " in out
    assert list(shared.iterdir()) == []


def test_init_no_hooks_installs_nothing(tmp_path: Path) -> None:
    repo = fresh(tmp_path)
    init(repo, "--no-hooks")
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_the_shipped_hooks_are_one_script() -> None:
    assert (ROOT / "hooks" / "pre-commit").read_text() == (ROOT / "hooks" / "pre-merge-commit").read_text()


def test_a_hook_managers_hook_is_left_in_place(tmp_path: Path) -> None:
    repo = fresh(tmp_path)
    hook = repo / ".git" / "hooks" / "pre-commit"
    framework = "#!/usr/bin/env bash\n# File generated by pre-commit: https://pre-commit.com\nexit 0\n"
    hook.write_text(framework)
    hook.chmod(0o755)
    out = init(repo)
    assert (
        f"did not install the pre-commit hook: the pre-commit framework manages {hook}; "
        "add `gitstate hook pre-commit` to its configuration (README: Git hooks)\n"
    ) in out
    assert hook.read_text() == framework and not (hook.parent / "pre-commit.legacy").exists()


def test_gitstates_hook_run_as_another_managers_legacy_hook_still_checks(tmp_path: Path) -> None:
    """`pre-commit install` after `gitstate init` renames gitstate's hook to
    pre-commit.legacy and runs it from its own: the check must still run, once."""
    repo = fresh(tmp_path)
    init(repo)
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-commit").rename(hooks / "pre-commit.legacy")
    (hooks / "pre-commit").write_text('#!/bin/sh\n"$(dirname "$0")/pre-commit.legacy" "$@" || exit $?\n')
    (hooks / "pre-commit").chmod(0o755)
    add_project(repo)
    break_state_file(repo)
    result = commit(repo, "-am", "typo")
    assert result.returncode == 1
    assert result.stderr.count("unknown status 'done'") == 1
