"""Secrets out of everything gitstate writes down: logs, STATE.yaml, commit messages.

Known shapes are replaced with ``[REDACTED]``: OpenAI/Anthropic-style ``sk-``
keys, GitHub tokens, AWS access key ids, Slack tokens, bearer tokens, private
key blocks, and the value of anything written like ``password=...`` or
``api_key: ...``. It errs on the side of hiding: a false positive costs a word
in a log, a miss leaks a credential into git history, which is forever.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gitstate.errors import InvalidInput

MARK = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), MARK),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}"), MARK),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), MARK),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), MARK),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"), MARK),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), MARK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MARK),
    (re.compile(r"(?i)\b(bearer|token)(\s+)[A-Za-z0-9._~+/=-]{12,}"), rf"\1\2{MARK}"),
    (
        re.compile(
            # A whole run of name characters holding a keyword, taken at the run's start
            # and never backtracked into: linear in the length of a line (a run of
            # 100,000 word characters used to take minutes).
            r"(?i)(?<![\w.-])(?=[\w.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth))"
            r"([\w.-]++)(\s*[=:]\s*)(?!(?:bearer|basic|token)\b)(\"[^\"]*\"|'[^']*'|[^\s\"',;&]+)"
        ),
        rf"\1\2{MARK}",
    ),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{MARK}@"),  # user:password@host in URLs
)
_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")


def redact(text: str) -> str:
    """``text`` with every known secret shape replaced (private key blocks too)."""
    redactor = Redactor()
    return "".join(redactor.feed(line) for line in text.splitlines(keepends=True))


def refuse_secrets(fields: Mapping[str, Any]) -> None:
    """Refuse text a person is about to commit that looks like it holds a secret."""
    for name, value in fields.items():
        texts = [value] if isinstance(value, str) else [str(v) for v in _leaves(value)]
        for text in texts:
            if redact(text) != text:
                raise InvalidInput(
                    f"{name} looks like it holds a secret (an API key, token or password); "
                    "keep secrets out of git and give them to commands through the environment"
                )


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


class Redactor:
    """Line-by-line redaction for streams; remembers when it is inside a private key."""

    def __init__(self) -> None:
        self._in_key = False

    def feed(self, line: str) -> str:
        if self._in_key:
            if _KEY_END.search(line):
                self._in_key = False
            return ""
        begin = _KEY_BEGIN.search(line)
        if begin:
            self._in_key = not _KEY_END.search(line, begin.end())
            newline = "\n" if line.endswith("\n") else ""
            return line[: begin.start()] + f"{MARK} (private key){newline}"
        for pattern, replacement in _PATTERNS:
            line = pattern.sub(replacement, line)
        return line
