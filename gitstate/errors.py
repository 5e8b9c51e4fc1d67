"""gitstate's exceptions and the exit code each one maps to.

Core code raises these with a message that names the thing and says what to do;
``cli`` turns them into one line on stderr (or a JSON error object) in one place.
Exit codes: 0 success, 1 refused or failed, 2 usage, 3 nothing ready,
4 busy (lock timeout or too many lost races; safe to retry).
"""

from __future__ import annotations

import re

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_READY = 3
EXIT_BUSY = 4


class GitStateError(Exception):
    """An expected failure with a message meant for the user."""

    exit_code = EXIT_FAILED
    code = "failed"


class InvalidInput(GitStateError):
    """A value given on the command line or through the API is not acceptable."""

    code = "invalid_input"


class NotFound(GitStateError):
    """A project, task or revision does not exist."""

    code = "not_found"


class AlreadyExists(GitStateError):
    """A project or task with that name already exists."""

    code = "already_exists"


class IllegalTransition(GitStateError):
    """The status machine does not allow the requested move."""

    code = "illegal_transition"


class InvalidState(GitStateError):
    """A change would leave the project invalid (cycle, dangling dependency, ...)."""

    code = "invalid_state"

    def __init__(self, message: str, task: str | None = None) -> None:
        super().__init__(message)
        self.task = task


class StateFileError(GitStateError):
    """A STATE.yaml file cannot be read; the message starts with ``file:line:``."""

    code = "invalid_state_file"

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.detail = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class RepositoryError(GitStateError):
    """Not a usable git repository (none, no commits, unsupported format...)."""

    code = "repository"


class GitFailed(GitStateError):
    """A git command failed in a way gitstate does not expect."""

    code = "git_failed"

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        self.args_ = args
        self.returncode = returncode
        self.stderr = stderr.strip()
        last = self.stderr.splitlines()[-1] if self.stderr else "(no message)"
        lock = re.search(r"Unable to create '([^']+\.lock)': File exists", self.stderr)
        config = re.search(r"could not lock config file (.+): File exists", self.stderr)
        if lock or config:  # git's last line ("remove the file manually") does not say which file
            name = lock.group(1) if lock else f"{config.group(1)}.lock" if config else ""
            last = (
                f"{name} exists: another git process is running, or a crashed one left it; "
                "if no git command is running, remove that file and retry"
            )
        super().__init__(f"`git {' '.join(args[:3])}` failed ({returncode}): {last}")


class DirtyStateFile(GitStateError):
    """The user's checkout has uncommitted edits to a file gitstate must update."""

    code = "dirty_state_file"


class Busy(GitStateError):
    """The state is locked by another writer, or the race was lost too often."""

    exit_code = EXIT_BUSY
    code = "busy"


class NothingReady(GitStateError):
    """No task can be taken now; the message says why."""

    exit_code = EXIT_NOTHING_READY
    code = "nothing_ready"
