"""Lifecycle hooks: the ``hooks:`` settings, and the commands and webhooks told about each event."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitstate import __version__, agent, lifecycle, projects, statefile, tasks, worker, yamlblock
from gitstate.coordinator import Coordinator
from gitstate.errors import InvalidInput, StateFileError
from gitstate.git import Repository
from gitstate.model import Hooks, Project, Settings, Status, Task
from gitstate.redact import MARK
from gitstate.store import Store
from gitstate.timefmt import Clock
from tests.conftest import EPOCH, git, state_text

PATH = "projects/api/STATE.yaml"
EXAMPLE = Path(__file__).resolve().parents[1] / "projects" / "webapp" / "STATE.yaml"
SECRET = "sk-abcdefghijklmnopqrstuvwxyz0123"


def wait_for(check: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
    """Poll ``check`` until it returns something true; the detached helper runs on its own time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def read_if(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def hooks_log(repo: Path) -> Path:
    return repo / ".git" / "gitstate" / "hooks.log"


def recorder(out: Path) -> str:
    """A hook command that saves its environment, directory and payload, named by event and task."""
    return (
        f'd={shlex.quote(str(out))}; n="$GITSTATE_EVENT-$GITSTATE_TASK"; '
        'env > "$d/$n.env"; pwd > "$d/$n.cwd"; '
        'git merge-base --is-ancestor "$GITSTATE_COMMIT" main && touch "$d/$n.published"; '
        'cat > "$d/$n.tmp" && mv "$d/$n.tmp" "$d/$n.json"; echo "$n" >> "$d/events"'
    )


def events(out: Path, count: int) -> list[str]:
    """The events the hooks saw, once there are ``count`` of them."""
    wait_for(lambda: len(read_if(out / "events").split()) >= count, f"{count} hook events")
    return sorted(read_if(out / "events").split())


def received(out: Path, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(wait_for(lambda: read_if(out / f"{name}.json"), name))
    return found


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def api(store: Store, out: Path) -> Store:
    every = {f"on_{event}": recorder(out) for event in ("claim", "complete", "fail", "merge")}
    projects.create(store, "api", {"command": "true", "max_retries": 1, "hooks": every})
    tasks.add(store, "api", "Write the login page", {"priority": 2}, "t-login")
    tasks.add(store, "api", "Write the schema", {"priority": 1}, "t-schema")
    return store


# -- the settings ----------------------------------------------------------------------------------

HANDWRITTEN = """\
version: 1
project: api
defaults:
  check: make test
# Who hears about our tasks.
hooks:                        # keep this short
  on_merge: ./deploy.sh       # ships it
  # on_claim: later, maybe
  webhook: $API_HOOK          # the URL is a secret
  events:
    - merge                   # only merges
  timeout: 5s
meta: {owner: ana}
tasks:
  t-1:
    title: one
    status: pending
    priority: 0
"""


def test_hooks_are_read_from_the_file() -> None:
    hooks = statefile.parse(HANDWRITTEN, PATH).project.settings.hooks
    assert hooks == Hooks(on_merge="./deploy.sh", webhook="$API_HOOK", events=("merge",), timeout=5)
    assert (hooks.command("merge"), hooks.command("claim")) == ("./deploy.sh", None)
    assert (hooks.posts("merge"), hooks.posts("fail"), hooks.seconds()) == (True, False, 5)
    assert (
        statefile.parse(HANDWRITTEN.replace("  timeout: 5s\n", ""), PATH).project.settings.hooks.seconds()
        == 10
    )
    assert statefile.parse("version: 1\nproject: api\nhooks:\n", PATH).project.settings.hooks == Hooks()


def test_changing_hooks_keeps_comments_and_spelling() -> None:
    doc = statefile.parse(HANDWRITTEN, PATH)
    settings = doc.project.settings
    hooks = dataclasses.replace(settings.hooks, on_fail="./page-someone.sh", timeout=30)
    text, new = statefile.apply(
        doc, HANDWRITTEN, Project(dataclasses.replace(settings, hooks=hooks), doc.project.tasks)
    )
    assert text == HANDWRITTEN.replace(  # in the canonical order: on_fail before on_merge
        "  on_merge:", "  on_fail: ./page-someone.sh\n  on_merge:"
    ).replace("timeout: 5s", "timeout: 30s")
    assert statefile.parse(text, PATH) == new
    # A change elsewhere leaves the block alone, byte for byte.
    task = dataclasses.replace(new.project.tasks["t-1"], priority=3)
    text2, _ = statefile.apply(new, text, new.project.with_task(task))
    assert text2.partition("meta:")[0] == text.partition("meta:")[0]


def test_hooks_written_by_gitstate_read_back(store: Store, repo: Path) -> None:
    projects.create(store, "api", {"hooks": {"on_merge": "make deploy", "events": ["fail"], "webhook": "$X"}})
    assert "hooks:\n  on_merge: make deploy\n  webhook: $X\n  events: [fail]\n" in state_text(repo, "api")
    projects.edit(store, "api", {"hooks": {"on_claim": "echo hi", "events": None, "timeout": "5s"}})
    assert store.read("api").settings.hooks == Hooks(
        on_claim="echo hi", on_merge="make deploy", webhook="$X", timeout=5
    )
    projects.edit(store, "api", {"hooks": {"on_merge": None}})
    assert store.read("api").settings.hooks.on_merge is None
    projects.edit(store, "api", {"hooks": Hooks(on_fail="x")})
    assert store.read("api").settings.hooks == Hooks(on_fail="x")
    projects.edit(store, "api", {"hooks": None})
    assert store.read("api").settings.hooks == Hooks()
    assert "hooks" not in state_text(repo, "api")


def test_a_person_s_hooks_block_survives_gitstate_s_writes(store: Store, repo: Path) -> None:
    projects.create(store, "api", {})
    path = repo / PATH
    path.write_text(HANDWRITTEN)
    git(repo, "commit", "-qam", "hooks by hand")
    tasks.add(store, "api", "two", None, "t-2")
    assert state_text(repo, "api").partition("meta:")[0] == HANDWRITTEN.partition("meta:")[0]
    projects.edit(store, "api", {"description": "The API", "hooks": {"on_claim": "./claimed.sh"}})
    expected = HANDWRITTEN.replace("  on_merge:", "  on_claim: ./claimed.sh\n  on_merge:")
    text = state_text(repo, "api")
    assert text.partition("meta:")[0] == expected.partition("meta:")[0]
    assert "description: The API\n" in text


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("hooks: [a]\n", "3: 'hooks' must be a mapping such as {on_merge: CMD}, not a list"),
        ("hooks:\n  on_clam: x\n", "4: hooks: unknown hook setting 'on_clam' (did you mean 'on_claim'?)"),
        ("hooks:\n  on_merge: ''\n", "4: hooks: 'on_merge' must not be empty"),
        ("hooks:\n  on_fail: [a]\n", "4: hooks: 'on_fail' must be text, not a list"),
        (
            "hooks:\n  on_claim: x\n  webhook: ftp://example.com/x\n",
            "5: hooks: 'webhook' must be an http:// or https:// URL, or $NAME to read it from the environment",
        ),
        (
            "hooks:\n  webhook: $1ABC\n",
            "4: hooks: 'webhook' '$1ABC' is not a variable name; write it like $SHOP_WEBHOOK",
        ),
        (
            "hooks:\n  webhook: https://example.com/a b\n",
            "4: hooks: 'webhook' must be a URL or $NAME without spaces",
        ),
        (
            "hooks:\n  events: merge\n",
            "4: hooks: 'events' must be a list of events such as [fail, merge], not text",
        ),
        (
            "hooks:\n  events: [merge, deploy]\n",
            "4: hooks: 'events' lists unknown event 'deploy'; events: claim, complete, fail, merge",
        ),
        ("hooks:\n  events: [fail, fail]\n", "4: hooks: 'events' lists an event twice"),
        (
            "hooks:\n  events: []\n",
            "4: hooks: 'events' is empty; list at least one event, or leave it out to send them all",
        ),
        (
            "hooks:\n  timeout: soon\n",
            "4: hooks: 'timeout' 'soon' is not a duration; write it like 90s, 5m, 2h or 1h30m",
        ),
        ("hooks:\n  timeout: 0\n", "4: hooks: 'timeout' must be positive, not 0"),
    ],
)
def test_bad_hooks_are_refused_with_file_and_line(block: str, message: str) -> None:
    with pytest.raises(StateFileError) as info:
        statefile.parse("version: 1\nproject: api\n" + block, PATH)
    assert str(info.value) == f"{PATH}:{message}"


@pytest.mark.parametrize(
    "url",
    [
        "https://bob:hunter2@example.com/hook",
        "https://ghp_abcdefghijklmnopqrstuvwxyz012345@example.com/hook",
        "https://example.com/hook?token=abcdef123456",
        "https://example.com/hook?api_key=abcdef123456",
    ],
)
def test_a_webhook_url_with_credentials_is_refused_without_echoing_them(url: str, store: Store) -> None:
    with pytest.raises(StateFileError) as info:
        statefile.parse(f"version: 1\nproject: api\nhooks:\n  webhook: '{url}'\n", PATH)
    assert str(info.value) == (
        f"{PATH}:4: hooks: 'webhook' holds credentials (user:password@ or a token); keep them out of git: "
        "put the URL in an environment variable and write webhook: $NAME"
    )
    with pytest.raises(InvalidInput, match=r"write webhook: \$NAME$") as refused:
        projects.create(store, "api", {"hooks": {"webhook": url}})
    assert url not in str(refused.value)


def test_project_edit_refuses_bad_hooks(store: Store) -> None:
    projects.create(store, "api", {})
    with pytest.raises(InvalidInput, match="^hooks: unknown hook setting 'on_deploy'"):
        projects.edit(store, "api", {"hooks": {"on_deploy": "x"}})
    with pytest.raises(InvalidInput, match="^hooks: 'events' lists unknown event 'x'"):
        projects.edit(store, "api", {"hooks": {"events": ("x",)}})
    with pytest.raises(InvalidInput, match="^hooks must be a mapping"):
        projects.edit(store, "api", {"hooks": "on_claim=x"})
    with pytest.raises(InvalidInput, match="looks like it holds a secret"):
        projects.edit(store, "api", {"hooks": {"on_claim": f"notify --key {SECRET}"}})
    assert store.read("api").settings.hooks == Hooks()


def test_cli_options_become_hooks_fields() -> None:
    assert lifecycle.parse_option("claim=make notify") == ("on_claim", "make notify")
    assert lifecycle.parse_option("on_merge=./deploy.sh --fast=yes") == ("on_merge", "./deploy.sh --fast=yes")
    assert lifecycle.parse_option("fail=") == ("on_fail", None)
    with pytest.raises(InvalidInput, match=r"^--hook must look like EVENT=COMMAND"):
        lifecycle.parse_option("make notify")
    with pytest.raises(InvalidInput, match=r"^--hook: unknown event 'merged' \(did you mean 'merge'\?\)"):
        lifecycle.parse_option("merged=x")
    assert lifecycle.option_fields() == {}
    assert lifecycle.option_fields(["claim=a", "fail=b"], "$URL", "fail, merge", "5s") == {
        "hooks": {
            "on_claim": "a",
            "on_fail": "b",
            "webhook": "$URL",
            "events": ["fail", "merge"],
            "timeout": "5s",
        }
    }
    assert lifecycle.option_fields(webhook="", events="all") == {"hooks": {"webhook": None, "events": None}}
    with pytest.raises(InvalidInput, match="given twice"):
        lifecycle.option_fields(["claim=a", "on_claim=b"])


def test_the_example_project_shows_every_hook_setting() -> None:
    text = EXAMPLE.read_text()
    doc = statefile.parse(text, "projects/webapp/STATE.yaml")
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.lstrip("# ").startswith("hooks:")))
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    uncommented = "\n".join(block) + "\n"
    hooks = statefile.read_hooks(yamlblock.load(uncommented)["hooks"])
    assert all(value is not None for value in dataclasses.astuple(hooks)), hooks
    assert doc.project.settings.hooks == Hooks()  # commented out: the example fires nothing


# -- firing ----------------------------------------------------------------------------------------


def test_claim_done_and_fail_each_fire_once_after_the_commit(api: Store, repo: Path, out: Path) -> None:
    claimed = agent.claim(api, "agent-1", "api")
    claim = received(out, "claim-t-login")
    head = git(repo, "rev-parse", "main").strip()
    assert claim == {
        "schema_version": 1,
        "event": "claim",
        "project": "api",
        "task": {
            "id": "t-login",
            "title": "Write the login page",
            "status": "in_progress",
            "priority": 2,
            "assignee": "agent-1",
            "branch": "gitstate/api/t-login",
            "attempts": 1,
            "result": None,
            "error": None,
        },
        "commit": head,
        "agent": "agent-1",
        "time": "2026-01-01T00:00:00Z",
    }
    assert claimed.task.id == "t-login"
    agent.done(api, "api", "t-login", result="login page done", agent="agent-1")
    complete = received(out, "complete-t-login")
    assert (complete["task"]["status"], complete["task"]["result"], complete["agent"]) == (
        "completed",
        "login page done",
        "agent-1",
    )
    assert complete["commit"] == git(repo, "rev-parse", "main").strip()
    agent.claim(api, "agent-2", "api")
    agent.fail(api, "api", "t-schema", error="the tests broke", agent="agent-2")
    failed = received(out, "fail-t-schema")
    assert (failed["task"]["status"], failed["task"]["error"], failed["agent"]) == (
        "pending",  # one more attempt left
        "the tests broke",
        "agent-2",
    )
    assert events(out, 4) == ["claim-t-login", "claim-t-schema", "complete-t-login", "fail-t-schema"]
    for name in ("claim-t-login", "complete-t-login", "fail-t-schema"):
        assert (out / f"{name}.published").exists(), f"{name} ran before its commit was on main"
    env = dict(
        line.split("=", 1) for line in (out / "claim-t-login.env").read_text().splitlines() if "=" in line
    )
    assert {k: v for k, v in env.items() if k.startswith("GITSTATE_")} == {
        "GITSTATE_EVENT": "claim",
        "GITSTATE_PROJECT": "api",
        "GITSTATE_TASK": "t-login",
        "GITSTATE_STATUS": "in_progress",
        "GITSTATE_COMMIT": head,
        "GITSTATE_AGENT": "agent-1",
    }
    assert Path((out / "claim-t-login.cwd").read_text().strip()).resolve() == repo.resolve()
    assert read_if(hooks_log(repo)) == ""
    assert sorted(read_if(out / "events").split()) == sorted(set(read_if(out / "events").split()))


def test_done_and_claim_fires_both_and_a_failing_task_command_fires_fail(api: Store, out: Path) -> None:
    claimed = agent.claim(api, "agent-1", "api")
    _, following = agent.done_and_claim(api, "api", claimed.task.id, result="ok", agent="agent-1")
    assert following is not None and following.task.id == "t-schema"
    agent.release(api, "api", "t-schema", agent="agent-1")  # a release is no event
    tasks.edit(api, "api", "t-schema", {"command": "echo broken; exit 3"})
    ran = worker.work(api, "agent-1", project="api", once=True)
    assert ran[0].final is not None and ran[0].final.status == Status.FAILED
    failed = received(out, "fail-t-schema")
    assert failed["task"]["error"].startswith("exited with code 3")
    assert "broken" in failed["task"]["error"]
    assert events(out, 5) == [
        "claim-t-login",
        "claim-t-schema",
        "claim-t-schema",
        "complete-t-login",
        "fail-t-schema",
    ]


def test_the_coordinator_s_merge_fires_with_the_merge_commit(api: Store, repo: Path, out: Path) -> None:
    claimed = agent.claim(api, "agent-1", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "login.txt").write_text("login\n")
    agent.done(api, "api", "t-login", agent="agent-1")
    report = Coordinator(api).run()
    assert [(x.task, x.outcome) for x in report.landings] == [("t-login", "merged")]
    merged = received(out, "merge-t-login")
    assert (merged["task"]["status"], merged["agent"], merged["commit"]) == (
        "merged",
        "coordinator",
        report.landings[0].commit,
    )
    assert git(repo, "log", "-1", "--format=%s", merged["commit"]).startswith("gitstate: merge api/t-login")
    assert events(out, 3) == ["claim-t-login", "complete-t-login", "merge-t-login"]


def test_a_rejected_landing_and_a_reaped_lease_fire_fail(api: Store, repo: Path, out: Path) -> None:
    projects.edit(api, "api", {"check": "test ! -e bad.txt"})
    claimed = agent.claim(api, "agent-1", "api")
    assert claimed.worktree is not None
    (claimed.worktree.path / "bad.txt").write_text("fails the check\n")
    agent.done(api, "api", "t-login", agent="agent-1")
    Coordinator(api).run()
    rejected = received(out, "fail-t-login")
    assert (rejected["agent"], rejected["task"]["status"]) == ("coordinator", "pending")
    assert rejected["task"]["error"].startswith("check failed: ")
    tasks.edit(api, "api", "t-login", {"priority": 0})
    agent.claim(api, "agent-2", "api", worktree=False)  # t-schema; its holder then vanishes
    with Repository.discover(repo) as handle:
        later = Store(handle, clock=Clock({"GIT_COMMITTER_DATE": f"{EPOCH + 3600} +0000"}))
        assert [t.id for _, t in agent.reap(later)] == ["t-schema"]
    reaped = received(out, "fail-t-schema")
    assert (reaped["agent"], reaped["task"]["status"]) == ("reaper", "pending")
    assert reaped["task"]["error"].startswith("lease expired")


def test_a_slow_hook_does_not_hold_the_claim_up(store: Store, out: Path) -> None:
    pid_file = out / "pid"
    slow = f"echo $$ > {shlex.quote(str(pid_file))}; exec sleep 30"
    projects.create(store, "api", {"hooks": {"on_claim": slow, "timeout": "1m"}})
    tasks.add(store, "api", "one", None, "t-1")
    start = time.monotonic()
    agent.claim(store, "agent-1", "api", worktree=False)
    assert time.monotonic() - start < 5.0  # the hook sleeps 30 s
    pid = int(wait_for(lambda: read_if(pid_file).strip(), "the slow hook to start"))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_failing_or_timed_out_hook_is_logged_and_changes_nothing(
    store: Store, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    hooks = {"on_claim": 'echo "oops $HOOK_SECRET"; exit 1', "on_complete": "sleep 20", "timeout": "1s"}
    projects.create(store, "api", {"hooks": hooks})
    tasks.add(store, "api", "one", None, "t-1")
    agent.claim(store, "agent-1", "api", worktree=False)
    log = hooks_log(repo)
    entry = wait_for(lambda: read_if(log), "the failed hook's log entry")
    assert "api/t-1 claim: command exited with code 1 after" in entry
    assert f"oops {MARK}" in entry and SECRET not in entry
    head = git(repo, "rev-parse", "main")
    assert store.read("api").tasks["t-1"].status == Status.IN_PROGRESS
    agent.done(store, "api", "t-1", agent="agent-1")
    wait_for(lambda: "api/t-1 complete: command timed out after" in read_if(log), "the timeout's log entry")
    assert store.read("api").tasks["t-1"].status == Status.COMPLETED
    assert git(repo, "rev-list", "--count", f"{head.strip()}..main") == "1\n"  # only the completion


def test_no_git_or_gitstate_variables_reach_the_hook(
    store: Store, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects.create(store, "api", {"hooks": {"on_claim": recorder(out)}})
    tasks.add(store, "api", "one", None, "t-1")
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
    monkeypatch.setenv("GIT_INDEX_FILE", "/elsewhere/index")
    monkeypatch.setenv("GIT_WORK_TREE", "/elsewhere")
    monkeypatch.setenv("GITSTATE_PUSH_TOKEN", "secret-value")
    monkeypatch.setenv("KEPT_FOR_HOOKS", "yes")
    agent.claim(store, "agent-1", "api", worktree=False)
    received(out, "claim-t-1")
    names = [
        line.split("=", 1)[0] for line in (out / "claim-t-1.env").read_text().splitlines() if "=" in line
    ]
    assert not [name for name in names if name.startswith("GIT_")]
    assert sorted(name for name in names if name.startswith("GITSTATE_")) == [
        "GITSTATE_AGENT",
        "GITSTATE_COMMIT",
        "GITSTATE_EVENT",
        "GITSTATE_PROJECT",
        "GITSTATE_STATUS",
        "GITSTATE_TASK",
    ]
    assert "KEPT_FOR_HOOKS" in names
    assert "secret-value" not in (out / "claim-t-1.env").read_text()


def test_secrets_in_a_task_never_reach_the_payload(api: Store, out: Path) -> None:
    task = Task(
        id="t-1",
        title=f"use {SECRET}",
        status=Status.FAILED,
        assignee="agent-1",
        result=f"token: {SECRET}",
        error=f"password=hunter2 and {SECRET}",
    )
    body = lifecycle.payload(
        "fail", "api", task, commit="0" * 40, agent="agent-1", now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    text = json.dumps(body)
    assert SECRET not in text and "hunter2" not in text
    assert body["task"]["error"] == f"password={MARK} and {MARK}"
    claimed = agent.claim(api, "agent-1", "api")
    agent.done(api, "api", claimed.task.id, result=f"deployed with {SECRET}", agent="agent-1")
    complete = received(out, "complete-t-login")
    assert complete["task"]["result"] == f"deployed with {MARK}"
    assert SECRET not in json.dumps(complete)


# -- webhooks --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[Hit]]]:
    """A webhook receiver on 127.0.0.1: /ok answers 204, /broken 500, /away redirects to https."""
    hits: list[Hit] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path.startswith("/away"):
                self.send_response(307)
                self.send_header("Location", "https://127.0.0.1:9/elsewhere")
            else:
                self.send_response(500 if self.path.startswith("/broken") else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "*")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_webhook_gets_the_events_it_asks_for(
    store: Store, repo: Path, server: tuple[str, list[Hit]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, hits = server
    monkeypatch.setenv("API_HOOK", f"{url}/ok?project=api")
    projects.create(store, "api", {"hooks": {"webhook": "$API_HOOK", "events": ["claim", "fail"]}})
    tasks.add(store, "api", "one", None, "t-1")
    tasks.add(store, "api", "two", None, "t-2")
    agent.claim(store, "agent-1", "api", worktree=False)
    wait_for(lambda: hits, "the claim's POST")
    agent.done(store, "api", "t-1", agent="agent-1")  # not among the events: nothing posted
    agent.claim(store, "agent-1", "api", worktree=False)
    agent.fail(store, "api", "t-2", error="no", agent="agent-1")
    wait_for(lambda: len(hits) >= 3, "three POSTs")
    hit = next(h for h in hits if h.body["event"] == "claim" and h.body["task"]["id"] == "t-1")
    assert hit.path == "/ok?project=api"
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["user-agent"] == f"gitstate/{__version__}"
    assert hit.body["commit"] and hit.body["task"]["status"] == "in_progress"
    assert sorted((h.body["event"], h.body["task"]["id"]) for h in hits) == [
        ("claim", "t-1"),
        ("claim", "t-2"),
        ("fail", "t-2"),
    ]
    assert read_if(hooks_log(repo)) == ""


def test_webhook_problems_are_logged_and_never_fatal(
    store: Store, repo: Path, server: tuple[str, list[Hit]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, hits = server
    monkeypatch.delenv("API_HOOK", raising=False)
    projects.create(store, "api", {"hooks": {"webhook": "$API_HOOK"}})
    for n in range(1, 4):
        tasks.add(store, "api", f"task {n}", {"priority": 10 - n}, f"t-{n}")
    log = hooks_log(repo)
    agent.claim(store, "agent-1", "api", worktree=False)
    assert (
        "api/t-1 claim: webhook $API_HOOK: the variable is not set or empty; nothing was posted"
        in read_if(log)
    )
    projects.edit(store, "api", {"hooks": {"webhook": f"{url}/broken"}})
    agent.claim(store, "agent-1", "api", worktree=False)
    wait_for(lambda: "api/t-2 claim: webhook http://127.0.0.1 answered HTTP 500" in read_if(log), "the 500")
    projects.edit(store, "api", {"hooks": {"webhook": f"{url}/away"}})
    agent.claim(store, "agent-1", "api", worktree=False)
    wait_for(lambda: "redirect to another scheme refused" in read_if(log), "the refused redirect")
    assert [h.path for h in hits] == ["/broken", "/away"]  # the redirect was not followed
    assert [t.status for t in store.read("api").tasks.values()] == [Status.IN_PROGRESS] * 3


def test_a_hook_that_cannot_start_is_logged(
    store: Store, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects.create(store, "api", {"hooks": {"on_claim": "true"}})
    tasks.add(store, "api", "one", None, "t-1")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("no processes left")

    monkeypatch.setattr(lifecycle.executor, "spawn_detached", broken)
    assert agent.claim(store, "agent-1", "api", worktree=False).task.id == "t-1"
    assert "api/t-1 claim: could not start the hook: no processes left" in read_if(hooks_log(repo))


def test_projects_without_hooks_start_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    projects.create(store, "api", {"hooks": {"webhook": "$X", "events": ["merge"]}})
    tasks.add(store, "api", "one", None, "t-1")
    started: list[Any] = []
    monkeypatch.setattr(lifecycle.executor, "spawn_detached", lambda *a, **k: started.append(a))
    agent.claim(store, "agent-1", "api", worktree=False)
    assert started == []
    assert Settings(name="x").hooks == Hooks()


def test_project_commands_set_show_and_clear_hooks(repo: Path, store: Store) -> None:
    from click.testing import CliRunner

    from gitstate.cli import cli

    def gs(*args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(cli, ["-C", str(repo), *args])
        assert result.exit_code == code, result.output
        return result

    gs(
        "project",
        "add",
        "api",
        "--hook",
        "merge=make deploy",
        "--webhook",
        "$API_HOOK",
        "--hook-events",
        "fail,merge",
    )
    shown = json.loads(gs("project", "show", "api", "--json").stdout)["project"]["hooks"]
    assert shown == {"on_merge": "make deploy", "webhook": "$API_HOOK", "events": ["fail", "merge"]}
    assert "  hooks.on_merge: make deploy\n" in gs("project", "show", "api").stdout
    gs("project", "edit", "api", "--hook", "merge=", "--hook-timeout", "5s")
    assert store.read("api").settings.hooks == Hooks(webhook="$API_HOOK", events=("fail", "merge"), timeout=5)
    error = gs("project", "edit", "api", "--clear", "hooks", "--hook", "claim=x", code=1).stderr
    assert (
        error == "error: --clear hooks conflicts with --hook, --webhook, --hook-events and --hook-timeout\n"
    )
    gs("project", "edit", "api", "--clear", "hooks")
    assert store.read("api").settings.hooks == Hooks()
    assert "hooks:" not in (repo / "projects/api/STATE.yaml").read_text()
