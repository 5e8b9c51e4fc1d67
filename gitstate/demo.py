"""``gitstate demo``: a scratch repository built from the example projects.

It creates a new git repository (never touching the user's own repositories or
``$HOME``), adds the example projects in ``projects/`` through the store, task
by task, and leaves the repository behind so it can be explored with gitstate
and plain git.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

from gitstate import projects, statefile, tasks
from gitstate.errors import InvalidInput
from gitstate.git import Repository
from gitstate.model import Project, Status
from gitstate.store import Store
from gitstate.timefmt import Clock

_SETTINGS = ("description", "command", "check", "max_retries", "timeout", "lease", "requires", "meta")
_FIELDS = (
    "description",
    "priority",
    "depends_on",
    "requires",
    "command",
    "max_retries",
    "timeout",
    "not_before",
    "meta",
)


def example_files() -> dict[str, str]:
    """The example projects: bundled in the wheel, or read from the source tree."""
    bundled = resources.files("gitstate") / "examples"
    source = Path(__file__).resolve().parent.parent / "projects"
    found: dict[str, str] = {}
    for folder in (bundled, source):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            state = entry / "STATE.yaml"
            if state.is_file():
                found[entry.name] = state.read_text()
        if found:
            return dict(sorted(found.items()))
    raise InvalidInput("the example projects are missing from this installation; reinstall gitstate")


def _in_dependency_order(project: Project) -> Iterator[str]:
    done: set[str] = set()
    pending = list(project.tasks)
    while pending:
        for task_id in pending:
            if set(project.tasks[task_id].depends_on) <= done:
                done.add(task_id)
                pending.remove(task_id)
                yield task_id
                break


def run(target: Path | None, say: Callable[[str], None]) -> Path:
    """Build the demo repository at ``target`` (default: a new temporary folder)."""
    path = target or Path(tempfile.mkdtemp(prefix="gitstate-demo-"))
    if path.exists() and any(path.iterdir()):
        raise InvalidInput(f"{path} is not empty; give the demo a new or empty folder")
    say(f"scratch repository: {path}")
    path.mkdir(parents=True, exist_ok=True)
    with Repository.create(path, "main") as repo:
        repo.set_config("user.name", "gitstate demo")
        repo.set_config("user.email", "demo@gitstate.invalid")
        (path / "README.md").write_text("A scratch repository made by `gitstate demo`.\n")
        repo.git("add", "README.md", worktree=repo.worktree)
        repo.git("commit", "-q", "-m", "Start the demo repository", worktree=repo.worktree)
        projects.init(repo, "main", Clock())
        store = Store(repo, agent="demo")
        for name, text in example_files().items():
            example = statefile.parse(text, statefile.state_path(name)).project
            fields = {k: getattr(example.settings, k) for k in _SETTINGS if getattr(example.settings, k)}
            projects.create(store, name, fields)
            say(f"$ gitstate project add {name}")
            for task_id in _in_dependency_order(example):
                task = example.tasks[task_id]
                values = {k: getattr(task, k) for k in _FIELDS if getattr(task, k) not in (None, "", (), {})}
                tasks.add(store, name, task.title, values, task_id)
                say(f"$ gitstate task add {name} {task.title!r} --id {task_id}")
                if task.status == Status.CANCELLED:
                    tasks.cancel(store, name, task_id, task.error)
                    say(f"$ gitstate task cancel {name} {task_id}")
    return path
