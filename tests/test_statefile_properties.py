"""Property: block edits always equal a fresh parse, and leave other blocks byte-identical."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitstate import canonical, statefile, yamlblock
from gitstate.model import Project, Settings, Status, Task
from gitstate.yamlblock import OMIT

PATH = "projects/api/STATE.yaml"
HANDWRITTEN = (Path(__file__).parent / "data" / "handwritten.yaml").read_text()
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

SAFE = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85")
text = st.text(SAFE, min_size=0, max_size=30)
title = st.text(st.one_of(SAFE, st.sampled_from("\n\t #:'\"-")), min_size=1, max_size=40).filter(str.strip)
names = st.sampled_from(["python", "gpu", "node", "rust"])
moments = st.integers(0, 10**6).map(lambda s: BASE_TIME + timedelta(seconds=s))

FIELD_VALUES: dict[str, Any] = {
    "title": title,
    "status": st.sampled_from(list(Status)),
    "priority": st.integers(-5, 5),
    "description": st.one_of(text, title),
    "requires": st.lists(names, unique=True, max_size=3).map(tuple),
    "command": st.one_of(st.none(), text.filter(str.strip)),
    "assignee": st.one_of(st.none(), st.sampled_from(["bob", "agent-1"])),
    "attempts": st.integers(0, 4),
    "max_retries": st.one_of(st.none(), st.integers(0, 3)),
    "timeout": st.one_of(st.none(), st.integers(1, 10**5)),
    "lease_expires": st.one_of(st.none(), moments),
    "result": st.one_of(st.none(), title),
    "error": st.one_of(st.none(), title),
    "updated_at": moments,
    "meta": st.dictionaries(
        st.sampled_from(["owner", "ticket", "notes"]), st.one_of(text, st.integers()), max_size=2
    ),
}

operation = st.one_of(
    st.tuples(st.just("add"), st.fixed_dictionaries({}, optional=FIELD_VALUES)),
    st.tuples(st.just("edit"), st.integers(0, 50), st.fixed_dictionaries({}, optional=FIELD_VALUES)),
    st.tuples(
        st.just("settings"),
        st.fixed_dictionaries(
            {},
            optional={
                "description": text,
                "check": st.one_of(st.none(), text.filter(str.strip)),
                "lease": st.one_of(st.none(), st.integers(1, 9999)),
                "requires": st.lists(names, unique=True, max_size=2).map(tuple),
                "meta": st.dictionaries(st.sampled_from(["a", "b"]), text, max_size=2),
            },
        ),
    ),
)


def blocks(text: str, doc: statefile.StateDoc) -> dict[str, str]:
    lines = statefile.split_lines(text)
    return {tid: "".join(lines[s:e]) for tid, (s, e) in doc.tasks.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.sampled_from(["new", "handwritten"]), ops=st.lists(operation, min_size=1, max_size=6))
def test_edits_match_a_fresh_parse(start: str, ops: list[tuple[Any, ...]]) -> None:
    if start == "new":
        text, doc = statefile.render_new(Project(Settings(name="api")))
    else:
        text, doc = HANDWRITTEN, statefile.parse(HANDWRITTEN, PATH)
    for number, op in enumerate(ops):
        project = doc.project
        touched: set[str] = set()
        if op[0] == "add":
            task = Task(id=f"t-n{number}", **{"title": "new", "created_at": BASE_TIME, **op[1]})
            project = project.with_task(task)
            touched.add(task.id)
        elif op[0] == "edit" and project.tasks:
            ids = sorted(project.tasks)
            old = project.tasks[ids[op[1] % len(ids)]]
            project = project.with_task(dataclasses.replace(old, **op[2]))
            touched.add(old.id)
        elif op[0] == "settings":
            project = dataclasses.replace(project, settings=dataclasses.replace(project.settings, **op[1]))
        before = blocks(text, doc)
        new_text, new_doc = statefile.apply(doc, text, project)
        assert statefile.parse(new_text, PATH) == new_doc
        assert statefile.parse_whole(new_text, PATH) == new_doc
        after = blocks(new_text, new_doc)
        for tid, block in before.items():
            if tid not in touched:
                # An untouched block is identical, except that the last task's
                # trailing lines may now precede a newly added task.
                assert after[tid].rstrip("\n") == block.rstrip("\n") or after[tid].startswith(
                    block.rstrip("\n")
                )
        text, doc = new_text, new_doc


@settings(max_examples=300, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {"title": title}, optional={k: v for k, v in FIELD_VALUES.items() if k != "title"}
    ),
    indent=st.sampled_from([2, 4]),
)
def test_the_plain_layout_reads_the_same_with_a_yaml_library(fields: dict[str, Any], indent: int) -> None:
    task = Task(id="t-1", **fields)
    lines = canonical.emit(task.id, statefile.task_fields(task), indent, OMIT)
    if lines is None:
        return  # needs the YAML path: covered by the test above
    loaded = yamlblock.load(yamlblock.dedent(lines, indent))
    assert statefile.read_task("t-1", loaded["t-1"]) == task
    plain = canonical.read(lines, indent)
    assert plain is not None
    assert statefile.read_task(*plain) == task


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=12))
def test_the_plain_reader_never_disagrees_with_a_yaml_library(value: str) -> None:
    # Whatever one line of text says, the plain reader either declines it or
    # reads exactly what the YAML library reads.
    line = f"  t-1:\n    title: {value}\n"
    plain = canonical.read(statefile.split_lines(line), 2)
    if plain is None:
        return
    try:
        loaded = yamlblock.load(yamlblock.dedent(statefile.split_lines(line), 2))
    except Exception:  # noqa: BLE001
        raise AssertionError(f"plain reader accepted what YAML refuses: {line!r}") from None
    assert yamlblock.to_plain(loaded["t-1"]) == plain[1]
