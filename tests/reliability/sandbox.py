"""A hermetic repository for fault trials: real CLI processes, a movable clock, SIGKILL on cue.

Every sandbox has its own HOME and git configuration, a pinned identity, and a
pinned clock (``GIT_COMMITTER_DATE``, which gitstate reads as "now"); moving
the clock forward is how a trial lets leases run out without waiting.
Commands run as ``python -m gitstate`` in a new session, so a SIGKILL to the
process group ends gitstate and every git process it started, mid-write.

Task and check commands run in sessions of their own (gitstate's executor
starts them that way), so a killed agent can leave one running. The commands
trials use record their pid in the sandbox's ``pids`` folder first, and
``reap_orphans`` ends exactly those (after checking, in /proc, that the
process still belongs to this sandbox).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitstate.git import Repository
from gitstate.store import Store
from tests.conftest import EPOCH, hermetic_settings

ROOT = Path(__file__).resolve().parents[2]
MARKER = "RELIABILITY_SANDBOX"  # not GITSTATE_*: hook helpers drop those, and must be found too
# Prefix of a task or check command: record our pid so an orphan can be found and ended.
RECORD_PID = 'echo $$ > "$GITSTATE_RELIABILITY_PIDS/$$"; '


def hermetic_env(home: Path, epoch: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every process a sandbox starts (conftest's settings, as a dict)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(("GIT_", "GITSTATE_"))}
    env.update(hermetic_settings(home, epoch))
    env.update({"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"})
    return env


@dataclass(frozen=True)
class Result:
    """A finished CLI process (``killed``: it was SIGKILLed before it exited)."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str
    killed: bool = False
    seconds: float = 0.0

    def describe(self) -> str:
        return f"gitstate {' '.join(self.args)!r} exited {self.code}: {self.err.strip()[-400:]!r}"


def one_line_error(result: Result) -> str | None:
    """Why ``result`` is not a clean failure (None when it is): a one-line ``error:`` message."""
    if result.code == 0:
        return "it succeeded"
    if "Traceback" in result.err:
        return "it printed a traceback"
    lines = [line for line in result.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ") or line.startswith("Error: ")]
    if result.code == 2:  # click's usage errors: a Usage line, a hint, then "Error: ..."
        return None if errors else f"usage error without an Error line: {result.err!r}"
    if len(errors) != 1 or not lines or lines[-1] != errors[0]:
        return f"not one error line: {result.err!r}"
    return None


class Sandbox:
    """One repository (and optionally a bare remote) under ``root``, with its own environment."""

    def __init__(self, root: Path, *, projects: Sequence[str] = ()) -> None:
        self.root = root
        self.home = root / "home"
        self.repo = root / "repo"
        self.pids = root / "pids"
        self.remote: Path | None = None
        self.epoch = EPOCH
        for folder in (self.home, self.pids):
            folder.mkdir(parents=True, exist_ok=True)
        (self.home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
        self.env = hermetic_env(self.home, self.epoch)
        self.env["GITSTATE_RELIABILITY_PIDS"] = str(self.pids)
        self.env[MARKER] = str(root)
        self.git_in(root, "init", "-q", "-b", "main", str(self.repo))
        (self.repo / "README.md").write_text("hello\n")
        self.git("add", "README.md")
        self.git("commit", "-qm", "first")
        self.must("init")
        for name in projects:
            self.must("project", "add", name)

    @property
    def main_ref(self) -> Path:
        return self.repo / ".git" / "refs" / "heads" / "main"

    # -- time -----------------------------------------------------------------------------------

    def advance(self, seconds: int) -> None:
        """Move the pinned clock forward (leases run out without waiting)."""
        self.epoch += seconds
        for name in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
            self.env[name] = f"{self.epoch} +0000"

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """The in-process API on this repository (for setting trials up quickly)."""
        with Repository.discover(self.repo, self.env) as handle:
            yield Store(handle, lock_timeout=120)

    # -- git --------------------------------------------------------------------------------------

    def git_in(self, where: Path, *args: str, check: bool = True, input: bytes | None = None) -> str:
        proc = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, env=self.env, input=input, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode("utf-8", errors="surrogateescape")

    def git(self, *args: str, check: bool = True) -> str:
        return self.git_in(self.repo, *args, check=check)

    def git_bytes(self, *args: str, input: bytes | None = None) -> bytes:
        proc = subprocess.run(
            ["git", "-C", str(self.repo), *args], capture_output=True, env=self.env, input=input, check=True
        )
        return proc.stdout

    def add_remote(self, name: str = "origin") -> Path:
        self.remote = self.root / "remote.git"
        self.git_in(self.root, "init", "-q", "--bare", "-b", "main", str(self.remote))
        self.git("remote", "add", name, str(self.remote))
        return self.remote

    def refs(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)")
        return {name: oid for oid, _, name in (line.partition(" ") for line in out.splitlines())}

    # -- the CLI ----------------------------------------------------------------------------------

    def argv(self, args: Sequence[str], cwd: Path | None = None) -> list[str]:
        where = [] if cwd is not None else ["-C", str(self.repo)]
        return [sys.executable, "-m", "gitstate", *where, *args]

    def gs(
        self,
        *args: str,
        timeout: float = 300,
        extra: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Result:
        """Run one gitstate command to its end."""
        start = time.monotonic()
        proc = subprocess.run(
            self.argv(args, cwd),
            capture_output=True,
            env={**self.env, **(extra or {})},
            cwd=cwd or self.root,
            timeout=timeout,
            check=False,
        )
        return Result(
            tuple(args),
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
            seconds=time.monotonic() - start,
        )

    def must(self, *args: str, **kwargs: object) -> Result:
        result = self.gs(*args, **kwargs)  # type: ignore[arg-type]
        if result.code != 0:
            raise AssertionError(result.describe())
        return result

    def spawn(self, *args: str, extra: Mapping[str, str] | None = None) -> Spawned:
        """Start a gitstate command in a session of its own (so it can be killed as a group)."""
        out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by Spawned.finish)
        err = tempfile.TemporaryFile()  # noqa: SIM115
        proc = subprocess.Popen(
            self.argv(args),
            stdout=out,
            stderr=err,
            env={**self.env, **(extra or {})},
            cwd=self.root,
            start_new_session=True,
        )
        return Spawned(tuple(args), proc, out, err, time.monotonic())

    def reap_orphans(self) -> int:
        """End task and check commands a killed gitstate left running; how many were."""
        ended = 0
        for record in sorted(self.pids.iterdir()):
            with contextlib.suppress(ValueError):
                pid = int(record.name)
                if self._ours(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                        ended += 1
            record.unlink(missing_ok=True)
        return ended

    def _ours(self, pid: int) -> bool:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False
        return f"{MARKER}={self.root}".encode() in environ.split(b"\0")

    def wait_quiet(self, seconds: float = 30.0) -> None:
        """Wait until no process of this sandbox runs (deadline, then end what is left)."""
        deadline = time.monotonic() + seconds
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.reap_orphans()

    def running(self, needle: str) -> Callable[[], bool]:
        """A condition: a process of this sandbox whose command line contains ``needle`` runs."""

        def ready() -> bool:
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if needle.encode() in cmdline and self._ours(int(entry.name)):
                    return True
            return False

        return ready

    def _running(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._ours(int(entry.name)):
                found.append(int(entry.name))
        return found


@dataclass
class Spawned:
    args: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    out: object
    err: object
    started: float

    def kill_after(self, delay: float) -> bool:
        """SIGKILL the whole process group ``delay`` seconds after start; False if it had exited."""
        remaining = self.started + delay - time.monotonic()
        if remaining > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=remaining)
        if self.proc.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return True

    def kill_when(self, ready: Callable[[], bool], delay: float, seconds: float = 60.0) -> bool:
        """SIGKILL the group ``delay`` seconds after ``ready()`` holds; False if it had exited."""
        deadline = time.monotonic() + seconds
        while self.proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.002)
        moment = time.monotonic() + delay - self.started
        return self.kill_after(moment)

    def finish(self, timeout: float = 300, *, killed: bool = False) -> Result:
        code = self.proc.wait(timeout=timeout)
        texts = []
        for stream in (self.out, self.err):
            stream.seek(0)  # type: ignore[attr-defined]
            texts.append(stream.read().decode(errors="replace"))  # type: ignore[attr-defined]
            stream.close()  # type: ignore[attr-defined]
        return Result(self.args, code, texts[0], texts[1], killed, time.monotonic() - self.started)


def moves(ref_file: Path, count: int) -> Callable[[], bool]:
    """A condition: the loose ref at ``ref_file`` has changed ``count`` times since now."""
    seen = [_read(ref_file)]

    def ready() -> bool:
        now = _read(ref_file)
        if now != seen[-1]:
            seen.append(now)
        return len(seen) - 1 >= count

    return ready


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def mentioned_locks(text: str) -> list[Path]:
    """Lock files a message names (what a person would read, then remove if stale)."""
    return [Path(found) for found in re.findall(r"(/[^\s'\"()]+\.lock)\b", text)]


@contextlib.contextmanager
def sandbox(prefix: str = "gitstate-reliability-", **kwargs: Sequence[str]) -> Iterator[Sandbox]:
    """A sandbox in a fresh temporary folder, removed afterwards (orphans ended first)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    box = None
    try:
        box = Sandbox(root, **kwargs)
        yield box
    finally:
        if box is not None:
            box.wait_quiet(5.0)
        shutil.rmtree(root, ignore_errors=True)


def seeded(seed: int, *salt: object) -> random.Random:
    """A random generator for one trial, derived from the run's seed and the trial's name."""
    return random.Random(f"{seed}:" + ":".join(map(str, salt)))
