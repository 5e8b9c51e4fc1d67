"""The reliability suite's scenarios and how many trials each runs, shared by the tests and the report.

Each scenario takes a fresh ``Tally``, the seed, whether this is the long run
(``GITSTATE_LONG=1`` or ``bench/reliability.py --long``) and a ``Landed`` that
counts where kills landed; it returns a note for the report (a skip reason)
or None. The tests in tests/test_faults.py, test_races.py, test_fuzz.py and
test_secrets.py run these same functions and assert no violations, so the
report's figures are exactly what CI checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.reliability import environment, fuzzing, hostile, invariants, secrets, trials
from tests.reliability.invariants import Tally
from tests.reliability.sandbox import sandbox
from tests.reliability.trials import Landed

SEED = int(os.environ.get("GITSTATE_SEED", "20260101"))

Scenario = Callable[[Tally, int, bool, Landed], str | None]

# Kill trials per moment: (default run, long run).
KILLS = {
    "claim": (2, 25),
    "work": (2, 20),
    "done": (1, 10),
    "merge": (1, 15),
    "push": (1, 10),
    "add": (1, 10),
}


def kills(moment: str) -> Scenario:
    def run(tally: Tally, seed: int, long: bool, landed: Landed) -> None:
        for number in range(KILLS[moment][long]):
            trials.KILL_TRIALS[moment](seed, number, tally, landed)

    return run


def race(tally: Tally, seed: int, long: bool, _: Landed) -> None:
    claims = [trials.trial_race(seed, number, tally) for number in range(8 if long else 1)]
    tally.check(all(count >= 12 for count in claims), f"a race left tasks never claimed: {claims}")


def claim_storm(tally: Tally, seed: int, long: bool, _: Landed) -> None:
    for number in range(6 if long else 1):
        taken = trials.trial_claim_storm(seed, number, tally, processes=24 if long else 12, tasks_each=8)
        # at least one project's worth: the rest depends on who asked for what
        tally.check(taken >= 8, f"a claim storm handed out only {taken} tasks")


def stale_locks(tally: Tally, _seed: int, _long: bool, _: Landed) -> None:
    environment.stale_locks(tally)


def failing_writes(tally: Tally, seed: int, long: bool, _: Landed) -> None:
    # ENOSPC, EDQUOT, EIO and short writes, at a seeded n-th object write of add, claim, done and merge.
    environment.injected_write_failures(tally, seed, 6 if long else 2)


def full_disk(tally: Tally, seed: int, long: bool, _: Landed) -> str | None:
    reason = environment.can_unshare()
    if reason:
        return f"skipped: {reason}"
    for number in range(30 if long else 2):
        environment.full_disk_trial(tally, seed, number)
    return None


def read_only(tally: Tally, _seed: int, _long: bool, _: Landed) -> str | None:
    reason = environment.read_only(tally)
    return f"skipped: {reason}" if reason else None


def _scale(long: bool) -> int:
    return 10 if long else 1


def fuzz_statefiles(tally: Tally, _seed: int, long: bool, _: Landed) -> None:
    fuzzing.statefile_properties(tally, 40 * _scale(long))
    tally.check(tally.fuzzed >= 160 * _scale(long) + len(hostile.NASTY), "fewer documents fuzzed than asked")


def fuzz_cli(tally: Tally, _seed: int, long: bool, _: Landed) -> None:
    fuzzing.cli_on_documents(tally, 12 * _scale(long))
    wanted = 12 * _scale(long) * len(fuzzing.COMMANDS) // 2
    tally.check(tally.fuzzed >= wanted, "fewer command lines fuzzed than asked")


def fuzz_api(tally: Tally, _seed: int, long: bool, _: Landed) -> None:
    fuzzing.store_machine(tally, 8 * _scale(long), 14)
    tally.check(tally.trials >= 8 * _scale(long), "fewer command sequences run than asked")


def hostile_names(tally: Tally, _seed: int, long: bool, _: Landed) -> None:
    with sandbox() as box:
        trials.project(box, "api")
        box.must("task", "add", "api", "one", "--id", "t-1")
        marker = str(box.root / "pwned")
        hostile.hostile_cli(tally, box, marker, every=1 if long else 5, subprocesses=12 if long else 4)
        invariants.fsck(tally, box.repo, box.env)
        invariants.state_files(tally, box)
        tally.check(not Path(marker).exists(), "a hostile value ran a command")
    tally.check(tally.fuzzed > 100, "fewer hostile values tried than asked")


def secrets_pass(tally: Tally, _seed: int, _long: bool, _: Landed) -> None:
    searched = secrets.secrets_pass(tally)
    tally.check(searched["objects"] > 100, "the secrets scan searched too few objects")
    tally.check(searched["files"] > 100, "the secrets scan searched too few files")
    tally.check(searched["webhook bodies"] > 0, "the secrets scan saw no webhook body")


SCENARIOS: dict[str, Scenario] = {
    **{f"SIGKILL during {moment}": kills(moment) for moment in KILLS},
    "races: agents, people, coordinator": race,
    "races: claim storm": claim_storm,
    "stale lock files": stale_locks,
    "failing object writes": failing_writes,
    "full disk (tmpfs)": full_disk,
    "read-only repository": read_only,
    "fuzz: STATE.yaml documents": fuzz_statefiles,
    "fuzz: CLI on hostile documents": fuzz_cli,
    "fuzz: API state machine": fuzz_api,
    "hostile names and values": hostile_names,
    "secrets in outputs": secrets_pass,
}
