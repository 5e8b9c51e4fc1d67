"""Faults from the machine rather than from timing: stale lock files, a full disk, a read-only repository.

* ``stale_locks``: lock files a killed git leaves behind (the state branch's
  ref, a task branch's ref, ``packed-refs``, the checkout's and a task
  worktree's ``index.lock``, ``config``, a remote's ref). Each command either
  fails with one line that names the file and says what to do, changing no
  state, or (the checkout's index) succeeds and warns naming it; once the
  file is removed, the command works.
* ``failing_writes``: object writes that fail (ENOSPC, EIO, a short write),
  in-process, at the n-th write of a command: one line, nothing published,
  no temporary file left, and the command works once the disk has room.
* ``full_disk_trial``: the same with a real tiny tmpfs (``unshare -rm``, so
  git's own writes fail too), at seeded random amounts of free space.
* ``read_only``: a repository the user cannot write: reads work, writes fail
  with one line and no traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.reliability import invariants
from tests.reliability.invariants import Expect, Tally
from tests.reliability.sandbox import ROOT, Result, Sandbox, one_line_error, sandbox, seeded
from tests.reliability.trials import project, settle


def _unchanged(tally: Tally, box: Sandbox, before: dict[str, Any], what: str) -> None:
    after = invariants.tip_states(box)
    tally.check(after == before, f"{what}: the state changed although the command failed")


def _named(tally: Tally, result: Result, lock: Path, what: str) -> None:
    tally.check(str(lock) in result.err, f"{what}: the message does not name {lock}: {result.err!r}")


# -- stale lock files ---------------------------------------------------------------------------


def stale_locks(tally: Tally) -> None:
    """Every lock file a killed git can leave: named, nothing changed, recovery once removed."""
    with sandbox() as box:
        expect = Expect(work=True)
        project(box, "api")
        with box.store() as store:
            from gitstate import tasks

            for n in range(6):
                tasks.add(store, "api", f"good task {n}", None, f"t-{n:02d}")
                expect.add("api", f"t-{n:02d}")
        git_dir = box.repo / ".git"

        def refused(lock: Path, args: Sequence[str], what: str, *, state_same: bool = True) -> None:
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.write_text("")
            before = invariants.tip_states(box)
            result = box.gs(*args)
            problem = one_line_error(result)
            tally.check(problem is None, f"{what}: {problem}")
            _named(tally, result, lock, what)
            if state_same:
                _unchanged(tally, box, before, what)
            else:  # taken back: the same status and attempts (a claim made and undone)
                after = invariants.tip_states(box)
                same = {p: {t: v[:2] for t, v in ts.items()} for p, ts in after.items()}
                tally.check(same == {p: {t: v[:2] for t, v in ts.items()} for p, ts in before.items()}, what)
            lock.unlink()
            again = box.gs(*args)
            tally.check(again.code == 0, f"{what}: after removing the lock: {again.describe()}")
            tally.trials += 1

        # The state branch's ref: nothing is published.
        refused(git_dir / "refs/heads/main.lock", ["task", "add", "api", "x", "--id", "x-1"], "main.lock")
        expect.add("api", "x-1")
        # A task branch's ref: the claim is taken back (the task stays pending, attempts as before).
        refused(
            git_dir / "refs/heads/gitstate/api/t-00.lock", ["claim", "api", "--agent", "a"], "branch lock",
            state_same=False,
        )  # fmt: skip
        # A task worktree's index: `done` refuses, the task stays in progress.
        tree = git_dir / "gitstate/worktrees/api/t-00"
        (tree / "work").mkdir()
        (tree / "work/t-00.txt").write_text("t-00\n")
        record = next(
            p for p in (git_dir / "worktrees").iterdir() if (p / "gitdir").read_text().startswith(str(tree))
        )
        refused(record / "index.lock", ["done", "api", "t-00"], "worktree index.lock")
        # packed-refs: the landing is published, the branch deletion is refused; gc finishes it.
        box.must("claim", "api", "--agent", "b")
        _write(git_dir / "gitstate/worktrees/api/t-01", "t-01")
        box.must("done", "api", "t-01")
        box.git("pack-refs", "--all")
        lock = git_dir / "packed-refs.lock"
        lock.write_text("")
        result = box.gs("merge")
        tally.check(one_line_error(result) is None, f"packed-refs.lock: {one_line_error(result)}")
        _named(tally, result, lock, "packed-refs.lock")
        lock.unlink()
        tally.check(box.gs("gc").code == 0, "gc after packed-refs.lock")
        tally.trials += 1
        # The checkout's index: the state branch moves, the checkout cannot follow; the warning names it.
        lock = git_dir / "index.lock"
        lock.write_text("")
        result = box.gs("task", "add", "api", "y", "--id", "x-2")
        expect.add("api", "x-2")
        tally.check(result.code == 0, f"index.lock: {result.describe()}")
        _named(tally, result, lock, "index.lock")
        lock.unlink()
        box.must("task", "edit", "api", "x-2", "--priority", "-1")  # the next write catches the checkout up
        invariants.checkout_clean(tally, box)
        tally.trials += 1
        # git config, in a clone being set up.
        clone = box.root / "clone"
        box.git_in(box.root, "clone", "-q", str(box.repo), str(clone))
        lock = clone / ".git/config.lock"
        lock.write_text("")
        result = box.gs("-C", str(clone), "init", cwd=box.root)
        tally.check(one_line_error(result) is None, f"config.lock: {one_line_error(result)}")
        _named(tally, result, lock, "config.lock")
        lock.unlink()
        tally.check(box.gs("-C", str(clone), "init", cwd=box.root).code == 0, "init after config.lock")
        tally.trials += 1
        # A remote's ref: the push is refused, saying what the remote said.
        remote = box.add_remote()
        box.must("run", "--agents", "1", "--push", "origin")
        box.must("task", "add", "api", "z", "--id", "x-3")
        expect.add("api", "x-3")
        lock = remote / "refs/heads/main.lock"
        lock.write_text("")
        result = box.gs("run", "--agents", "1", "--time-box", "30s", "--push", "origin")
        tally.check(one_line_error(result) is None, f"remote main.lock: {one_line_error(result)}")
        tally.check(
            str(remote) in result.err and "main.lock" in result.err, f"remote lock not named: {result.err!r}"
        )
        lock.unlink()
        tally.check(box.gs("run", "--agents", "1", "--push", "origin").code in (0, 5), "push after the lock")
        tally.trials += 1
        settle(box, tally, expect)
        invariants.everything(tally, box, expect)


def _write(tree: Path, task_id: str) -> None:
    (tree / "work").mkdir(exist_ok=True)
    (tree / "work" / f"{task_id}.txt").write_text(f"{task_id}\n")


# -- failing object writes, in-process ------------------------------------------------------------


class _FailingOs:
    """``os`` as gitstate.git sees it, whose n-th ``write`` fails (or is short, then fails)."""

    def __init__(self, real: Any, nth: int, error: int, short: bool) -> None:
        self.real, self.nth, self.error, self.short = real, nth, error, short
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self.writes += 1
        if self.writes < self.nth:
            return int(self.real.write(fd, data))
        if self.writes == self.nth and self.short and len(data) > 1:
            return int(self.real.write(fd, bytes(data[: len(data) // 2])))
        raise OSError(self.error, os.strerror(self.error))


@contextlib.contextmanager
def failing_writes(nth: int, error: int = errno.ENOSPC, *, short: bool = False) -> Iterator[_FailingOs]:
    import importlib

    gateway = importlib.import_module("gitstate.git").__dict__  # only the gateway sees the fake
    fake = _FailingOs(gateway["os"], nth, error, short)
    gateway["os"] = fake
    try:
        yield fake
    finally:
        gateway["os"] = fake.real


def injected_write_failures(tally: Tally, seed: int, rounds: int) -> None:
    """Commands whose n-th object write fails: one line, nothing published, recovery afterwards."""
    from click.testing import CliRunner

    from gitstate.cli import cli

    rng = seeded(seed, "enospc")
    with sandbox() as box:
        expect = Expect(work=True)
        project(box, "api")
        runner = CliRunner()

        def invoke(*args: str) -> Result:
            outcome = runner.invoke(cli, ["-C", str(box.repo), *args], env=box.env)
            if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
                return Result(tuple(args), 99, outcome.stdout, f"Traceback: {outcome.exception!r}")
            return Result(tuple(args), outcome.exit_code, outcome.stdout, outcome.stderr)

        steps: list[tuple[str, ...]] = []
        for n in range(rounds):
            steps += [
                ("task", "add", "api", f"task {n}", "--id", f"t-{n:02d}"),
                ("claim", "api", "--agent", f"agent-{n}"),
                ("done", "api", f"t-{n:02d}"),
                ("merge",),
            ]
        for step in steps:
            if step[0] == "done":
                _write(box.repo / ".git/gitstate/worktrees/api" / step[2], step[2])
            error = rng.choice([errno.ENOSPC, errno.ENOSPC, errno.EIO, errno.EDQUOT])
            nth, short = rng.randrange(1, 8), rng.random() < 0.3
            before = invariants.tip_states(box)
            refs = box.refs()
            with failing_writes(nth, error, short=short) as fake:
                result = invoke(*step)
            tally.trials += 1
            if result.code == 0:
                tally.check(fake.writes < nth, f"{step}: succeeded although write {nth} failed")
            else:
                tally.kills += 1  # a fault that hit
                problem = one_line_error(result)
                tally.check(problem is None, f"{step} with write {nth} failing: {problem}")
                tally.check(
                    os.strerror(error) in result.err, f"{step}: the error does not say why: {result.err!r}"
                )
                if step[0] in ("task", "claim", "merge"):
                    tally.check(box.refs() == refs, f"{step}: a ref moved although the command failed")
                    _unchanged(tally, box, before, str(step))
            leftovers = sorted(str(p.name) for p in (box.repo / ".git/objects").glob("*/tmp_obj_*"))
            tally.check(not leftovers, f"{step}: temporary object files left: {leftovers}")
            invariants.fsck(tally, box.repo, box.env)
            invariants.state_files(tally, box)
            if result.code != 0:  # the disk has room again: the same command works
                again = invoke(*step)
                if step[0] == "done" and again.code != 0:  # the branch got the work; record it by reaping
                    tally.check("not in progress" in again.err, f"{step} again: {again.describe()}")
                else:
                    tally.check(again.code == 0, f"{step} again: {again.describe()}")
            if step[0] == "task":
                expect.add("api", step[5])
        settle(box, tally, expect)
        invariants.everything(tally, box, expect)


# -- a real full disk (a tiny tmpfs in a private mount namespace) --------------------------------


def can_unshare() -> str | None:
    """None when ``unshare -rm`` can mount a tmpfs here; else why not."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = tempfile.mkdtemp(prefix="gitstate-unshare-")
    try:
        proc = subprocess.run(
            ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.rmdir(probe)
    return (
        None if proc.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {proc.stderr.strip()}"
    )


FULL_DISK_STEPS: tuple[tuple[str, ...], ...] = (
    ("task", "add", "api", "on a full disk", "--id", "f-1"),
    ("claim", "api", "--agent", "full"),
    ("done", "api", "t-00"),
    ("merge",),
    ("task", "add", "api", "another", "--id", "f-2"),
)


def full_disk_trial(tally: Tally, seed: int, number: int) -> None:
    """Run commands in the sandbox remounted on a tmpfs with a few KiB free; check inside, then outside."""
    rng = seeded(seed, "full-disk", number)
    with sandbox() as box:
        expect = Expect(work=True)
        project(box, "api")
        with box.store() as store:
            from gitstate import tasks

            tasks.add(store, "api", "good task 0", None, "t-00")
        expect.add("api", "t-00")
        free = rng.randrange(0, 24) * 4096 + rng.randrange(0, 4096)
        args = json.dumps({"root": str(box.root), "env": box.env, "free": free, "steps": FULL_DISK_STEPS})
        proc = subprocess.run(
            ["unshare", "-rm", sys.executable, "-m", "tests.reliability.environment", args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**box.env, "PYTHONPATH": str(ROOT)},
            check=False,
            timeout=300,
        )
        if not tally.check(proc.returncode == 0, f"the full-disk helper failed: {proc.stderr[-2000:]}"):
            return
        report = json.loads(proc.stdout)
        for item in report["steps"]:
            tally.trials += 1
            if item["code"] != 0:
                tally.kills += 1
                problem = one_line_error(Result(tuple(item["args"]), item["code"], "", item["err"]))
                tally.check(problem is None, f"full disk ({free} bytes free), {item['args']}: {problem}")
            tally.check(item["fsck"] == "", f"full disk, after {item['args']}: fsck: {item['fsck']}")
            tally.check(item["parse"] == "", f"full disk, after {item['args']}: {item['parse']}")
            if item["code"] != 0 and item["args"][0] in ("task", "merge"):
                tally.check(item["same"], f"full disk: {item['args']} failed but the state changed")
        for item in report["recovery"]:
            ok = item["code"] == 0 or (item["args"][0] == "claim" and item["code"] == 3)
            ok = ok or (item["args"][0] == "done" and "not in progress" in item["err"])
            tally.check(ok, f"full disk ({free} bytes free), {item['args']} with room again: {item['err']!r}")
        tally.check(report["fsck"] == "", f"full disk, at the end: fsck: {report['fsck']}")
        # Outside the namespace the sandbox is as it was: nothing leaked out of the tmpfs.
        tally.check(box.gs("status").code == 0, "status after the full-disk trial")
        settle(box, tally, expect)
        invariants.everything(tally, box, expect)


def _inside(spec: dict[str, Any]) -> dict[str, Any]:
    """In the private mount namespace: move the sandbox onto a tmpfs, fill it, run the steps."""
    root = Path(spec["root"])
    env: dict[str, str] = spec["env"]
    copy = Path(tempfile.mkdtemp(prefix="gitstate-fulldisk-copy-"))
    shutil.copytree(root, copy / "root", symlinks=True)
    used = sum(p.stat().st_size for p in (copy / "root").rglob("*") if p.is_file())
    size = (used * 3 + 8 * 2**20) // 4096 * 4096
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)], check=True)
    for item in (copy / "root").iterdir():
        if item.is_dir():
            shutil.copytree(item, root / item.name, symlinks=True)
        else:
            shutil.copy2(item, root / item.name, follow_symlinks=False)
    shutil.rmtree(copy, ignore_errors=True)
    repo = root / "repo"
    stat = os.statvfs(root)
    filler = root / "filler"
    with open(filler, "wb") as out:
        room = stat.f_bavail * stat.f_frsize - int(spec["free"])
        while room > 0:
            chunk = min(room, 2**20)
            try:
                out.write(b"\0" * chunk)
                out.flush()
            except OSError:
                break
            room -= chunk

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False
        )

    def gitstate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gitstate", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )

    def state() -> str:
        return git("show", "main:projects/api/STATE.yaml").stdout

    def checkout() -> str:
        """How the checkout's STATE.yaml relates to the branch's versions (for reports)."""
        path = "projects/api/STATE.yaml"
        file = git("hash-object", path).stdout.strip()
        staged = git("ls-files", "-s", path).stdout.split()[1:2]
        history = git("log", "--format=%H", "main").stdout.split()
        known = {git("rev-parse", f"{c}:{path}").stdout.strip(): n for n, c in enumerate(history)}
        size = (repo / path).stat().st_size if (repo / path).exists() else -1
        try:
            record = json.loads((repo / ".git" / "gitstate-checkout").read_text())["commit"]
        except (OSError, ValueError, KeyError):
            record = ""
        where = {c: n for n, c in enumerate(history)}.get(record, "none")
        index = known.get(staged[0] if staged else "", "unknown")
        return f"file={known.get(file, 'unknown')} index={index} record={where} size={size}"

    steps = []
    for args in spec["steps"]:
        before = state()
        proc = gitstate(*args)
        fsck = git("fsck", "--strict", "--no-progress", "--no-dangling")
        parse = ""
        try:
            from gitstate import statefile

            statefile.parse(state(), "projects/api/STATE.yaml")
        except Exception as exc:  # noqa: BLE001 (reported, not raised)
            parse = f"{type(exc).__name__}: {exc}"
        steps.append(
            {
                "args": list(args),
                "code": proc.returncode,
                "err": proc.stderr,
                "fsck": ""
                if fsck.returncode == 0 and "error" not in fsck.stderr
                else fsck.stdout + fsck.stderr,
                "parse": parse,
                "same": state() == before,
                "checkout": checkout(),
            }
        )
    filler.unlink()  # room again: what failed must now work
    recovery = []
    for step, args in zip(steps, spec["steps"], strict=True):
        if step["code"] != 0:
            proc = gitstate(*args)
            recovery.append(
                {"args": list(args), "code": proc.returncode, "err": proc.stderr, "checkout": checkout()}
            )
    fsck = git("fsck", "--strict", "--no-progress", "--no-dangling")
    final = "" if fsck.returncode == 0 and "error" not in fsck.stderr else fsck.stdout + fsck.stderr
    return {"steps": steps, "recovery": recovery, "fsck": final}


# -- a read-only repository ---------------------------------------------------------------------

READS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("task", "list"),
    ("project", "list"),
    ("task", "show", "api", "t-00"),
    ("merge",),  # nothing to land: nothing to write
)
WRITES: tuple[tuple[str, ...], ...] = (
    ("task", "add", "api", "refused", "--id", "r-1"),
    ("claim", "api", "--agent", "ro"),
    ("project", "add", "web"),
    ("task", "cancel", "api", "t-01"),
    ("init", "--branch", "other"),
    ("gc",),
)


def read_only(tally: Tally) -> str | None:
    """Reads work and writes fail cleanly in a repository this user cannot write; None, or why skipped.

    The repository is made read-only with chmod. Root writes anyway, so as
    root gitstate runs in a user namespace of its own (``unshare -U``), where
    root's override of file permissions does not reach the real files.
    """
    with sandbox() as box:
        expect = Expect()
        project(box, "api")
        with box.store() as store:
            from gitstate import tasks

            for n in range(2):
                tasks.add(store, "api", f"good task {n}", None, f"t-{n:02d}")
                expect.add("api", f"t-{n:02d}")
        box.must("task", "list")  # the parse cache and lock folders exist, as in a used clone
        refs = box.refs()
        prefix: list[str] = []
        if os.geteuid() == 0:
            probe = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True, check=False)
            if probe.returncode != 0:
                return f"running as root and `unshare -U` fails here: {probe.stderr.strip()}"
            prefix = ["unshare", "-U"]
        _chmod(box.repo, writable=False)
        try:
            for args in READS + WRITES:
                proc = subprocess.run(
                    [*prefix, *box.argv(args)],
                    capture_output=True,
                    text=True,
                    env=box.env,
                    cwd="/",
                    check=False,
                )
                result = Result(args, proc.returncode, proc.stdout, proc.stderr)
                tally.trials += 1
                if args in READS:
                    tally.check(result.code == 0, f"read-only repository, a read failed: {result.describe()}")
                else:
                    tally.kills += 1
                    problem = one_line_error(result)
                    tally.check(problem is None, f"read-only repository, {args}: {problem}")
        finally:
            _chmod(box.repo, writable=True)
        tally.check(box.refs() == refs, "a ref moved in a read-only repository")
        box.must("task", "add", "api", "writable again", "--id", "w-1")
        expect.add("api", "w-1")
        invariants.everything(tally, box, expect)
    return None


def _chmod(top: Path, *, writable: bool) -> None:
    for path in [top, *top.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


if __name__ == "__main__":  # the full-disk helper, run inside `unshare -rm`
    print(json.dumps(_inside(json.loads(sys.argv[1]))))
