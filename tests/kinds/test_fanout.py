"""The fanout kind: shared prefixes, fork and per-request items, order and popularity."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from structbench.errors import SpecError
from structbench.ir import WorkItem
from structbench.kinds.fanout import estimate_tokens, expand, pseudo_text, zipf_weights
from structbench.kinds.registry import expand_task
from structbench.metrics.cache import CacheCall, ideal_of_calls
from structbench.spec.loader import LoadedTask, load_task
from structbench.spec.tasks import FanoutTaskSpec, FewShot

ROOT = Path(__file__).resolve().parents[2]


def _task(rows: tuple[dict[str, Any], ...] = ({},), prefix_text: str | None = None, **kw: Any) -> LoadedTask:
    spec = FanoutTaskSpec(kind="fanout", name="fan", **kw)
    return LoadedTask(spec, Path("tasks/fanout/fan.yaml"), rows, None, (), prefix_text)


def _expand(task: LoadedTask, seed: int = 0, n: int | None = None) -> list[WorkItem]:
    return expand(task, random.Random(seed), n)


def test_fork_items_share_one_prefix_per_group() -> None:
    items = _expand(_task(groups=3, branches=4, order="ordered", prefix_tokens=64))
    assert [it.item_id for it in items] == ["fan/g0", "fan/g1", "fan/g2"]
    assert all(it.is_fork and len(it.branches) == 4 and len(it.prefix) == 1 for it in items)
    assert len({it.prefix for it in items}) == 3
    assert items[1].meta == (("group", "1"), ("branches", "4"))
    questions = [t.user for t in (b.turns[0] for b in items[0].branches)]
    assert len(set(questions)) == 4
    assert [b.turns[0].gen.name for b in items[0].branches] == ["answer0", "answer1", "answer2", "answer3"]


def test_per_request_items_ordered_group_major() -> None:
    items = _expand(_task(groups=2, branches=3, as_fork=False, order="ordered"))
    assert [it.item_id for it in items] == [
        "fan/g0b0",
        "fan/g0b1",
        "fan/g0b2",
        "fan/g1b0",
        "fan/g1b1",
        "fan/g1b2",
    ]
    assert items[4].meta == (("group", "1"), ("branch", "1"))
    assert items[0].prefix == items[2].prefix != items[3].prefix
    assert not any(it.is_fork for it in items)


def test_shuffled_is_a_seeded_permutation() -> None:
    task = _task(groups=3, branches=3, as_fork=False, order="shuffled")
    a, b, c = _expand(task, 1), _expand(task, 1), _expand(task, 2)
    assert a == b
    assert sorted(it.item_id for it in a) == sorted(it.item_id for it in c)
    assert [it.item_id for it in a] != [it.item_id for it in c]
    assert [it.item_id for it in a] != sorted(it.item_id for it in a)


def test_num_requests_repeats_with_unique_ids() -> None:
    items = _expand(_task(groups=2, branches=2, as_fork=False, order="ordered"), n=6)
    assert [it.item_id for it in items] == [
        "fan/g0b0",
        "fan/g0b1",
        "fan/g1b0",
        "fan/g1b1",
        "fan/g0b0#1",
        "fan/g0b1#1",
    ]
    forks = _expand(_task(groups=2, branches=2, order="ordered"), n=3)
    assert [it.item_id for it in forks] == ["fan/g0", "fan/g1", "fan/g0#1"]


def test_zipf_popularity_favours_the_first_groups() -> None:
    assert zipf_weights(3, 1.0) == pytest.approx([1.0, 0.5, 1 / 3])
    items = _expand(_task(groups=5, branches=3, as_fork=False, popularity="zipf", zipf_s=1.2), n=300)
    counts = Counter(dict(it.meta)["group"] for it in items)
    assert counts["0"] > counts["1"] > counts["4"]
    assert len({it.item_id for it in items}) == 300
    # A hot group asks its questions in turn.
    g0 = [dict(it.meta)["branch"] for it in items if dict(it.meta)["group"] == "0"]
    assert g0[:4] == ["0", "1", "2", "0"]
    ordered = _expand(_task(groups=5, branches=3, as_fork=False, popularity="zipf", order="ordered"), n=40)
    groups = [int(dict(it.meta)["group"]) for it in ordered]
    assert groups == sorted(groups)


def test_zipf_fork_items() -> None:
    items = _expand(_task(groups=4, branches=2, popularity="zipf", zipf_s=2.0), n=50)
    counts = Counter(dict(it.meta)["group"] for it in items)
    assert counts.most_common(1)[0][0] == "0"
    assert all(len(it.branches) == 2 for it in items)


def test_generated_lengths_are_near_the_targets() -> None:
    items = _expand(_task(groups=2, branches=2, prefix_tokens=300, question_tokens=40, order="ordered"))
    prefix = items[0].prefix[0].content
    assert 300 <= estimate_tokens(prefix) <= 340
    for b in items[0].branches:
        assert 40 <= estimate_tokens(b.turns[0].user) <= 60
    # Generated questions name their group and branch, so they are distinct everywhere.
    assert items[1].branches[1].turns[0].user.startswith("Question 2.2:")


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("The cat sat.") == 4
    assert estimate_tokens("1,200 mm") == 6
    assert estimate_tokens("internationalization") == 2
    text = pseudo_text(random.Random(3), 200)
    assert 200 <= estimate_tokens(text) <= 220 and "\n\n" in text


def test_prefix_file_groups_get_a_header_and_the_system_prompt() -> None:
    doc = "Manual: the widget weighs 3 kg."
    task = _task(prefix_text=doc, groups=2, branches=1, order="ordered", system="Answer from the manual.")
    a, b = _expand(task)
    assert a.prefix[0].role == "system"
    assert a.prefix[0].content == f"Answer from the manual.\n\nSession 1 of 2. Reference document:\n\n{doc}"
    assert b.prefix[0].content.endswith(doc) and a.prefix != b.prefix


def test_few_shot_follows_the_system_message() -> None:
    task = _task(groups=1, branches=2, prefix_tokens=20, few_shot=(FewShot(user="Q?", assistant="A."),))
    (item,) = _expand(task)
    assert [(m.role, m.content) for m in item.prefix[1:]] == [("user", "Q?"), ("assistant", "A.")]


def test_questions_and_references_from_rows() -> None:
    rows = tuple({"q": f"Question {i}?", "a": str(i)} for i in range(5))
    task = _task(rows, groups=2, branches=3, order="ordered", prompt="{{ q }}", reference="{{ a }}")
    g0, g1 = _expand(task)
    assert [(b.turns[0].user, b.turns[0].gen.reference) for b in g0.branches] == [
        ("Question 0?", "0"),
        ("Question 1?", "1"),
        ("Question 2?", "2"),
    ]
    # Rows spread over all questions and cycle: group 1 takes rows 3, 4, 0.
    assert [b.turns[0].gen.reference for b in g1.branches] == ["3", "4", "0"]


def test_template_failure_on_a_later_row_is_located() -> None:
    rows = ({"q": "ok"}, {"other": 1})
    with pytest.raises(SpecError, match=r"fan\.yaml: prompt: template fails on row 1"):
        _expand(_task(rows, groups=1, branches=2, prompt="{{ q }}"))


def test_workload_has_a_high_ideal_hit_rate() -> None:
    items = _expand(_task(groups=3, branches=4, prefix_tokens=400, question_tokens=20, as_fork=False))
    words: dict[str, int] = {}

    def ids(text: str) -> list[int]:
        return [words.setdefault(w, len(words)) for w in re.findall(r"\S+", text)]

    prompts = [ids(it.prefix[0].content + " " + it.branches[0].turns[0].user) for it in items]
    ideal = ideal_of_calls([CacheCall(p) for p in prompts], block_size=1)
    # 9 of 12 prompts reuse their group's ~400-token prefix.
    assert ideal.hit_rate is not None and 0.6 < ideal.hit_rate < 0.75


@pytest.mark.parametrize("name", ["manual_qa.yaml", "synthetic.yaml"])
def test_team_tasks_load_and_expand(name: str) -> None:
    task = load_task(ROOT / "tasks/fanout" / name)
    items = expand_task(task, random.Random(0), None)
    spec = task.spec
    assert isinstance(spec, FanoutTaskSpec)
    gens = sum(len(it.branches) for it in items)
    assert gens == spec.groups * spec.branches
    assert expand_task(task, random.Random(0), None) == items
