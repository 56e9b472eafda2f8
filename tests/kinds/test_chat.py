"""The chat kind: MT-Bench-format rows into multi-turn work items."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from structbench.errors import SpecError
from structbench.kinds.chat import expand
from structbench.kinds.registry import expand_task
from structbench.spec.loader import LoadedTask, load_task
from structbench.spec.tasks import ChatTaskSpec, FewShot

ROOT = Path(__file__).resolve().parents[2]

ROWS: tuple[dict[str, Any], ...] = (
    {"question_id": 81, "category": "math", "turns": ["2+2?", "Times 3?"], "reference": ["4", 12]},
    {"question_id": 82, "category": "writing", "turns": ["A haiku.", "Shorter.", "Shorter still."]},
    {"question_id": 83, "category": "math", "turns": ["1+1?", "Plus 5?"], "reference": [None, "7"]},
)


def _task(rows: tuple[dict[str, Any], ...] = ROWS, **kw: Any) -> LoadedTask:
    spec = ChatTaskSpec(kind="chat", name="mt", **kw)
    return LoadedTask(spec, Path("tasks/chat/mt.yaml"), rows, None, (), None)


def test_one_item_per_question_with_one_turn_per_message() -> None:
    items = expand(_task(max_tokens=50), random.Random(0), None)
    assert [it.item_id for it in items] == ["mt/81", "mt/82", "mt/83"]
    first = items[0]
    assert first.kind == "chat" and not first.is_fork and first.prefix == ()
    assert first.meta == (("category", "math"), ("question_id", "81"))
    turns = first.branches[0].turns
    assert [t.user for t in turns] == ["2+2?", "Times 3?"]
    assert [t.gen.name for t in turns] == ["turn0", "turn1"]
    # Numbers in the reference list become text; the constraint is free text.
    assert [t.gen.reference for t in turns] == ["4", "12"]
    assert all(t.gen.constraint.kind == "none" and t.gen.max_tokens == 50 for t in turns)
    assert len(items[1].branches[0].turns) == 3
    assert [t.gen.reference for t in items[1].branches[0].turns] == [None, None, None]
    assert [t.gen.reference for t in items[2].branches[0].turns] == [None, "7"]


def test_category_settings_override_task_defaults() -> None:
    task = _task(
        max_tokens=64,
        temperature=0.0,
        category_max_tokens={"writing": 96},
        category_temperature={"writing": 0.7},
    )
    math, writing, _ = expand(task, random.Random(0), None)
    assert {(t.gen.max_tokens, t.gen.temperature) for t in math.branches[0].turns} == {(64, 0.0)}
    assert {(t.gen.max_tokens, t.gen.temperature) for t in writing.branches[0].turns} == {(96, 0.7)}


def test_system_and_few_shot_render_with_the_row() -> None:
    task = _task(system="You help with {{ category }}.", few_shot=(FewShot(user="Hi", assistant="Hello"),))
    item = expand(task, random.Random(0), None)[1]
    assert [(m.role, m.content) for m in item.prefix] == [
        ("system", "You help with writing."),
        ("user", "Hi"),
        ("assistant", "Hello"),
    ]


def test_num_requests_cycles_rows_with_unique_ids() -> None:
    items = expand(_task(), random.Random(0), 7)
    ids = [it.item_id for it in items]
    assert ids == ["mt/81", "mt/82", "mt/83", "mt/81#1", "mt/82#1", "mt/83#1", "mt/81#2"]
    assert items[3].branches == items[0].branches
    assert [it.item_id for it in expand(_task(), random.Random(0), 2)] == ["mt/81", "mt/82"]


def test_field_names_are_configurable() -> None:
    rows = ({"id": "q1", "topic": "coding", "messages": ["Write f.", "Test f."], "answers": ["def f", None]},)
    task = _task(
        rows, turns_field="messages", category_field="topic", reference_field="answers", id_field="id"
    )
    (item,) = expand(task, random.Random(0), None)
    assert item.item_id == "mt/q1" and item.meta == (("category", "coding"), ("question_id", "q1"))
    assert [t.gen.reference for t in item.branches[0].turns] == ["def f", None]


def test_missing_id_and_category_fall_back() -> None:
    (item,) = expand(_task(({"turns": ["Hi"]},)), random.Random(0), None)
    assert item.item_id == "mt/0" and item.meta == (("category", ""), ("question_id", "0"))


def test_reference_template_fills_the_last_turn() -> None:
    rows = ({"turns": ["a", "b"], "answer": 42},)
    (item,) = expand(_task(rows, reference="{{ answer }}"), random.Random(0), None)
    assert [t.gen.reference for t in item.branches[0].turns] == [None, "42"]


@pytest.mark.parametrize(
    ("rows", "kw", "needle"),
    [
        (({"turns": ["ok"]}, {"turns": "not a list"}), {}, "dataset row 1"),
        (({"turns": []},), {}, "non-empty list"),
        (({"turns": ["a"], "reference": ["1", "2"]},), {}, "at most one entry per turn"),
        (({"turns": ["a"], "reference": "1"},), {}, "must be a list"),
        (({"turns": ["a"], "question_id": 1}, {"turns": ["b"], "question_id": 1}), {}, "also on row 0"),
        (({"turns": ["a"], "x": 1}, {"turns": ["b"]}), {"system": "{{ x }}"}, "dataset row 1"),
    ],
)
def test_bad_rows_raise_located_spec_errors(
    rows: tuple[dict[str, Any], ...], kw: dict[str, Any], needle: str
) -> None:
    with pytest.raises(SpecError) as err:
        expand(_task(rows, **kw), random.Random(0), None)
    assert needle in str(err.value) and "mt.yaml" in str(err.value)


def test_team_question_set_loads_and_expands() -> None:
    task = load_task(ROOT / "tasks/chat/mtbench_mini.yaml")
    items = expand_task(task, random.Random(0), None)
    assert len(items) >= 12
    categories = {dict(it.meta)["category"] for it in items}
    assert {"math", "reasoning", "writing", "extraction", "coding"} <= categories
    assert all(len(it.branches) == 1 and len(it.branches[0].turns) == 2 for it in items)
    math = [it for it in items if dict(it.meta)["category"] == "math"]
    # Every math turn has a numeric reference for final_number.
    assert all(
        t.gen.reference and t.gen.reference.replace(".", "").isdigit()
        for it in math
        for t in it.branches[0].turns
    )
    assert len({it.item_id for it in items}) == len(items)


def test_chat_spec_refuses_a_prompt_template() -> None:
    with pytest.raises(ValidationError, match="remove prompt"):
        ChatTaskSpec(kind="chat", name="mt", prompt="Q: {{ turn }}")
