"""The reliability harness shared by the fault, race, fuzz and secret tests and bench/reliability.py.

* ``sandbox``: a hermetic repository (own HOME, git config, identity, pinned
  clock that can be moved forward), real ``gitstate`` CLI processes, SIGKILL
  at seeded random moments, and the processes task commands leave behind.
* ``invariants``: what must hold after any fault and its recovery (fsck,
  every STATE.yaml valid, every task accounted for once, no double claim, no
  unchecked code on the state branch, nothing left behind after ``gc``), and
  the ``Tally`` that counts trials, kills, checks and violations.
* ``trials``: the fault, race and secret scenarios, each one seeded trial.
* ``hostile``: hostile names and STATE.yaml documents, and the checks applied
  to what gitstate does with them.

Tests assert that a tally has no violations; the report script prints the
same tallies as a table.
"""
