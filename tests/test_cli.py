"""The command line, in process: exact output, JSON shapes, exit codes, error lines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitstate.cli import cli
from tests.conftest import Run, git, state_text


def data(result: object) -> dict[str, object]:
    payload = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert payload["schema_version"] == 1
    return payload  # type: ignore[no-any-return]


def test_project_and_task_lifecycle(gs: Run, repo: Path) -> None:
    assert gs(
        "project", "add", "api", "--description", "The API", "--check", "pytest -q", "--timeout", "20m"
    ).stdout == ("created project api (projects/api/STATE.yaml)\n")
    assert (
        gs("task", "add", "api", "Schema", "--id", "t-schema", "--priority", "3").stdout
        == "added api/t-schema\n"
    )
    gs(
        "task",
        "add",
        "api",
        "Login page",
        "--id",
        "t-login",
        "--depends-on",
        "t-schema",
        "--requires",
        "python",
    )
    assert gs("task", "list", "api").stdout == (
        "TASK          STATUS    PRI  ASSIGNEE  TITLE\n"
        "api/t-schema  pending*  3    -         Schema\n"
        "api/t-login   pending   0    -         Login page\n"
    )
    assert gs("next").stdout == "api/t-schema  priority 3  Schema\n"
    assert gs("task", "show", "api", "t-login").stdout == (
        "api/t-login: Login page\n"
        "  status:        pending\n"
        "  priority:      0\n"
        "  assignee:      -\n"
        "  branch:        -\n"
        "  attempts:      0\n"
        "  max_retries:   2\n"
        "  timeout:       20m\n"
        "  depends_on:    t-schema\n"
        "  requires:      python\n"
        "  created_at:    2026-01-01T00:00:00Z\n"
        "  updated_at:    2026-01-01T00:00:00Z\n"
        "  ready:         no, waiting for t-schema (pending)\n"
    )
    assert gs("status").stdout == (
        "PROJECT  TOTAL  READY  PENDING  IN_PROGRESS  COMPLETED  MERGED  FAILED  CANCELLED\n"
        "api      2      1      2        0            0          0       0       0\n"
    )
    assert gs("project", "show", "api").stdout == (
        "api: The API\n"
        "  command:      (default)\n"
        "  check:        pytest -q\n"
        "  max_retries:  (default)\n"
        "  timeout:      20m\n"
        "  lease:        (default)\n"
        "  requires:     (default)\n"
        "  copy_files:   (default)\n"
        "  setup:        (default)\n"
        "  tasks:        2 (2 pending); 1 ready\n"
    )
    assert (
        gs("project", "list").stdout == "PROJECT  TASKS  READY  DESCRIPTION\napi      2      1      The API\n"
    )
    assert git(repo, "status", "--porcelain") == ""


def test_json_outputs(gs: Run) -> None:
    created = data(gs("project", "add", "web", "--requires", "node", "--json"))
    assert created["project"] == {
        "name": "web",
        "description": "",
        "created_at": "2026-01-01T00:00:00Z",
        "defaults": {
            "command": None,
            "check": None,
            "max_retries": None,
            "timeout": None,
            "lease": None,
            "requires": ["node"],
            "copy_files": [],
            "setup": None,
        },
        "hooks": {},
        "meta": {},
        "counts": {
            "pending": 0,
            "in_progress": 0,
            "completed": 0,
            "merged": 0,
            "failed": 0,
            "cancelled": 0,
            "ready": 0,
            "total": 0,
        },
    }
    added = data(gs("task", "add", "web", "Build", "--id", "t-build", "--meta", "ticket=JIRA-1", "--json"))
    assert added["task"] == {
        "project": "web",
        "id": "t-build",
        "title": "Build",
        "status": "pending",
        "priority": 0,
        "description": "",
        "depends_on": [],
        "requires": [],
        "command": None,
        "assignee": None,
        "branch": None,
        "attempts": 0,
        "max_retries": 2,
        "timeout": 1800,
        "lease_expires": None,
        "not_before": None,
        "result": None,
        "error": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "meta": {"ticket": "JIRA-1"},
        "ready": True,
        "blocked_by": [],
    }
    assert [t["id"] for t in data(gs("task", "list", "--json"))["tasks"]] == ["t-build"]  # type: ignore[index]
    assert data(gs("next", "--json", "--requires", "node"))["task"]["id"] == "t-build"  # type: ignore[index]
    assert data(gs("status", "--json")) == {
        "schema_version": 1,
        "branch": "main",
        "projects": [
            {"name": "web", "counts": created["project"]["counts"] | {"pending": 1, "ready": 1, "total": 1}}
        ],  # type: ignore[index]
    }
    assert data(gs("task", "show", "web", "t-build", "--json"))["task"] == added["task"]
    assert [p["name"] for p in data(gs("project", "list", "--json"))["projects"]] == ["web"]  # type: ignore[index]
    assert data(gs("project", "show", "web", "--json"))["project"]["name"] == "web"  # type: ignore[index]


def test_edit_cancel_retry(gs: Run, repo: Path) -> None:
    gs("project", "add", "api")
    gs("task", "add", "api", "One", "--id", "t-1", "--not-before", "+2h", "--meta", "a=1")
    edited = data(
        gs(
            "task",
            "edit",
            "api",
            "t-1",
            "--title",
            "Uno",
            "--priority",
            "4",
            "--clear",
            "not_before",
            "--json",
        )
    )
    assert {k: edited["task"][k] for k in ("title", "priority", "not_before", "ready")} == {  # type: ignore[index]
        "title": "Uno",
        "priority": 4,
        "not_before": None,
        "ready": True,
    }
    assert gs("task", "cancel", "api", "t-1", "--reason", "not needed").stdout == "cancelled api/t-1\n"
    failed = gs("task", "retry", "api", "t-1", code=1)
    assert (
        failed.stderr
        == "error: task api/t-1 is cancelled; it can move to nothing (it is final), not pending\n"
    )
    assert failed.stdout == ""
    gs("task", "add", "api", "Two", "--id", "t-2")
    assert gs("task", "retry", "api", "t-2", code=1).stderr == (
        "error: task api/t-2 is pending; it can move to in_progress, cancelled, not pending\n"
    )
    assert "status: cancelled" in state_text(repo, "api")
    assert "error: not needed" in state_text(repo, "api")


def test_project_edit_and_clear(gs: Run, repo: Path) -> None:
    gs("project", "add", "api", "--command", "make", "--lease", "5m")
    assert (
        gs("project", "edit", "api", "--clear", "command", "--check", "make test").stdout
        == "updated project api\n"
    )
    text = state_text(repo, "api")
    assert "command" not in text and "check: make test" in text and "lease: 5m" in text


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("project", "add", "../x"),
            1,
            "error: project name '../x' is not valid: use 1-63 letters, digits, '-' or '_', starting with a letter or digit\n",
        ),
        (
            ("project", "add", "a b"),
            1,
            "error: project name 'a b' is not valid: use 1-63 letters, digits, '-' or '_', starting with a letter or digit\n",
        ),
        (
            ("project", "add", "x;rm"),
            1,
            "error: project name 'x;rm' is not valid: use 1-63 letters, digits, '-' or '_', starting with a letter or digit\n",
        ),
        (
            ("project", "add", "api"),
            1,
            "error: project 'api' already exists; change it with `gitstate project edit`\n",
        ),
        (
            ("project", "add", "new", "--timeout", "soon"),
            1,
            "error: --timeout 'soon' is not a duration; write it like 90s, 5m, 2h or 1h30m\n",
        ),
        (
            ("task", "add", "nope", "x"),
            1,
            "error: project 'nope' does not exist on main; `gitstate project list` shows the projects\n",
        ),
        (
            ("task", "add", "api", "x", "--id", "t-x", "--depends-on", "t-zz"),
            1,
            "error: api: task t-x depends on 't-zz', which is not a task in this project\n",
        ),
        (
            ("task", "add", "api", "x", "--id", "-rf"),
            1,
            "error: task id '-rf' is not valid: use 1-63 letters, digits, '-' or '_', starting with a letter\n",
        ),
        (
            ("task", "add", "api", "x", "--id", "t-1"),
            1,
            "error: task 't-1' already exists in api; pick another id\n",
        ),
        (("task", "add", "api", "  "), 1, "error: task "),
        (
            ("task", "add", "api", "x", "--requires", "a b"),
            1,
            "error: capability 'a b' is not valid: use 1-63 letters, digits or '-_.+', starting with a letter or digit\n",
        ),
        (
            ("task", "add", "api", "x", "--meta", "novalue"),
            1,
            "error: --meta 'novalue' must look like KEY=VALUE\n",
        ),
        (
            ("task", "add", "api", "use sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234"),
            1,
            "error: the title looks like it holds a secret (an API key, token or password); "
            "keep secrets out of git and give them to commands through the environment\n",
        ),
        (
            ("project", "edit", "api", "--command", "curl -H 'Authorization: Bearer abcdefghijklmnop' x"),
            1,
            "error: command looks like it holds a secret",
        ),
        (
            ("task", "add", "api", "x", "--not-before", "someday"),
            1,
            "error: --not-before 'someday' is not a date; write it like 2026-11-24 or 2026-11-24T09:30:00Z\n",
        ),
        (
            ("task", "edit", "api", "t-1", "--depends-on", "t-1"),
            1,
            "error: api: task t-1 depends on itself; remove it from depends_on\n",
        ),
        (
            ("task", "edit", "api", "t-1"),
            1,
            "error: nothing to change; give at least one option such as --title or --priority\n",
        ),
        (
            ("task", "edit", "api", "t-1", "--clear", "status"),
            1,
            "error: --clear 'status': fields that can be cleared are description, depends_on, requires, command, max_retries, timeout, not_before, meta\n",
        ),
        (
            ("task", "show", "api", "t-9"),
            1,
            "error: task 't-9' is not in project 'api'; `gitstate task list api` shows its tasks\n",
        ),
        (
            ("task", "cancel", "api", "t-9"),
            1,
            "error: task 't-9' is not in project 'api'; `gitstate task list api` shows its tasks\n",
        ),
        (
            ("--agent", "bad name", "status"),
            2,
            "Invalid value for --agent: agent name 'bad name' is not valid",
        ),
        (("task", "add"), 2, "Missing argument 'PROJECT'"),
        (("task", "list", "--status", "done"), 2, "Invalid value for '--status'"),
        (("task", "add", "api", "x", "--max-retries", "-1"), 2, "Invalid value for '--max-retries'"),
    ],
)
def test_bad_input_gets_one_line_and_writes_nothing(
    gs: Run, repo: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    gs("project", "add", "api")
    gs("task", "add", "api", "One", "--id", "t-1")
    head = git(repo, "rev-parse", "main")
    result = gs(*args, code=code)
    assert result.stdout == ""
    if code == 1:
        assert result.stderr.startswith(message)
        assert result.stderr.count("\n") == 1
    else:
        assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert git(repo, "rev-parse", "main") == head
    assert git(repo, "status", "--porcelain") == ""


def test_json_errors_are_json_on_stdout(gs: Run) -> None:
    result = gs("task", "show", "nope", "t-1", "--json", code=1)
    assert json.loads(result.stdout) == {
        "schema_version": 1,
        "error": {
            "code": "not_found",
            "message": "project 'nope' does not exist on main; `gitstate project list` shows the projects",
        },
    }
    assert result.stderr.startswith("error: project 'nope'")


def test_next_exit_code_when_nothing_is_ready(gs: Run) -> None:
    gs("project", "add", "api")
    assert gs("next", code=3).stderr == "error: there are no tasks\n"
    gs("task", "add", "api", "GPU job", "--requires", "gpu")
    assert gs("next", "--requires", "cpu", code=3).stderr == (
        "error: no pending task is ready: 1 need capabilities this agent lacks (gpu)\n"
    )
    assert (
        json.loads(gs("next", "--requires", "cpu", "--json", code=3).stdout)["error"]["code"]
        == "nothing_ready"
    )


def test_runs_from_a_subdirectory(gs: Run, repo: Path) -> None:
    (repo / "src" / "deep").mkdir(parents=True)
    gs("project", "add", "api", cwd=repo / "src" / "deep")
    assert gs("project", "list", cwd=repo / "src").stdout.startswith("PROJECT")


def test_outside_a_repository(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), "status"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {tmp_path} is not in a git repository; run `git init` there, or pass -C PATH\n"
    )


def test_empty_repository_points_to_init(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), "status"])
    assert (result.exit_code, result.stderr) == (
        1,
        "error: branch 'main' has no commits yet; run `gitstate init` to create it\n",
    )
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), "init"])
    assert result.stdout == (
        "recorded main as the state branch (git config gitstate.branch)\n"
        "gave main its first commit\n"
        "configured the STATE.yaml merge driver in this clone\n"
        "committed .gitattributes on main (projects/*/STATE.yaml merge=gitstate)\n"
        f"installed the pre-commit hook in {tmp_path / '.git/hooks'}\n"
        f"installed the pre-merge-commit hook in {tmp_path / '.git/hooks'}\n"
        "gitstate keeps state on branch main; add a project: gitstate project add NAME\n"
    )
    assert CliRunner().invoke(cli, ["-C", str(tmp_path), "status"]).stdout == (
        "no projects on main yet; add one with: gitstate project add NAME\n"
    )


def test_init_on_a_named_branch(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    assert CliRunner().invoke(cli, ["-C", str(tmp_path), "init", "--branch", "state"]).exit_code == 0
    CliRunner().invoke(cli, ["-C", str(tmp_path), "project", "add", "api"], catch_exceptions=False)
    assert git(tmp_path, "config", "gitstate.branch") == "state\n"
    assert "project: api" in state_text(tmp_path, "api", "state")
    assert git(tmp_path, "log", "--format=%s", "main") == "x\n"
    bad = CliRunner().invoke(cli, ["-C", str(tmp_path), "init", "--branch", "a..b"])
    assert (bad.exit_code, bad.stderr) == (
        1,
        "error: branch name 'a..b' is not valid; pick a name `git branch` accepts\n",
    )


def test_unicode_and_newlines_in_titles_round_trip(gs: Run) -> None:
    gs("project", "add", "api")
    title = "Überprüfen ✓ 日本語\nsecond line: `$(touch pwned)`; rm -rf ~"
    made = data(gs("task", "add", "api", title, "--description", title, "--json"))["task"]
    shown = data(gs("task", "show", "api", made["id"], "--json"))["task"]  # type: ignore[index]
    assert (shown["title"], shown["description"]) == (title, title)  # type: ignore[index]
