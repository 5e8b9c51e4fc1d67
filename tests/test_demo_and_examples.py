"""The example projects are valid and documented; the demo builds a repository from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitstate import statefile
from gitstate.cli import cli
from gitstate.demo import example_files
from gitstate.model import Status
from tests.conftest import fsck, git

EXAMPLES = Path(__file__).resolve().parents[1] / "projects"


@pytest.mark.parametrize("name", ["webapp", "docs"])
def test_example_projects_are_valid(name: str) -> None:
    text = (EXAMPLES / name / "STATE.yaml").read_text()
    doc = statefile.parse(text, f"projects/{name}/STATE.yaml")
    assert doc.project.name == name
    assert doc.project.tasks


def test_the_commented_example_uses_every_field() -> None:
    doc = statefile.parse((EXAMPLES / "webapp/STATE.yaml").read_text(), "projects/webapp/STATE.yaml")
    used = {
        key
        for task in doc.project.tasks.values()
        for key, value in statefile.task_fields(task)
        if value is not statefile.OMIT
    }
    assert used >= {
        "title",
        "status",
        "priority",
        "description",
        "depends_on",
        "requires",
        "command",
        "assignee",
        "branch",
        "attempts",
        "max_retries",
        "timeout",
        "not_before",
        "result",
        "created_at",
        "updated_at",
        "meta",
    }
    settings = doc.project.settings
    assert all(
        [
            settings.command,
            settings.check,
            settings.max_retries,
            settings.timeout,
            settings.lease,
            settings.requires,
            settings.meta,
        ]
    )


def test_demo_builds_a_scratch_repository(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--dir", str(target)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"scratch repository: {target}\n")
    assert f"cd {target}" in result.stdout
    status = CliRunner().invoke(cli, ["-C", str(target), "status", "--json"], catch_exceptions=False)
    counts = {p["name"]: p["counts"] for p in json.loads(status.stdout)["projects"]}
    examples = {
        name: statefile.parse(text, f"projects/{name}/STATE.yaml").project
        for name, text in example_files().items()
    }
    assert {name: counts[name]["total"] for name in counts} == {
        name: len(p.tasks) for name, p in examples.items()
    }
    assert counts["docs"]["cancelled"] == sum(
        t.status == Status.CANCELLED for t in examples["docs"].tasks.values()
    )
    assert git(target, "status", "--porcelain") == ""
    fsck(target)


def test_demo_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: {tmp_path} is not empty; give the demo a new or empty folder\n",
    )
    assert (tmp_path / "keep.txt").read_text() == "mine"
