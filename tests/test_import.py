"""Importing tasks from other trackers (one commit, exact results, one-line refusals) and exporting."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitstate import importer, projects, tasks
from gitstate.errors import InvalidInput, NotFound
from gitstate.model import Project, Settings, Status, Task
from gitstate.store import Change, Store
from tests.conftest import git, state_text

DATA = Path(__file__).parent / "data" / "import"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = "2026-01-01T00:00:00Z"


def text(name: str) -> str:
    return (DATA / name).read_text()


def summary(
    plan_or_project: importer.Plan | Project,
) -> dict[str, tuple[str, int, list[str], dict[str, Any]]]:
    items = (
        plan_or_project.added
        if isinstance(plan_or_project, importer.Plan)
        else plan_or_project.tasks.values()
    )
    return {t.id: (t.status.value, t.priority, list(t.depends_on), dict(t.meta)) for t in items}


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "main").strip()


def stamp(task: Task) -> tuple[str, str]:
    assert task.created_at is not None and task.updated_at is not None
    return task.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), task.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def web(store: Store) -> Store:
    projects.create(store, "web")
    return store


# -- each format, exactly ------------------------------------------------------------------


def test_list_yaml_is_one_commit_with_exact_tasks(repo: Path, web: Store) -> None:
    before = head(repo)
    plan = importer.import_tasks(web, "web", text("tasks.yaml"), source="tasks.yaml")
    assert plan.format == "list"
    made = plan.added[2].id
    assert summary(plan) == {
        "t-schema": ("merged", 3, [], {}),
        "t-api": ("pending", 2, ["t-schema"], {"ticket": "API-7"}),
        made: ("pending", 0, ["t-api"], {}),
        "t-legacy": ("cancelled", 0, [], {}),
    }
    assert made.startswith("t-") and len(made) == 9
    assert git(repo, "rev-list", f"{before}..main") == f"{plan.commit}\n"
    project = web.read("web")
    assert summary(project) == summary(plan)
    api = project.tasks["t-api"]
    assert (api.timeout, api.max_retries, api.requires, api.description) == (
        2700,
        1,
        ("python",),
        "REST endpoints for users and sessions.\n",
    )
    assert project.tasks[made].not_before == datetime(2026, 2, 1, tzinfo=UTC)
    assert project.tasks["t-schema"].result == "schema.sql reviewed"
    assert project.tasks["t-legacy"].error == "replaced by t-api"
    assert stamp(project.tasks["t-schema"]) == ("2025-12-01T09:00:00Z", STAMP)
    assert stamp(api) == (STAMP, STAMP)
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith("gitstate: import 4 tasks into web from tasks.yaml (list)\n\n")
    assert "Gitstate-Event: import\n" in message
    assert f"Gitstate-Task: {made}\n" in message
    assert "Gitstate-Status: t-schema new -> merged\n" in message
    assert (
        git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "main") == "projects/web/STATE.yaml\n"
    )


def test_list_work_under_way_elsewhere_comes_in_pending() -> None:
    content = (
        "- {id: t-a, title: A, status: in_progress, assignee: bob, branch: gitstate/web/t-a, attempts: 1}\n"
        "- {id: t-b, title: B, status: completed}\n"
    )
    plan = importer.plan_import(Project(Settings("web")), content, source="f.yaml", now=NOW)
    assert summary(plan) == {
        "t-a": ("pending", 0, [], {"source_status": "in_progress"}),
        "t-b": ("pending", 0, [], {"source_status": "completed"}),  # its branch never landed here
    }
    assert (plan.added[0].assignee, plan.added[0].branch, plan.added[0].attempts) == (None, None, 1)


def test_ggen_state_maps_statuses_and_keeps_its_timestamps(web: Store) -> None:
    plan = importer.import_tasks(web, "web", text("ggen-state.json"), source=".state.json")
    assert plan.format == "ggen"
    origin = {"imported_from": "ggen"}
    assert summary(plan) == {
        "ggen-1": ("merged", 0, [], {**origin, "source_id": "1"}),
        "ggen-2": (
            "pending",
            0,
            [],
            {**origin, "source_id": "2", "source_status": "in_progress", "retry_count": 1},
        ),
        "ggen-3": ("failed", 0, [], {**origin, "source_id": "3", "retry_count": 3}),
        "ggen-4": ("pending", 0, [], {**origin, "source_id": "4"}),
    }
    found = web.read("web").tasks
    assert found["ggen-2"].title == "Run test suite"
    assert found["ggen-2"].description == "Run test suite\nUse `cargo make test` and list the flaky tests."
    assert found["ggen-1"].result == "42 modules mapped"
    assert found["ggen-3"].error == "tests still failing after 3 attempts"
    assert stamp(found["ggen-1"]) == ("2026-02-08T12:00:00Z", "2026-02-08T12:30:00Z")
    assert stamp(found["ggen-4"]) == (STAMP, STAMP)  # "yesterday" is not a time: the clock's
    assert plan.id_map == {"1": "ggen-1", "2": "ggen-2", "3": "ggen-3", "4": "ggen-4"}


def test_beads_jsonl_priorities_dependencies_closed_and_tombstone(web: Store) -> None:
    plan = importer.import_tasks(web, "web", text("issues.jsonl"), source="issues.jsonl")
    assert plan.format == "beads"
    origin = {"imported_from": "beads"}
    assert summary(plan) == {
        "bd-a3f8": (
            "pending",
            3,
            [],
            {**origin, "source_id": "bd-a3f8", "issue_type": "epic", "labels": ["auth"]},
        ),
        "bd-a3f8-1": (
            "merged",
            4,
            [],
            {
                **origin,
                "source_id": "bd-a3f8.1",
                "issue_type": "task",
                "closed_at": "2025-11-04T08:00:00Z",
                "parent": "bd-a3f8",
            },
        ),
        "bd-a3f8-2": (
            "pending",
            2,
            ["bd-a3f8-1"],
            {
                **origin,
                "source_id": "bd-a3f8.2",
                "source_status": "in_progress",
                "issue_type": "feature",
                "assignee": "claude-1",
                "parent": "bd-a3f8",
            },
        ),
        "bd-c9d1": (
            "pending",
            1,
            ["bd-a3f8-2"],
            {
                **origin,
                "source_id": "bd-c9d1",
                "source_status": "deferred",
                "issue_type": "task",
                "labels": ["auth", "later"],
                "links": {"discovered-from": ["bd-e5f0"]},
                "dropped_depends_on": ["bd-0dead"],
            },
        ),
        "bd-e5f0": (
            "pending",
            0,
            ["bd-a3f8-1"],
            {**origin, "source_id": "bd-e5f0", "source_status": "blocked", "issue_type": "task"},
        ),
    }
    assert plan.skipped == (("bd-0dead", "deleted in beads (tombstone)"),)
    found = web.read("web").tasks
    assert "bd-0dead" not in found
    assert found["bd-a3f8-1"].result == "done in #41"
    assert found["bd-a3f8-1"].branch is None
    assert found["bd-a3f8-2"].assignee is None  # nobody holds a lease here
    assert found["bd-a3f8-2"].description == (
        "A form that posts to /login.\n\nAcceptance criteria:\nWrong passwords show one generic message."
    )
    # Nanoseconds and an offset, as beads writes them.
    assert stamp(found["bd-a3f8"]) == ("2025-11-02T16:00:00Z", "2025-11-03T10:00:00Z")
    # The closed bead is merged, so what waited on it is ready now.
    ready = [t.id for t in tasks.next_task(web, "web")[0].tasks.values() if t.status == Status.PENDING]
    assert "bd-a3f8-2" in ready
    assert tasks.next_task(web, "web")[1].id == "bd-a3f8"  # most urgent ready (priority 3)


def test_taskmaster_subtasks_become_tasks_the_parent_waits_for(web: Store) -> None:
    plan = importer.import_tasks(web, "web", text("taskmaster-tasks.json"), source="tasks.json")
    assert plan.format == "taskmaster"

    def meta(source_id: str, status: str | None = None) -> dict[str, Any]:
        noted = {"source_status": status} if status else {}
        return {"imported_from": "taskmaster", "source_id": source_id, **noted, "tag": "master"}

    assert summary(plan) == {
        "tm-1": ("merged", 3, [], meta("1")),
        "tm-2-1": ("merged", 3, [], meta("2.1")),
        "tm-2-2": ("pending", 3, ["tm-2-1"], meta("2.2")),
        "tm-2-3": ("cancelled", 3, ["tm-2-2"], meta("2.3")),
        # The cancelled subtask is left out: it would hold the parent back for ever.
        "tm-2": ("pending", 3, ["tm-1", "tm-2-1", "tm-2-2"], meta("2", "in-progress")),
        "tm-3": ("pending", 2, ["tm-2", "tm-2-2"], meta("3")),
        "tm-4": ("pending", 1, ["tm-3"], meta("4", "deferred")),
    }
    found = web.read("web").tasks
    assert found["tm-1"].description == (
        "Scaffold the service.\n\nDetails:\nUse uv and ruff.\n\nTest strategy:\nCI passes on an empty commit."
    )
    assert plan.id_map["2.2"] == "tm-2-2"
    assert tasks.next_task(web, "web")[1].id == "tm-2-2"


def test_taskmaster_other_tag_and_a_missing_tag(repo: Path, web: Store) -> None:
    plan = importer.import_tasks(
        web, "web", text("taskmaster-tasks.json"), source="tasks.json", tag="feature-ui"
    )
    assert summary(plan) == {
        "tm-feature-ui-1-1": (
            "merged",
            2,
            [],
            {"imported_from": "taskmaster", "source_id": "1.1", "tag": "feature-ui"},
        ),
        "tm-feature-ui-1": (
            "pending",
            2,
            ["tm-feature-ui-1-1"],
            {"imported_from": "taskmaster", "source_id": "1", "source_status": "review", "tag": "feature-ui"},
        ),
    }
    before = head(repo)
    with pytest.raises(InvalidInput) as caught:
        importer.import_tasks(web, "web", text("taskmaster-tasks.json"), source="tasks.json", tag="release")
    assert str(caught.value) == (
        "tasks.json has no tag 'release'; its tags are master, feature-ui: pick one with --tag"
    )
    assert head(repo) == before


def test_taskmaster_untagged_layout_and_bare_numbers_in_subtasks(web: Store) -> None:
    doc = {
        "tasks": [
            {"id": 1, "title": "Base", "status": "pending", "dependencies": []},
            {
                "id": 2,
                "title": "Feature",
                "status": "pending",
                "dependencies": [],
                "subtasks": [
                    {"id": 2, "title": "Part two", "status": "pending", "dependencies": [1]},
                    {"id": 3, "title": "Part three", "status": "pending", "dependencies": [2, "1"]},
                ],
            },
        ]
    }
    plan = importer.import_tasks(web, "web", json.dumps(doc), source="tasks.json")
    # A bare number names a sibling subtask when there is one (2 -> 2.2), else a task (1).
    assert {t.id: list(t.depends_on) for t in plan.added} == {
        "tm-1": [],
        "tm-2-2": ["tm-1"],
        "tm-2-3": ["tm-2-2", "tm-1"],
        "tm-2": ["tm-2-2", "tm-2-3"],
    }
    with pytest.raises(InvalidInput, match=r"^tasks.json has no tags \(one task list\); leave out the tag$"):
        importer.import_tasks(web, "web", json.dumps(doc), source="tasks.json", tag="feature")


# -- detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tasks.yaml", "list"),
        ("ggen-state.json", "ggen"),
        ("issues.jsonl", "beads"),
        ("taskmaster-tasks.json", "taskmaster"),
    ],
)
def test_auto_detection_picks_each_format_from_content(name: str, expected: str) -> None:
    # A neutral file name: detection reads the content, not the extension.
    plan = importer.plan_import(Project(Settings("web")), text(name), source="upload", now=NOW)
    assert plan.format == expected
    assert (
        importer.plan_import(
            Project(Settings("web")), text(name), source="x", format=expected, now=NOW
        ).format
        == expected
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"id": "t-1", "title": "A"}]', "list"),
        ('[{"id": "t-1", "title": "A", "status": "in_progress", "attempts": 1}]', "list"),
        ('{"tasks": [{"title": "A"}]}', "list"),
        ("t-1:\n  title: A\n", "list"),
        ('{"tasks": [{"id": 1, "desc": "A", "status": "pending"}]}', "ggen"),
        ('{"tasks": [{"id": 1, "title": "A", "dependencies": []}]}', "taskmaster"),
        ('{"id": "bd-1", "title": "A", "status": "open"}\n', "beads"),
        ('[{"id": "bd-1", "title": "A", "status": "open", "priority": 1}]', "beads"),
    ],
)
def test_auto_detection_small_documents(content: str, expected: str) -> None:
    assert importer.plan_import(Project(Settings("web")), content, source="f", now=NOW).format == expected


# -- dry runs, plans and reports -------------------------------------------------------------


def test_dry_run_writes_nothing_and_plans_what_the_import_does(repo: Path, web: Store) -> None:
    before = head(repo)
    dry = importer.import_tasks(web, "web", text("tasks.yaml"), source="tasks.yaml", dry_run=True)
    assert head(repo) == before
    assert dry.commit is None
    assert web.read("web").tasks == {}
    real = importer.import_tasks(web, "web", text("tasks.yaml"), source="tasks.yaml")
    assert dry.added == real.added  # the same ids, made ones included
    assert real.commit == head(repo)


def test_plan_summary_and_json(web: Store) -> None:
    plan = importer.import_tasks(web, "web", text("issues.jsonl"), source="issues.jsonl", dry_run=True)
    lines = plan.summary().splitlines()
    assert lines[0] == "would import 5 tasks into web from issues.jsonl (beads)"
    assert lines[1].split() == ["TASK", "STATUS", "PRI", "FROM", "TITLE"]
    assert lines[3].split()[:4] == ["bd-a3f8-1", "merged", "4", "bd-a3f8.1"]
    assert lines[-1] == "skipped bd-0dead: deleted in beads (tombstone)"
    data = plan.as_json()
    assert data["format"] == "beads" and data["project"] == "web" and data["commit"] is None
    assert [t["id"] for t in data["added"]] == ["bd-a3f8", "bd-a3f8-1", "bd-a3f8-2", "bd-c9d1", "bd-e5f0"]
    assert data["added"][2]["ready"] is True and data["added"][2]["blocked_by"] == []
    assert data["skipped"] == [{"id": "bd-0dead", "reason": "deleted in beads (tombstone)"}]
    assert data["id_map"]["bd-a3f8.1"] == "bd-a3f8-1"
    json.dumps(data)  # plain JSON throughout
    done = importer.import_tasks(web, "web", text("issues.jsonl"), source="issues.jsonl")
    assert done.summary().startswith("imported 5 tasks into web from issues.jsonl (beads)\n")


def test_an_empty_task_list_makes_no_commit(repo: Path, web: Store) -> None:
    before = head(repo)
    plan = importer.import_tasks(web, "web", "tasks: []\n", source="tasks.yaml")
    assert plan.added == () and plan.commit is None
    assert plan.summary() == "would import nothing into web from tasks.yaml (list)"
    assert head(repo) == before


# -- refusals --------------------------------------------------------------------------------

BAD = [
    pytest.param(
        '{"tasks": [\n  {"id": 1,\n   "title": }\n]}',
        "tasks.json",
        "auto",
        "tasks.json:3:13: not valid JSON (Expecting value); fix the file and import it again",
        id="invalid-json",
    ),
    pytest.param(
        '{"id": "bd-1", "title": "A", "status": "open"}\n{"id": "bd-2", "title": \n',
        "issues.jsonl",
        "auto",
        "issues.jsonl:2: line 2 is not valid JSON (Expecting value at column 25); fix or remove the line and import again",
        id="bad-jsonl-line",
    ),
    pytest.param(
        "- title: A\n  priority: [1\n",
        "tasks.yaml",
        "auto",
        r"tasks.yaml:3: not valid YAML \(.*\); fix the file and import it again",
        id="invalid-yaml",
    ),
    pytest.param(
        '"just text"',
        "tasks.json",
        "auto",
        "tasks.json holds text, not tasks; give a list or a mapping of tasks",
        id="shape",
    ),
    pytest.param(
        '{"tasks": [{"id": 1, "desc": "A", "status": "paused"}]}',
        ".state.json",
        "auto",
        ".state.json: task 1: unknown status 'paused'; use one of pending, running, in_progress, done, completed, failed, cancelled",
        id="unknown-status",
    ),
    pytest.param(
        '{"id": "bd-1", "status": "open"}\n',
        "issues.jsonl",
        "auto",
        "issues.jsonl: line 1 (bd-1) has no title; give every task a 'title'",
        id="no-title",
    ),
    pytest.param(
        "- id: t-1\n  title: A\n  depends_on: [t-9]\n",
        "tasks.yaml",
        "auto",
        "tasks.yaml: task t-1 depends on t-9, which is neither in the file nor a task of project web; add it to the file or remove the dependency",
        id="missing-dependency",
    ),
    pytest.param(
        '{"tasks": [{"id": 1, "title": "A", "dependencies": [2]}, {"id": 2, "title": "B", "dependencies": [1]}]}',
        "tasks.json",
        "auto",
        "tasks.json: task tm-1 is in a dependency cycle: tm-1 -> tm-2 -> tm-1; fix the dependencies in the file",
        id="cycle",
    ),
    pytest.param(
        "- id: t-1\n  title: A\n- id: t-1\n  title: B\n",
        "tasks.yaml",
        "auto",
        "tasks.yaml: task t-1 has the same id as task t-1; give each task its own id",
        id="duplicate-id",
    ),
    pytest.param(
        "- title: A\n  priorty: 2\n",
        "tasks.yaml",
        "auto",
        "tasks.yaml: entry 1: unknown task field 'priorty' (did you mean 'priority'?)",
        id="misspelt-field",
    ),
    pytest.param(
        "- &a {title: A}\n- *a\n",
        "tasks.yaml",
        "auto",
        "tasks.yaml:1: uses a YAML anchor or alias (&, *); write the values out",
        id="yaml-anchor",
    ),
    pytest.param(
        "- !!python/object:os.system {title: A}\n",
        "tasks.yaml",
        "auto",
        "tasks.yaml:1: uses a YAML tag (tag:yaml.org,2002:python/object:os.system); remove it",
        id="yaml-tag",
    ),
    pytest.param(
        '{"id": "bd-1", "title": "Deploy", "description": "use token=ghp_abcdefghijklmnopqrstuvwxyz0123", "status": "open"}\n',
        "issues.jsonl",
        "auto",
        "issues.jsonl: line 1 (bd-1): the description looks like it holds a secret (an API key, token or password); keep secrets out of git and give them to commands through the environment",
        id="secret",
    ),
    pytest.param(
        '{"id": "bd-1", "title": "A", "status": "open", "priority": 7}\n',
        "issues.jsonl",
        "auto",
        "issues.jsonl: line 1 (bd-1): priority 7 is not 0-4 (0 is the most urgent)",
        id="beads-priority",
    ),
    pytest.param(
        '{"tasks": [{"id": 1, "title": "A", "dependencies": [], "priority": "urgent"}]}',
        "tasks.json",
        "auto",
        "tasks.json: task 1: priority 'urgent' is not one of critical, high, medium, low",
        id="taskmaster-priority",
    ),
    pytest.param(
        "\n \n", "tasks.yaml", "auto", "tasks.yaml is empty; give a file with at least one task", id="empty"
    ),
    pytest.param(
        "- title: A\n",
        "tasks.yaml",
        "beads",
        "tasks.yaml: issue 1 has no 'id'; give every task its id",
        id="wrong-explicit-format",
    ),
    pytest.param(
        "- title: A\n",
        "tasks.yaml",
        "csv",
        "format 'csv' is not known; use auto, list, ggen, beads, taskmaster",
        id="unknown-format",
    ),
]


@pytest.mark.parametrize(("content", "source", "fmt", "message"), BAD)
def test_bad_input_is_one_line_and_writes_nothing(
    web: Store, content: str, source: str, fmt: str, message: str
) -> None:
    before = web.head()
    with pytest.raises(InvalidInput) as caught:
        importer.import_tasks(web, "web", content, source=source, format=fmt)
    said = str(caught.value)
    assert "\n" not in said
    assert re.fullmatch(message, said) if "\\(" in message else said == message, said
    assert web.head() == before


def test_tag_only_applies_to_task_master(web: Store) -> None:
    with pytest.raises(
        InvalidInput, match=r"^tasks.yaml: a tag only selects tasks in a Task Master file, and this is list$"
    ):
        importer.import_tasks(web, "web", text("tasks.yaml"), source="tasks.yaml", tag="master")


def test_the_project_must_exist(store: Store) -> None:
    with pytest.raises(
        NotFound, match=r"project 'nope' does not exist; create it first with `gitstate project add nope`"
    ):
        importer.import_tasks(store, "nope", text("tasks.yaml"), source="tasks.yaml")
    with pytest.raises(NotFound, match="gitstate project add nope"):
        importer.import_tasks(store, "nope", text("tasks.yaml"), source="tasks.yaml", dry_run=True)


# -- ids ------------------------------------------------------------------------------------


def test_an_id_already_in_the_project_is_refused_by_name(repo: Path, web: Store) -> None:
    tasks.add(web, "web", "Someone else's task", task_id="tm-3")
    before = head(repo)
    with pytest.raises(InvalidInput) as caught:
        importer.import_tasks(web, "web", text("taskmaster-tasks.json"), source="tasks.json")
    assert str(caught.value) == (
        "tasks.json: task 3 would become tm-3, which already exists in project web (was this file imported "
        "already?); change the id in the file or import into another project"
    )
    assert head(repo) == before


def test_importing_the_same_file_twice_is_refused(repo: Path, web: Store) -> None:
    importer.import_tasks(web, "web", text("issues.jsonl"), source="issues.jsonl")
    before = head(repo)
    with pytest.raises(
        InvalidInput, match=r"^issues.jsonl: line 1 \(bd-a3f8\) already exists in project web"
    ):
        importer.import_tasks(web, "web", text("issues.jsonl"), source="issues.jsonl")
    assert head(repo) == before


def test_two_foreign_ids_that_map_to_one_id_are_refused(web: Store) -> None:
    content = (
        '{"id": "bd-a.1", "title": "A", "status": "open"}\n{"id": "bd-a-1", "title": "B", "status": "open"}\n'
    )
    with pytest.raises(InvalidInput) as caught:
        importer.import_tasks(web, "web", content, source="issues.jsonl")
    assert str(caught.value) == (
        "issues.jsonl: line 2 (bd-a-1) and line 1 (bd-a.1) would both be task bd-a-1; give them different ids"
    )


def test_dependencies_may_name_tasks_imported_before(web: Store) -> None:
    importer.import_tasks(
        web, "web", '{"id": "bd-1", "title": "First", "status": "closed"}\n', source="a.jsonl"
    )
    second = '{"id": "bd-2", "title": "Second", "status": "open", "dependencies": [{"issue_id": "bd-2", "depends_on_id": "bd-1", "type": "blocks"}]}\n'
    plan = importer.import_tasks(web, "web", second, source="b.jsonl")
    assert plan.added[0].depends_on == ("bd-1",)
    # A finished task drops what it cannot find: nothing waits on it any more.
    third = '{"id": "bd-3", "title": "Third", "status": "closed", "dependencies": [{"issue_id": "bd-3", "depends_on_id": "bd-zz", "type": "blocks"}]}\n'
    plan = importer.import_tasks(web, "web", third, source="c.jsonl")
    assert (plan.added[0].depends_on, plan.added[0].meta["dropped_depends_on"]) == ((), ["bd-zz"])


# -- the file's comments, and export -----------------------------------------------------------


def test_import_keeps_the_comments_of_a_hand_written_state_file(repo: Path, web: Store) -> None:
    handwritten = (
        (Path(__file__).parent / "data" / "handwritten.yaml")
        .read_text()
        .replace("project: api", "project: web")
    )
    (repo / "projects/web/STATE.yaml").write_text(handwritten)
    git(repo, "add", "projects")
    git(repo, "commit", "-qm", "hand-written state")
    importer.import_tasks(web, "web", text("taskmaster-tasks.json"), source="tasks.json")
    after = state_text(repo, "web")
    diff = git(repo, "diff", "-U0", "HEAD~1", "HEAD")
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == []  # only new lines: every old line, comments included, is where it was
    assert after.count("\n") > handwritten.count("\n") + 20
    for comment in (
        "# Team API project — edited by hand",
        "# keep quotes",
        "# schema first",
        "# --- auth ---",
    ):
        assert comment in after
    project = web.read("web")
    assert {"t-login", "t-schema", "tm-1", "tm-2-2"} <= set(project.tasks)


def test_export_round_trips_through_import(repo: Path, web: Store) -> None:
    projects.create(web, "api", {"timeout": 1200})
    first = tasks.add(web, "api", "Schema", {"priority": 2, "meta": {"owner": "ana"}}, task_id="t-schema")
    tasks.add(
        web,
        "api",
        "Endpoints",
        {
            "depends_on": ("t-schema",),
            "requires": ("python",),
            "timeout": 600,
            "max_retries": 4,
            "command": "make api",
            "not_before": datetime(2026, 3, 1, tzinfo=UTC),
            "description": "All of them.\nEven the odd ones.",
        },
        task_id="t-endpoints",
    )
    tasks.add(web, "api", "Old idea", task_id="t-old")
    tasks.cancel(web, "api", "t-old", reason="not needed")

    def land(current: Project) -> Change:
        done = dataclasses.replace(current.tasks["t-schema"], status=Status.MERGED, attempts=1, result="ok")
        failed = Task(
            "t-flaky",
            "Flaky",
            status=Status.FAILED,
            attempts=3,
            error="timed out",
            created_at=NOW,
            updated_at=NOW,
        )
        return Change(current.with_task(done).with_task(failed), "edit", "set up the test")

    web.update("api", land)
    exported = importer.export(web, ["api"])
    assert exported["schema_version"] == 1 and exported["commit"] == head(repo)
    assert [p["name"] for p in exported["projects"]] == ["api"]
    listed = exported["projects"][0]["tasks"]
    assert listed[0]["inherited"] == ["max_retries", "timeout"]
    assert listed[0]["timeout"] == 1200  # as `task show --json` prints it: the value in force
    projects.create(web, "copy", {"timeout": 1200})
    plan = importer.import_tasks(web, "copy", json.dumps(listed), source="api.json")
    assert plan.format == "list"
    original = web.read("api").tasks
    assert web.read("copy").tasks == original
    assert first.id in original
    # The whole export document of one project imports the same way.
    projects.create(web, "again")
    importer.import_tasks(web, "again", json.dumps(importer.export(web, ["api"])), source="export.json")
    assert web.read("again").tasks == original


def test_export_of_every_project_and_of_a_missing_one(web: Store) -> None:
    projects.create(web, "api")
    tasks.add(web, "api", "One", task_id="t-one")
    exported = importer.export(web)
    assert [p["name"] for p in exported["projects"]] == ["api", "web"]
    assert exported["exported_at"] == STAMP and exported["branch"] == "main"
    assert exported["projects"][0]["counts"]["total"] == 1
    assert exported["projects"][0]["tasks"][0]["id"] == "t-one"
    json.dumps(exported)
    with pytest.raises(InvalidInput, match=r"export of 2 projects; import one project's tasks at a time"):
        importer.import_tasks(web, "web", json.dumps(exported), source="all.json")
    with pytest.raises(NotFound, match="project 'nope' does not exist"):
        importer.export(web, ["nope"])


# -- the commands ---------------------------------------------------------------------------------


def test_cli_import_dry_run_then_import_then_export(repo: Path, store: Store, gs: Any) -> None:
    projects.create(store, "web")
    before = head(repo)
    dry = gs("task", "import", "web", str(DATA / "taskmaster-tasks.json"), "--dry-run").stdout
    assert dry.startswith("would import ") and " into web from taskmaster-tasks.json (taskmaster)\n" in dry
    assert head(repo) == before
    done = json.loads(gs("task", "import", "web", str(DATA / "taskmaster-tasks.json"), "--json").stdout)
    assert done["commit"] == head(repo) != before
    assert [t["id"] for t in done["added"]] == [t.id for t in store.read("web").tasks.values()]
    again = gs("task", "import", "web", str(DATA / "taskmaster-tasks.json"), code=1).stderr
    assert (
        again.startswith("error: taskmaster-tasks.json: task ") and "already exists in project web" in again
    )
    exported = json.loads(gs("export", "web", "--json").stdout)
    assert exported["schema_version"] == 1 and [p["name"] for p in exported["projects"]] == ["web"]
    assert len(exported["projects"][0]["tasks"]) == len(done["added"])
    assert gs("export", code=2).stderr.endswith("Error: export prints JSON only: pass --json\n")


def test_cli_import_reads_stdin_and_refuses_a_file_it_cannot_read(repo: Path, store: Store, gs: Any) -> None:
    from click.testing import CliRunner

    from gitstate.cli import cli

    projects.create(store, "web")
    result = CliRunner().invoke(
        cli, ["-C", str(repo), "task", "import", "web", "-"], input='[{"title": "From a pipe"}]\n'
    )
    assert result.exit_code == 0, result.stderr
    assert [t.title for t in store.read("web").tasks.values()] == ["From a pipe"]
    (repo / "latin1.json").write_bytes('[{"title": "caf\xe9"}]'.encode("latin-1"))
    error = gs("task", "import", "web", str(repo / "latin1.json"), code=1).stderr
    assert error == f"error: {repo / 'latin1.json'} is not UTF-8 text; save it as UTF-8 and import again\n"
    error = gs("task", "import", "web", str(repo / "missing.json"), code=1).stderr
    assert error == f"error: No such file or directory: {repo / 'missing.json'}\n"


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "a.json",
            '[{"title": "x", "priority": %s}]',
            "error: a.json: a value cannot be read: exceeds the limit",
        ),
        (
            "b.jsonl",
            '{"id": "bd-1", "title": "x", "priority": %s}\n',
            "error: b.jsonl:1: line 1: a value cannot be read",
        ),
        ("c.yaml", "- title: x\n  priority: %s\n", "error: c.yaml: not valid YAML (a value cannot be read"),
    ],
)
def test_a_number_too_long_to_read_is_one_line(
    repo: Path, gs: Any, name: str, body: str, message: str
) -> None:
    gs("project", "add", "web")
    before = head(repo)
    (repo / name).write_text(body % ("9" * 5000))
    error = gs("task", "import", "web", str(repo / name), code=1).stderr
    assert error.startswith(message) and error.count("\n") == 1 and "sys." not in error
    assert head(repo) == before
