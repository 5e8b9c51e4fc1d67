"""Hypothesis runs over hostile input, shared by tests/test_fuzz.py and bench/reliability.py.

Every run is derandomized (a fixed seed per test function) with no example
database, so CI sees the same examples every time; ``examples`` bounds them.
Each function counts what it fed gitstate in ``tally.fuzzed`` and lets a
failure propagate (hypothesis prints the shrunk example).

* ``statefile_properties``: valid documents read faithfully and edit in
  place; invalid ones refused naming file:line; any text never crashes.
* ``cli_on_documents``: documents committed to the state branch behind
  gitstate's back (including non-UTF-8 bytes), then read and written through
  the CLI: one-line refusals, no commit on failure, untouched lines kept.
* ``store_machine``: a state machine driving the store and agent API (add,
  claim, done, fail, release, retry, cancel, edit, merge, reap) against a
  reference model, checked after every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gitstate import agent, projects, statefile, tasks
from gitstate.cli import cli
from gitstate.coordinator import Coordinator
from gitstate.errors import GitStateError, NothingReady
from gitstate.git import Oid, Repository
from gitstate.model import Status
from gitstate.store import Store
from tests.reliability import hostile, invariants
from tests.reliability.invariants import Expect, Tally
from tests.reliability.sandbox import Sandbox, sandbox


def _settings(examples: int, **extra: Any) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        **extra,
    )


EDITS: dict[str, Callable[[Any], Any]] = {
    "title": lambda t: dataclasses.replace(t, title="edited: " + t.title[:12]),
    "priority": lambda t: dataclasses.replace(t, priority=t.priority + 7),
    "status": lambda t: dataclasses.replace(t, status=Status.CANCELLED),
    "meta": lambda t: dataclasses.replace(t, meta={"edited": "yes"}),
    "description": lambda t: dataclasses.replace(t, description="line one\nline two"),
}


def statefile_properties(tally: Tally, examples: int) -> None:
    @_settings(examples)
    @given(hostile.valid_docs(), st.sampled_from(sorted(EDITS)))
    def valid(doc: hostile.Doc, edit: str) -> None:
        tally.fuzzed += 1
        tally.invariants += 3  # read faithfully, agrees with the full parser, edits in place
        hostile.check_valid(doc, EDITS[edit])

    @_settings(examples)
    @given(hostile.invalid_docs())
    def invalid(case: tuple[str, int | None, str]) -> None:
        tally.fuzzed += 1
        tally.invariants += 1  # refused, in one line naming file:line
        hostile.check_invalid(*case)

    @_settings(examples * 2)
    @given(st.one_of(st.text(max_size=400), st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)))
    def anything(text: str) -> None:
        tally.fuzzed += 1
        tally.invariants += 1  # accepted and round-trips, or refused cleanly
        hostile.check_any(text)

    for run in (valid, invalid, anything):
        run()
        tally.trials += 1
    for _, text in hostile.NASTY:
        tally.fuzzed += 1
        tally.invariants += 1
        hostile.check_any(text)


# YAML-ish pieces, so random text often gets past the first line.
TOKENS = [
    "version: 1\n", "project: api\n", "tasks:\n", "  t-1:\n", "    title: x\n", "    status: done\n",
    "    depends_on: [t-1]\n", "    priority: 1\n", "  ", "\t", "- ", ": ", "{", "}", "[", "]", "'", '"',
    "&a ", "*a", "!!str ", "<<: ", "? ", "#", "\n", "---\n", "...\n", "|\n", ">-\n", "\\u0000", "\\ud800",
    "null", "~", "2026-01-01", "0x1f", ".inf", "é", "\u2028", "\r\n", "\ufeff", "=======\n",
]  # fmt: skip


# -- the CLI on documents committed behind gitstate's back ---------------------------------------------


def commit_raw(box: Sandbox, data: bytes) -> Oid:
    """Put ``data`` at projects/api/STATE.yaml on main with git plumbing (no validation)."""
    with Repository.discover(box.repo, box.env) as repo:
        head = repo.resolve("refs/heads/main")
        assert head is not None
        blob = repo.write_object("blob", data)
        tree = repo.replace_path(repo.commit_tree_oid(head), hostile.PATH, blob)
        commit = repo.write_commit(
            tree, [head], "hostile STATE.yaml\n", repo.identity(), date=(box.epoch, "+0000")
        )
        assert repo.update_ref("refs/heads/main", commit, head)
    box.git("reset", "-q", "--hard", "main")  # the person's checkout has it too
    return commit


COMMANDS: list[tuple[str, ...]] = [
    ("status",),
    ("task", "list", "api"),
    ("project", "show", "api"),
    ("next", "api"),
    ("task", "add", "api", "added by the fuzzer", "--id", "zz-fuzz"),
    ("claim", "api", "--agent", "fuzzer", "--no-worktree"),
    ("project", "edit", "api", "--description", "edited by the fuzzer"),
    ("merge",),
    ("reap",),
    ("gc",),
    ("doctor",),
]


def cli_on_documents(tally: Tally, examples: int) -> None:
    runner = CliRunner()
    with sandbox() as box:
        projects_made = False

        def check(data: bytes) -> None:
            nonlocal projects_made
            if not projects_made:
                with box.store() as store:
                    projects.create(store, "api")
                projects_made = True
            commit_raw(box, data)
            for args in COMMANDS:
                head = box.git("rev-parse", "main").strip()
                outcome = runner.invoke(cli, ["-C", str(box.repo), *args], env=box.env)
                tally.fuzzed += 1
                tally.invariants += 1  # no traceback; a refusal is one line and commits nothing
                crashed = outcome.exception is not None and not isinstance(outcome.exception, SystemExit)
                assert not crashed, f"{args}: raised {outcome.exception!r} on\n{data[:2000]!r}"
                if outcome.exit_code not in (0, 2):
                    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
                    if args[0] != "doctor":  # doctor lists problems on stdout, one per line
                        assert len(lines) == 1 and lines[0].startswith("error: "), (
                            f"{args}: {outcome.stderr!r}"
                        )
                    assert box.git("rev-parse", "main").strip() == head, f"{args}: failed but committed"
                    continue
                if args[:2] == ("task", "add") and outcome.exit_code == 0:
                    _kept(box, head)
                    commit_raw(box, data)  # back to the document under test

        @_settings(examples)
        @given(
            st.one_of(
                hostile.valid_docs(max_tasks=3).map(lambda d: d.text.encode()),
                hostile.invalid_docs().map(lambda c: c[0].encode("utf-8", "surrogatepass")),
                st.sampled_from([t for _, t in hostile.NASTY if len(t) < 200_000]).map(
                    lambda t: t.encode("utf-8", "surrogatepass")
                ),
                st.binary(max_size=200),
                st.sampled_from(
                    [b"version: 1\nproject: api\ntasks:\n  t-1:\n    title: caf\xe9\n", b"\xff\xfe\x00v"]
                ),
            )
        )
        def documents(data: bytes) -> None:
            check(data)

        documents()
        tally.trials += 1
        invariants.fsck(tally, box.repo, box.env)


def _kept(box: Sandbox, before: str) -> None:
    """A write left every line it did not need to change byte-identical."""
    old = statefile.split_lines(box.git("show", f"{before}:{hostile.PATH}"))
    new = statefile.split_lines(box.git("show", f"main:{hostile.PATH}"))
    doc = statefile.parse("".join(old), hostile.PATH)
    cut = doc.top["tasks"][0]
    assert new[:cut] == old[:cut], "a write changed lines above the tasks"
    if doc.tasks:
        last = max(end for _, end in doc.tasks.values())
        assert new[: min(last, len(old))] == old[: min(last, len(old))] or doc.task_indent is None


# -- the state machine ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Model:
    status: str = "pending"
    attempts: int = 0
    priority: int = 0
    assignee: str | None = None


class StoreMachine(RuleBasedStateMachine):
    """The store and agent API against a dictionary of expected statuses."""

    tally: Tally = Tally()
    RETRIES = 1
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self._context = sandbox()
        self.box = self._context.__enter__()
        self.model: dict[str, Model] = {}
        self.repo = Repository.discover(self.box.repo, self.box.env)
        self.store = Store(self.repo, lock_timeout=60)
        projects.create(self.store, "api", {"max_retries": self.RETRIES, "lease": 60})
        self.count = 0

    def teardown(self) -> None:
        try:
            self.repo.close()
            expect = Expect(tasks={"api": set(self.model)})
            invariants.fsck(self.tally, self.box.repo, self.box.env)
            states = invariants.accounted(self.tally, self.box, expect)
            invariants.history(self.tally, self.box, states)
            self.tally.trials += 1
        finally:
            self._context.__exit__(None, None, None)

    def _step(self, name: str, action: Callable[[], Any], allowed: bool) -> None:
        """Run ``action``; a refused one must raise GitStateError and commit nothing."""
        self.tally.fuzzed += 1
        head = self.repo.resolve("refs/heads/main")
        if allowed:
            action()
            return
        try:
            action()
        except GitStateError:
            pass
        else:
            raise AssertionError(f"{name} was allowed but the model refuses it")
        assert self.repo.resolve("refs/heads/main") == head, f"a refused {name} committed"

    @initialize()
    def start(self) -> None:
        self.tally.fuzzed += 1

    @rule(target=ids, priority=st.integers(-2, 2))
    def add(self, priority: int) -> str:
        self.count += 1
        task_id = f"t-{self.count:03d}"
        self._step(
            "add",
            lambda: tasks.add(self.store, "api", f"task {self.count}", {"priority": priority}, task_id),
            True,
        )
        self.model[task_id] = Model(priority=priority)
        return task_id

    @rule(name=st.sampled_from(["a1", "a2"]))
    def claim(self, name: str) -> None:
        ready = [(-m.priority, m.attempts, i) for i, m in self.model.items() if m.status == "pending"]
        self.tally.fuzzed += 1
        try:
            claimed = agent.claim(self.store, name, "api", worktree=False)
        except NothingReady:
            assert not ready, f"nothing ready, but the model has {sorted(ready)}"
            return
        assert ready, f"claimed {claimed.task.id} though the model has nothing ready"
        expected = min(ready)[2]
        assert claimed.task.id == expected, f"claimed {claimed.task.id}, the model's best is {expected}"
        model = self.model[expected]
        model.status, model.attempts, model.assignee = "in_progress", model.attempts + 1, name

    def _give_back(self, task_id: str) -> None:
        model = self.model[task_id]
        model.status = "failed" if model.attempts > self.RETRIES else "pending"
        model.assignee = None

    @rule(task_id=ids)
    def done(self, task_id: str) -> None:
        model = self.model[task_id]
        ok = model.status == "in_progress"
        self._step("done", lambda: agent.done(self.store, "api", task_id, result="ok"), ok)
        if ok:
            model.status = "completed"  # it keeps its assignee: who did the work

    @rule(task_id=ids, how=st.sampled_from(["fail", "release"]))
    def give_back(self, task_id: str, how: str) -> None:
        ok = self.model[task_id].status == "in_progress"
        if how == "fail":
            self._step("fail", lambda: agent.fail(self.store, "api", task_id, error="broken"), ok)
        else:
            self._step("release", lambda: agent.release(self.store, "api", task_id, reason="later"), ok)
        if ok:
            self._give_back(task_id)

    @rule(task_id=ids)
    def retry(self, task_id: str) -> None:
        model = self.model[task_id]
        ok = model.status in ("failed", "completed")
        self._step("retry", lambda: tasks.retry(self.store, "api", task_id), ok)
        if ok:
            model.status, model.attempts, model.assignee = (
                "pending",
                0,
                None if model.status == "completed" else model.assignee,
            )

    @rule(task_id=ids)
    def cancel(self, task_id: str) -> None:
        model = self.model[task_id]
        ok = model.status in ("pending", "failed")
        self._step("cancel", lambda: tasks.cancel(self.store, "api", task_id, "not needed"), ok)
        if ok:
            model.status = "cancelled"

    @rule(task_id=ids, priority=st.integers(-3, 3))
    def edit(self, task_id: str, priority: int) -> None:
        self._step("edit", lambda: tasks.edit(self.store, "api", task_id, {"priority": priority}), True)
        self.model[task_id].priority = priority

    @rule()
    def merge(self) -> None:
        self.tally.fuzzed += 1
        report = Coordinator(self.store).run()
        landed = {item.task for item in report.merged()}
        waiting = {i for i, m in self.model.items() if m.status == "completed"}
        assert landed == waiting, f"merged {sorted(landed)}, the model has {sorted(waiting)} completed"
        for task_id in landed:
            self.model[task_id].status = "merged"

    @precondition(lambda self: any(m.status == "in_progress" for m in self.model.values()))
    @rule()
    def leases_run_out(self) -> None:
        self.tally.fuzzed += 1
        self.box.advance(3600)
        self.repo.close()
        self.repo = Repository.discover(self.box.repo, self.box.env)
        self.store = Store(self.repo, lock_timeout=60)
        reaped = {task.id for _, task in agent.reap(self.store)}
        held = {i for i, m in self.model.items() if m.status == "in_progress"}
        assert reaped == held, f"reaped {sorted(reaped)}, the model holds {sorted(held)}"
        for task_id in reaped:
            self._give_back(task_id)

    @invariant()
    def matches_the_model(self) -> None:
        current = self.store.read("api").tasks
        self.tally.invariants += 1
        assert set(current) == set(self.model), "tasks appeared or vanished"
        for task_id, model in self.model.items():
            task = current[task_id]
            got = (task.status.value, task.attempts, task.priority, task.assignee)
            want = (model.status, model.attempts, model.priority, model.assignee)
            assert got == want, f"{task_id} is {got}, the model says {want}"


def store_machine(tally: Tally, examples: int, steps: int) -> None:
    StoreMachine.tally = tally
    run_state_machine_as_test(StoreMachine, settings=_settings(examples, stateful_step_count=steps))
