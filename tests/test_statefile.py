"""STATE.yaml: validation with file:line, and edits that keep what a person wrote."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitstate import statefile
from gitstate.errors import InvalidInput, StateFileError
from gitstate.model import Project, Settings, Status, Task, move

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PATH = "projects/api/STATE.yaml"
HANDWRITTEN = (Path(__file__).parent / "data" / "handwritten.yaml").read_text()


def reparsed(text: str) -> statefile.StateDoc:
    return statefile.parse(text, PATH)


def test_handwritten_file_reads() -> None:
    doc = reparsed(HANDWRITTEN)
    assert doc.project.settings == Settings(
        name="api", description="The public API", check="pytest -q", timeout=1200
    )
    assert doc.project.tasks["t-login"] == Task(
        id="t-login", title="Login page", priority=2, depends_on=("t-schema",), meta={"owner": "ana"}
    )
    assert doc.project.tasks["t-schema"].status == Status.MERGED
    assert doc.task_indent == 4
    assert doc.tasks == {"t-login": (10, 18), "t-schema": (18, 24)}


def test_edits_rewrite_only_changed_blocks_and_keep_comments_and_quotes() -> None:
    doc = reparsed(HANDWRITTEN)
    p = doc.project
    new = p.with_task(move("api", p.tasks["t-login"], Status.IN_PROGRESS, NOW, assignee="bob"))
    new = new.with_task(dataclasses.replace(p.tasks["t-schema"], error=None))
    new = new.with_task(Task(id="t-new", title="New one", created_at=NOW, updated_at=NOW))
    new = dataclasses.replace(new, settings=dataclasses.replace(p.settings, timeout=None, lease=600))
    text, result = statefile.apply(doc, HANDWRITTEN, new)
    assert text == (
        "# Team API project — edited by hand\n"
        "version: 1\n"
        "project: api\n"
        'description: "The public API"   # quoted on purpose\n'
        "defaults:\n"
        "  check: pytest -q   # fast suite\n"
        "  lease: 10m\n"
        "tasks:\n"
        "\n"
        "    # --- auth ---\n"
        "    t-login:\n"
        "        title: 'Login page'    # keep quotes\n"
        "        status: in_progress\n"
        "        priority: 2\n"
        "        depends_on:\n"
        "          - t-schema     # schema first\n"
        "        assignee: bob\n"
        "        updated_at: '2026-01-01T00:00:00Z'\n"
        "        meta: {owner: ana}\n"
        "\n"
        "    t-schema:\n"
        "        title: Schema\n"
        "        status: merged\n"
        "        priority: 1\n"
        "        error:               # kept for history\n"
        "    # trailing comment about the end\n"
        "    t-new:\n"
        "      title: New one\n"
        "      status: pending\n"
        "      priority: 0\n"
        "      created_at: '2026-01-01T00:00:00Z'\n"
        "      updated_at: '2026-01-01T00:00:00Z'\n"
    )
    assert reparsed(text) == result


def test_unchanged_project_leaves_text_identical() -> None:
    doc = reparsed(HANDWRITTEN)
    assert statefile.apply(doc, HANDWRITTEN, doc.project)[0] == HANDWRITTEN


def test_new_file_then_edits_stay_in_step_with_a_fresh_parse() -> None:
    text, doc = statefile.render_new(Project(Settings(name="api", description="d", check="make test")))
    assert text == (
        "# gitstate project state (format version 1). Edit it by hand or with `gitstate`;\n"
        "# comments and key order survive gitstate's writes. Reference: README.md.\n"
        "version: 1\n"
        "project: api\n"
        "description: d\n"
        "defaults:\n"
        "  check: make test\n"
        "tasks: {}\n"
    )
    assert reparsed(text) == doc
    first = Task(id="t-1", title="one", created_at=NOW, updated_at=NOW)
    text, doc = statefile.apply(doc, text, doc.project.with_task(first))
    assert text.endswith(
        "tasks:\n  t-1:\n    title: one\n    status: pending\n    priority: 0\n"
        "    created_at: '2026-01-01T00:00:00Z'\n    updated_at: '2026-01-01T00:00:00Z'\n"
    )
    assert reparsed(text) == doc


@pytest.mark.parametrize(
    "title",
    [
        "Ünïcødé ✓ 日本語",
        "two\nlines",
        "ends with newline\n",
        "  leading spaces",
        "# not a comment",
        "'quotes\" mixed",
        "a: b",
        "- dash",
        "yes",
        "null",
        "123",
        "tab\there",
        "[brackets]",
        "{braces}",
        "&anchor *alias !tag",
    ],
)
def test_titles_round_trip(title: str) -> None:
    text, doc = statefile.render_new(Project(Settings(name="api")))
    task = Task(id="t-1", title=title, description=title, created_at=NOW, updated_at=NOW)
    text, doc = statefile.apply(doc, text, doc.project.with_task(task))
    assert reparsed(text).project.tasks["t-1"] == task
    assert reparsed(text) == doc


def err(text: str) -> str:
    with pytest.raises(StateFileError) as info:
        reparsed(text)
    return str(info.value)


BASE = "version: 1\nproject: api\ntasks:\n  t-1:\n    title: one\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nproject: api\ntasks: [\n",
            "projects/api/STATE.yaml:4: invalid YAML: expected the node content, but found '<stream end>'",
        ),
        (
            BASE + "<<<<<<< HEAD\n    status: pending\n=======\n",
            "projects/api/STATE.yaml:6: has a merge conflict marker; resolve the conflict and commit",
        ),
        (
            BASE + "    priorty: 3\n",
            "projects/api/STATE.yaml:6: task t-1: unknown task field 'priorty' (did you mean 'priority'?)",
        ),
        (
            BASE + "    status: done\n",
            "projects/api/STATE.yaml:6: task t-1: unknown status 'done'; use one of pending, in_progress, completed, merged, failed, cancelled",
        ),
        (
            BASE + "    priority: high\n",
            "projects/api/STATE.yaml:6: task t-1: 'priority' must be a whole number, not text",
        ),
        (
            BASE + "    depends_on: t-2\n",
            "projects/api/STATE.yaml:6: task t-1: 'depends_on' must be a list such as [a, b], not text",
        ),
        (
            BASE + "    depends_on: [t-9]\n",
            "projects/api/STATE.yaml:4: task t-1 depends on 't-9', which is not a task in this project",
        ),
        (
            BASE + "    depends_on: [t-2]\n  t-2:\n    title: two\n    depends_on: [t-1]\n",
            "projects/api/STATE.yaml:4: task t-1 is in a dependency cycle: t-1 -> t-2 -> t-1",
        ),
        (
            BASE + "  t-1:\n    title: again\n",
            "projects/api/STATE.yaml:6: invalid YAML: duplicate key 't-1' in the mapping that starts at line 4; each key may appear once",
        ),
        (
            BASE + "    timeout: soon\n",
            "projects/api/STATE.yaml:6: task t-1: 'timeout' 'soon' is not a duration; write it like 90s, 5m, 2h or 1h30m",
        ),
        (
            BASE + "    attempts: -1\n",
            "projects/api/STATE.yaml:6: task t-1: 'attempts' must be at least 0, not -1",
        ),
        (
            BASE + "    title: dup\n",
            "projects/api/STATE.yaml:6: invalid YAML: duplicate key 'title' in the mapping that starts at line 5; each key may appear once",
        ),
        ("version: 2\nproject: api\n", "projects/api/STATE.yaml:1: 'version' must be 1, not 2"),
        (
            "version: 1\nproject: web\n",
            "projects/api/STATE.yaml:2: 'project' is 'web' but the directory is 'api'; make them match",
        ),
        (
            "version: 1\nproject: api\ntask: {}\n",
            "projects/api/STATE.yaml:3: unknown top-level key 'task' (did you mean 'tasks'?)",
        ),
        (
            "version: 1\nproject: api\ndefaults:\n  chek: x\n",
            "projects/api/STATE.yaml:4: unknown default 'chek' (did you mean 'check'?)",
        ),
        ("", "projects/api/STATE.yaml:1: is empty; it needs at least 'version: 1' and 'project'"),
        ("- a\n", "projects/api/STATE.yaml:1: must be a mapping with 'version', 'project' and 'tasks'"),
        (
            "version: 1\nproject: api\nx: &a 1\ny: *a\n",
            "projects/api/STATE.yaml:3: uses a YAML anchor or alias (&, *); write values out",
        ),
        (
            BASE + "    meta: !!python/object {}\n",
            "projects/api/STATE.yaml:6: uses a YAML tag (tag:yaml.org,2002:python/object); remove it",
        ),
        (BASE.replace("one", "7"), "projects/api/STATE.yaml:5: task t-1: 'title' must be text, not a number"),
        (
            "version: 1\nproject: api\ntasks:\n  t-1: {status: pending}\n",
            "projects/api/STATE.yaml:4: task t-1: task t-1 has no 'title'",
        ),
        (
            "version: 1\nproject: api\ntasks:\n  12: {title: x}\n",
            "projects/api/STATE.yaml:4: task 12: task id 12 is not valid: use 1-63 letters, digits, '-' or '_', starting with a letter",
        ),
        (
            "version: 1\r\nproject: api\r\n",
            "projects/api/STATE.yaml:1: has a CR line ending; save it with LF line endings only",
        ),
        (
            BASE.replace("one", '"bell\\a"'),
            "projects/api/STATE.yaml:5: task t-1: 'title' contains a control character ('\\x07')",
        ),
    ],
)
def test_bad_files_are_refused_with_file_and_line(text: str, message: str) -> None:
    assert err(text) == message


@pytest.mark.parametrize("separator", ["\r", "\x85", "\u2028", "\u2029"])
def test_line_separators_other_than_newline_are_refused_in_values(separator: str) -> None:
    text, doc = statefile.render_new(Project(Settings(name="api")))
    task = Task(id="t-1", title=f"a{separator}b")
    with pytest.raises(InvalidInput, match="^task t-1: 'title' contains a control character"):
        statefile.apply(doc, text, doc.project.with_task(task))
    assert err(f"version: 1\nproject: api\ndescription: 'a{separator}b'\n").startswith(
        "projects/api/STATE.yaml:3: has a"
    )


def test_deeply_nested_document_is_refused() -> None:
    deep = "version: 1\nproject: api\nmeta: " + "[" * 200 + "]" * 200 + "\n"
    assert err(deep).startswith("projects/api/STATE.yaml")


def test_billion_laughs_is_refused_without_expanding() -> None:
    lol = "version: 1\nproject: api\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    assert err(lol) == "projects/api/STATE.yaml:3: uses a YAML anchor or alias (&, *); write values out"
