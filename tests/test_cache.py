"""Ideal prefix-cache hit rate: hand-computed cases."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from structbench.cache import (
    chatml_render,
    covered_prefix_lengths,
    ideal_by_cell,
    ideal_hit_rate,
    piece_tokenizer,
    prompts_in_arrival_order,
)
from structbench.ir import Message
from structbench.records import CallRecord


def test_brief_example() -> None:
    prompts = [[1, 2, 3], [1, 2, 4], [1, 2, 3, 5]]
    assert covered_prefix_lengths(prompts) == [0, 2, 3]
    ideal = ideal_hit_rate(prompts, block_size=1)
    assert (ideal.prompts, ideal.prompt_tokens, ideal.covered_tokens) == (3, 10, 5)
    assert ideal.hit_rate == pytest.approx(0.5)


def test_longest_match_over_any_earlier_prompt() -> None:
    # The third prompt shares 1 token with the first and 3 with the second: 3 counts.
    prompts = [[9, 1], [9, 2, 3, 4], [9, 2, 3, 7], [5]]
    assert covered_prefix_lengths(prompts) == [0, 1, 3, 0]


def test_repeat_and_prefix_of_earlier() -> None:
    prompts = [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2]]
    assert covered_prefix_lengths(prompts) == [0, 4, 2]
    ideal = ideal_hit_rate(prompts, block_size=1)
    # Block-level keeps the last token of each prompt for recomputation: 0 + 3 + 1.
    assert ideal.covered_block_tokens == 4
    assert ideal.hit_rate == pytest.approx(6 / 10)


def test_block_rounding() -> None:
    shared = list(range(40))
    prompts = [[*shared, 100, 101], [*shared, 200], [*shared[:10], 300]]
    ideal = ideal_hit_rate(prompts, block_size=16)
    assert ideal.covered_tokens == 0 + 40 + 10
    # 40 -> 32 (two blocks); 10 -> 0.
    assert ideal.covered_block_tokens == 32
    assert ideal.prompt_tokens == 42 + 41 + 11
    assert ideal.block_hit_rate == pytest.approx(32 / 94)


def test_empty() -> None:
    ideal = ideal_hit_rate([])
    assert ideal.prompts == 0 and ideal.hit_rate is None and ideal.block_hit_rate is None
    only_empty = ideal_hit_rate([[], []])
    assert only_empty.prompts == 2 and only_empty.hit_rate is None


def test_bad_block_size() -> None:
    with pytest.raises(ValueError):
        ideal_hit_rate([[1]], block_size=0)


def _rec(cell: str, item: str, t_sent: float | None, text: str, warmup: bool = False) -> CallRecord:
    return CallRecord(
        cell_id=cell,
        engine="e",
        task="t",
        item_id=item,
        branch=0,
        turn=0,
        gen_name="g",
        constraint="none",
        warmup=warmup,
        t_sent=t_sent,
        prompt=(Message("user", text),),
    )


def _chars(text: str) -> Sequence[int]:
    return [ord(c) for c in text]


def _plain(messages: Sequence[Message]) -> str:
    return "".join(m.content for m in messages)


def test_arrival_order_drops_warmup_and_unsent() -> None:
    recs = [
        _rec("c", "b", 2.0, "ab"),
        _rec("c", "w", 0.5, "zz", warmup=True),
        _rec("c", "a", 1.0, "aa"),
        _rec("c", "u", None, "uu"),
    ]
    assert prompts_in_arrival_order(recs, _plain, _chars) == [[ord("a")] * 2, [ord("a"), ord("b")]]


def test_ideal_by_cell_counts_cells_apart() -> None:
    recs = [_rec("c1", "a", 1.0, "abcd"), _rec("c2", "a", 2.0, "abcd"), _rec("c1", "b", 3.0, "abxy")]
    by_cell = ideal_by_cell(recs, _plain, _chars, block_size=1)
    assert by_cell["c1"].covered_tokens == 2
    assert by_cell["c2"].covered_tokens == 0


def test_chatml_render() -> None:
    text = chatml_render((Message("system", "S"), Message("user", "U")))
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def test_piece_tokenizer_matches_shared_text() -> None:
    tok = piece_tokenizer()
    a, b = tok("Hello, world 12"), tok("Hello, there 13")
    assert a[:3] == b[:3] and a[3] != b[3]
    assert len(a) == len(["Hello", ",", " ", "world", " ", "1", "2"])
    recs = [_rec("c", "a", 1.0, "Shared prefix. Q1"), _rec("c", "b", 2.0, "Shared prefix. Q2")]
    ideal = ideal_by_cell(recs, chatml_render, piece_tokenizer(), block_size=1)["c"]
    # "<|im_start|>user\nShared prefix. Q" is 13 pieces; each prompt has 27.
    assert (ideal.covered_tokens, ideal.prompt_tokens) == (13, 54)
