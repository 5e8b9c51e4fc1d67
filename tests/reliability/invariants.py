"""What must hold after any fault and its recovery, and the tally of what was checked.

Each check adds to ``Tally.invariants`` once per thing it looked at (a blob,
a task, a commit, a ref...) and records a violation, with what was wrong,
instead of raising: a trial reports everything it found, and the report
script counts them. Tests assert ``tally.violations == []``.

The checks:

* ``fsck``: ``git fsck --strict`` is clean (dangling objects are fine).
* ``state_files``: every STATE.yaml blob reachable from any ref parses and validates.
* ``accounted``: the tasks on the state branch are exactly the ones created
  (those whose creation may have been killed: at most once, which a mapping
  guarantees once it parses).
* ``history``: walking the state branch's first-parent history, every
  ``Gitstate-Status`` transition is legal and continues from the task's
  previous status, every claim takes a pending task (no double claim), and
  the statuses the history ends with are the tip's.
* ``settled``: no task is ``in_progress`` (after the leases ran out and ``reap`` ran).
* ``completed_branches``: a completed task's branch exists and says it is completed.
* ``no_bad_work``: no file under ``work/`` that holds ``BAD`` (work whose
  check fails) is reachable from the state branch; merged tasks' work is there.
* ``nothing_left``: after ``gc``, no worktree, worktree folder, task branch
  or lease is left that no task owns, and no git lock file remains.
* ``checkout_clean``: the user's checkout of the state branch is in step.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gitstate import statefile
from gitstate.errors import GitStateError
from gitstate.model import TRANSITIONS, Status
from tests.reliability.sandbox import Sandbox

BAD = "BAD"


@dataclass
class Tally:
    """Counts for one group of trials; ``violations`` must stay empty."""

    name: str = ""
    trials: int = 0
    kills: int = 0
    invariants: int = 0
    fuzzed: int = 0
    stale_locks: int = 0
    violations: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> bool:
        self.invariants += 1
        if not ok:
            self.violations.append(f"{self.name}: {message}" if self.name else message)
        return ok

    def add(self, other: Tally) -> None:
        self.trials += other.trials
        self.kills += other.kills
        self.invariants += other.invariants
        self.fuzzed += other.fuzzed
        self.stale_locks += other.stale_locks
        self.violations.extend(other.violations)


@dataclass
class Expect:
    """What a trial created: ids that must exist, ids that may (their creation was killed)."""

    tasks: dict[str, set[str]] = field(default_factory=dict)
    maybe: dict[str, set[str]] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)  # tasks whose work fails the check
    work: bool = False  # every task writes work/<id>.txt, which lands when it is merged

    def add(self, project: str, task_id: str, *, certain: bool = True) -> None:
        (self.tasks if certain else self.maybe).setdefault(project, set()).add(task_id)


# -- reading the repository --------------------------------------------------------------------


def tip_states(box: Sandbox) -> dict[str, dict[str, tuple[str, int, str | None]]]:
    """project -> task id -> (status, attempts, branch) at the state branch's tip."""
    out: dict[str, dict[str, tuple[str, int, str | None]]] = {}
    listing = box.git("ls-tree", "--name-only", "main:projects", check=False)
    for name in listing.split():
        path = f"projects/{name}/STATE.yaml"
        text = box.git("show", f"main:{path}", check=False)
        doc = statefile.parse(text, path)
        out[name] = {t.id: (t.status.value, t.attempts, t.branch) for t in doc.project.tasks.values()}
    return out


def _objects(box: Sandbox, *revs: str) -> list[tuple[str, str]]:
    out = box.git("rev-list", "--objects", *revs)
    pairs = []
    for line in out.splitlines():
        oid, _, path = line.partition(" ")
        if path:
            pairs.append((oid, path))
    return pairs


def _blobs(box: Sandbox, oids: Iterable[str]) -> dict[str, bytes]:
    wanted = list(dict.fromkeys(oids))
    if not wanted:
        return {}
    data = box.git_bytes("cat-file", "--batch", input="".join(f"{o}\n" for o in wanted).encode())
    found: dict[str, bytes] = {}
    pos = 0
    for oid in wanted:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        size = int(header[2])
        found[oid] = data[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return found


# -- the checks ---------------------------------------------------------------------------------


def fsck(tally: Tally, where: Path, env: Mapping[str, str]) -> None:
    proc = subprocess.run(
        ["git", "-C", str(where), "fsck", "--strict", "--no-progress", "--no-dangling"],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    tally.check(
        proc.returncode == 0 and "error" not in proc.stderr.lower() and "warning" not in proc.stderr.lower(),
        f"git fsck --strict in {where}: {proc.stdout}{proc.stderr}".strip(),
    )


def state_files(tally: Tally, box: Sandbox, seen: set[str] | None = None) -> None:
    """Every STATE.yaml reachable from any ref parses and validates."""
    seen = set() if seen is None else seen
    pairs = [(o, p) for o, p in _objects(box, "--all") if re.fullmatch(r"projects/[^/]+/STATE\.yaml", p)]
    fresh = [(o, p) for o, p in pairs if o not in seen]
    blobs = _blobs(box, [o for o, _ in fresh])
    for oid, path in fresh:
        seen.add(oid)
        try:
            statefile.parse(blobs[oid].decode("utf-8"), path)
        except (GitStateError, UnicodeDecodeError) as exc:
            tally.check(False, f"{path} blob {oid[:10]} does not parse: {exc}")
        else:
            tally.check(True, "")


def accounted(
    tally: Tally, box: Sandbox, expect: Expect
) -> dict[str, dict[str, tuple[str, int, str | None]]]:
    """The tasks at the tip are exactly those created (plus, at most once, those maybe created)."""
    try:
        states = tip_states(box)
    except GitStateError as exc:
        tally.check(False, f"the state branch does not parse: {exc}")
        return {}
    for project in sorted(set(expect.tasks) | set(expect.maybe) | set(states)):
        have = set(states.get(project, {}))
        must = expect.tasks.get(project, set())
        may = expect.maybe.get(project, set())
        tally.check(not (must - have), f"{project}: tasks lost: {sorted(must - have)}")
        tally.check(not (have - must - may), f"{project}: tasks nobody created: {sorted(have - must - may)}")
    return states


_TRAILER = re.compile(r"^Gitstate-([A-Za-z]+): (.*)$", re.MULTILINE)
_STATUS = re.compile(r"^(\S+) (\S+) -> (\S+)$")


def history(
    tally: Tally, box: Sandbox, states: Mapping[str, Mapping[str, tuple[str, int, str | None]]]
) -> int:
    """Transitions legal and continuous, claims only of pending tasks; returns the claim count."""
    log = box.git("log", "--first-parent", "--reverse", "--format=%H%x1f%B%x1e", "main")
    tracked: dict[tuple[str, str], str] = {}
    claims = 0
    for record in log.split("\x1e"):
        commit, _, body = record.strip("\n").partition("\x1f")
        if not commit:
            continue
        trailers: dict[str, list[str]] = {}
        for key, value in _TRAILER.findall(body):
            trailers.setdefault(key, []).append(value.strip())
        project = (trailers.get("Project") or [""])[0]
        moved: dict[str, tuple[str, str]] = {}
        for value in trailers.get("Status", []):
            found = _STATUS.match(value)
            if not tally.check(found is not None, f"{commit[:10]}: unreadable status trailer {value!r}"):
                continue
            assert found is not None
            task_id, was, now = found.groups()
            moved[task_id] = (was, now)
            key = (project, task_id)
            before = tracked.get(key, "new")
            tally.check(
                was == before,
                f"{commit[:10]}: {project}/{task_id} went {was} -> {now}, but it was {before} (a lost update)",
            )
            legal = now == "pending" if was == "new" else Status(now) in TRANSITIONS[Status(was)]
            tally.check(legal, f"{commit[:10]}: {project}/{task_id} made an illegal move {was} -> {now}")
            tracked[key] = now
        task_ids = trailers.get("Task", [])
        events = trailers.get("Event", [])
        if len(events) == 1:
            events = events * len(task_ids)
        for task_id, event in zip(task_ids, events, strict=False):
            if event != "claim":
                continue
            claims += 1
            tally.check(
                moved.get(task_id, ("", ""))[0] == "pending" and moved[task_id][1] == "in_progress",
                f"{commit[:10]}: claim of {project}/{task_id} did not take a pending task (a double claim)",
            )
    for (project, task_id), status in tracked.items():
        at_tip = states.get(project, {}).get(task_id)
        tally.check(
            at_tip is not None and at_tip[0] == status,
            f"{project}/{task_id}: history ends {status} but the tip says {at_tip[0] if at_tip else 'gone'}",
        )
    return claims


def settled(tally: Tally, states: Mapping[str, Mapping[str, tuple[str, int, str | None]]]) -> None:
    for project, tasks in states.items():
        for task_id, (status, _, _) in tasks.items():
            tally.check(status != "in_progress", f"{project}/{task_id} is in_progress with no live lease")


def completed_branches(
    tally: Tally, box: Sandbox, states: Mapping[str, Mapping[str, tuple[str, int, str | None]]]
) -> None:
    for project, tasks in states.items():
        for task_id, (status, _, branch) in tasks.items():
            if status != "completed":
                continue
            text = box.git("show", f"refs/heads/{branch}:projects/{project}/STATE.yaml", check=False)
            ok = False
            if text:
                try:
                    doc = statefile.parse(text, f"projects/{project}/STATE.yaml")
                    ok = doc.project.tasks[task_id].status == Status.COMPLETED
                except (GitStateError, KeyError):
                    ok = False
            tally.check(ok, f"{project}/{task_id} is completed but its branch {branch} is gone or disagrees")


def no_bad_work(
    tally: Tally,
    box: Sandbox,
    expect: Expect,
    states: Mapping[str, Mapping[str, tuple[str, int, str | None]]],
) -> None:
    """No failing work is reachable from the state branch; every merged task's work is at the tip."""
    pairs = [(o, p) for o, p in _objects(box, "main") if p.startswith("work/")]
    blobs = _blobs(box, [o for o, _ in pairs])
    for oid, path in pairs:
        tally.check(BAD not in blobs[oid].decode(errors="replace"), f"unchecked work reached main: {path}")
    if not expect.work:
        return
    at_tip = set(box.git("ls-tree", "--name-only", "main:work", check=False).split())
    for project, tasks in states.items():
        for task_id, (status, _, _) in tasks.items():
            if status == "merged" and task_id in expect.tasks.get(project, set()) | expect.maybe.get(
                project, set()
            ):
                tally.check(
                    f"{task_id}.txt" in at_tip, f"{project}/{task_id} is merged but its work is not on main"
                )
                tally.check(task_id not in expect.bad, f"{project}/{task_id} failed its check but was merged")


def nothing_left(
    tally: Tally, box: Sandbox, states: Mapping[str, Mapping[str, tuple[str, int, str | None]]]
) -> None:
    """After gc: every worktree, folder, branch and lease belongs to an open task; no lock files."""
    status = {(p, t): s for p, tasks in states.items() for t, (s, _, _) in tasks.items()}
    listed = box.git("worktree", "list", "--porcelain").split("\n\n")
    for record in listed[1:]:
        if record.strip():
            tally.check(False, f"worktree left behind: {record.strip().splitlines()[0]}")
    tally.check(True, "")
    admin = box.repo / ".git" / "worktrees"
    leftovers = sorted(p.name for p in admin.iterdir()) if admin.is_dir() else []
    tally.check(not leftovers, f"worktree records left in .git/worktrees: {leftovers}")
    root = box.repo / ".git" / "gitstate" / "worktrees"
    folders = sorted(str(p.relative_to(root)) for p in root.glob("*/*")) if root.is_dir() else []
    tally.check(not folders, f"folders left under the worktree root: {folders}")
    merging = box.repo / ".git" / "gitstate" / "merging"
    if merging.is_dir() and any(merging.iterdir()):
        # gc leaves a merge folder alone for a minute (its merge may be starting): let that pass.
        for path in merging.iterdir():
            os.utime(path, (time.time() - 120, time.time() - 120))
        box.gs("gc")
    left = sorted(p.name for p in merging.iterdir()) if merging.is_dir() else []
    tally.check(not left, f"merge folders left behind: {left}")
    for ref in box.refs():
        parts = ref.split("/")
        if ref.startswith("refs/heads/gitstate/"):
            owner = status.get((parts[3], parts[4])) if len(parts) == 5 else None
            tally.check(
                owner is not None and owner not in ("merged", "cancelled"),
                f"task branch {ref} left behind (its task is {owner or 'unknown'})",
            )
        elif ref.startswith("refs/gitstate/leases/"):
            owner = status.get((parts[3], parts[4])) if len(parts) == 5 else None
            tally.check(owner == "in_progress", f"lease {ref} left behind (its task is {owner or 'unknown'})")
    locks = sorted(str(p.relative_to(box.repo)) for p in (box.repo / ".git").rglob("*.lock") if _git_lock(p))
    tally.check(not locks, f"git lock files left behind: {locks}")


def _git_lock(path: Path) -> bool:
    # gitstate's own flock files live in .git/gitstate/locks and are meant to stay.
    return "gitstate/locks" not in path.as_posix()


def checkout_clean(tally: Tally, box: Sandbox) -> None:
    status = box.git("status", "--porcelain")
    tally.check(status == "", f"the checkout of main is not in step: {status!r}")


def everything(
    tally: Tally,
    box: Sandbox,
    expect: Expect,
    *,
    after_gc: bool = True,
    seen: set[str] | None = None,
) -> int:
    """All the checks for a repository whose processes have all ended; returns the claim count."""
    fsck(tally, box.repo, box.env)
    if box.remote is not None:
        fsck(tally, box.remote, box.env)
    state_files(tally, box, seen)
    states = accounted(tally, box, expect)
    claims = history(tally, box, states)
    settled(tally, states)
    completed_branches(tally, box, states)
    no_bad_work(tally, box, expect, states)
    if after_gc:
        nothing_left(tally, box, states)
    checkout_clean(tally, box)
    return claims
