"""Fault injection: real gitstate processes SIGKILLed mid-write, stale locks, a full disk, a read-only repository.

Each kill trial (tests/reliability/trials.py) starts ``python -m gitstate``
processes and kills their process group at a seeded random moment (during a
claim, a state commit, a worktree creation, ``done``, a merge with its checks,
a push), recovers the way a person would (clock past the lease, ``gitstate
reap``, the command again, a lock file removed when a message names it,
``gitstate gc``), and checks every invariant in tests/reliability/invariants.py.
The scenarios and their trial counts are in tests/reliability/plan.py;
``GITSTATE_LONG=1`` runs many more trials; ``bench/reliability.py`` prints the tally.
"""

from __future__ import annotations

import pytest

from tests.conftest import LONG
from tests.reliability import plan
from tests.reliability.invariants import Tally
from tests.reliability.trials import Landed


def run_clean(name: str) -> Tally:
    """Run one scenario of the plan; it must run trials and find no violation."""
    tally = Tally(name=name)
    note = plan.SCENARIOS[name](tally, plan.SEED, LONG, Landed())
    if note:
        pytest.skip(note)
    assert tally.trials > 0
    assert tally.violations == [], "\n".join(tally.violations)
    return tally


@pytest.mark.parametrize("moment", sorted(plan.KILLS))
def test_kills_at_random_moments_lose_and_corrupt_nothing(moment: str) -> None:
    assert run_clean(f"SIGKILL during {moment}").kills > 0


def test_stale_lock_files_are_named_and_recovery_works() -> None:
    assert run_clean("stale lock files").trials == 7


def test_a_failing_object_write_is_one_line_leaves_nothing_half_written_and_recovers() -> None:
    assert run_clean("failing object writes").kills > 0


def test_a_real_full_disk() -> None:
    assert run_clean("full disk (tmpfs)").kills > 0


def test_a_read_only_repository_reads_and_refuses_writes_in_one_line() -> None:
    run_clean("read-only repository")
