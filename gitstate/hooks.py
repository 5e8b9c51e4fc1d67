"""The git hooks in ``hooks/``: installing them beside the user's own, and what they run.

``install`` puts them in the hooks folder git uses (``core.hooksPath`` when it
is inside this repository, else ``.git/hooks``). A hook that is already there
and is not gitstate's is kept as ``<name>.legacy``, and gitstate's script runs
it first, so nothing the user had stops working; that is also the convention
of the pre-commit framework, whose own hook runs a ``.legacy`` one.

A hook runs inside git, which exports ``GIT_DIR``, ``GIT_INDEX_FILE`` and
friends. The repository is found from the hook's own directory, and every git
command gitstate runs gets a clean environment; only the index being committed
(``GIT_INDEX_FILE``, which ``git commit -a`` and ``git commit PATH`` point at a
temporary index) is read on purpose.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from gitstate import statefile
from gitstate.errors import GitStateError, InvalidInput, StateFileError
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


HOOKS = ("pre-commit", "pre-merge-commit")
MARKER = "gitstate-hook"
# Hooks written by hook managers, which must stay where they are: they find
# their configuration by their own name (husky, lefthook), or refuse to run
# renamed (the pre-commit framework). gitstate is added to their configuration.
MANAGERS = {"pre-commit.com": "the pre-commit framework", "husky": "husky", "lefthook": "lefthook"}


def script(name: str) -> str:
    """The hook script as shipped: bundled in the wheel, or read from the source tree."""
    for folder in (
        resources.files("gitstate") / "hook_scripts",
        Path(__file__).resolve().parent.parent / "hooks",
    ):
        found = folder / name
        if found.is_file():
            return found.read_text()
    raise InvalidInput(f"the {name} hook script is missing from this installation; reinstall gitstate")


def hooks_folder(repo: Repository) -> tuple[Path | None, str]:
    """Where git looks for this repository's hooks; None (and why) when gitstate should not write there."""
    configured = repo.config("core.hooksPath")
    if not configured:
        return repo.common_dir / "hooks", ""
    base = repo.toplevel or repo.common_dir
    folder = (base / Path(configured).expanduser()).resolve()
    inside = [
        p for p in (repo.toplevel, repo.common_dir) if p is not None and folder.is_relative_to(p.resolve())
    ]
    if not inside:
        return None, f"core.hooksPath is {configured}, outside this repository"
    return folder, ""


def install(repo: Repository, python: str) -> list[str]:
    """Install or update gitstate's hooks; returns what was done, one line each."""
    folder, why = hooks_folder(repo)
    if folder is None:
        return [
            f"did not install git hooks: {why}; "
            "add `gitstate hook pre-commit` to your pre-commit hook to check STATE.yaml files"
        ]
    folder.mkdir(parents=True, exist_ok=True)
    # A hooks folder in the work tree is usually committed and shared: no path
    # to this machine's Python there; the hook finds gitstate on PATH.
    shared = (
        repo.toplevel is not None
        and folder.is_relative_to(repo.toplevel.resolve())
        and not folder.is_relative_to(repo.common_dir.resolve())
    )
    done = []
    for name in HOOKS:
        text = (
            script(name) if shared else script(name).replace('python=""', f"python={shlex.quote(python)}", 1)
        )
        target = folder / name
        kept = ""
        if target.exists() or target.is_symlink():
            current = target.read_bytes() if target.is_file() else b""
            manager = next((who for mark, who in MANAGERS.items() if mark.encode() in current), None)
            if MARKER.encode() in current:
                if current == text.encode():
                    continue
            elif manager is not None:
                done.append(
                    f"did not install the {name} hook: {manager} manages {target}; add "
                    f"`gitstate hook {name}` to its configuration (README: Git hooks)"
                )
                continue
            else:
                legacy = folder / f"{name}.legacy"
                if legacy.exists() or legacy.is_symlink():
                    done.append(
                        f"did not install the {name} hook: {target} is not gitstate's and "
                        f"{legacy.name} exists too; call `gitstate hook {name}` from yours"
                    )
                    continue
                target.rename(legacy)
                kept = f" (yours is kept as {legacy.name} and runs first)"
        temporary = folder / f".{name}.gitstate-new"
        temporary.write_text(text)
        temporary.chmod(0o755)
        temporary.replace(target)  # never a half-written hook
        done.append(f"installed the {name} hook in {folder}{kept}")
    return done
