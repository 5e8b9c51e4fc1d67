"""The three-way merge of project state, rule by rule (no repository)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from gitstate.merge3 import Conflict, merge
from gitstate.model import Project, Settings, Status, Task

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def p(*tasks: Task, **settings: object) -> Project:
    return Project(Settings(name="api", **settings), {t.id: t for t in tasks})  # type: ignore[arg-type]


def t(task_id: str = "t-1", **fields: object) -> Task:
    values: dict[str, object] = {"title": "one", "updated_at": T0, **fields}
    return Task(id=task_id, **values)  # type: ignore[arg-type]


def test_one_sided_changes_are_taken() -> None:
    base = p(t(), t("t-2"))
    ours = p(t(priority=3), t("t-2"))
    theirs = p(t(), t("t-2", title="renamed"), t("t-3"))
    merged, conflicts = merge(base, ours, theirs)
    assert conflicts == []
    assert merged == p(t(priority=3), t("t-2", title="renamed"), t("t-3"))


def test_status_moves_by_precedence_and_brings_its_fields() -> None:
    base = p(t(status=Status.IN_PROGRESS, assignee="a", attempts=1))
    ours = p(
        t(
            status=Status.PENDING,
            assignee=None,
            attempts=1,
            error="lease expired",
            updated_at=T0 + timedelta(1),
        )
    )
    theirs = p(
        t(status=Status.COMPLETED, assignee="a", attempts=1, result="done", updated_at=T0 + timedelta(2))
    )
    merged, conflicts = merge(base, ours, theirs)
    assert conflicts == []
    task = merged.tasks["t-1"]
    assert (task.status, task.assignee, task.result, task.error) == (Status.COMPLETED, "a", "done", None)
    assert task.updated_at == T0 + timedelta(2)


def test_sets_unite_counts_take_the_larger_times_the_later() -> None:
    base = p(t(depends_on=(), attempts=1), t("t-2"), t("t-3"))
    ours = p(t(depends_on=("t-2",), attempts=2, lease_expires=T0), t("t-2"), t("t-3"))
    theirs = p(t(depends_on=("t-3",), attempts=3, lease_expires=T0 + timedelta(1)), t("t-2"), t("t-3"))
    merged, conflicts = merge(base, ours, theirs)
    assert conflicts == []
    task = merged.tasks["t-1"]
    assert (task.depends_on, task.attempts, task.lease_expires) == (("t-2", "t-3"), 3, T0 + timedelta(1))


def test_meta_merges_key_by_key() -> None:
    base = p(t(meta={"a": 1, "b": 1}))
    ours = p(t(meta={"a": 2, "b": 1}))
    theirs = p(t(meta={"a": 1, "b": 1, "c": 3}))
    merged, conflicts = merge(base, ours, theirs)
    assert (merged.tasks["t-1"].meta, conflicts) == ({"a": 2, "b": 1, "c": 3}, [])
    _, conflicts = merge(base, ours, p(t(meta={"a": 5, "b": 1})))
    assert conflicts == [Conflict("t-1", "meta.a", 2, 5)]


def test_text_changed_on_both_sides_is_a_conflict_that_keeps_ours() -> None:
    merged, conflicts = merge(p(t()), p(t(title="ours")), p(t(title="theirs")))
    assert merged.tasks["t-1"].title == "ours"
    assert conflicts == [Conflict("t-1", "title", "ours", "theirs")]
    assert str(conflicts[0]) == "task t-1, title: ours 'ours', theirs 'theirs'"


def test_same_id_added_on_both_sides_never_silently_collides() -> None:
    _, conflicts = merge(p(), p(t("t-new", title="mine")), p(t("t-new", title="yours")))
    assert conflicts == [Conflict("t-new", "(task)", "added", "added with other content (the same id)")]
    assert merge(p(), p(t("t-new")), p(t("t-new")))[1] == []


def test_settings_merge_and_conflict() -> None:
    base = p(requires=("python",))
    merged, conflicts = merge(
        base, p(requires=("python", "gpu"), check="make"), p(requires=("python", "node"))
    )
    assert conflicts == []
    assert (merged.settings.requires, merged.settings.check) == (("python", "gpu", "node"), "make")
    assert merge(base, p(check="a"), p(check="b"))[1] == [Conflict(None, "check", "a", "b")]


def test_deleted_and_changed_is_a_conflict() -> None:
    base = p(t(), t("t-2"))
    assert merge(base, p(t("t-2")), p(t(), t("t-2")))[0] == p(t("t-2"))  # deleted, untouched: stays deleted
    _, conflicts = merge(base, p(t("t-2")), p(t(priority=1), t("t-2")))
    assert conflicts == [Conflict("t-1", "(task)", "deleted", "changed")]


def test_a_merge_that_would_make_a_cycle_is_a_conflict() -> None:
    base = p(t(), t("t-2"))
    ours = p(t(depends_on=("t-2",)), t("t-2"))
    theirs = p(t(), t("t-2", depends_on=("t-1",)))
    _, conflicts = merge(base, ours, theirs)
    assert [c.field for c in conflicts] == ["depends_on"]


def test_no_base_means_both_added_everything() -> None:
    merged, conflicts = merge(None, p(t()), p(t(), t("t-2")))
    assert (sorted(merged.tasks), conflicts) == (["t-1", "t-2"], [])
    assert dataclasses.replace(merged.settings) == Settings(name="api")
