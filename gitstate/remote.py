"""Sharing state through a git remote: push, and when the push is rejected, fetch and merge.

Many machines coordinate through any remote. A push is never forced: a
non-fast-forward push of the state branch is a lost compare-and-swap on the
remote, so gitstate fetches the remote's branch, merges it (code with
``git merge-tree``, STATE.yaml per task and per field), publishes the merge
locally and pushes again. Task branches are pushed alongside (also without
force), so a later pass on another machine resumes from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitstate import merge3, statefile
from gitstate.coordinator import DRIVER, is_state
from gitstate.errors import Busy, GitStateError
from gitstate.git import Oid
from gitstate.store import Built, Store

ATTEMPTS = 5


@dataclass(frozen=True)
class Pushed:
    branch: bool  # the state branch reached the remote
    merged_remote: int  # how many times the remote's changes were merged in first
    branches: dict[str, str]  # task branch -> "pushed" or why not


def push(store: Store, remote: str) -> Pushed:
    """Push the state branch and the task branches to ``remote``, merging its changes if needed."""
    repo = store.repo
    tracking = f"refs/remotes/{remote}/{store.branch}"
    merges = 0
    for _ in range(ATTEMPTS):
        results = repo.push(remote, [f"{store.ref}:{store.ref}"])
        accepted, summary = results.get(store.ref, (False, "no result"))
        if accepted:
            break
        repo.fetch(remote, [f"+{store.ref}:{tracking}"])
        theirs = repo.resolve(tracking)
        if theirs is None:
            raise GitStateError(f"pushing {store.branch} to {remote} failed: {summary}")
        if repo.merge_base(store.head(), theirs) == theirs:  # the remote did not move: not a lost race
            raise GitStateError(
                f"{remote} refused {store.branch} though the push only adds to it: {summary}; "
                "fix that on the remote, then retry"
            )
        merge_in(store, theirs, f"merge {remote}/{store.branch} before pushing")
        merges += 1
    else:
        raise Busy(f"{remote} kept moving: {ATTEMPTS} pushes of {store.branch} in a row were rejected; retry")
    branches = {}
    task_refs = sorted(repo.refs("refs/heads/gitstate/"))
    if task_refs:
        for ref, (ok, summary) in repo.push(remote, [f"{ref}:{ref}" for ref in task_refs]).items():
            branches[ref.removeprefix("refs/heads/")] = "pushed" if ok else f"not pushed: {summary}"
    return Pushed(True, merges, branches)


def merge_in(store: Store, theirs: Oid, summary: str) -> Oid:
    """Merge commit ``theirs`` into the state branch (STATE.yaml merged task by task)."""
    repo = store.repo

    def build(head: Oid) -> Built | None:
        base = repo.merge_base(head, theirs)
        if base == theirs:
            return None  # nothing new on their side
        tree, conflicts = repo.merge_tree(head, theirs, skip_driver=DRIVER)
        code = [p for p in conflicts if not is_state(p)]
        if code:
            raise GitStateError(
                f"cannot merge {theirs[:10]}: conflicts in {', '.join(code)}; merge it by hand"
            )
        both = set(repo.changed_paths(base, head)) & set(repo.changed_paths(base, theirs)) if base else set()
        paths = sorted(p for p in both if is_state(p))
        for path in paths:
            tree = _merge_state(store, tree, path, (base, head, theirs))
        message = f"gitstate: {summary}\n\nGitstate-Event: sync\n"
        commit = repo.write_commit(
            tree, [head, theirs], message, repo.identity(), date=store.clock.git_date()
        )
        return Built(commit, tuple(paths))

    return store.publish(build)[0]


def _merge_state(store: Store, tree: Oid, path: str, commits: tuple[Oid | None, Oid, Oid]) -> Oid:
    repo = store.repo
    docs: list[tuple[statefile.StateDoc, str] | None] = []
    for commit in commits:
        found = repo.info(f"{commit}:{path}") if commit else None
        if found is None:
            docs.append(None)
            continue
        text = repo.read(found[0])[1].decode("utf-8")
        docs.append((statefile.parse(text, path), text))
    base, ours, theirs = docs
    if ours is None or theirs is None:
        raise GitStateError(f"{path} was deleted on one side; merge it by hand")
    merged, conflicts = merge3.merge(base[0].project if base else None, ours[0].project, theirs[0].project)
    if conflicts:
        raise GitStateError(f"{path} has conflicting changes ({conflicts[0]}); merge it by hand")
    text, _ = statefile.apply(ours[0], ours[1], merged)
    return repo.replace_path(tree, path, repo.write_object("blob", text.encode()))
