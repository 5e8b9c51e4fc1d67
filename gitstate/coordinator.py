"""The coordinator: land completed task branches on the state branch, checked.

For each project, the completed tasks' branches form a batch. The batch is
built as a chain of merge commits on the branch's tip, without touching any
checkout: ``git merge-tree`` merges the code, and STATE.yaml is merged task by
task (``merge3``), with each task marked ``merged`` in the commit that brings
its work in. A branch that conflicts, or that changes more of STATE.yaml than
its own task, is screened out before anything runs. The project's ``check``
then runs once, in a scratch worktree, on exactly the batch's final commit.
If it passes, the branch moves there by compare-and-swap; if it fails, the
batch is split in halves and each half is landed the same way, until the
failing branches are alone (as bors does): about 2k·log2(n)+1 check runs for
n branches with k bad ones, instead of n.

If the branch moved meanwhile, the batch is merged again onto the new tip.
When the new tip differs from the checked one only in STATE.yaml files
(claims and completions, which no check reads), the checked code is what
lands; otherwise the new candidate is checked again.

A task that cannot land goes back to pending with the attempt counted
(failed once out of attempts), the conflicting paths or the check's output in
its error, and its branch kept for the next attempt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gitstate import agent, audit, executor, lifecycle, locks, merge3, statefile
from gitstate.errors import GitStateError
from gitstate.git import Oid
from gitstate.model import Project, Status, Task, claim_order, move
from gitstate.render import quoted_title
from gitstate.statefile import StateDoc, state_path
from gitstate.store import Built, Change, Store
from gitstate.worktrees import Worktrees

DRIVER = "gitstate"  # the merge driver's name in .gitattributes
RECHECKS = 5


@dataclass(frozen=True)
class Landing:
    """What happened to one task: ``merged``, ``conflict``, ``refused``, ``check_failed``,
    ``reverted`` (its earlier merge was reverted), ``changed`` (changed by another writer
    meanwhile; left as it is) or ``deferred``."""

    project: str
    task: str
    outcome: str
    detail: str = ""
    commit: Oid | None = None


@dataclass
class Report:
    landings: list[Landing] = field(default_factory=list)
    checks: int = 0
    check_seconds: list[float] = field(default_factory=list)

    def merged(self) -> list[Landing]:
        return [item for item in self.landings if item.outcome == "merged"]


class _Rejected(Exception):
    def __init__(self, task: Task, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.task, self.outcome, self.detail = task, outcome, detail


class Coordinator:
    def __init__(
        self,
        store: Store,
        *,
        strategy: str = "merge",
        deadline: float | None = None,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        if strategy not in ("merge", "squash"):
            raise GitStateError(f"merge strategy {strategy!r} is not known; use merge or squash")
        self.store = store
        self.repo = store.repo
        self.strategy = strategy
        self.deadline = deadline  # time.monotonic() value after which no check starts
        self.say = say
        self.report = Report()

    def run(self, projects: Iterable[str] | None = None) -> Report:
        """One pass over every completed task branch (of ``projects``, default all)."""
        names = list(projects) if projects else self.store.project_names()
        for name in names:
            batch = self._completed(self.store.read(name))
            if batch:
                self._land(name, batch)
        return self.report

    def _completed(self, project: Project) -> list[Task]:
        ready = []
        for task in project.tasks.values():
            if task.status != Status.COMPLETED or not task.branch:
                continue
            tip = self.repo.resolve(f"refs/heads/{task.branch}")
            if tip is not None:
                ready.append(task)
                continue
            # Without its branch a task waits (the branch may still be on its way
            # from another clone), unless it was merged once: then it is only
            # completed again because that merge was reverted with plain git.
            try:
                self._landed_before(project.name, task)
            except _Rejected as rejected:
                self._reject(project.name, task, rejected.outcome, rejected.detail)
        return sorted(ready, key=lambda t: claim_order(t, project.name))

    # -- landing a batch ---------------------------------------------------------------------

    def _land(self, name: str, batch: list[Task]) -> None:
        for _ in range(RECHECKS):
            head = self.store.head()
            candidate, included = self._build(name, head, batch)
            if not included:
                return
            if self.deadline is not None and time.monotonic() >= self.deadline:
                for task in included:
                    self._record(Landing(name, task.id, "deferred", "no time left to check it in this pass"))
                return
            passed, output = self._check(name, candidate)
            if not passed:
                if len(included) == 1:
                    self._reject(name, included[0], "check_failed", output)
                    return
                half = len(included) // 2
                self._land(name, included[:half])
                self._land(name, included[half:])
                return
            landed = self._publish(name, head, candidate, included)
            if landed:
                return
            batch = included  # the code on the branch changed meanwhile: merge and check again
        for task in batch:
            self._record(Landing(name, task.id, "deferred", "the branch kept changing under the checks"))

    def _build(
        self, name: str, base: Oid, batch: Sequence[Task], *, reject: bool = True
    ) -> tuple[Oid, list[Task]]:
        """The chain of merges of ``batch`` onto ``base``; what cannot merge is rejected
        (or, with ``reject=False``, as under the state lock, only left out)."""
        current = base
        included = []
        for task in batch:
            try:
                current = self._merge_one(name, current, task)
            except _Rejected as rejected:
                if reject:
                    self._reject(name, rejected.task, rejected.outcome, rejected.detail)
                continue
            included.append(task)
        return current, included

    def _merge_one(self, name: str, ours: Oid, task: Task) -> Oid:
        ref = f"refs/heads/{task.branch}"
        theirs = self.repo.resolve(ref)
        if theirs is None:
            raise _Rejected(task, "refused", f"its branch {task.branch} is gone")
        base = self.repo.merge_base(ours, theirs)
        if base == theirs:
            self._landed_before(name, task)
        forged = self._forged(name, task, base, theirs)
        if forged:
            raise _Rejected(task, "refused", forged)
        tree, conflicts = self.repo.merge_tree(ours, theirs, skip_driver=DRIVER)
        code = [p for p in conflicts if not is_state(p)]
        if code:
            raise _Rejected(task, "conflict", f"conflicts with {', '.join(code)}")
        path = state_path(name)
        mine, theirs_doc, base_doc = self._doc(ours, path), self._doc(theirs, path), self._doc(base, path)
        if mine is None or theirs_doc is None:
            raise _Rejected(task, "refused", f"{path} is missing on one side")
        now = mine[0].project.task(task.id)
        if now is None or now.status != Status.COMPLETED or now.attempts != task.attempts:
            # Retried, cancelled or reaped since the batch was read: that write stands.
            raise _Rejected(
                task, "changed", f"it is {now.status if now else 'gone'} on {self.store.branch} now"
            )
        merged, problems = merge3.merge(
            base_doc[0].project if base_doc else None, mine[0].project, theirs_doc[0].project
        )
        if problems:
            raise _Rejected(task, "conflict", f"{path}: " + "; ".join(map(str, problems[:3])))
        landed = merged.tasks.get(task.id)
        if landed is None or landed.status != Status.COMPLETED:
            raise _Rejected(
                task, "refused", f"it is {landed.status if landed else 'gone'} on the branch, not completed"
            )
        final = merged.with_task(
            move(name, landed, Status.MERGED, self.store.clock.now(), lease_expires=None)
        )
        text, doc = statefile.apply(mine[0], mine[1], final)
        blob = self.repo.write_object("blob", text.encode())
        self.store.cache.put(blob, doc, text)
        parents = [ours, theirs] if self.strategy == "merge" else [ours]
        change = Change(
            final,
            "merge",
            f"merge {name}/{task.id} {quoted_title(task.title)}",
            (task.id,),
            "coordinator",
            trailers=(f"Gitstate-Branch: {task.branch} {theirs}",),
        )
        return self.store.commit(self.repo.replace_path(tree, path, blob), parents, change, mine[0].project)

    def _landed_before(self, name: str, task: Task) -> None:
        """Refuse a completion gitstate merged once already: the task is completed
        again only because that merge was reverted with plain git, and merging
        its branch again would land nothing. A completion claimed after the
        merge (the task was redone) is a new one; a branch a person merged by
        hand lands as usual: its work is there."""
        found = audit.last_event(self.store, name, task.id, ("merge", "claim"))
        if found is not None and found[0] == "merge":
            raise _Rejected(task, "reverted", f"its merge {found[1][:12]} was reverted")

    def _doc(self, commit: Oid | None, path: str) -> tuple[StateDoc, str] | None:
        if commit is None:
            return None
        found = self.repo.info(f"{commit}:{path}")
        if found is None:
            return None
        doc = self.store.cache.get(found[0])
        text = self.store.cache.text(found[0]) or self.repo.read(found[0])[1].decode("utf-8")
        if doc is None:
            doc = statefile.parse(text, path)
            self.store.cache.put(found[0], doc, text)
        return doc, text

    def _forged(self, name: str, task: Task, base: Oid | None, tip: Oid) -> str | None:
        """Why the branch's STATE.yaml changes go beyond its own task, or None."""
        if base is None:
            return "its branch shares no history with the state branch"
        own = state_path(name)
        for path in self.repo.changed_paths(base, tip):
            if is_state(path) and path != own:
                return f"it changes {path}; a task branch may change only its own task"
        before, after = self._doc(base, own), self._doc(tip, own)
        if after is None:
            return f"it deletes {own}"
        if before is None:
            return None
        old, new = before[0].project, after[0].project
        if old.settings != new.settings:
            return "it changes the project's settings; a task branch may change only its own task"
        for task_id, was in old.tasks.items():
            now = new.tasks.get(task_id)
            if now is None:
                return f"it deletes task {task_id}"
            if task_id != task.id and now != was:
                return f"it changes task {task_id}; a task branch may change only its own task"
            if task_id == task.id and now.command != was.command:
                return "it changes its own task's command"
        for task_id, added in new.tasks.items():
            if task_id not in old.tasks and (
                added.command or added.status != Status.PENDING or added.attempts
            ):
                return f"it adds task {task_id} with a command or a status other than pending"
        return None

    # -- checking and publishing -------------------------------------------------------------

    def _check(self, name: str, commit: Oid) -> tuple[bool, str]:
        project = self.store.read(name)
        command = project.settings.check
        if not command:
            return True, "no check configured"
        trees = Worktrees(self.repo)
        env = {**os.environ, "GITSTATE_PROJECT": name, "GITSTATE_COMMIT": commit}
        timeout: float = project.settings.timeout or project.timeout(Task(id="t", title="check"))
        if self.deadline is not None:
            timeout = max(1.0, min(timeout, self.deadline - time.monotonic()))
        log = trees.logs / name / "checks" / f"{commit[:12]}.log"
        self.report.checks += 1
        self.say(f"checking {name} at {commit[:10]}: {command}")
        with locks.held(trees.checks_lock(name), 3600.0, what=f"the check worktree of {name}"):
            tree = trees.scratch(name, commit)
            outcome = executor.run(command, cwd=tree.path, env=env, timeout=timeout, log=log)
        self.report.check_seconds.append(outcome.seconds)
        return outcome.ok, outcome.summary()

    def _publish(self, name: str, base: Oid, checked: Oid, included: list[Task]) -> bool:
        """Move the branch to the checked candidate (or its equivalent on a newer tip)."""
        landed: list[Oid] = []

        def build(head: Oid) -> Built | None:
            if head == base:
                landed[:] = [checked]
                return Built(checked, (state_path(name),))
            again, kept = self._build(name, head, included, reject=False)
            if kept != included or any(not is_state(p) for p in self.repo.changed_paths(checked, again)):
                return None  # the code changed: this candidate needs its own check
            landed[:] = [again]
            return Built(again, (state_path(name),))

        commit, built = self.store.publish(build)
        if built is None:
            return False
        chain = self._chain(commit, len(included))
        for task, merge_commit in zip(included, chain, strict=True):
            self._record(Landing(name, task.id, "merged", "", merge_commit))
            ref = f"refs/heads/{task.branch}"
            tip = self.repo.resolve(ref)
            if tip is not None:
                self.repo.delete_ref(ref, tip)  # its work is in the merge commit now
        self._announce(name, commit, list(zip(included, chain, strict=True)))
        return True

    def _announce(self, name: str, top: Oid, merges: list[tuple[Task, Oid]]) -> None:
        """Tell the project's lifecycle hooks about each merge, now that the branch has moved."""
        try:
            project = self.store.read(name, top)
        except GitStateError:
            return  # the merges stand; only their announcement is lost
        for task, merge_commit in merges:
            merged = project.task(task.id) or task
            lifecycle.fire(self.store, "merge", project, merged, commit=merge_commit, agent="coordinator")

    def _chain(self, top: Oid, count: int) -> list[Oid]:
        """The last ``count`` first-parent commits ending at ``top``, oldest first."""
        out = self.repo.git("rev-list", "--first-parent", f"--max-count={count}", top).stdout.decode()
        return list(reversed([Oid(line) for line in out.split()]))

    def _reject(self, name: str, task: Task, outcome: str, detail: str) -> None:
        self._record(Landing(name, task.id, outcome, detail))
        error = f"{outcome.replace('_', ' ')}: {detail}"

        def change(current: Project) -> Change | None:
            now = current.task(task.id)
            if now is None or now.status != Status.COMPLETED or now.attempts != task.attempts:
                return None
            if outcome == "reverted":
                back = agent.restart(name, now, self.store.clock.now(), f"{detail}; starting again")
            else:
                back = agent.requeue(current, now, self.store.clock.now(), agent.clip(error) or error)
            summary = f"reject {name}/{task.id}: {outcome.replace('_', ' ')}; {back.status}"
            return Change(current.with_task(back), "reject", summary, (task.id,), "coordinator")

        if outcome == "reverted" and task.branch:  # while it is completed, so no claim starts the branch anew
            agent.drop_landed_branch(self.store, task.branch)
        committed = self.store.update(name, change)
        back = committed.project.task(task.id)
        if committed.changed and back is not None and outcome != "reverted":  # an attempt that failed
            lifecycle.fire(
                self.store, "fail", committed.project, back, commit=committed.commit, agent="coordinator"
            )

    def _record(self, landing: Landing) -> None:
        self.report.landings.append(landing)
        detail = f": {landing.detail.splitlines()[0]}" if landing.detail else ""
        self.say(f"{landing.outcome} {landing.project}/{landing.task}{detail}")


def is_state(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 3 and parts[0] == "projects" and parts[2] == "STATE.yaml"
