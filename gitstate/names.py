"""Names: project names, task ids, agent names and capabilities; new task ids.

Every name ends up in a path, a branch name (``gitstate/<project>/<id>``), a
commit trailer or a command line, so each is held to a character set that is
safe in all of them: no ``/``, ``..``, spaces, leading ``-``, shell
metacharacters or control characters.

Task ids are ``t-`` plus seven random base-32 characters (35 bits, the length of
git's short hashes). A new id is checked against the project's ids before use, so
ids never collide within one history. Two clones or branches that create tasks
independently collide only if they draw the same seven characters: with a
thousand tasks created on each side before they meet, the chance is about 3 in
100,000, and a merge that meets it refuses loudly instead of dropping a task.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Container

from gitstate.errors import InvalidInput

# Crockford's base 32, lower case: no i, l, o or u to misread.
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ID_LENGTH = 7

_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_TASK_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
_AGENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,62}")
_CAPABILITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}")
# Words YAML reads as something other than a string; a key spelt like this
# would not survive a round trip as a task id.
_YAML_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})


def _check(kind: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{kind} {value!r} is not valid: {rule}")
    return value


def check_project_name(name: object) -> str:
    return _check(
        "project name",
        name,
        _PROJECT,
        "use 1-63 letters, digits, '-' or '_', starting with a letter or digit",
    )


def check_task_id(task_id: object) -> str:
    value = _check(
        "task id",
        task_id,
        _TASK_ID,
        "use 1-63 letters, digits, '-' or '_', starting with a letter",
    )
    if value.lower() in _YAML_WORDS:
        raise InvalidInput(f"task id {value!r} is not valid: YAML reads it as a boolean or null")
    return value


def check_agent_name(name: object) -> str:
    return _check(
        "agent name",
        name,
        _AGENT,
        "use 1-63 letters, digits or '-_.@+', starting with a letter or digit",
    )


def check_capability(name: object) -> str:
    return _check(
        "capability",
        name,
        _CAPABILITY,
        "use 1-63 letters, digits or '-_.+', starting with a letter or digit",
    )


def check_relative_path(path: object) -> str:
    """A path inside the repository: relative, no ``..``, no control characters."""
    if not isinstance(path, str) or not path or path.startswith(("/", "-")) or "\\" in path:
        raise InvalidInput(f"path {path!r} is not valid: give a path relative to the repository's top")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or any(ord(c) < 32 for c in path):
        raise InvalidInput(f"path {path!r} is not valid: no '..', '.', empty parts or control characters")
    return path


def new_task_id(taken: Container[str]) -> str:
    """A fresh random id that is not in ``taken``."""
    while True:
        candidate = "t-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
        if candidate not in taken:
            return candidate
