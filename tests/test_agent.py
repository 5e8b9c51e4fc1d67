"""Claims, finishing, giving back, leases, reaping and cleanup, through the Python API."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gitstate import agent, executor, projects, tasks, worker
from gitstate.cli import cli
from gitstate.errors import Busy, InvalidInput, NothingReady
from gitstate.git import Repository
from gitstate.model import Status
from gitstate.redact import MARK
from gitstate.store import Store
from gitstate.timefmt import Clock
from gitstate.worktrees import Worktrees
from tests.conftest import EPOCH, fsck, git, state_text


@contextlib.contextmanager
def later(repo: Path, seconds: int) -> Iterator[Store]:
    """A store whose clock reads ``seconds`` after the pinned test time."""
    with Repository.discover(repo) as handle:
        yield Store(handle, clock=Clock({"GIT_COMMITTER_DATE": f"{EPOCH + seconds} +0000"}))


@pytest.fixture
def api(store: Store) -> Store:
    projects.create(store, "api", {"command": "true", "lease": 60, "max_retries": 1})
    tasks.add(store, "api", "Low", {"priority": 1}, "t-low")
    tasks.add(store, "api", "High", {"priority": 5}, "t-high")
    return store


def test_claim_takes_the_best_task_in_one_commit(api: Store, repo: Path) -> None:
    claimed = agent.claim(api, "agent-1", "api")
    task = claimed.task
    assert (task.id, task.status, task.assignee, task.attempts) == (
        "t-high",
        Status.IN_PROGRESS,
        "agent-1",
        1,
    )
    assert task.branch == "gitstate/api/t-high"
    assert task.lease_expires is not None and int(task.lease_expires.timestamp()) == EPOCH + 60
    assert git(repo, "log", "-1", "--format=%s%n%(trailers:key=Gitstate-Event,valueonly)") == (
        "gitstate: claim api/t-high (attempt 1) by agent-1\nclaim\n\n"
    )
    assert git(repo, "rev-parse", "gitstate/api/t-high") == git(repo, "rev-parse", "main")
    assert claimed.worktree is not None
    assert claimed.worktree.path == repo / ".git/gitstate/worktrees/api/t-high"
    assert git(claimed.worktree.path, "symbolic-ref", "HEAD") == "refs/heads/gitstate/api/t-high\n"
    assert git(repo, "status", "--porcelain") == ""  # the worktree does not show in the user's checkout
    assert agent.claim(api, "agent-2", "api").task.id == "t-low"
    with pytest.raises(NothingReady, match="no task is pending"):
        agent.claim(api, "agent-3", "api")


def test_capabilities_are_matched(api: Store) -> None:
    tasks.edit(api, "api", "t-high", {"requires": ("gpu",)})
    assert agent.claim(api, "cpu-agent", "api", ["python"], worktree=False).task.id == "t-low"
    with pytest.raises(NothingReady, match=r"need capabilities this agent lacks \(gpu\)"):
        agent.claim(api, "cpu-agent", "api", ["python"], worktree=False)
    assert agent.claim(api, "gpu-agent", None, ["gpu"], worktree=False).task.id == "t-high"


def test_worktree_gets_copied_files_and_runs_setup(api: Store, repo: Path) -> None:
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "config").mkdir()
    (repo / "config" / "local.toml").write_text("x = 1\n")
    projects.edit(
        api, "api", {"copy_files": (".env", "config", "missing.txt"), "setup": "echo ready > setup.out"}
    )
    claimed = agent.claim(api, "a", "api")
    assert claimed.worktree is not None
    path = claimed.worktree.path
    assert (path / ".env").read_text() == "SECRET=1\n"
    assert (path / "config" / "local.toml").read_text() == "x = 1\n"
    assert (path / "setup.out").read_text() == "ready\n"


def test_failed_setup_gives_the_task_back_uncounted(api: Store, repo: Path) -> None:
    projects.edit(api, "api", {"setup": "echo broken; exit 4"})
    with pytest.raises(Exception, match="setup command exited with code 4"):
        agent.claim(api, "a", "api")
    task = api.read("api").tasks["t-high"]
    assert (task.status, task.attempts, task.assignee) == (Status.PENDING, 0, None)
    assert not (repo / ".git/gitstate/worktrees/api/t-high").exists()


def test_done_commits_work_and_state_together_on_the_task_branch(api: Store, repo: Path) -> None:
    claimed = agent.claim(api, "agent-1", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "feature.py").write_text("print('hi')\n")
    finished = agent.done(api, "api", "t-high", result="added feature.py", agent="agent-1")
    assert (finished.status, finished.result) == (Status.COMPLETED, "added feature.py")
    assert git(repo, "show", "--name-only", "--format=%s", "gitstate/api/t-high") == (
        "gitstate: done api/t-high\n\nfeature.py\nprojects/api/STATE.yaml\n"
    )
    on_branch = state_text(repo, "api", "gitstate/api/t-high")
    assert "status: completed" in on_branch and "result: added feature.py" in on_branch
    assert api.read("api").tasks["t-high"].status == Status.COMPLETED  # main shows it too
    assert not claimed.worktree.path.exists()
    assert git(repo, "for-each-ref", "refs/gitstate/leases") == ""
    assert git(repo, "status", "--porcelain") == ""
    fsck(repo)


def test_only_the_holder_finishes(api: Store) -> None:
    agent.claim(api, "agent-1", "api", worktree=False)
    with pytest.raises(InvalidInput, match="is held by agent-1, not agent-2"):
        agent.done(api, "api", "t-high", agent="agent-2")
    with pytest.raises(InvalidInput, match="is pending, not in progress"):
        agent.fail(api, "api", "t-low", error="x")


def test_fail_saves_work_counts_the_attempt_and_the_next_claim_continues(api: Store, repo: Path) -> None:
    first = agent.claim(api, "agent-1", "api")
    assert first.worktree is not None
    (first.worktree.path / "half.txt").write_text("half done\n")
    back = agent.fail(api, "api", "t-high", error="tests failed", agent="agent-1")
    assert (back.status, back.attempts, back.error, back.assignee) == (
        Status.PENDING,
        1,
        "tests failed",
        None,
    )
    assert git(repo, "show", "gitstate/api/t-high:half.txt") == "half done\n"
    again = agent.claim(api, "agent-2", "api")
    assert (again.task.id, again.task.attempts) == ("t-high", 2)
    assert again.worktree is not None
    assert (again.worktree.path / "half.txt").read_text() == "half done\n"
    final = agent.fail(api, "api", "t-high", error="still failing", agent="agent-2")
    assert (final.status, final.attempts) == (Status.FAILED, 2)  # max_retries 1: two attempts in all
    assert tasks.retry(api, "api", "t-high").status == Status.PENDING


def test_release_gives_back_with_the_attempt_counted(api: Store) -> None:
    agent.claim(api, "a", "api", worktree=False)
    back = agent.release(api, "api", "t-high", agent="a", reason="deadline")
    assert (back.status, back.attempts, back.error) == (Status.PENDING, 1, "deadline")


def test_renewals_move_the_lease_without_commits_and_reap_respects_them(api: Store, repo: Path) -> None:
    agent.claim(api, "a", "api", worktree=False)
    commits = git(repo, "rev-list", "--count", "main")
    with later(repo, 50) as store:
        renewed = agent.renew(store, "api", "t-high", "a")
        assert renewed is not None and int(renewed.timestamp()) == EPOCH + 110
    assert git(repo, "rev-list", "--count", "main") == commits
    with later(repo, 100) as store:
        assert agent.reap(store) == []
    with later(repo, 111) as store:
        reaped = agent.reap(store)
        assert [(p, t.id, t.status) for p, t in reaped] == [("api", "t-high", Status.PENDING)]
        assert agent.renew(store, "api", "t-high", "a") is None
    task = api.read("api").tasks["t-high"]
    assert task.error is not None and task.error.startswith(
        "lease expired (2026-01-01T00:01:50Z); a stopped renewing"
    )


def test_reap_reclaims_a_dead_agents_worktree_and_keeps_its_work(api: Store, repo: Path) -> None:
    claimed = agent.claim(api, "dead", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "wip.txt").write_text("unsaved\n")
    with later(repo, 61) as store:
        agent.reap(store)
    assert not claimed.worktree.path.exists()
    assert git(repo, "show", "gitstate/api/t-high:wip.txt") == "unsaved\n"
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_claim_runs_reap_first(api: Store, repo: Path) -> None:
    agent.claim(api, "dead", "api", worktree=False)
    agent.claim(api, "dead", "api", worktree=False)
    with later(repo, 61) as store:
        again = agent.claim(store, "alive", "api", worktree=False)
    assert (again.task.id, again.task.attempts, again.task.assignee) == ("t-high", 2, "alive")


def test_gc_removes_what_no_open_task_owns(api: Store, repo: Path) -> None:
    tasks.add(api, "api", "Third", None, "t-third")
    kept = agent.claim(api, "a", "api")
    agent.claim(api, "b", "api", worktree=False)  # t-low
    agent.release(api, "api", "t-low", agent="b")
    tasks.cancel(api, "api", "t-low")
    stray = Worktrees(api.repo).path_for("api", "t-gone")
    stray.mkdir(parents=True)
    (stray / "junk").write_text("x")
    cleaned = agent.gc(api)
    assert cleaned.worktrees == ("api/t-gone",)
    assert cleaned.branches == ("refs/heads/gitstate/api/t-low",)
    assert kept.worktree is not None and kept.worktree.path.exists()
    assert git(repo, "branch", "--list", "gitstate/*") == "+ gitstate/api/t-high\n"
    assert agent.gc(api) == agent.Cleanup((), (), ())


def test_done_and_fail_inside_the_worktree_need_no_arguments(api: Store, repo: Path) -> None:
    claimed = agent.claim(api, "a", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "x.txt").write_text("x\n")
    result = CliRunner().invoke(cli, ["-C", str(claimed.worktree.path), "done", "--result", "ok"])
    assert (result.exit_code, result.stdout) == (
        0,
        "api/t-high completed; its branch awaits the coordinator\n",
    )
    assert git(repo, "show", "gitstate/api/t-high:x.txt") == "x\n"
    outside = CliRunner().invoke(cli, ["-C", str(repo), "fail", "--error", "x"])
    assert outside.exit_code == 1
    assert outside.stderr == (
        "error: this is not a task worktree (its branch is not gitstate/<project>/<id>); give PROJECT and ID\n"
    )


def test_cli_claim_json_and_exit_codes(api: Store, repo: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["-C", str(repo), "claim", "api", "--agent", "c1", "--json"])
    payload = json.loads(result.stdout)
    assert (payload["task"]["id"], payload["task"]["assignee"]) == ("t-high", "c1")
    assert payload["worktree"] == str(repo / ".git/gitstate/worktrees/api/t-high")
    missing = runner.invoke(cli, ["-C", str(repo), "claim", "api"])
    assert (missing.exit_code, missing.stderr) == (
        1,
        "error: name the agent with --agent NAME (or set GITSTATE_AGENT)\n",
    )
    runner.invoke(cli, ["-C", str(repo), "claim", "api", "--agent", "c2", "--no-worktree"])
    none = runner.invoke(cli, ["-C", str(repo), "claim", "api", "--agent", "c3"])
    assert none.exit_code == 3
    assert none.stderr == "error: no task is pending (all 2 are in progress, done, failed or cancelled)\n"


def test_secrets_never_reach_state_commits_or_logs(api: Store, repo: Path) -> None:
    secret = "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    # The command builds the secrets at run time, as a real tool's output would carry them.
    command = 'P=ghp; echo "leaked ${P}_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"; echo "pass""word=$(echo hunt)er2" >&2'
    projects.edit(api, "api", {"command": command})
    from gitstate import worker

    ran = worker.work(api, "a", project="api", max_tasks=2)
    assert [r.final.status for r in ran if r.final] == [Status.COMPLETED, Status.COMPLETED]
    everything = git(repo, "log", "--all", "-p", "--format=%B")
    logs = "".join(p.read_text() for p in (repo / ".git/gitstate/logs").rglob("*.log"))
    for text in (everything, logs, state_text(repo, "api")):
        assert secret not in text and "hunter2" not in text
    assert f"leaked {MARK}" in logs and f"password={MARK}" in logs


def test_cli_work_reap_gc_release(api: Store, repo: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["-C", str(repo), "work", "api", "--agent", "w1", "--max-tasks", "1", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [(r["id"], r["status"], r["outcome"]) for r in payload["runs"]] == [
        ("t-high", "completed", "exited")
    ]
    assert (
        git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    )  # the agent's worktree went with it
    claimed = runner.invoke(cli, ["-C", str(repo), "claim", "api", "--agent", "c1", "--no-worktree"])
    assert claimed.exit_code == 0
    assert runner.invoke(cli, ["-C", str(repo), "reap"]).stdout == "no lease has run out\n"
    released = runner.invoke(cli, ["-C", str(repo), "release", "api", "t-low", "--agent", "c1", "--json"])
    assert json.loads(released.stdout)["task"]["status"] == "pending"
    tasks.cancel(api, "api", "t-low")
    cleaned = runner.invoke(cli, ["-C", str(repo), "gc"])
    assert cleaned.stdout == "removed branch refs/heads/gitstate/api/t-low\n"
    renew = runner.invoke(cli, ["-C", str(repo), "renew", "api", "t-high", "--agent", "w1"])
    assert (renew.exit_code, renew.stderr) == (
        1,
        "error: w1 does not hold api/t-high any more; its lease may have expired\n",
    )


def test_work_runs_nothing_without_a_command_and_says_so(store: Store, repo: Path) -> None:
    projects.create(store, "api")
    tasks.add(store, "api", "no command", None, "t-1")
    from gitstate import worker

    ran = worker.work(store, "w", project="api", max_tasks=1)
    assert ran[0].final is not None and ran[0].final.status == Status.PENDING
    assert ran[0].final.error is not None and ran[0].final.error.startswith("no command to run")


def test_one_agent_name_one_worker(api: Store, repo: Path) -> None:
    from gitstate import worker
    from gitstate.errors import Busy

    with (
        agent.working_as(api, "same"),
        pytest.raises(Busy, match="another `gitstate work --agent same` runs"),
    ):
        worker.work(api, "same", project="api")


def test_a_parked_worktree_lets_go_of_its_branch(store: Store, repo: Path) -> None:
    """One agent parks the worktree of a task it gave back; another agent, reusing a
    worktree of its own, takes the task's next attempt on the same branch."""
    projects.create(store, "solo", {"command": "true"})
    tasks.add(store, "solo", "only", None, "t-only")
    first = agent.claim(store, "agent-1", "solo")
    assert first.worktree is not None
    (first.worktree.path / "wip.txt").write_text("half done\n")
    agent.fail(store, "solo", "t-only", error="tests failed", agent="agent-1", park="agent-1")
    trees = Worktrees(store.repo)
    parked = trees.idle_path("agent-1")
    assert store.repo.head_of(store.repo.worktree_at(parked)) is None  # detached: the branch is free
    tasks.add(store, "solo", "other", {"priority": -1}, "t-other")
    tasks.edit(store, "solo", "t-only", {"priority": -2})
    agent.claim(store, "agent-2", "solo")
    agent.done(store, "solo", "t-other", agent="agent-2", park="agent-2")
    again = agent.claim(store, "agent-2", "solo", reuse=trees.idle_path("agent-2"))
    assert (again.task.id, again.task.attempts) == ("t-only", 2)
    assert again.worktree is not None and (again.worktree.path / "wip.txt").read_text() == "half done\n"
    fsck(repo)


def test_a_claim_frees_its_branch_from_an_idle_worktree_that_still_holds_it(store: Store, repo: Path) -> None:
    """The moment between parking a worktree and letting go of its branch."""
    projects.create(store, "solo", {"command": "true"})
    tasks.add(store, "solo", "only", None, "t-only")
    agent.claim(store, "agent-1", "solo")
    agent.fail(store, "solo", "t-only", error="tests failed", agent="agent-1", park="agent-1")
    parked = Worktrees(store.repo).idle_path("agent-1")
    git(parked, "checkout", "-q", "gitstate/solo/t-only")  # as if caught before it let go
    again = agent.claim(store, "agent-2", "solo")
    assert again.task.id == "t-only" and again.worktree is not None
    assert store.repo.head_of(store.repo.worktree_at(parked)) is None


def test_a_worktree_add_killed_mid_record_does_not_jam_other_worktrees(api: Store, repo: Path) -> None:
    """`git worktree add` killed after creating `commondir` but before writing it: every
    `git worktree` command then dies on that record, whatever worktree it is about."""
    first = agent.claim(api, "agent-1", "api")
    assert first.worktree is not None
    jammed = repo / ".git/worktrees/t-killed"
    jammed.mkdir()
    (jammed / "locked").write_text("initializing")
    (jammed / "gitdir").write_text(f"{repo}/.git/gitstate/worktrees/api/t-killed/.git\n")
    (jammed / "commondir").write_text("")
    args = ["git", "-C", str(repo), "worktree", "list"]
    jam = subprocess.run(args, capture_output=True, text=True, check=False)
    assert jam.returncode != 0 and "failed to read" in jam.stderr  # git itself is stuck on it
    agent.fail(api, "api", first.task.id, error="tests failed", agent="agent-1", park="agent-1")
    assert not jammed.exists()  # forgotten before git was asked to move the worktree
    assert agent.claim(api, "agent-2", "api").worktree is not None
    fsck(repo)


def test_a_worktree_move_killed_mid_record_leaves_a_folder_that_is_reclaimed(api: Store, repo: Path) -> None:
    """`git worktree move` rewrites the record's `gitdir` in place: killed in between, the
    worktree's folder names a record that no longer names it, and git disowns both."""
    claimed = agent.claim(api, "dead", "api")
    assert claimed.worktree is not None
    (claimed.worktree.git_dir / "gitdir").write_text("")
    with later(repo, 61) as store:
        assert [task.id for _, task in agent.reap(store)] == ["t-high"]
        again = agent.claim(store, "alive", "api")
    assert (again.task.id, again.task.attempts) == ("t-high", 2)
    assert again.worktree is not None and again.worktree.path == claimed.worktree.path
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 2
    fsck(repo)


def test_an_agent_stopping_on_an_error_gives_its_task_back_at_once(
    api: Store, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not when its lease runs out: a stale lock on the task's branch stops `done`."""
    lock = repo / ".git/refs/heads/gitstate/api/t-high.lock"
    real_run = executor.run

    def run_then_lock(*args: Any, **kwargs: Any) -> Any:
        outcome = real_run(*args, **kwargs)
        lock.write_text("")  # a crashed git left the task's branch locked meanwhile
        return outcome

    monkeypatch.setattr(executor, "run", run_then_lock)
    with pytest.raises(Busy, match=r"t-high\.lock"):
        worker.work(api, "w", project="api", once=True)
    task = api.read("api").tasks["t-high"]
    assert (task.status, task.assignee, task.attempts) == (Status.PENDING, None, 1)
    assert task.error is not None and task.error.startswith("the agent stopped: ")
    lock.unlink()
    assert agent.claim(api, "w", "api").task.id == "t-high"
