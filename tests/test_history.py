"""Audit and rollback from git history: gitstate's answers, and the same answers from plain git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitstate import agent, audit, projects, rollback, tasks
from gitstate.coordinator import Coordinator
from gitstate.errors import InvalidInput, NotFound
from gitstate.model import Status
from gitstate.store import Store
from tests.conftest import Run, fsck, git, state_text


@pytest.fixture
def shop(repo: Path, store: Store) -> Store:
    projects.create(store, "api", {"check": "test ! -e bad.txt"})
    return store


def land(store: Store, task_id: str, files: dict[str, str], *, depends_on: tuple[str, ...] = ()) -> str:
    """Add ``task_id``, do it (writing ``files``), merge it; returns the merge commit."""
    fields = {"priority": 100, "depends_on": depends_on} if depends_on else {"priority": 100}
    tasks.add(store, "api", task_id, fields, task_id)
    claimed = agent.claim(store, "agent-1", "api")
    assert claimed.task.id == task_id and claimed.worktree is not None
    for name, content in files.items():
        (claimed.worktree.path / name).write_text(content)
    agent.done(store, "api", task_id, agent="agent-1")
    report = Coordinator(store).run()
    assert [(x.task, x.outcome) for x in report.landings] == [(task_id, "merged")]
    return store.head()


def events(gs: Run, *args: str) -> list[tuple[str | None, str, str | None, str | None, str | None]]:
    lines = gs("log", "--json", *args).stdout.splitlines()
    found = [json.loads(line) for line in lines]
    return [(e["task"], e["event"], e["agent"], e["old_status"], e["new_status"]) for e in found]


# -- audit ---------------------------------------------------------------------------------------


def test_log_reads_every_event_from_the_trailers_newest_first(shop: Store, gs: Run) -> None:
    land(shop, "t-one", {"one.txt": "1\n"})
    tasks.add(shop, "api", "second", None, "t-two")
    assert events(gs) == [
        ("t-two", "add", "Test Author", "new", "pending"),
        ("t-one", "merge", "coordinator", "completed", "merged"),
        ("t-one", "done", "agent-1", "in_progress", "completed"),
        ("t-one", "claim", "agent-1", "pending", "in_progress"),
        ("t-one", "add", "Test Author", "new", "pending"),
        (None, "create", "Test Author", None, None),
        (None, "init", None, None, None),
    ]
    first = json.loads(gs("log", "--json", "-n", "1").stdout)
    assert set(first) == {"time", "commit", "project", "task", "event", "agent", "old_status", "new_status"}
    assert first["time"] == "2026-01-01T00:00:00Z" and first["project"] == "api"
    assert first["commit"] == shop.head()


def test_log_filters(shop: Store, gs: Run) -> None:
    land(shop, "t-one", {"one.txt": "1\n"})
    projects.create(shop, "web")
    tasks.add(shop, "web", "elsewhere", None, "t-web")
    assert [e[:2] for e in events(gs, "--task", "t-one")] == [
        ("t-one", "merge"),
        ("t-one", "done"),
        ("t-one", "claim"),
        ("t-one", "add"),
    ]
    assert [e[:2] for e in events(gs, "web")] == [("t-web", "add"), (None, "create")]
    assert [e[:2] for e in events(gs, "--agent", "agent-1")] == [("t-one", "done"), ("t-one", "claim")]
    assert [e[:2] for e in events(gs, "--event", "merge")] == [("t-one", "merge")]
    assert [e[:2] for e in events(gs, "api", "--event", "add")] == [("t-one", "add")]
    assert len(events(gs, "-n", "2")) == 2
    assert len(events(gs, "--since", "1h")) == 8  # every commit is dated now
    assert events(gs, "--since", "2026-01-02T00:00:00Z") == []
    text = gs("log", "--task", "t-one", "--event", "merge").stdout.splitlines()
    assert text[0].split() == ["TIME", "COMMIT", "TASK", "EVENT", "AGENT", "STATUS"]
    assert text[1].split()[2:] == ["api/t-one", "merge", "coordinator", "completed", "->", "merged"]
    assert gs("log", "--event", "nothing-like-this").stdout == "no events match\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--task", "-rf"), "error: task id '-rf' "),
        (("--agent", "a\nb"), "error: --agent 'a\\nb' is not a name"),
        (("--since", "yesterday-ish"), "error: --since 'yesterday-ish' "),
        (("no such",), "error: project name 'no such' "),
    ],
)
def test_log_refuses_bad_filters_in_one_line(
    shop: Store, gs: Run, args: tuple[str, ...], message: str
) -> None:
    result = gs("log", *args, code=1)
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_plain_git_gives_the_same_answers(shop: Store, repo: Path, gs: Run) -> None:
    merge = land(shop, "t-one", {"one.txt": "1\n"})
    tasks.add(shop, "api", "second", None, "t-two")
    from_git = git(repo, "log", "--first-parent", "--format=%H", "--grep=^Gitstate-Event: merge$").split()
    assert from_git == [
        json.loads(line)["commit"] for line in gs("log", "--event", "merge", "--json").stdout.splitlines()
    ]
    assert from_git == [merge]
    trailers = git(repo, "log", "-1", "--format=%(trailers)", merge)
    assert "Gitstate-Task: t-one\nGitstate-Event: merge\nGitstate-Agent: coordinator\n" in trailers
    assert "Gitstate-Status: t-one completed -> merged\n" in trailers
    at_merge = json.loads(gs("task", "show", "api", "t-one", "--at", merge, "--json").stdout)
    assert at_merge["task"]["status"] == "merged" and at_merge["at"] == merge
    assert "status: merged" in git(repo, "show", f"{merge}:projects/api/STATE.yaml")
    before = json.loads(gs("task", "show", "api", "t-one", "--at", f"{merge}~2", "--json").stdout)
    assert before["task"]["status"] == "in_progress"  # the claim; ~1 is the completion
    shown = gs("task", "show", "api", "t-one", "--at", "main~1").stdout
    assert shown.splitlines()[-1].split()[:2] == ["at:", "main~1"]
    error = gs("task", "show", "api", "t-one", "--at", "nope", code=1).stderr
    assert error == "error: revision 'nope' does not exist; `git log` lists revisions\n"
    error = gs("task", "show", "api", "t-two", "--at", merge, code=1).stderr
    assert error.startswith("error: task 't-two' is not in project 'api'")


def test_task_history_lists_each_state_with_its_commit(shop: Store, repo: Path, gs: Run) -> None:
    merge = land(shop, "t-one", {"one.txt": "1\n"})
    tasks.add(shop, "api", "unrelated", None, "t-two")  # changes the file, not t-one
    found = json.loads(gs("task", "history", "api", "t-one", "--json").stdout)["history"]
    assert [(h["event"], h["task"]["status"], h["task"]["assignee"]) for h in found] == [
        ("add", "pending", None),
        ("claim", "in_progress", "agent-1"),
        ("done", "completed", "agent-1"),
        ("merge", "merged", "agent-1"),
    ]
    assert found[-1]["commit"] == merge
    for item in found:  # every commit named is on the state branch
        git(repo, "merge-base", "--is-ancestor", item["commit"], "main")
    lines = gs("task", "history", "api", "t-one").stdout.splitlines()
    assert lines[0].split() == ["TIME", "COMMIT", "EVENT", "STATUS", "ASSIGNEE"]
    assert lines[-1].split()[1:] == [merge[:10], "merge", "merged", "agent-1"]
    assert gs("task", "history", "api", "t-zz", code=1).stderr == (
        "error: task 't-zz' never existed in project 'api' on main\n"
    )


def test_history_counts_commits_gitstate_did_not_make(shop: Store, repo: Path, gs: Run) -> None:
    tasks.add(shop, "api", "first", None, "t-one")
    path = repo / "projects/api/STATE.yaml"
    path.write_text(
        path.read_text().replace("priority: 0", "priority: 7").replace("title: first", "title: edited")
    )
    git(repo, "commit", "-qam", "raise t-one by hand")
    tasks.add(shop, "api", "second", None, "t-two")
    git(repo, "rm", "-q", "projects/api/STATE.yaml")
    git(repo, "commit", "-qm", "drop the project by hand")
    found = audit.history(shop, "api", "t-one")
    assert [(s.event, s.task.title if s.task else None) for s in found] == [
        ("add", "first"),
        ("edit", "edited"),
        ("edit", None),
    ]
    assert found[1].subject == "raise t-one by hand"


def test_reading_ten_thousand_events_takes_two_git_processes(
    shop: Store, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long history read in one pass (and one to find other clones' lines): git
    fast-import writes 10,000 event commits."""
    stream = []
    for n in range(10_000):
        message = (
            f"gitstate: claim api/t-{n}\n\nGitstate-Project: api\nGitstate-Task: t-{n}\n"
            f"Gitstate-Event: claim\nGitstate-Agent: a{n % 7}\nGitstate-Status: t-{n} pending -> in_progress\n"
        ).encode()
        stream.append(b"commit refs/heads/main\ncommitter A <a@example.com> 1767225600 +0000\n")
        stream.append(b"data %d\n%s\n" % (len(message), message))
        if n == 0:
            stream.append(b"from %s\n" % shop.head().encode())
    import subprocess

    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(stream), check=True)
    calls: list[tuple[str, ...]] = []
    original = type(shop.repo).git

    def counting(self: object, *args: str, **kwargs: object) -> object:
        calls.append(args)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(type(shop.repo), "git", counting)
    found = list(audit.events(shop, project="api"))
    assert [c[0] for c in calls] == ["log", "log"]
    assert len(found) == 10_001  # and the project's creation
    assert found[0].task == "t-9999" and found[0].agent == "a3" and found[0].new == "in_progress"
    assert len(list(audit.events(shop, agent="a3"))) == len(range(3, 10_000, 7))


# -- rollback ------------------------------------------------------------------------------------


def test_rollback_reverts_the_merge_in_one_new_commit(shop: Store, repo: Path, gs: Run) -> None:
    land(shop, "t-one", {"one.txt": "1\n"})
    merge = shop.head()
    history_before = git(repo, "rev-list", "main").split()
    out = gs("rollback", "api", "t-one").stdout
    assert out == f"reverted api/t-one in {shop.head()[:12]}; now pending\n"
    head = shop.head()
    assert git(repo, "rev-list", "main").split() == [head, *history_before]  # only grew
    assert git(repo, "rev-parse", f"{head}^@").split() == [merge]
    assert git(repo, "ls-tree", "--name-only", "main").split() == [".gitattributes", "README.md", "projects"]
    assert not (repo / "one.txt").exists()  # the checkout of main followed
    back = shop.read("api").tasks["t-one"]
    assert (back.status, back.branch, back.assignee, back.attempts) == (Status.PENDING, None, None, 0)
    assert back.error == f"rolled back: its merge {merge[:12]} was reverted"
    trailers = git(repo, "log", "-1", "--format=%(trailers)")
    assert "Gitstate-Event: rollback\n" in trailers and f"Gitstate-Reverts: {merge}\n" in trailers
    assert "Gitstate-Status: t-one merged -> pending\n" in trailers
    assert events(gs, "--event", "rollback") == [("t-one", "rollback", "Test Author", "merged", "pending")]
    fsck(repo)
    # Done again, it lands again; a second rollback reverts the newest merge.
    claimed = agent.claim(shop, "agent-2", "api")
    assert claimed.worktree is not None and not (claimed.worktree.path / "one.txt").exists()
    (claimed.worktree.path / "one.txt").write_text("1 again\n")
    agent.done(shop, "api", "t-one", agent="agent-2")
    Coordinator(shop).run()
    assert git(repo, "show", "main:one.txt") == "1 again\n"
    again = shop.head()
    rollback.rollback_task(shop, "api", "t-one", cancel=True)
    assert shop.read("api").tasks["t-one"].status == Status.CANCELLED
    assert f"Gitstate-Reverts: {again}\n" in git(repo, "log", "-1", "--format=%(trailers)")
    assert "one.txt" not in git(repo, "ls-tree", "--name-only", "main")


def test_rollback_is_refused_while_merged_work_depends_on_it(shop: Store, repo: Path, gs: Run) -> None:
    land(shop, "t-one", {"one.txt": "1\n"})
    land(shop, "t-two", {"two.txt": "2\n"}, depends_on=("t-one",))
    head = shop.head()
    error = gs("rollback", "api", "t-one", code=1).stderr
    assert error == (
        "error: merged work depends on api/t-one (t-two); roll those back first, or pass --force\n"
    )
    assert shop.head() == head
    gs("rollback", "api", "t-one", "--force")
    assert git(repo, "ls-tree", "--name-only", "main").split() == [
        ".gitattributes",
        "README.md",
        "projects",
        "two.txt",
    ]


def test_rollback_is_refused_when_later_work_conflicts(shop: Store, repo: Path, gs: Run) -> None:
    land(shop, "t-one", {"one.txt": "1\n"})
    land(shop, "t-two", {"one.txt": "1\nand more\n"})  # builds on t-one's file
    head = shop.head()
    merge = audit.merge_of(shop, "api", "t-one")
    error = gs("rollback", "api", "t-one", "--force", code=1).stderr
    assert error == (
        "error: later work conflicts with reverting api/t-one (one.txt); "
        f"revert by hand with `git revert -m 1 {merge[:12]}`\n"
    )
    assert shop.head() == head and shop.read("api").tasks["t-one"].status == Status.MERGED
    fsck(repo)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("api", "t-two"), "error: task api/t-two is pending, not merged; there is no merge to roll back\n"),
        (("api", "t-zz"), "error: task 't-zz' is not in project 'api'\n"),
        (
            ("api",),
            "error: give a task ID to revert its merge, or --to REV to restore the STATE.yaml; not both\n",
        ),
        (
            ("api", "t-two", "--to", "main~1"),
            "error: give a task ID to revert its merge, or --to REV to restore the STATE.yaml; not both\n",
        ),
        (
            ("api", "--to", "main~1", "--cancel"),
            "error: --cancel is for a task's rollback; --to restores the file as it was\n",
        ),
        (("api", "--to", "nope"), "error: revision 'nope' does not exist; `git log` lists revisions\n"),
        (("api", "--to", "main~3"), "error: project 'api' did not exist at main~3\n"),
        (("api", "--to", "main"), "error: project 'api' is already as it was at main\n"),
    ],
)
def test_rollback_refusals_name_the_problem_and_write_nothing(
    shop: Store, gs: Run, args: tuple[str, ...], message: str
) -> None:
    tasks.add(shop, "api", "second", None, "t-two")
    head = shop.head()
    assert gs("rollback", *args, code=1).stderr == message
    assert shop.head() == head


def test_rollback_to_restores_the_state_file_as_of_a_revision(shop: Store, repo: Path, gs: Run) -> None:
    tasks.add(shop, "api", "first", None, "t-one")
    good = shop.head()
    tasks.edit(shop, "api", "t-one", {"title": "changed"})
    tasks.add(shop, "api", "second", None, "t-two")
    out = gs("rollback", "api", "--to", good[:10]).stdout
    assert out == f"restored projects/api/STATE.yaml as of {good[:10]} (1 tasks) in {shop.head()[:12]}\n"
    assert state_text(repo, "api") == state_text(repo, "api", good)
    assert git(repo, "rev-parse", "main^") != good  # a new commit, not a reset
    trailers = git(repo, "log", "-1", "--format=%(trailers)")
    assert "Gitstate-Task: t-one\nGitstate-Task: t-two\nGitstate-Event: rollback\n" in trailers
    assert f"Gitstate-Restores: {good}\n" in trailers


def test_rollback_to_will_not_take_back_held_tasks_unless_forced(shop: Store, gs: Run) -> None:
    tasks.add(shop, "api", "first", None, "t-one")
    good = shop.head()
    agent.claim(shop, "agent-1", "api", worktree=False)
    error = gs("rollback", "api", "--to", good, code=1).stderr
    assert error == (
        f"error: restoring api as of {good} would take back tasks agents hold now (t-one); "
        "release them first, or pass --force\n"
    )
    gs("rollback", "api", "--to", good, "--force")
    assert shop.read("api").tasks["t-one"].status == Status.PENDING


def test_a_plain_git_revert_sends_the_task_back_to_be_done_again(shop: Store, repo: Path, gs: Run) -> None:
    merge = land(shop, "t-one", {"one.txt": "1\n"})
    git(repo, "revert", "--no-edit", "-m", "1", merge)
    assert shop.read("api").tasks["t-one"].status == Status.COMPLETED  # what the revert left
    assert [h.event for h in audit.history(shop, "api", "t-one")][-1] == "revert"
    report = Coordinator(shop).run()
    assert [(x.task, x.outcome) for x in report.landings] == [("t-one", "reverted")]
    back = shop.read("api").tasks["t-one"]
    assert (back.status, back.branch, back.attempts) == (Status.PENDING, None, 0)
    assert back.error == f"its merge {merge[:12]} was reverted; starting again"
    land_again = agent.claim(shop, "agent-1", "api")
    assert land_again.worktree is not None and not (land_again.worktree.path / "one.txt").exists()
    (land_again.worktree.path / "one.txt").write_text("1\n")
    agent.done(shop, "api", "t-one", agent="agent-1")
    assert [x.outcome for x in Coordinator(shop).run().landings] == ["merged"]
    assert git(repo, "show", "main:one.txt") == "1\n"
    fsck(repo)


def test_retry_takes_a_reverted_task_back_before_the_coordinator_does(shop: Store, repo: Path) -> None:
    merge = land(shop, "t-one", {"one.txt": "1\n"})
    git(repo, "revert", "--no-edit", "-m", "1", merge)
    again = tasks.retry(shop, "api", "t-one")
    assert (again.status, again.branch, again.attempts) == (Status.PENDING, None, 0)


def test_retry_of_a_completed_task_keeps_its_unmerged_work(shop: Store, repo: Path) -> None:
    tasks.add(shop, "api", "first", None, "t-one")
    claimed = agent.claim(shop, "agent-1", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "one.txt").write_text("1\n")
    agent.done(shop, "api", "t-one", agent="agent-1")
    tip = git(repo, "rev-parse", "gitstate/api/t-one").strip()
    tasks.retry(shop, "api", "t-one")
    assert git(repo, "rev-parse", "gitstate/api/t-one").strip() == tip  # resumed by the next claim


def test_a_plain_git_checkout_of_an_old_state_file_is_read_like_any_edit(
    shop: Store, repo: Path, gs: Run
) -> None:
    tasks.add(shop, "api", "first", None, "t-one")
    good = shop.head()
    tasks.cancel(shop, "api", "t-one")
    git(repo, "checkout", good, "--", "projects/api/STATE.yaml")
    git(repo, "commit", "-qm", "bring t-one back")
    assert shop.read("api").tasks["t-one"].status == Status.PENDING
    assert [h.event for h in audit.history(shop, "api", "t-one")] == ["add", "cancel", "edit"]
    with pytest.raises(NotFound):
        rollback.rollback_task(shop, "api", "t-zz")
    with pytest.raises(InvalidInput):
        rollback.rollback_task(shop, "api", "t-one")


def test_events_made_in_another_clone_arrive_with_the_sync_merge(
    shop: Store, repo: Path, tmp_path: Path, gs: Run
) -> None:
    from gitstate import remote
    from gitstate.git import Repository

    origin = tmp_path / "origin.git"
    git(repo, "clone", "-q", "--bare", str(repo), str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    with Repository.discover(other) as handle:
        theirs = Store(handle)
        tasks.add(theirs, "api", "from the other clone", None, "t-far")
        tasks.cancel(theirs, "api", "t-far", "not needed")
        remote.push(theirs, "origin")
    tasks.add(shop, "api", "made here", None, "t-near")
    with Repository.discover(repo) as handle:  # a new process would see the new remote
        assert remote.push(Store(handle), "origin").merged_remote == 1  # a sync merge brings their line in
    found = [e[:2] for e in events(gs)]
    assert found[0] == (None, "sync")
    assert sorted(found[1:4]) == [("t-far", "add"), ("t-far", "cancel"), ("t-near", "add")]
    assert [e[:2] for e in events(gs, "--task", "t-far")] == [("t-far", "cancel"), ("t-far", "add")]
    assert [
        (h.event, h.task.status.value if h.task else None) for h in audit.history(shop, "api", "t-far")
    ] == [
        ("add", "pending"),
        ("cancel", "cancelled"),
    ]


def test_a_redone_completion_whose_branch_has_not_arrived_waits(shop: Store, repo: Path) -> None:
    """Merged, rolled back, done again elsewhere: its branch is still on its way, and the
    earlier merge must not make the coordinator take this completion for a reverted one."""
    land(shop, "t-one", {"one.txt": "1\n"})
    rollback.rollback_task(shop, "api", "t-one")
    claimed = agent.claim(shop, "agent-2", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "one.txt").write_text("1 again\n")
    agent.done(shop, "api", "t-one", agent="agent-2")
    agent.gc(shop)
    git(repo, "branch", "-D", "gitstate/api/t-one")  # as if pushed from another clone, not fetched yet
    assert Coordinator(shop).run().landings == []
    task = shop.read("api").tasks["t-one"]
    assert (task.status, task.attempts) == (Status.COMPLETED, 1)


def test_a_retry_while_the_coordinator_checks_is_not_overwritten(shop: Store, repo: Path) -> None:
    """The check passes, but the task was retried meanwhile: the retry stands, nothing lands."""
    projects.edit(shop, "api", {"check": "true"})
    tasks.add(shop, "api", "first", None, "t-one")
    claimed = agent.claim(shop, "agent-1", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "one.txt").write_text("1\n")
    agent.done(shop, "api", "t-one", agent="agent-1")
    coordinator = Coordinator(shop)
    real_check = coordinator._check

    def check_then_retry(name: str, commit: str) -> tuple[bool, str]:
        result = real_check(name, commit)  # type: ignore[arg-type]
        tasks.retry(shop, "api", "t-one")
        return result

    coordinator._check = check_then_retry  # type: ignore[method-assign]
    report = coordinator.run()
    assert [(x.task, x.outcome) for x in report.landings] == [("t-one", "changed")]
    task = shop.read("api").tasks["t-one"]
    assert (task.status, task.attempts) == (Status.PENDING, 0)
    assert "one.txt" not in git(repo, "ls-tree", "--name-only", "main")


def test_revisions_may_be_annotated_tags(shop: Store, repo: Path, gs: Run) -> None:
    tasks.add(shop, "api", "first", None, "t-one")
    git(repo, "tag", "-a", "-m", "the plan", "v1", "main")
    tasks.edit(shop, "api", "t-one", {"title": "changed"})
    assert (
        json.loads(gs("task", "show", "api", "t-one", "--at", "v1", "--json").stdout)["task"]["title"]
        == "first"
    )
    gs("rollback", "api", "--to", "v1")
    assert shop.read("api").tasks["t-one"].title == "first"
    assert gs("task", "show", "api", "t-one", "--at", "--upload-pack=x", code=1).stderr == (
        "error: revision '--upload-pack=x' does not exist; `git log` lists revisions\n"
    )
