"""Many writers at once: no lost update, no duplicate, no damage to the repository."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

from gitstate import projects, tasks
from gitstate.git import Repository
from gitstate.store import Store
from tests.conftest import fsck, git

WRITERS = 8
TASKS_EACH = 50


def add_many(repo: str, writer: int, count: int, project: str) -> list[str]:
    with Repository.discover(repo) as handle:
        store = Store(handle, agent=f"writer-{writer}", lock_timeout=120)
        return [tasks.add(store, project, f"writer {writer} task {n}").id for n in range(count)]


def test_eight_processes_adding_fifty_tasks_each(repo: Path, store: Store) -> None:
    projects.create(store, "api")
    context = multiprocessing.get_context("spawn")  # a Repository must never cross a fork
    with context.Pool(WRITERS) as pool:
        results = pool.starmap(add_many, [(str(repo), w, TASKS_EACH, "api") for w in range(WRITERS)])
    made = [task_id for ids in results for task_id in ids]
    assert len(made) == len(set(made)) == WRITERS * TASKS_EACH
    final = store.read("api")
    assert sorted(final.tasks) == sorted(made)
    titles = sorted(t.title for t in final.tasks.values())
    assert titles == sorted(f"writer {w} task {n}" for w in range(WRITERS) for n in range(TASKS_EACH))
    # one commit per task, each on top of the last: nothing was lost or merged away
    assert (
        int(git(repo, "rev-list", "--count", "main")) == 3 + WRITERS * TASKS_EACH
    )  # README, .gitattributes, project
    assert git(repo, "rev-list", "--merges", "main") == ""
    assert git(repo, "status", "--porcelain") == ""
    fsck(repo)


def test_writers_on_different_projects_and_a_cli_race(repo: Path, store: Store) -> None:
    for name in ("api", "web"):
        projects.create(store, name)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    clis = [
        subprocess.Popen(
            [sys.executable, "-m", "gitstate", "-C", str(repo), "task", "add", "web", f"cli {n}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.starmap(add_many, [(str(repo), 0, 20, "api"), (str(repo), 1, 20, "web")])
    outputs = [proc.communicate() for proc in clis]
    assert [proc.returncode for proc in clis] == [0] * 6, outputs
    assert all(out.startswith("added web/t-") for out, _ in outputs)
    assert len(store.read("api").tasks) == 20
    assert len(store.read("web").tasks) == 20 + 6
    assert sorted(store.read("web").tasks) == sorted(
        [*results[1], *(out.split("/")[1].strip() for out, _ in outputs)]
    )
    assert git(repo, "status", "--porcelain") == ""
    fsck(repo)
