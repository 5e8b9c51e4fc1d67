"""Project operations: create one, change its settings, initialise a repository.

Settings arrive as model values, except ``hooks``, which may also be a mapping
of ``hooks:`` entries as STATE.yaml spells them (``{"on_merge": "make deploy",
"timeout": "5s"}``): it changes only the entries it names (None removes one),
while a ``Hooks`` value replaces them all and None removes every hook.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gitstate import driver, statefile
from gitstate.errors import InvalidInput, StateFileError
from gitstate.git import Oid, Repository
from gitstate.model import Hooks, Project, Settings
from gitstate.names import check_project_name
from gitstate.redact import refuse_secrets
from gitstate.store import Built, Change, Store, default_branch
from gitstate.timefmt import Clock
from gitstate.yamlblock import OMIT

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
    "hooks",
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
    values = _with_hooks(fields or {}, Hooks())
    settings = validate(Settings(name=name, created_at=store.clock.now(), **values))
    return store.create(Project(settings)).project


def edit(store: Store, name: str, fields: Mapping[str, Any]) -> Project:
    _check(fields)
    if not fields:
        raise InvalidInput("nothing to change; give at least one option such as --check")

    def change(current: Project) -> Change:
        values = _with_hooks(fields, current.settings.hooks)
        settings = validate(dataclasses.replace(current.settings, **values))
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
    for key in fields:
        if key not in SETTINGS:
            raise InvalidInput(f"{key!r} is not a project setting; settings: {', '.join(SETTINGS)}")
    if "hooks" in fields:
        # Checked first: a webhook URL with a token gets the message that says what to do instead.
        hooks = hooks_value(fields["hooks"], Hooks())
        fields = {**fields, "hooks": _entries(hooks)}
    refuse_secrets(fields)


def _with_hooks(fields: Mapping[str, Any], current: Hooks) -> dict[str, Any]:
    if "hooks" not in fields:
        return dict(fields)
    return {**fields, "hooks": hooks_value(fields["hooks"], current)}


def hooks_value(value: Any, current: Hooks) -> Hooks:
    """``current`` changed by ``value``: a ``Hooks``, None, or a mapping of entries to change."""
    if value is None:
        return Hooks()
    if isinstance(value, Hooks):
        entries = _entries(value)
    elif isinstance(value, Mapping):
        entries = _entries(current)
        for key, item in value.items():
            entries[key] = list(item) if isinstance(item, tuple) else item
            if item is None:
                del entries[key]
    else:
        kind = type(value).__name__
        raise InvalidInput(f"hooks must be a mapping such as {{'on_merge': 'make deploy'}}, not a {kind}")
    try:
        return statefile.read_hooks(entries)
    except statefile.FieldError as exc:
        raise InvalidInput(f"hooks: {exc}") from None


def _entries(hooks: Hooks) -> dict[str, Any]:
    return {key: value for key, value in statefile.hooks_fields(hooks) if value is not OMIT}
