"""Project operations: create one, change its settings, initialise a repository."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gitstate import statefile
from gitstate.errors import InvalidInput, StateFileError
from gitstate.git import Repository
from gitstate.model import Project, Settings
from gitstate.names import check_project_name
from gitstate.redact import refuse_secrets
from gitstate.store import Change, Store, default_branch
from gitstate.timefmt import Clock

SETTINGS = (
    "description",
    "command",
    "check",
    "max_retries",
    "timeout",
    "lease",
    "requires",
    "copy_files",
    "setup",
    "meta",
)


def validate(settings: Settings) -> Settings:
    """Refuse settings the file could not hold, with the file's own message."""
    text, _ = statefile.render_new(Project(settings))
    try:
        statefile.parse(text, statefile.state_path(settings.name))
    except StateFileError as exc:
        raise InvalidInput(f"project {settings.name}: {exc.detail}") from None
    return settings


def create(store: Store, name: str, fields: Mapping[str, Any] | None = None) -> Project:
    check_project_name(name)
    _check(fields or {})
    settings = validate(Settings(name=name, created_at=store.clock.now(), **(fields or {})))
    return store.create(Project(settings)).project


def edit(store: Store, name: str, fields: Mapping[str, Any]) -> Project:
    _check(fields)
    if not fields:
        raise InvalidInput("nothing to change; give at least one option such as --check")

    def change(current: Project) -> Change:
        settings = validate(dataclasses.replace(current.settings, **fields))
        return Change(dataclasses.replace(current, settings=settings), "edit", f"edit project {name}")

    return store.update(name, change).project


def init(repo: Repository, branch: str | None, clock: Clock) -> tuple[str, bool]:
    """Record the state branch and give it a first commit if it has none.

    Returns (branch, whether the first commit was made). Safe to run again.
    """
    name = branch or default_branch(repo)
    valid = repo.git("check-ref-format", "--branch", name, check=False).returncode == 0
    if not valid or name.startswith("-"):
        raise InvalidInput(f"branch name {name!r} is not valid; pick a name `git branch` accepts")
    repo.set_config("gitstate.branch", name)
    (repo.common_dir / "gitstate").mkdir(exist_ok=True)
    ref = f"refs/heads/{name}"
    if repo.resolve(ref) is not None:
        return name, False
    message = "gitstate: initialise the state branch\n\nGitstate-Event: init\n"
    commit = repo.write_commit(repo.write_tree([]), [], message, repo.identity(), date=clock.git_date())
    return name, repo.update_ref(ref, commit, None)


def _check(fields: Mapping[str, Any]) -> None:
    refuse_secrets(fields)
    for key in fields:
        if key not in SETTINGS:
            raise InvalidInput(f"{key!r} is not a project setting; settings: {', '.join(SETTINGS)}")
