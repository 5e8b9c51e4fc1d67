"""Durations (``90s``, ``5m``, ``1h30m``), timestamps, and the clock.

Timestamps are timezone-aware UTC datetimes with whole seconds, written as
``2026-11-24T21:37:30Z``. The clock honours ``GIT_COMMITTER_DATE`` the way git
does, so an event's recorded time and its commit's date always agree, and tests
pin both with one variable.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from gitstate.errors import InvalidInput

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MAX_DURATION = 3650 * 86400  # ten years
_GIT_DATE = re.compile(r"@?(\d+)(?: ([+-]\d{4}))?")


def parse_duration(text: str | int, what: str = "duration") -> int:
    """Seconds in ``text``: ``90``, ``90s``, ``5m``, ``2h``, ``1d``, ``1h30m``."""
    if isinstance(text, bool):
        raise InvalidInput(f"{what} {text!r} is not a duration; write it like 90s, 5m or 2h")
    if isinstance(text, int):
        if text <= 0:
            raise InvalidInput(f"{what} must be positive, not {text}")
        if text > MAX_DURATION:  # a date that far away overflows, and no timeout or lease is meant so
            raise InvalidInput(f"{what} {text!r} is too long; at most {MAX_DURATION // 86400}d")
        return text
    value = text.strip().lower()
    if value.isdigit():
        return parse_duration(int(value), what)
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise InvalidInput(f"{what} {text!r} is not a duration; write it like 90s, 5m, 2h or 1h30m")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNITS.values(), strict=True) if n)
    if seconds <= 0:
        raise InvalidInput(f"{what} must be positive, not {text!r}")
    return parse_duration(seconds, what)


def format_duration(seconds: int) -> str:
    """The shortest spelling of ``seconds``: 90 -> ``1m30s``, 7200 -> ``2h``."""
    parts = []
    rest = seconds
    for unit, size in _UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | datetime, what: str = "timestamp") -> datetime:
    """A UTC datetime from ISO 8601 text (a date alone means midnight UTC)."""
    if isinstance(text, datetime):
        moment = text
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInput(
                f"{what} {text!r} is not a date; write it like 2026-11-24 or 2026-11-24T09:30:00Z"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def parse_when(text: str, now: datetime, what: str = "time") -> datetime:
    """A moment given as a timestamp or as a delay from now (``+2h`` or ``2h``)."""
    value = text.strip()
    delay = value[1:] if value.startswith("+") else value
    if delay and (delay[-1] in _UNITS or delay.isdigit()) and _DURATION.fullmatch(delay.lower()):
        return now + timedelta(seconds=parse_duration(delay, what))
    return parse_timestamp(value, what)


def parse_since(text: str, now: datetime, what: str = "time") -> datetime:
    """A moment in the past: a timestamp, or how long ago (``2h``, ``3d``)."""
    value = text.strip()
    if value and (value[-1] in _UNITS or value.isdigit()) and _DURATION.fullmatch(value.lower()):
        return now - timedelta(seconds=parse_duration(value, what))
    return parse_timestamp(value, what)


class Clock:
    """The current time; reads ``GIT_COMMITTER_DATE`` when it is set."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.git_date()[0], UTC)

    def git_date(self) -> tuple[int, str]:
        """(seconds since the epoch, ``+hhmm`` offset) as a commit header wants them."""
        pinned = self._environ.get("GIT_COMMITTER_DATE", "").strip()
        if not pinned:
            return int(time.time()), "+0000"
        match = _GIT_DATE.fullmatch(pinned)
        if match:
            return int(match.group(1)), match.group(2) or "+0000"
        try:
            moment = datetime.fromisoformat(pinned)
        except ValueError:
            raise InvalidInput(
                f"GIT_COMMITTER_DATE {pinned!r} is not a date gitstate reads; "
                "use '@<seconds> +0000' or ISO 8601"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        offset = moment.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        return int(moment.timestamp()), f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
