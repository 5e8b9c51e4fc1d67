"""Fault, race and secret trials: each builds a sandbox, does harm, recovers, and checks everything.

A kill trial starts real ``gitstate`` processes and SIGKILLs their process
group after a seeded random delay, drawn over the time the command takes
(measured in the same trial), so kills land during claims, state commits,
worktree creation, merges and pushes. Then it recovers the way a person
would: move the clock past the lease, ``gitstate reap``, run the interrupted
command again, remove a lock file only when a gitstate message names it, and
``gitstate gc``; and it checks every invariant (``invariants.everything``).

Tasks write ``work/<id>.txt``; a task titled ``bad ...`` writes ``BAD`` into
it, and the project's check (``! grep -rqs BAD work``) fails on that, so any
``BAD`` reachable from the state branch is unchecked code that landed.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitstate import projects, tasks
from tests.reliability import invariants
from tests.reliability.invariants import Expect, Tally
from tests.reliability.sandbox import RECORD_PID, Result, Sandbox, mentioned_locks, moves, sandbox, seeded

LEASE = 60  # seconds of pinned clock; recovery moves the clock past it
COMMAND = (
    RECORD_PID + 'mkdir -p work && printf \'%s\\n\' "$GITSTATE_TASK" > "work/$GITSTATE_TASK.txt" && '
    'case "$GITSTATE_TITLE" in bad*) echo BAD >> "work/$GITSTATE_TASK.txt";; esac'
)
CHECK = RECORD_PID + "! grep -rqs BAD work"
SLOW_CHECK = RECORD_PID + "sleep 0.05; ! grep -rqs BAD work"


@dataclass
class Landed:
    """Where kills landed, by phase (read from what each kill left behind)."""

    phases: collections.Counter[str] = field(default_factory=collections.Counter)

    def __str__(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in sorted(self.phases.items()))


@functools.cache
def startup_seconds() -> float:
    """How long ``python -m gitstate --version`` takes here: kills before it only hit the interpreter."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "gitstate", "--version"], capture_output=True, check=True)
    return time.monotonic() - start


def kill_delay(rng: object, duration: float) -> float:
    """A moment inside a command that takes ``duration`` seconds, past the interpreter's start."""
    import random

    assert isinstance(rng, random.Random)
    start = min(startup_seconds() * 0.8, duration * 0.5)
    return start + rng.random() * max(0.01, duration * 1.1 - start)


def project(box: Sandbox, name: str, *, check: str | None = CHECK, retries: int = 1) -> None:
    """A project whose tasks write work/<id>.txt, checked by ``check`` (set up in-process)."""
    fields: dict[str, object] = {"command": COMMAND, "lease": LEASE, "max_retries": retries}
    if check:
        fields["check"] = check
    with box.store() as store:
        projects.create(store, name, fields)


def add_tasks(
    box: Sandbox, expect: Expect, name: str, count: int, *, bad_every: int = 0, prefix: str = "t"
) -> None:
    """Tasks ``<prefix>-00``...; every ``bad_every``-th one's work fails the check."""
    with box.store() as store:
        for n in range(count):
            bad = bad_every > 0 and n % bad_every == bad_every - 1
            task_id = f"{prefix}-{n:02d}"
            tasks.add(store, name, f"{'bad' if bad else 'good'} task {n}", None, task_id)
            expect.add(name, task_id)
            if bad:
                expect.bad.add(task_id)


# -- recovery ------------------------------------------------------------------------------------

OK_CODES: Mapping[str, tuple[int, ...]] = {"run": (0, 5, 6), "claim": (0, 3), "work": (0,)}


def recover(
    box: Sandbox, tally: Tally, *args: str, again: Sequence[str] | None = None, codes: Iterable[int] = ()
) -> Result:
    """Run a recovery command; remove lock files its messages name (as a person would) and rerun."""
    accepted = tuple(codes) or OK_CODES.get(args[0], (0,))
    result = box.gs(*args)
    for _ in range(3):
        stale = [lock for lock in mentioned_locks(result.err + result.out) if lock.exists()]
        if not stale:
            break
        for lock in stale:
            with contextlib.suppress(FileNotFoundError):  # a git process that was still running took it away
                lock.unlink()
                tally.stale_locks += 1
        # A command the lock stopped runs again; one that only warned (its checkout could
        # not catch up) is followed by ``again``, a write that catches the checkout up.
        result = box.gs(*(again if again and result.code == 0 else args))
    tally.check(result.code in accepted, f"recovery step failed: {result.describe()}")
    tally.check("Traceback" not in result.err, f"recovery step printed a traceback: {result.describe()}")
    return result


def settle(box: Sandbox, tally: Tally, expect: Expect, *, merge: bool = True, rounds: int = 4) -> None:
    """After a kill: let leases run out, reap, finish the work, merge, write once more, gc."""
    box.wait_quiet()
    box.advance(LEASE + 60)
    recover(box, tally, "reap")
    for _ in range(rounds if merge else 0):
        recover(box, tally, "work", "--agent", "rescuer")
        recover(box, tally, "merge")
        if not _open_work(box):
            break
    sentinel = f"z-{box.epoch}"
    name = sorted(expect.tasks)[0] if expect.tasks else "api"
    recover(
        box, tally, "task", "add", name, "after recovery", "--id", sentinel, "--priority", "-9",
        again=("task", "edit", name, sentinel, "--priority", "-8"),
    )  # fmt: skip
    expect.add(name, sentinel)
    recover(box, tally, "gc")


def finish(box: Sandbox, tally: Tally, expect: Expect, seen: set[str] | None = None) -> int:
    """The checks; returns the number of claims in history."""
    tally.trials += 1
    return invariants.everything(tally, box, expect, seen=seen)


# -- kill trials ---------------------------------------------------------------------------------


def _measure(box: Sandbox, *args: str) -> float:
    result = box.must(*args)
    return result.seconds


def trial_claims(seed: int, number: int, tally: Tally, landed: Landed | None = None) -> None:
    """Claims (with and without a worktree) killed at random moments; then reap and finish."""
    rng = seeded(seed, "claims", number)
    with sandbox(projects=()) as box:
        expect = Expect(work=True)
        project(box, "api")
        add_tasks(box, expect, "api", 8, bad_every=4)
        duration = _measure(box, "claim", "api", "--agent", "first")
        for n in range(4):
            head = box.git("rev-parse", "main").strip()
            extra = ["--no-worktree"] if rng.random() < 0.25 else []
            spawned = box.spawn("claim", "api", "--agent", f"agent-{n}", *extra)
            if rng.random() < 0.5:  # once the claim is committed: while its branch and worktree are made
                killed = spawned.kill_when(moves(box.main_ref, 1), rng.random() * 0.04)
            else:  # at any moment of the command
                killed = spawned.kill_after(kill_delay(rng, duration))
            spawned.finish(killed=killed)
            if killed:
                tally.kills += 1
                if landed is not None:
                    landed.phases[_claim_phase(box, head)] += 1
        settle(box, tally, expect)
        finish(box, tally, expect)


def _claim_phase(box: Sandbox, head: str) -> str:
    if box.git("rev-parse", "main").strip() == head:
        return "claim: before its commit"
    subject = box.git("log", "-1", "--format=%s", "main")
    found = re.search(r"claim api/(\S+)", subject)
    if not found:
        return "claim: reaping"
    task_id = found.group(1)
    if not box.git("rev-parse", "--verify", "-q", f"refs/heads/gitstate/api/{task_id}", check=False):
        return "claim: after its commit"
    tree = box.repo / ".git/gitstate/worktrees/api" / task_id
    if not (tree / "README.md").exists():
        return "claim: making the worktree"
    return "claim: after the worktree"


def trial_work(seed: int, number: int, tally: Tally, landed: Landed | None = None) -> None:
    """``gitstate work`` (claim, run, done, next claim in one commit) killed mid-stream."""
    rng = seeded(seed, "work", number)
    with sandbox() as box:
        expect = Expect(work=True)
        project(box, "api")
        add_tasks(box, expect, "api", 8, bad_every=3)
        spawned = box.spawn("work", "api", "--agent", "doomed")
        before = int(box.git("rev-list", "--count", "main"))
        # Each task is a claim commit and a done (+ next claim) commit: stop after a random
        # number of them, a random moment later.
        if spawned.kill_when(moves(box.main_ref, rng.randrange(1, 8)), rng.random() * 0.08):
            tally.kills += 1
            if landed is not None:
                made = int(box.git("rev-list", "--count", "main")) - before
                landed.phases[f"work: after {min(made, 3)}{'+' if made >= 3 else ''} commits"] += 1
        spawned.finish()
        settle(box, tally, expect)
        finish(box, tally, expect)


def trial_done(seed: int, number: int, tally: Tally, landed: Landed | None = None) -> None:
    """``gitstate done`` killed while it commits the work; the person runs it again."""
    rng = seeded(seed, "done", number)
    with sandbox() as box:
        expect = Expect(work=True)
        project(box, "api")
        add_tasks(box, expect, "api", 3)
        box.must("claim", "api", "--agent", "calibrate")
        tree = box.repo / ".git/gitstate/worktrees/api/t-00"
        _write_work(tree, "t-00")
        duration = _measure(box, "done", "api", "t-00")
        for task_id in ("t-01", "t-02"):
            box.must("claim", "api", "--agent", f"agent-{task_id}")
            _write_work(box.repo / ".git/gitstate/worktrees/api" / task_id, task_id)
            spawned = box.spawn("done", "api", task_id)
            if spawned.kill_after(kill_delay(rng, duration)):
                tally.kills += 1
                if landed is not None:
                    landed.phases[_done_phase(box, task_id)] += 1
            spawned.finish()
            box.wait_quiet()
            # What a person does after a crash: run it again (removing a lock file it names).
            again = recover(box, tally, "done", "api", task_id, codes=(0, 1))
            if again.code != 0:
                tally.check(
                    "not in progress; nothing to finish" in again.err,
                    f"rerunning done failed unexpectedly: {again.describe()}",
                )
        settle(box, tally, expect)
        finish(box, tally, expect)


def _write_work(tree: Path, task_id: str, *, bad: bool = False) -> None:
    (tree / "work").mkdir(exist_ok=True)
    (tree / "work" / f"{task_id}.txt").write_text(f"{task_id}\n" + ("BAD\n" if bad else ""))


def _done_phase(box: Sandbox, task_id: str) -> str:
    state = box.git("show", "main:projects/api/STATE.yaml")
    on_branch = box.git("show", f"gitstate/api/{task_id}:projects/api/STATE.yaml", check=False)
    block = state.split(f"  {task_id}:\n", 1)[1].split("\n  t-", 1)[0]
    if "status: completed" in block:
        return "done: after recording it"
    if on_branch and re.search(rf"  {task_id}:\n(?:    .*\n)*?    status: completed", on_branch):
        return "done: after the branch commit"
    return "done: before the branch commit"


def trial_merge(seed: int, number: int, tally: Tally, landed: Landed | None = None) -> None:
    """The coordinator killed while it merges, checks (with bisection) and publishes."""
    rng = seeded(seed, "merge", number)
    with sandbox() as box:
        expect = Expect(work=True)
        project(box, "api", check=SLOW_CHECK)
        add_tasks(box, expect, "api", 7, bad_every=3)
        box.must("work", "api", "--agent", "worker")
        head = box.git("rev-parse", "main").strip()
        spawned = box.spawn("merge")
        # Rejections and the landing are commits; checks (with bisection) run between them.
        if spawned.kill_when(moves(box.main_ref, rng.randrange(0, 3)), rng.random() * 0.4):
            tally.kills += 1
            if landed is not None:
                landed.phases[_merge_phase(box, head)] += 1
        spawned.finish()
        settle(box, tally, expect)
        finish(box, tally, expect)


def _merge_phase(box: Sandbox, head: str) -> str:
    subjects = box.git("log", "--first-parent", "--format=%s", f"{head}..main").splitlines()
    if not subjects:
        return "merge: checking, nothing landed yet"
    if subjects[0].startswith("gitstate: merge"):
        merged = re.findall(r"merge api/(\S+)", "\n".join(subjects))
        left = [
            t
            for t in merged
            if box.git("rev-parse", "-q", "--verify", f"refs/heads/gitstate/api/{t}", check=False)
        ]
        return "merge: landed, deleting branches" if left else "merge: after landing"
    return "merge: after a rejection"


def trial_push(seed: int, number: int, tally: Tally, landed: Landed | None = None) -> None:
    """``gitstate run --push`` killed (mostly) while it pushes to a bare remote."""
    rng = seeded(seed, "push", number)
    with sandbox() as box:
        expect = Expect(work=True)
        box.add_remote()
        project(box, "api")
        add_tasks(box, expect, "api", 3, bad_every=3)
        first = box.gs("run", "--agents", "1", "--push", "origin")
        tally.check(first.code in (0, 5), f"the first pass failed: {first.describe()}")
        duration = _measure(box, "run", "--agents", "1", "--push", "origin")
        for n in range(3):
            add_tasks(box, expect, "api", 1, prefix=f"p{n}")
            box.must("work", "api", "--agent", f"w{n}")
            box.must("merge")
            remote_before = box.git_in(box.root, "--git-dir", str(box.remote), "rev-parse", "main").strip()
            spawned = box.spawn("run", "--agents", "1", "--push", "origin")
            if rng.random() < 0.5:  # while git pushes, at a random moment
                killed = spawned.kill_when(box.running("receive-pack"), rng.random() * 0.03)
            else:  # at a random moment of the whole pass
                killed = spawned.kill_after(kill_delay(rng, duration))
            if killed:
                tally.kills += 1
                if landed is not None:
                    landed.phases[_push_phase(box, remote_before)] += 1
            spawned.finish()
        box.wait_quiet()
        box.advance(LEASE + 60)
        recover(box, tally, "run", "--agents", "1", "--push", "origin")  # the interrupted pass, again
        settle(box, tally, expect)
        recover(box, tally, "run", "--agents", "1", "--push", "origin")
        recover(box, tally, "gc")
        assert box.remote is not None
        remote = box.git_in(box.root, "--git-dir", str(box.remote), "rev-parse", "main").strip()
        tally.check(remote == box.git("rev-parse", "main").strip(), "the remote's main is not local main")
        remote_locks = sorted(str(p) for p in box.remote.rglob("*.lock"))
        tally.check(not remote_locks, f"lock files left on the remote: {remote_locks}")
        finish(box, tally, expect)


def _push_phase(box: Sandbox, before: str) -> str:
    assert box.remote is not None
    if any(box.remote.rglob("*.lock")):
        return "push: left a lock on the remote"
    if any(box.remote.glob("objects/tmp_objdir-incoming-*")):
        return "push: while the remote received objects"
    after = box.git_in(box.root, "--git-dir", str(box.remote), "rev-parse", "main").strip()
    if after != before:
        return "push: after the remote moved"
    return "push: before the remote moved"


def trial_adds(seed: int, number: int, tally: Tally, landed: Landed | None = None) -> None:
    """Several ``task add`` at once, some killed; the ones that said "added" are there, once."""
    rng = seeded(seed, "adds", number)
    with sandbox(projects=("api", "web")) as box:
        expect = Expect()
        duration = _measure(box, "task", "add", "api", "calibration", "--id", "c-0")
        expect.add("api", "c-0")
        spawned = []
        for n in range(6):
            name = ("api", "web")[n % 2]
            spawned.append((name, f"a-{n}", box.spawn("task", "add", name, f"added {n}", "--id", f"a-{n}")))
        for name, task_id, proc in spawned:
            killed = rng.random() < 0.6 and proc.kill_after(kill_delay(rng, duration * 2))
            result = proc.finish()
            tally.kills += int(killed)
            if landed is not None and killed:
                landed.phases["add: killed"] += 1
            if result.code == 0:
                expect.add(name, task_id)
            else:
                tally.check(killed, f"an add that was not killed failed: {result.describe()}")
                expect.add(name, task_id, certain=False)
        settle(box, tally, expect, merge=False)
        finish(box, tally, expect)


KILL_TRIALS: Mapping[str, Callable[[int, int, Tally, Landed | None], None]] = {
    "claim": trial_claims,
    "work": trial_work,
    "done": trial_done,
    "merge": trial_merge,
    "push": trial_push,
    "add": trial_adds,
}


# -- races -----------------------------------------------------------------------------------------


def trial_race(seed: int, number: int, tally: Tally, *, agents: int = 4, tasks_each: int = 6) -> int:
    """Agents on two projects, people adding tasks, claim/done by hand and the coordinator, at once.

    Returns the number of claims in history (every one must have taken a pending task).
    """
    rng = seeded(seed, "race", number)
    with sandbox() as box:
        expect = Expect(work=True)
        for name in ("api", "web"):
            project(box, name, retries=2)
            add_tasks(box, expect, name, tasks_each, bad_every=4)
        running = []
        for n in range(agents):
            target = ("api", "web", "")[n % 3]
            args = ["work", *([target] if target else []), "--agent", f"racer-{n}"]
            running.append(box.spawn(*args))
        for n in range(3):
            name = ("api", "web")[n % 2]
            task_id = f"r{n}-{rng.randrange(1000):03d}"
            running.append(
                box.spawn("task", "add", name, f"{'bad' if n == 2 else 'good'} racer {n}", "--id", task_id)
            )
            expect.add(name, task_id)
            if n == 2:
                expect.bad.add(task_id)
        running.append(box.spawn("claim", "api", "--agent", "person"))
        running.append(box.spawn("merge"))
        results = [spawned.finish() for spawned in running]
        for result in results:
            ok = result.code == 0 or (result.args[0] == "claim" and result.code == 3)
            tally.check(ok and "Traceback" not in result.err, f"a racing command failed: {result.describe()}")
        claimed = re.search(r"claimed (\w+)/(\S+) .*\n.*\nworktree: (.*)\n", results[-2].out)
        if claimed:  # the person does the work by hand, then says so
            name, task_id, tree = claimed.groups()
            _write_work(Path(tree), task_id, bad=task_id in expect.bad)
            box.must("done", name, task_id)
        rounds = 0
        while rounds < 8 and _open_work(box):
            racers = [box.spawn("work", "--agent", f"finisher-{n}") for n in range(2)]
            racers.append(box.spawn("merge"))
            for spawned in racers:
                result = spawned.finish()
                tally.check(result.code == 0, f"a racing command failed: {result.describe()}")
            rounds += 1
        recover(box, tally, "merge")
        recover(box, tally, "gc")
        tally.trials += 1
        claims = invariants.everything(tally, box, expect)
        states = invariants.tip_states(box)
        for name, tasks in states.items():
            for task_id, (status, _, _) in tasks.items():
                wanted = "failed" if task_id in expect.bad else "merged"
                tally.check(status == wanted, f"{name}/{task_id} ended {status}, not {wanted}")
        return claims


def _open_work(box: Sandbox) -> bool:
    states = invariants.tip_states(box)
    return any(
        s in ("pending", "completed", "in_progress")
        for found in states.values()
        for s, _, _ in found.values()
    )


def trial_claim_storm(
    seed: int, number: int, tally: Tally, *, processes: int = 12, tasks_each: int = 8
) -> int:
    """Many ``gitstate claim`` processes at once over two projects: each task taken exactly once.

    Returns how many claims succeeded.
    """
    rng = seeded(seed, "storm", number)
    with sandbox() as box:
        expect = Expect()
        for name in ("api", "web"):
            project(box, name)
            add_tasks(box, expect, name, tasks_each)
        spawned = []
        targets = []
        for n in range(processes):
            target = rng.choice(["api", "web", ""])
            extra = ["--no-worktree"] if rng.random() < 0.5 else []
            targets.append(target)
            spawned.append(box.spawn("claim", *([target] if target else []), "--agent", f"storm-{n}", *extra))
        results = [process.finish() for process in spawned]
        taken: list[str] = []
        empty: list[str] = []  # projects a claim found nothing ready in ("": any project)
        for target, result in zip(targets, results, strict=True):
            found = re.search(r"^claimed (\w+)/(\S+) ", result.out, re.MULTILINE)
            if result.code == 0 and found:
                taken.append(f"{found.group(1)}/{found.group(2)}")
            else:
                tally.check(result.code == 3, f"a claim failed: {result.describe()}")
                empty.append(target)
        tally.check(len(taken) == len(set(taken)), f"a task was handed to two claimers: {sorted(taken)}")
        states = invariants.tip_states(box)
        for target in empty:  # a claim came back empty only if nothing was left for it
            left = [
                t
                for p, ts in states.items()
                for t, (s, _, _) in ts.items()
                if s == "pending" and target in ("", p)
            ]
            tally.check(
                not left, f"a claim of {target or 'any project'} found nothing, but {left} were pending"
            )
        held = sorted(
            f"{p}/{t}" for p, ts in states.items() for t, (s, _, _) in ts.items() if s == "in_progress"
        )
        tally.check(held == sorted(taken), f"in progress {held}, but claimers said {sorted(taken)}")
        claims = invariants.history(tally, box, states)
        tally.check(claims == len(taken), f"{claims} claim commits for {len(taken)} claims")
        settle(box, tally, expect)
        tally.trials += 1
        invariants.everything(tally, box, expect)
        return len(taken)
