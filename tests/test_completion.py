"""Shell completion offers the repository's project names and task ids, and never fails loudly."""

from __future__ import annotations

from pathlib import Path

from click.shell_completion import ShellComplete

from gitstate import projects, tasks
from gitstate.cli import cli
from gitstate.store import Store


def complete(args: list[str], incomplete: str) -> list[tuple[str, str | None]]:
    found = ShellComplete(cli, {}, "gitstate", "_GITSTATE_COMPLETE").get_completions(args, incomplete)
    return [(item.value, item.help) for item in found]


def test_project_names_and_task_ids_complete(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    projects.create(store, "apps")
    projects.create(store, "web")
    tasks.add(store, "api", "Add rate limiting", None, "t-rate")
    tasks.add(store, "api", "Fix the login form", None, "t-login")
    where = ["-C", str(repo)]
    assert complete([*where, "task", "show"], "ap") == [("api", None), ("apps", None)]
    assert complete([*where, "task", "show", "api"], "") == [
        ("t-login", "Fix the login form"),
        ("t-rate", "Add rate limiting"),
    ]
    assert complete([*where, "task", "show", "api"], "t-r") == [("t-rate", "Add rate limiting")]
    assert complete([*where, "rollback", "api"], "t-l") == [("t-login", "Fix the login form")]
    assert complete([*where, "log", "api", "--task"], "t-") == [
        ("t-login", "Fix the login form"),
        ("t-rate", "Add rate limiting"),
    ]
    assert complete([*where, "project", "show"], "w") == [("web", None)]
    assert complete([*where, "run", "--project"], "a") == [("api", None), ("apps", None)]


def test_completion_outside_a_repository_offers_nothing(tmp_path: Path) -> None:
    assert complete(["-C", str(tmp_path), "task", "show"], "") == []
    assert complete(["-C", str(tmp_path / "missing"), "task", "show", "api"], "") == []
