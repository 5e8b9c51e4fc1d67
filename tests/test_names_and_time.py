"""Names that reach paths, refs and shells; durations, timestamps and the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gitstate import names
from gitstate.errors import InvalidInput
from gitstate.timefmt import (
    Clock,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
    parse_when,
)

HOSTILE = [
    "",
    "-rf",
    "--upload-pack=evil",
    "a/b",
    "..",
    "../up",
    "a b",
    "a;rm",
    "$(touch x)",
    "`id`",
    "a\nb",
    "a\0b",
    "ext::sh",
    "x" * 64,
    "ünï",
    "a|b",
    "a&b",
    "a>b",
    ".hidden",
]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_project_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="^project name .* is not valid: use 1-63 letters"):
        names.check_project_name(bad)


@pytest.mark.parametrize("bad", [*HOSTILE, "1abc", "true", "Null", "no"])
def test_hostile_task_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="^task id .* is not valid"):
        names.check_task_id(bad)


@pytest.mark.parametrize("good", ["api", "web-2", "A_b", "x" * 63, "9lives"])
def test_plain_project_names_pass(good: str) -> None:
    assert names.check_project_name(good) == good


def test_agent_and_capability_names() -> None:
    assert names.check_agent_name("claude@host-1.x") == "claude@host-1.x"
    assert names.check_capability("python3.11") == "python3.11"
    for bad in ("-x", "a b", "a\nb", ""):
        with pytest.raises(InvalidInput):
            names.check_agent_name(bad)
        with pytest.raises(InvalidInput):
            names.check_capability(bad)


def test_new_ids_are_short_typable_and_avoid_taken_ones() -> None:
    seen: set[str] = set()
    for _ in range(2000):
        new = names.new_task_id(seen)
        assert new not in seen
        assert len(new) == 9 and new.startswith("t-")
        assert set(new[2:]) <= set(names.ID_ALPHABET)
        assert names.check_task_id(new) == new
        seen.add(new)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("45", 45),
        (" 2H ", 7200),
        (7, 7),
    ],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5x", "m5", "-5m", "0s", "1.5h", "5 m", 0, -3, True])
def test_bad_durations_are_refused(bad: str | int) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(bad, "--timeout")


def test_format_duration_is_the_shortest_spelling() -> None:
    assert [format_duration(s) for s in (90, 7200, 86400 + 61, 0)] == ["1m30s", "2h", "1d1m1s", "0s"]


def test_timestamps_are_utc_whole_seconds() -> None:
    assert parse_timestamp("2026-01-02") == datetime(2026, 1, 2, tzinfo=UTC)
    moment = parse_timestamp("2026-01-02T03:04:05.9+02:00")
    assert format_timestamp(moment) == "2026-01-02T01:04:05Z"
    with pytest.raises(InvalidInput, match="is not a date"):
        parse_timestamp("tomorrow")


def test_when_reads_delays_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_when("+2h", now) == now + timedelta(hours=2)
    assert parse_when("30m", now) == now + timedelta(minutes=30)
    assert parse_when("2026-03-01", now) == datetime(2026, 3, 1, tzinfo=UTC)


def test_clock_reads_git_committer_date() -> None:
    assert Clock({"GIT_COMMITTER_DATE": "1767225600 +0100"}).git_date() == (1767225600, "+0100")
    assert Clock({"GIT_COMMITTER_DATE": "@1767225600"}).now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert Clock({"GIT_COMMITTER_DATE": "2026-01-01T01:00:00+01:00"}).git_date() == (1767225600, "+0100")
    with pytest.raises(InvalidInput, match="GIT_COMMITTER_DATE"):
        Clock({"GIT_COMMITTER_DATE": "soon"}).now()
    assert abs(Clock({}).now().timestamp() - datetime.now(UTC).timestamp()) < 5
