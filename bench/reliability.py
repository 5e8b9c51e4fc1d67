"""Reliability report: runs the fault, race, fuzz and secret trials and prints one table.

    python bench/reliability.py [--long] [--seed N] [--only NAME,...]

The trials are the test suite's own (tests/reliability/), so the figures are
what CI checks: trials run, kills and faults injected, invariants checked,
violations found (must be 0) and inputs fuzzed, with the seed and the wall
time. ``--long`` (or GITSTATE_LONG=1) runs the long versions. Exits 1 when any
violation is found (or a trial fails outright), 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability import plan  # noqa: E402
from tests.reliability.invariants import Tally  # noqa: E402
from tests.reliability.trials import Landed  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", default=os.environ.get("GITSTATE_LONG") == "1")
    parser.add_argument("--seed", type=int, default=plan.SEED)
    parser.add_argument("--only", default="", help="comma-separated words; run the rows whose name holds one")
    args = parser.parse_args()
    for name in list(os.environ):  # hermetic, as the tests' conftest
        if name.startswith(("GIT_", "GITSTATE_")) and name != "GITSTATE_LONG":
            del os.environ[name]
    home = tempfile.TemporaryDirectory(prefix="gitstate-reliability-home-")  # removed at exit
    os.environ["HOME"] = home.name
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ["GIT_CONFIG_GLOBAL"] = os.devnull

    start = time.monotonic()
    table: list[tuple[str, Tally, float, str]] = []
    wanted = [w for w in args.only.split(",") if w]
    for name, run in plan.SCENARIOS.items():
        if wanted and not any(w in name for w in wanted):
            continue
        tally, landed = Tally(name=name), Landed()
        began = time.monotonic()
        note = ""
        try:
            note = run(tally, args.seed, args.long, landed) or ""
        except Exception as exc:  # noqa: BLE001 (a failing row is a violation, and the rest still run)
            tally.violations.append(f"{name}: {type(exc).__name__}: {str(exc)[:2000]}")
            traceback.print_exc(limit=-3, file=sys.stderr)
        table.append((name, tally, time.monotonic() - began, note or str(landed)))
        print(f"  {name}: {time.monotonic() - began:.1f}s", file=sys.stderr, flush=True)

    total = Tally()
    for _, tally, _, _ in table:
        total.add(tally)
    print(f"gitstate reliability ({'long' if args.long else 'default'} run), seed {args.seed}")
    header = ("scenario", "trials", "kills/faults", "invariants", "violations", "fuzzed", "seconds", "notes")
    lines = [
        (
            name,
            str(t.trials),
            str(t.kills),
            str(t.invariants),
            str(len(t.violations)),
            str(t.fuzzed),
            f"{s:.0f}",
            note,
        )
        for name, t, s, note in table
    ]
    wall = time.monotonic() - start
    lines.append(
        ("total", str(total.trials), str(total.kills), str(total.invariants), str(len(total.violations)),
         str(total.fuzzed), f"{wall:.0f}", f"{total.stale_locks} stale locks removed after being named")
    )  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header) - 1)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in [*widths, len(header[-1])]) + "|")
    for row in lines:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, [*widths, 0], strict=True))
        ]
        print("| " + " | ".join(cells) + " |")
    print(f"wall time {wall:.0f}s; violations must be 0")
    for violation in total.violations:
        print(f"VIOLATION {violation}", file=sys.stderr)
    return 1 if total.violations else 0


if __name__ == "__main__":
    sys.exit(main())
