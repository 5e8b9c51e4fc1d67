"""``gitstate doctor``: what is wrong with this clone, said plainly, with the fix.

Checks the git version, the STATE.yaml merge driver (without it git falls back
to a text merge and leaves conflict markers in YAML), every STATE.yaml on the
state branch, lock files a crashed git left behind, and worktrees.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

from gitstate import driver
from gitstate.agent import gc_candidates
from gitstate.errors import GitStateError
from gitstate.store import Store
from gitstate.worktrees import Worktrees

STALE_LOCK = 10 * 60  # seconds: older lock files are reported


def examine(store: Store) -> tuple[list[str], list[str]]:
    """(problems, things found in order)."""
    problems: list[str] = []
    notes: list[str] = []
    repo = store.repo
    version = repo.git("version").stdout.decode().strip()
    found = re.search(r"(\d+)\.(\d+)", version)
    if found and (int(found.group(1)), int(found.group(2))) < (2, 38):
        problems.append(f"{version} is too old: gitstate needs git 2.38 or newer (merge-tree --write-tree)")
    else:
        notes.append(version)
    configured = repo.config(f"merge.{driver.NAME}.driver")
    if not configured:
        problems.append(
            "the STATE.yaml merge driver is not configured in this clone, so git would merge STATE.yaml "
            "as text and could leave conflict markers; run `gitstate init`"
        )
    elif configured != driver.command():
        problems.append(
            f"merge.{driver.NAME}.driver is {configured!r}, not this gitstate; run `gitstate init`"
        )
    else:
        notes.append("the STATE.yaml merge driver is configured")
    head = store.head()
    attributes = repo.info(f"{head}:.gitattributes")
    text = repo.read(attributes[0])[1].decode(errors="replace") if attributes else ""
    if driver.ATTRIBUTES_LINE not in text.splitlines():
        problems.append(
            f".gitattributes on {store.branch} lacks '{driver.ATTRIBUTES_LINE}'; run `gitstate init`"
        )
    for name in store.project_names():
        try:
            project = store.read(name)
        except GitStateError as exc:
            problems.append(str(exc))
        else:
            notes.append(f"projects/{name}/STATE.yaml: {len(project.tasks)} tasks, valid")
    problems += _stale_locks(repo.common_dir)
    trees = Worktrees(repo)
    try:
        leftover = gc_candidates(store)
    except GitStateError:
        leftover = []  # a broken STATE.yaml, reported above, hides what its tasks own
    if leftover:
        problems.append(f"{len(leftover)} worktrees or branches no open task owns; run `gitstate gc`")
    notes.append(f"{len(trees.existing())} task worktrees under {trees.root}")
    return problems, notes


def _git_running() -> bool:
    """Whether any git process runs on this machine (Linux's /proc; False elsewhere)."""
    for entry in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if entry.read_text().strip() == "git":
                return True
    return False


def _stale_locks(common: Path) -> list[str]:
    now = time.time()
    found = []
    for pattern in ("*.lock", "refs/**/*.lock", "worktrees/*/*.lock"):
        for path in common.glob(pattern):
            age = now - path.stat().st_mtime
            if age > STALE_LOCK:
                found.append(path)
    if not found:
        return []
    running = _git_running()
    hint = "a git process is running; wait for it" if running else "no git process is running: remove them"
    return [
        f"stale lock {path} ({int((now - path.stat().st_mtime) // 60)} min old); {hint}" for path in found
    ]
