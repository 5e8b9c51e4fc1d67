"""Fuzzing and hostile input: STATE.yaml documents, CLI arguments, and the API as a state machine.

The generators and checks live in tests/reliability/hostile.py and
tests/reliability/fuzzing.py; the counts in tests/reliability/plan.py (shared
with bench/reliability.py). Runs are derandomized and bounded;
``GITSTATE_LONG=1`` runs ten times the examples and every hostile command line.
"""

from __future__ import annotations

from tests.test_faults import run_clean


def test_statefile_documents_are_read_faithfully_or_refused_naming_file_and_line() -> None:
    assert run_clean("fuzz: STATE.yaml documents").fuzzed > 0


def test_cli_commands_on_hostile_documents_refuse_in_one_line_and_never_commit() -> None:
    assert run_clean("fuzz: CLI on hostile documents").fuzzed > 0


def test_the_store_and_agent_api_match_a_reference_model() -> None:
    assert run_clean("fuzz: API state machine").fuzzed > 0


def test_hostile_names_and_values_fail_cleanly_or_are_kept_as_data_and_never_run() -> None:
    assert run_clean("hostile names and values").fuzzed > 0
