"""Project operations: create one, change its settings, initialise a repository."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gitstate import driver, statefile
from gitstate.errors import InvalidInput, StateFileError
from gitstate.git import Oid, Repository
from gitstate.model import Project, Settings
from gitstate.names import check_project_name
from gitstate.redact import refuse_secrets
from gitstate.store import Built, Change, Store, default_branch
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


def init(repo: Repository, branch: str | None, clock: Clock) -> tuple[str, list[str]]:
    """Set gitstate up in this clone; safe to run again. Returns (branch, what was done).

    Records the state branch, gives it a first commit if it has none, sets the
    STATE.yaml merge driver in this clone's git config, and commits the
    ``.gitattributes`` line that routes STATE.yaml merges to it.
    """
    name = branch or default_branch(repo)
    valid = repo.git("check-ref-format", "--branch", name, check=False).returncode == 0
    if not valid or name.startswith("-"):
        raise InvalidInput(f"branch name {name!r} is not valid; pick a name `git branch` accepts")
    done = []
    if repo.config("gitstate.branch") != name:
        repo.set_config("gitstate.branch", name)
        done.append(f"recorded {name} as the state branch (git config gitstate.branch)")
    (repo.common_dir / "gitstate").mkdir(exist_ok=True)
    ref = f"refs/heads/{name}"
    if repo.resolve(ref) is None:
        message = "gitstate: initialise the state branch\n\nGitstate-Event: init\n"
        commit = repo.write_commit(repo.write_tree([]), [], message, repo.identity(), date=clock.git_date())
        if repo.update_ref(ref, commit, None):
            done.append(f"gave {name} its first commit")
    if repo.config(f"merge.{driver.NAME}.driver") != driver.command():
        repo.set_config(f"merge.{driver.NAME}.name", "gitstate STATE.yaml merge")
        repo.set_config(f"merge.{driver.NAME}.driver", driver.command())
        done.append("configured the STATE.yaml merge driver in this clone")
    if _commit_attributes(Store(repo, name, clock=clock)):
        done.append(f"committed .gitattributes on {name} (projects/*/STATE.yaml merge={driver.NAME})")
    return name, done


def _commit_attributes(store: Store) -> bool:
    """Add the merge-driver line to .gitattributes on the state branch, if missing."""
    path = ".gitattributes"

    def build(head: Oid) -> Built | None:
        found = store.repo.info(f"{head}:{path}")
        text = store.repo.read(found[0])[1].decode("utf-8", errors="replace") if found else ""
        if driver.ATTRIBUTES_LINE in text.splitlines():
            return None
        text += ("" if not text or text.endswith("\n") else "\n") + driver.ATTRIBUTES_LINE + "\n"
        blob = store.repo.write_object("blob", text.encode())
        tree = store.repo.replace_path(store.repo.commit_tree_oid(head), path, blob)
        message = "gitstate: route STATE.yaml merges to the gitstate merge driver\n\nGitstate-Event: init\n"
        commit = store.repo.write_commit(
            tree, [head], message, store.repo.identity(), date=store.clock.git_date()
        )
        return Built(commit, (path,))

    return store.publish(build)[1] is not None


def _check(fields: Mapping[str, Any]) -> None:
    refuse_secrets(fields)
    for key in fields:
        if key not in SETTINGS:
            raise InvalidInput(f"{key!r} is not a project setting; settings: {', '.join(SETTINGS)}")
