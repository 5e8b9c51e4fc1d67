"""What the git hooks in ``hooks/`` run: checks of the STATE.yaml files being committed.

A hook runs inside git, which exports ``GIT_DIR``, ``GIT_INDEX_FILE`` and
friends. The repository is found from the hook's own directory, and every git
command gitstate runs gets a clean environment; only the index being committed
(``GIT_INDEX_FILE``, which ``git commit -a`` and ``git commit PATH`` point at a
temporary index) is read on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gitstate import statefile
from gitstate.errors import GitStateError, StateFileError
from gitstate.git import Repository
from gitstate.model import TRANSITIONS, Project


def staged_errors(repo: Repository, environ: Mapping[str, str]) -> list[str]:
    """Problems in the STATE.yaml files staged for the next commit, one line each."""
    index = environ.get("GIT_INDEX_FILE")
    if index and not os.path.isabs(index):
        index = str(Path.cwd() / index)
    errors = []
    for path, oid in repo.staged("projects/*/STATE.yaml", index).items():
        try:
            text = repo.read(oid)[1].decode("utf-8")
            staged = statefile.parse(text, path).project
        except UnicodeDecodeError:
            errors.append(f"{path}: is not UTF-8 text")
            continue
        except StateFileError as exc:
            errors.append(str(exc))
            continue
        before = _committed(repo, path)
        if before is not None:
            errors.extend(_illegal_moves(path, before, staged))
    return errors


def _committed(repo: Repository, path: str) -> Project | None:
    found = repo.info(f"HEAD:{path}")
    if found is None:
        return None
    try:
        return statefile.parse(repo.read(found[0])[1].decode("utf-8"), path).project
    except (GitStateError, UnicodeDecodeError):
        return None  # the committed file was already broken: judge the new one alone


def _illegal_moves(path: str, before: Project, after: Project) -> list[str]:
    problems = []
    for task_id, task in after.tasks.items():
        old = before.tasks.get(task_id)
        if old is None or old.status == task.status or task.status in TRANSITIONS[old.status]:
            continue
        allowed = ", ".join(TRANSITIONS[old.status]) or "nothing (it is final)"
        problems.append(
            f"{path}: task {task_id} went from {old.status} to {task.status}; "
            f"from {old.status} it can move to {allowed}"
        )
    gone = sorted(set(before.tasks) - set(after.tasks))
    problems.extend(f"{path}: task {task_id} was deleted; cancel it instead" for task_id in gone)
    return problems
