"""The status machine, dependency checks and ready selection, with no repository."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from gitstate.errors import IllegalTransition, InvalidState
from gitstate.model import (
    TRANSITIONS,
    Project,
    Settings,
    Status,
    Task,
    check_graph,
    counts,
    find_cycle,
    move,
    ready_tasks,
    select_next,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def t(task_id: str, **fields: object) -> Task:
    return Task(id=task_id, title=task_id.upper(), **fields)  # type: ignore[arg-type]


def project(*tasks: Task, name: str = "api", **settings: object) -> Project:
    return Project(Settings(name=name, **settings), {x.id: x for x in tasks})  # type: ignore[arg-type]


ALLOWED = {
    ("pending", "in_progress"),
    ("pending", "cancelled"),
    ("in_progress", "completed"),
    ("in_progress", "pending"),
    ("in_progress", "failed"),
    ("completed", "merged"),
    ("completed", "pending"),
    ("completed", "failed"),
    ("failed", "pending"),
    ("failed", "cancelled"),
    ("merged", "pending"),
}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status, Status)))
def test_status_machine_allows_exactly_the_documented_moves(src: Status, dst: Status) -> None:
    task = t("t-1", status=src)
    if (src.value, dst.value) in ALLOWED:
        moved = move("api", task, dst, NOW, assignee="a")
        assert (moved.status, moved.updated_at, moved.assignee) == (dst, NOW, "a")
    else:
        with pytest.raises(IllegalTransition) as info:
            move("api", task, dst, NOW)
        assert str(info.value).startswith(f"task api/t-1 is {src.value}; it can move to ")
        assert str(info.value).endswith(f", not {dst.value}")


def test_refusal_lists_the_allowed_moves() -> None:
    with pytest.raises(
        IllegalTransition,
        match=r"^task api/t-1 is in_progress; it can move to "
        r"completed, pending, failed, not cancelled$",
    ):
        move("api", t("t-1", status=Status.IN_PROGRESS), Status.CANCELLED, NOW)
    with pytest.raises(IllegalTransition, match="it can move to nothing \\(it is final\\), not pending"):
        move("api", t("t-1", status=Status.CANCELLED), Status.PENDING, NOW)


def test_transition_table_matches_the_documented_list() -> None:
    table = {(a.value, b.value) for a, moves in TRANSITIONS.items() for b in moves}
    assert table == ALLOWED


def test_dangling_dependency_is_refused() -> None:
    with pytest.raises(
        InvalidState, match="^task t-1 depends on 't-9', which is not a task in this project$"
    ):
        check_graph(project(t("t-1", depends_on=("t-9",))).tasks)


def test_self_dependency_is_refused() -> None:
    with pytest.raises(InvalidState, match="^task t-1 depends on itself"):
        check_graph(project(t("t-1", depends_on=("t-1",))).tasks)


def test_cycle_is_refused_and_named() -> None:
    tasks = project(
        t("t-a", depends_on=("t-b",)), t("t-b", depends_on=("t-c",)), t("t-c", depends_on=("t-a",)), t("t-d")
    ).tasks
    with pytest.raises(InvalidState, match=r"^task t-a is in a dependency cycle: t-a -> t-b -> t-c -> t-a$"):
        check_graph(tasks)


def test_long_chain_has_no_recursion_limit() -> None:
    chain = [t(f"t-{i}", depends_on=(f"t-{i + 1}",) if i < 5000 else ()) for i in range(5001)]
    assert find_cycle(project(*chain).tasks) == []
    looped = [*chain[:-1], t("t-5000", depends_on=("t-0",))]
    assert len(find_cycle(project(*looped).tasks)) == 5001


def test_ready_needs_pending_merged_dependencies_and_start_time() -> None:
    p = project(
        t("t-dep-merged", status=Status.MERGED),
        t("t-dep-done", status=Status.COMPLETED),
        t("t-ok", depends_on=("t-dep-merged",)),
        t("t-waits", depends_on=("t-dep-done",)),
        t("t-later", not_before=NOW + timedelta(seconds=1)),
        t("t-now", not_before=NOW),
        t("t-running", status=Status.IN_PROGRESS),
    )
    assert [x.id for x in ready_tasks(p, NOW)] == ["t-now", "t-ok"]


def test_order_is_priority_then_oldest_then_id() -> None:
    p = project(
        t("t-b", priority=1, created_at=NOW),
        t("t-a", priority=1, created_at=NOW),
        t("t-old", priority=1, created_at=NOW - timedelta(days=1)),
        t("t-hand", priority=1),
        t("t-top", priority=5, created_at=NOW),
        t("t-low", priority=-1, created_at=NOW - timedelta(days=9)),
    )
    assert [x.id for x in ready_tasks(p, NOW)] == ["t-top", "t-old", "t-a", "t-b", "t-hand", "t-low"]


def test_capabilities_must_cover_task_and_project_requirements() -> None:
    p = project(t("t-gpu", requires=("gpu",), priority=9), t("t-plain"), requires=("python",))
    assert [x.id for x in ready_tasks(p, NOW, ["python"])] == ["t-plain"]
    assert [x.id for x in ready_tasks(p, NOW, ["python", "gpu"])] == ["t-gpu", "t-plain"]
    assert ready_tasks(p, NOW, []) == []
    assert [x.id for x in ready_tasks(p, NOW)] == ["t-gpu", "t-plain"]


def test_select_next_across_projects_breaks_ties_by_project_name() -> None:
    a = project(t("t-1", priority=1, created_at=NOW), name="zeta")
    b = project(t("t-2", priority=1, created_at=NOW), name="alpha")
    chosen = select_next([a, b], NOW)
    assert not isinstance(chosen, str)
    assert (chosen[0].name, chosen[1].id) == ("alpha", "t-2")


@pytest.mark.parametrize(
    ("tasks", "caps", "reason"),
    [
        ((), None, "there are no tasks"),
        (
            (t("t-1", status=Status.MERGED),),
            None,
            "no task is pending (all 1 are in progress, done, failed or cancelled)",
        ),
        (
            (t("t-1", status=Status.FAILED), t("t-2", depends_on=("t-1",))),
            None,
            "no pending task is ready: 1 wait for dependencies or a start time",
        ),
        (
            (t("t-1", requires=("gpu", "cuda")), t("t-2", not_before=NOW + timedelta(hours=1))),
            ["python"],
            "no pending task is ready: 1 wait for dependencies or a start time; "
            "1 need capabilities this agent lacks (cuda, gpu)",
        ),
    ],
)
def test_select_next_says_why_nothing_is_ready(
    tasks: tuple[Task, ...], caps: list[str] | None, reason: str
) -> None:
    assert select_next([project(*tasks)], NOW, caps) == reason


def test_counts_are_derived() -> None:
    p = project(
        t("t-1"),
        t("t-2", status=Status.MERGED),
        t("t-3", depends_on=("t-1",)),
        t("t-4", status=Status.FAILED),
    )
    assert counts(p, NOW) == {
        "pending": 2,
        "in_progress": 0,
        "completed": 0,
        "merged": 1,
        "failed": 1,
        "cancelled": 0,
        "ready": 1,
        "total": 4,
    }


def test_effective_settings_fall_back_to_project_then_gitstate_defaults() -> None:
    p = project(t("t-1"), t("t-2", max_retries=0, timeout=5), max_retries=4, timeout=60, lease=30)
    assert (p.max_retries(p.tasks["t-1"]), p.timeout(p.tasks["t-1"])) == (4, 60)
    assert (p.max_retries(p.tasks["t-2"]), p.timeout(p.tasks["t-2"])) == (0, 5)
    bare = project(t("t-1"))
    assert (bare.max_retries(bare.tasks["t-1"]), bare.timeout(bare.tasks["t-1"]), bare.lease()) == (
        2,
        1800,
        900,
    )
