"""The example projects are valid and documented; the demo builds a repository from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitstate import statefile
from gitstate.cli import cli
from gitstate.demo import example_files
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


def test_demo_runs_a_pass_in_a_scratch_repository(tmp_path: Path) -> None:
    """The README's first command, as a user runs it: a real process, with its own temp folder."""
    home = Path(os.environ["HOME"])
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    for name in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):  # the demo runs on the real clock
        env.pop(name)
    proc = subprocess.run(
        [sys.executable, "-m", "gitstate", "demo"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    [target] = list(scratch.iterdir())
    assert target.name.startswith("gitstate-demo-")
    assert out.startswith(f"scratch repository: {target}\n")
    for heading in ("$ gitstate run --agents 3", "$ gitstate status", "$ gitstate log", "$ git log --graph"):
        assert f"\n{heading}" in out, heading
    assert "conflict webapp/t-cart: conflicts with shop/routes.py" in out or (
        "conflict webapp/t-catalog: conflicts with shop/routes.py" in out
    )
    assert f"cd {target}\n" in out and "gitstate task history webapp t-cart" in out
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before  # $HOME untouched

    status = CliRunner().invoke(cli, ["-C", str(target), "status", "--json"], catch_exceptions=False)
    counts = {p["name"]: p["counts"] for p in json.loads(status.stdout)["projects"]}
    examples = {
        name: statefile.parse(text, f"projects/{name}/STATE.yaml").project
        for name, text in example_files().items()
    }
    assert {name: counts[name]["total"] for name in counts} == {
        name: len(p.tasks) for name, p in examples.items()
    }
    assert {name: counts[name]["merged"] + counts[name]["cancelled"] for name in counts} == {
        name: len(p.tasks) for name, p in examples.items()
    }
    events = git(target, "log", "--first-parent", "--format=%(trailers:key=Gitstate-Event,valueonly)").split()
    log = CliRunner().invoke(cli, ["-C", str(target), "log", "--json"], catch_exceptions=False).stdout
    kinds = [json.loads(line)["event"] for line in log.splitlines()]
    assert kinds.count("fail") == 1 and kinds.count("reject") == 1 and kinds.count("merge") == 7
    assert sorted(events) == sorted(kinds)  # plain git reads the same trailers
    cart = CliRunner().invoke(cli, ["-C", str(target), "task", "show", "webapp", "t-cart", "--json"]).stdout
    assert json.loads(cart)["task"]["attempts"] in (2, 3)  # failed once; the conflict costs one more
    routes = (target / "shop/routes.py").read_text()
    for route in ("/products", "/cart", "/checkout"):
        assert route in routes
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
