"""Rollback that only adds history: revert a task's merge, or restore a STATE.yaml.

``rollback_task`` makes one new commit that takes the task's work back out of
the state branch and returns the task to pending (or cancels it): a revert of
its merge commit, the same as ``git revert -m 1``, built without touching any
checkout. It is refused when later work depends on it: a conflict with what
came after, or a merged task that depends on it (``force`` overrides the
latter; a conflict is never forced).

``restore`` makes one new commit whose project STATE.yaml is what it was at an
earlier revision, like ``git checkout REV -- projects/<p>/STATE.yaml`` and a
commit. Nothing is ever rewritten, and each rollback is an audit event.
"""

from __future__ import annotations

from gitstate import agent, audit, statefile
from gitstate.coordinator import DRIVER, is_state
from gitstate.errors import InvalidInput, NotFound, StateFileError
from gitstate.git import Oid
from gitstate.model import Project, Status, Task, move
from gitstate.statefile import state_path
from gitstate.store import Built, Change, Store


def rollback_task(
    store: Store, project: str, task_id: str, *, cancel: bool = False, force: bool = False
) -> tuple[Task, Oid]:
    """Revert the task's merge in one new commit; the task goes back to pending (or cancelled)."""
    current = store.read(project)
    task = current.task(task_id)
    if task is None:
        raise NotFound(f"task {task_id!r} is not in project {project!r}")
    if task.status != Status.MERGED:
        raise InvalidInput(
            f"task {project}/{task_id} is {task.status}, not merged; there is no merge to roll back"
        )
    dependents = sorted(
        t.id for t in current.tasks.values() if task_id in t.depends_on and t.status == Status.MERGED
    )
    if dependents and not force:
        raise InvalidInput(
            f"merged work depends on {project}/{task_id} ({', '.join(dependents)}); roll those back first, "
            "or pass --force"
        )
    merge = audit.merge_of(store, project, task_id)
    repo = store.repo
    path = state_path(project)
    result: list[Task] = []

    def build(head: Oid) -> Built:
        parent = repo.read(merge)[1].decode().split("\n")[1]
        if not parent.startswith("parent "):
            raise InvalidInput(f"{merge[:10]} is not a merge gitstate made; revert it by hand")
        before = parent.split()[1]
        # A revert is a three-way merge whose base is the merge commit and whose
        # other side is the state before it. merge-tree (git 2.39) takes the
        # merge base from history, so give it a commit with that tree whose
        # parent is the merge.
        back = repo.write_commit(
            repo.commit_tree_oid(before),
            [merge],
            "gitstate: revert helper\n",
            repo.identity(),
            date=store.clock.git_date(),
        )
        tree, conflicts = repo.merge_tree(head, back, skip_driver=DRIVER)
        code = [p for p in conflicts if not is_state(p)]
        if code:
            raise InvalidInput(
                f"later work conflicts with reverting {project}/{task_id} ({', '.join(code)}); "
                f"revert by hand with `git revert -m 1 {merge[:12]}`"
            )
        doc, text = _doc_at(store, head, path)
        now = doc.project.task(task_id)
        if now is None or now.status != Status.MERGED:
            raise InvalidInput(f"task {project}/{task_id} changed meanwhile; run the rollback again")
        back_task = agent.restart(
            project, now, store.clock.now(), f"rolled back: its merge {merge[:12]} was reverted"
        )
        if cancel:
            back_task = move(project, back_task, Status.CANCELLED, store.clock.now())
        result[:] = [back_task]
        new = doc.project.with_task(back_task)
        text2, doc2 = statefile.apply(doc, text, new)
        blob = repo.write_object("blob", text2.encode())
        change = Change(
            new,
            "rollback",
            f"roll back {project}/{task_id} (revert {merge[:12]})",
            (task_id,),
            trailers=(f"Gitstate-Reverts: {merge}",),
        )
        commit = store.commit(repo.replace_path(tree, path, blob), [head], change, doc.project)
        return Built(commit, (path,), new, (blob, doc2, text2))

    if task.branch:  # while the task is merged: nobody can claim it and start that branch anew
        agent.drop_landed_branch(store, task.branch)
    commit, _ = store.publish(build)
    return result[0], commit


def restore(store: Store, project: str, rev: str, *, force: bool = False) -> tuple[Project, Oid]:
    """A new commit whose projects/<project>/STATE.yaml is as it was at ``rev``."""
    repo = store.repo
    source = store.resolve(rev)
    path = state_path(project)
    found = repo.info(f"{source}:{path}")
    if found is None:
        raise NotFound(f"project {project!r} did not exist at {rev}")
    try:
        text = repo.read(found[0])[1].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the STATE.yaml of {rev} is not UTF-8 text; restore another revision") from None
    try:
        old = statefile.parse(text, path)
    except StateFileError as exc:
        raise InvalidInput(
            f"the STATE.yaml of {rev} is not valid ({exc}); restore another revision"
        ) from None

    def build(head: Oid) -> Built | None:
        if repo.info(f"{head}:{path}") == found:
            return None
        current = store.read(project, head) if repo.info(f"{head}:{path}") else None
        now_tasks = current.tasks if current else {}
        changed = sorted(
            t for t in {*now_tasks, *old.project.tasks} if now_tasks.get(t) != old.project.tasks.get(t)
        )
        held = [t for t in changed if t in now_tasks and now_tasks[t].status == Status.IN_PROGRESS]
        if held and not force:
            raise InvalidInput(
                f"restoring {project} as of {rev} would take back tasks agents hold now ({', '.join(held)}); "
                "release them first, or pass --force"
            )
        change = Change(
            old.project,
            "rollback",
            f"restore {project}'s STATE.yaml as of {rev} ({source[:12]})",
            tuple(changed),
            trailers=(f"Gitstate-Restores: {source}",),
        )
        commit = store.commit(
            repo.replace_path(repo.commit_tree_oid(head), path, found[0]), [head], change, current
        )
        return Built(commit, (path,), old.project, (found[0], old, text))

    commit, built = store.publish(build)
    if built is None:
        raise InvalidInput(f"project {project!r} is already as it was at {rev}")
    return old.project, commit


def _doc_at(store: Store, commit: Oid, path: str) -> tuple[statefile.StateDoc, str]:
    found = store.repo.info(f"{commit}:{path}")
    if found is None:
        raise NotFound(f"{path} is missing on {store.branch}")
    text = store.repo.read(found[0])[1].decode("utf-8")
    return store.cache.get(found[0]) or statefile.parse(text, path), text
