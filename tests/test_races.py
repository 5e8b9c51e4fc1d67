"""Races between real processes: agents, people and the coordinator at once, on one project and across two.

Every trial ends with the invariants of tests/reliability/invariants.py, which
walk the state branch's history through its ``Gitstate-Event``,
``Gitstate-Task`` and ``Gitstate-Status`` trailers: every claim took a task
that was pending (no double claim), every transition continues from the last
one (no lost update), and the tip agrees with the history.
"""

from __future__ import annotations

from tests.test_faults import run_clean


def test_agents_people_and_the_coordinator_racing_on_two_projects() -> None:
    run_clean("races: agents, people, coordinator")


def test_a_storm_of_claims_hands_each_task_to_exactly_one_claimer() -> None:
    run_clean("races: claim storm")
