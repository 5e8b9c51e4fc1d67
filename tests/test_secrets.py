"""No secret a task prints, a person types or a project copies in is ever written down.

A full pass (``gitstate run --push`` with JUnit and a step summary), hand-run
claims finished with secrets in ``--result``, ``--error`` and ``--reason``, and
lifecycle hooks (a command per event, and a webhook) — then every object,
``git log -p --all``, every file under ``.git``, the remote, the reports, the
CLI's output, the hook payloads and the webhook's bodies are searched.
See tests/reliability/secrets.py.
"""

from __future__ import annotations

from tests.test_faults import run_clean


def test_printed_and_typed_secrets_never_reach_history_logs_outputs_or_hooks() -> None:
    run_clean("secrets in outputs")
