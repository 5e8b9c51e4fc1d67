"""The store: one commit per change, compare-and-swap with retry, and the user's checkout."""

from __future__ import annotations

import dataclasses
import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitstate import checkout, projects, statefile, tasks
from gitstate.errors import Busy, DirtyStateFile, GitFailed, NotFound, RepositoryError, StateFileError
from gitstate.git import Repository
from gitstate.model import Project
from gitstate.store import Change, Store
from gitstate.timefmt import Clock
from tests.conftest import fsck, git, state_text

HANDWRITTEN = (Path(__file__).parent / "data" / "handwritten.yaml").read_text()


def test_each_change_is_one_commit_with_subject_and_trailers(repo: Path, store: Store) -> None:
    projects.create(store, "api", {"check": "pytest -q"})
    tasks.add(store, "api", "Write the\nlogin page", task_id="t-login")
    log = git(repo, "log", "-2", "--format=%an <%ae> %ad%n%B---", "--date=unix")
    assert log == (
        "Test Author <author@example.com> 1767225600\n"
        'gitstate: add api/t-login "Write the login page"\n\n'
        "Gitstate-Project: api\n"
        "Gitstate-Task: t-login\n"
        "Gitstate-Event: add\n"
        "Gitstate-Agent: Test Author\n"
        "Gitstate-Status: t-login new -> pending\n---\n"
        "Test Author <author@example.com> 1767225600\n"
        "gitstate: create project api\n\n"
        "Gitstate-Project: api\n"
        "Gitstate-Event: create\n"
        "Gitstate-Agent: Test Author\n---\n"
    )
    assert (
        git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "main") == "projects/api/STATE.yaml\n"
    )
    assert git(repo, "log", "--format=%(trailers:key=Gitstate-Task,valueonly)", "-1").strip() == "t-login"
    assert (
        git(repo, "log", "--grep=Gitstate-Event: add", "--format=%s")
        == 'gitstate: add api/t-login "Write the login page"\n'
    )
    fsck(repo)


def test_agent_name_is_recorded(repo: Path) -> None:
    with Repository.discover(repo) as handle:
        store = Store(handle, agent="claude-1")
        projects.create(store, "api")
    assert "Gitstate-Agent: claude-1" in git(repo, "log", "-1", "--format=%B")


def test_writes_never_touch_the_users_other_changes(repo: Path, store: Store) -> None:
    (repo / "README.md").write_text("edited, not staged\n")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    before = git(repo, "status", "--porcelain")
    projects.create(store, "api")
    tasks.add(store, "api", "one")
    assert git(repo, "status", "--porcelain") == before
    assert (repo / "README.md").read_text() == "edited, not staged\n"
    assert (repo / "projects/api/STATE.yaml").read_text() == state_text(repo, "api")
    assert git(repo, "diff", "--cached", "--name-only") == "staged.txt\n"


def test_uncommitted_edit_to_state_file_is_refused_and_kept(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    target = repo / "projects/api/STATE.yaml"
    target.write_text(target.read_text() + "# my note\n")
    head = git(repo, "rev-parse", "main")
    with pytest.raises(
        DirtyStateFile, match=r"projects/api/STATE.yaml has uncommitted changes; commit or stash"
    ):
        tasks.add(store, "api", "one")
    assert git(repo, "rev-parse", "main") == head
    assert target.read_text().endswith("# my note\n")
    git(repo, "add", str(target))
    target.write_text(state_text(repo, "api"))  # staged edit, clean work tree
    with pytest.raises(DirtyStateFile):
        tasks.add(store, "api", "one")
    assert git(repo, "rev-parse", "main") == head


def test_staged_edit_between_two_writes_of_one_store_is_seen(repo: Path) -> None:
    messages: list[str] = []
    with Repository.discover(repo) as handle:
        store = Store(handle, notify=messages.append)
        projects.create(store, "api")
        tasks.add(store, "api", "one")  # the store now remembers what it staged
        target = repo / "projects/api/STATE.yaml"
        committed = target.read_text()
        target.write_text(committed + "# staged note\n")
        git(repo, "add", str(target))
        target.write_text(committed)  # the work tree looks clean; the index does not
        with pytest.raises(DirtyStateFile):
            tasks.add(store, "api", "two")
    assert git(repo, "diff", "--cached").endswith("+# staged note\n")
    assert messages == []


def test_a_new_process_trusts_the_index_record_only_while_the_index_is_unchanged(
    repo: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects.create(store, "api")
    asked: list[str] = []
    real = Repository.git

    def counting(self: Repository, *args: str, **kwargs: object) -> object:
        asked.append(args[0])
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Repository, "git", counting)
    with Repository.discover(repo) as handle:  # a second process: only the record on disk
        tasks.add(Store(handle), "api", "one")
    assert asked.count("ls-files") == 0
    git(repo, "update-index", "--refresh")  # anything that rewrites the index...
    (repo / "x.txt").write_text("x")
    git(repo, "add", "x.txt")
    with Repository.discover(repo) as handle:
        tasks.add(Store(handle), "api", "two")
    assert asked.count("ls-files") == 1  # ...makes gitstate ask git again
    assert git(repo, "status", "--porcelain") == "A  x.txt\n"


def test_other_branch_checked_out_is_left_alone(repo: Path, store: Store) -> None:
    git(repo, "checkout", "-qb", "feature")
    projects.create(store, "api")
    assert not (repo / "projects").exists()
    assert git(repo, "status", "--porcelain") == ""
    assert "api" in state_text(repo, "api")


def test_linked_worktree_on_the_state_branch_is_kept_in_step(
    repo: Path, tmp_path: Path, store: Store
) -> None:
    git(repo, "checkout", "-qb", "feature")
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", str(linked), "main")
    projects.create(store, "api")
    tasks.add(store, "api", "one")
    assert (linked / "projects/api/STATE.yaml").read_text() == state_text(repo, "api")
    assert git(linked, "status", "--porcelain") == ""
    with Repository.discover(linked) as handle:  # and from inside the linked worktree too
        tasks.add(Store(handle), "api", "two")
    assert git(linked, "status", "--porcelain") == ""
    assert git(repo, "status", "--porcelain") == ""


def test_detached_head_is_left_detached(repo: Path, store: Store) -> None:
    git(repo, "checkout", "-q", "--detach")
    projects.create(store, "api")
    assert git(repo, "symbolic-ref", "-q", "HEAD", check=False) == ""
    assert git(repo, "status", "--porcelain") == ""
    assert "project: api" in state_text(repo, "api")


def test_bare_repository_works(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    with Repository.discover(bare) as handle:
        assert handle.bare
        projects.init(handle, None, Clock())
        store = Store(handle)
        projects.create(store, "api")
        added = tasks.add(store, "api", "one")
        assert store.read("api").tasks[added.id].title == "one"
    fsck(bare)


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(
        RepositoryError, match="is not in a git repository; run `git init` there, or pass -C PATH"
    ):
        Repository.discover(tmp_path)


def test_repository_without_commits_needs_init(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    with Repository.discover(path) as handle:
        store = Store(handle)
        with pytest.raises(RepositoryError, match="branch 'main' has no commits yet; run `gitstate init`"):
            store.read_all()
        name, done = projects.init(handle, None, Clock())
        assert (name, len(done)) == ("main", 4)
        assert projects.init(handle, None, Clock()) == ("main", [])  # nothing left to do
        projects.create(store, "api")
    assert git(path, "status", "--porcelain") == ""
    assert git(path, "log", "--format=%s") == (
        "gitstate: create project api\n"
        "gitstate: route STATE.yaml merges to the gitstate merge driver\n"
        "gitstate: initialise the state branch\n"
    )
    assert (path / ".gitattributes").read_text() == "projects/*/STATE.yaml merge=gitstate\n"


def test_detached_head_without_main_cannot_guess_the_branch(tmp_path: Path) -> None:
    path = tmp_path / "r"
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(path)], check=True)
    git(path, "commit", "-q", "--allow-empty", "-m", "x")
    git(path, "checkout", "-q", "--detach")
    git(path, "branch", "-q", "-D", "trunk")
    with Repository.discover(path) as handle, pytest.raises(RepositoryError, match="HEAD is detached"):
        Store(handle)


def test_lost_race_is_retried_against_the_new_state(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    calls: list[int] = []

    def change(current: Project) -> Change:
        calls.append(len(current.tasks))
        if len(calls) == 1:  # another writer lands first (another machine, or a person)
            with Repository.discover(repo) as other:
                tasks.add(Store(other), "api", "theirs", task_id="t-theirs")
        task = dataclasses.replace(current.tasks.get("t-theirs") or _blank(), id="t-mine", title="mine")
        return Change(current.with_task(task), "add", "add mine", ("t-mine",))

    store._locked = _no_lock  # type: ignore[method-assign]  # the other writer must not wait for us
    store.update("api", change)
    assert calls == [0, 1]
    assert sorted(store.read("api").tasks) == ["t-mine", "t-theirs"]
    assert (
        git(repo, "log", "--format=%s", "-2") == 'gitstate: add mine\ngitstate: add api/t-theirs "theirs"\n'
    )
    assert git(repo, "status", "--porcelain") == ""


def _blank() -> statefile.Task:
    return statefile.Task(id="t-x", title="x")


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _no_lock() -> _NoLock:
    return _NoLock()


def test_person_committed_file_keeps_its_formatting(repo: Path, store: Store) -> None:
    (repo / "projects/api").mkdir(parents=True)
    (repo / "projects/api/STATE.yaml").write_text(HANDWRITTEN)
    git(repo, "add", "projects")
    git(repo, "commit", "-qm", "hand-written state")
    tasks.edit(store, "api", "t-login", {"priority": 7})
    diff = git(repo, "diff", "-U0", "HEAD~1", "HEAD")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [
        "-        priority: 2",
        "+        priority: 7",
        "+        updated_at: '2026-01-01T00:00:00Z'",
    ]


def test_broken_file_on_the_branch_is_reported_with_file_and_line(repo: Path, store: Store) -> None:
    (repo / "projects/api").mkdir(parents=True)
    (repo / "projects/api/STATE.yaml").write_text(
        "version: 1\nproject: api\ntasks:\n  t-1:\n    title: x\n    statuss: pending\n"
    )
    git(repo, "add", "projects")
    git(repo, "commit", "-qm", "typo")
    head = git(repo, "rev-parse", "main")
    with pytest.raises(
        StateFileError,
        match=r"^projects/api/STATE.yaml:6: task t-1: unknown task field 'statuss' \(did you mean 'status'\?\)$",
    ):
        tasks.add(store, "api", "more")
    assert git(repo, "rev-parse", "main") == head


def test_second_read_uses_the_cache_not_the_parser(
    repo: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects.create(store, "api")
    tasks.add(store, "api", "one")

    def refuse(*args: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(statefile, "parse", refuse)
    with Repository.discover(repo) as handle:  # a new process: only the on-disk cache
        assert [t.title for t in Store(handle).read("api").tasks.values()] == ["one"]


def test_missing_project_is_named(store: Store) -> None:
    with pytest.raises(
        NotFound, match="^project 'nope' does not exist on main; `gitstate project list` shows the projects$"
    ):
        store.read("nope")


def test_stale_ref_lock_is_reported_and_recovery_works(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    lock = repo / ".git/refs/heads/main.lock"
    lock.write_text("")
    with pytest.raises(
        Busy, match=r"refs/heads/main is locked by another git process .*main\.lock.*remove that file"
    ):
        tasks.add(store, "api", "blocked")
    assert store.read("api").tasks == {}
    lock.unlink()
    tasks.add(store, "api", "fine")
    assert [t.title for t in store.read("api").tasks.values()] == ["fine"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


@pytest.mark.parametrize("left", [0, 150, None])  # bytes of the new file written; None: not created
def test_a_catch_up_killed_while_git_wrote_the_file_is_finished_later(
    repo: Path, monkeypatch: pytest.MonkeyPatch, left: int | None
) -> None:
    target = repo / "projects/api/STATE.yaml"
    lock = repo / ".git/index.lock"

    def killed_mid_write(self: Repository, tree: object, old: str, new: str) -> bool:
        lock.write_bytes(b"")  # git took the index lock, removed the file, wrote part of the new one
        target.unlink()
        if left is not None:
            blob = self.info(f"{new}:projects/api/STATE.yaml")
            assert blob is not None
            target.write_bytes(self.read(blob[0])[1][:left])
        raise Killed

    with Repository.discover(repo) as handle:
        projects.create(Store(handle), "api")
        monkeypatch.setattr(Repository, "update_checkout", killed_mid_write)
        with pytest.raises(Killed):
            tasks.add(Store(handle), "api", "one", task_id="t-1")
        monkeypatch.undo()
    messages: list[str] = []
    with Repository.discover(repo) as handle:  # the next command: not a person's edit, so not refused
        tasks.add(Store(handle, notify=messages.append), "api", "two", task_id="t-2")
    assert messages == [
        f"warning: {repo} could not catch up with main: {lock} exists (another git process is running, "
        "or a crashed one left it); if no git command is running, remove that file: gitstate's next "
        "change brings the checkout up to date"
    ]
    lock.unlink()
    with Repository.discover(repo) as handle:
        tasks.add(Store(handle), "api", "three", task_id="t-3")
    assert git(repo, "status", "--porcelain") == ""
    assert target.read_text() == state_text(repo, "api")
    target.write_text(target.read_text()[:20])  # a person's cut, with no catch-up under way: kept
    with Repository.discover(repo) as handle, pytest.raises(DirtyStateFile):
        tasks.add(Store(handle), "api", "four")


def test_a_catch_up_that_wrote_the_file_but_not_the_index_is_finished_later(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = repo / "projects/api/STATE.yaml"

    def disk_full_after_the_file(self: Repository, tree: object, old: str, new: str) -> bool:
        blob = self.info(f"{new}:projects/api/STATE.yaml")
        assert blob is not None
        target.write_bytes(self.read(blob[0])[1])  # git wrote the file, then the index write failed
        return False

    messages: list[str] = []
    with Repository.discover(repo) as handle:
        store = Store(handle, notify=messages.append)
        projects.create(store, "api")
        monkeypatch.setattr(Repository, "update_checkout", disk_full_after_the_file)
        monkeypatch.setattr(checkout, "_write_record", lambda tree, record: None)  # no room for it either
        monkeypatch.setattr(Repository, "git", _failing_checkout(Repository.git))
        tasks.add(store, "api", "one", task_id="t-1")
        monkeypatch.undo()
        assert len(messages) == 1 and "could not catch up" in messages[0]
        assert git(repo, "status", "--porcelain") == "MM projects/api/STATE.yaml\n"
        # Room again. An edit, not an append: the file left is not a prefix of the new version.
        tasks.edit(store, "api", "t-1", {"priority": 7})
    assert git(repo, "status", "--porcelain") == ""
    assert target.read_text() == state_text(repo, "api")


def _failing_checkout(real: Any) -> Any:
    def git(self: Repository, *args: str, **kwargs: Any) -> Any:
        if args and args[0] == "checkout":
            raise GitFailed(list(args), 128, "fatal: write error. Out of diskspace")
        return real(self, *args, **kwargs)

    return git


def test_a_checkout_moved_on_by_a_catch_up_killed_before_its_record_is_not_an_edit(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = repo / ".git/gitstate-checkout"
    with Repository.discover(repo) as handle:
        store = Store(handle)
        projects.create(store, "api")
        tasks.add(store, "api", "one", task_id="t-1")
        left = record.read_text()
        tasks.add(store, "api", "two", task_id="t-2")
        record.write_text(left)  # git caught the checkout up; the process died before the record
        monkeypatch.setattr(checkout.Checkouts, "catch_up", lambda *args: None)  # the next one before git
        tasks.edit(store, "api", "t-1", {"priority": 3})
        monkeypatch.undo()
        tasks.edit(store, "api", "t-2", {"priority": 4})  # the checkout holds t-2's add: not an edit
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "projects/api/STATE.yaml").read_text() == state_text(repo, "api")


def test_a_persons_edit_back_to_an_older_version_is_not_taken_for_gitstates(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    tasks.add(store, "api", "one", task_id="t-1")
    target = repo / "projects/api/STATE.yaml"
    older = target.read_text()
    tasks.edit(store, "api", "t-1", {"priority": 5})
    target.write_text(older)  # a person undoes the edit by hand: byte for byte an older version
    with pytest.raises(DirtyStateFile):
        tasks.add(store, "api", "two")
    assert target.read_text() == older


def test_a_catch_up_that_failed_cleanly_leaves_no_evidence_behind(repo: Path) -> None:
    target = repo / "projects/api/STATE.yaml"
    lock = repo / ".git/index.lock"
    messages: list[str] = []
    with Repository.discover(repo) as handle:
        store = Store(handle, notify=messages.append)
        projects.create(store, "api")
        lock.write_bytes(b"")  # a person's git command holds the index: the catch-up changes nothing
        tasks.add(store, "api", "one", task_id="t-1")
        lock.unlink()
        assert len(messages) == 1 and "index.lock exists" in messages[0]
        git(repo, "update-index", "-q", "--refresh")  # a person's git command rewrites the index
        tasks.add(store, "api", "two", task_id="t-2")  # catches the checkout up, as the warning says
        assert git(repo, "status", "--porcelain") == ""
        lock.write_bytes(b"")
        tasks.add(store, "api", "three", task_id="t-3")
        lock.unlink()
        tasks.add(store, "api", "four", task_id="t-4")  # the catch-up heads here, and falls short again
        lock.write_bytes(b"")
        tasks.add(store, "api", "five", task_id="t-5")
        lock.unlink()
        cut = target.read_text().split("  t-3:")[0]  # the person deletes the last tasks by hand
        target.write_text(cut)
        with pytest.raises(DirtyStateFile):
            tasks.add(store, "api", "six")
    assert target.read_text() == cut


def test_lock_timeout_says_who_holds_it(repo: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock,sys,time; l=filelock.FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(30)",
            str(repo / ".git/gitstate/locks/refs%heads%main.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        (repo / ".git/gitstate/locks").mkdir(parents=True, exist_ok=True)
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        messages: list[str] = []
        lock = f"{repo}/.git/gitstate/locks/refs%heads%main.lock"
        with Repository.discover(repo) as handle:
            store = Store(handle, lock_timeout=1.5, notify=messages.append)
            with pytest.raises(Busy) as info:
                projects.create(store, "api")
        assert str(info.value) == (
            f"another gitstate process has held the state of main for 1.5s ({lock}); "
            "retry, or raise GITSTATE_LOCK_TIMEOUT"
        )
        assert messages == [f"waiting for another gitstate process holding the state of main ({lock})"]
    finally:
        holder.kill()
        holder.wait()


def add_in_clone(path: str, count: int) -> list[str]:
    with Repository.discover(path) as handle:
        store = Store(handle)
        return [tasks.add(store, "api", f"task {n}").id for n in range(count)]


def test_ids_made_at_the_same_moment_in_two_clones_do_not_collide(
    repo: Path, store: Store, tmp_path: Path
) -> None:
    projects.create(store, "api")
    clones = [tmp_path / "a", tmp_path / "b"]
    for clone in clones:
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:  # same pinned clock, same moment, separate processes
        made = pool.starmap(add_in_clone, [(str(c), 300) for c in clones])
    assert len(set(made[0])) == len(set(made[1])) == 300
    assert not set(made[0]) & set(made[1])
