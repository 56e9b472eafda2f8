"""The ideal prefix-cache hit rate: the trie, the rules, and a workload known by construction."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from structbench.ir import Message
from structbench.metrics.cache import (
    APPROX_LABEL,
    CacheCall,
    PrefixTrie,
    PromptCounter,
    approximate_counter,
    cell_ideal,
    chat_template_counter,
    chatml_render,
    ideal_of_calls,
    piece_tokenizer,
    reusable_tokens,
)
from structbench.records import CallRecord

# ---------------------------------------------------------------- the trie


def _covered(seqs: Sequence[Sequence[int]]) -> list[int]:
    trie, out = PrefixTrie(), []
    for s in seqs:
        out.append(trie.longest_prefix(s))
        trie.insert(s)
    return out


def test_trie_longest_match_over_any_earlier_sequence() -> None:
    assert _covered([[1, 2, 3], [1, 2, 4], [1, 2, 3, 5]]) == [0, 2, 3]
    # The third shares 1 token with the first and 3 with the second: 3 counts.
    assert _covered([[9, 1], [9, 2, 3, 4], [9, 2, 3, 7], [5]]) == [0, 1, 3, 0]
    # A repeat, a prefix of an earlier one, and a sequence that ends inside an edge.
    assert _covered([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2], [1, 2, 9]]) == [0, 4, 2, 2]
    assert _covered([[], [1], []]) == [0, 0, 0]


def test_trie_matches_a_brute_force_on_random_sequences() -> None:
    rng = random.Random(7)
    seqs = [[rng.randrange(3) for _ in range(rng.randrange(12))] for _ in range(300)]
    got = _covered(seqs)
    for i, s in enumerate(seqs):
        best = 0
        for earlier in seqs[:i]:
            k = 0
            while k < min(len(s), len(earlier)) and s[k] == earlier[k]:
                k += 1
            best = max(best, k)
        assert got[i] == best, i


# ---------------------------------------------------------------- the rules


def test_reusable_tokens_keeps_the_last_token_and_whole_blocks() -> None:
    assert reusable_tokens(40, 42, 16) == 32
    assert reusable_tokens(10, 11, 16) == 0
    assert reusable_tokens(4, 4, 1) == 3  # the last prompt token is always computed
    assert reusable_tokens(0, 0, 1) == 0


def test_ideal_of_calls_counts_outputs_and_skips_fillers() -> None:
    calls = [
        CacheCall([1, 2, 3], output=[7, 8], counted=False),  # a warm-up: fills, not counted
        CacheCall([1, 2, 3, 7, 8, 9]),  # repeats the warm-up's prompt and answer
        CacheCall([4, 5]),
    ]
    ideal = ideal_of_calls(calls, 1, "ids")
    assert (ideal.prompts, ideal.prompt_tokens, ideal.covered_tokens) == (2, 8, 5)
    assert ideal.covered_block_tokens == 5 and ideal.tokenizer == "ids" and ideal.basis == "tokens"
    assert ideal_of_calls(calls, 2).covered_block_tokens == 4
    assert ideal_of_calls(calls, 2).basis == "blocks of 2"


def test_empty_and_uncacheable_cells() -> None:
    empty = ideal_of_calls([], 16)
    assert empty.prompts == 0 and empty.hit_rate is None and empty.block_hit_rate is None
    # Nothing shared: the ideal is 0, a defined value (the "% of ideal" is then undefined).
    distinct = ideal_of_calls([CacheCall([1, 2]), CacheCall([3, 4])], 1)
    assert distinct.hit_rate == 0.0 and distinct.block_hit_rate == 0.0
    with pytest.raises(ValueError):
        ideal_of_calls([CacheCall([1])], 0)


def _chars() -> PromptCounter:
    # One token per character of "system|user" content: easy to count by hand.
    return PromptCounter(lambda ms: "|".join(m.content for m in ms), lambda s: [ord(c) for c in s], "chars")


def _rec(t: float | None, user: str, warmup: bool = False, **kw: object) -> CallRecord:
    prompt = (Message("system", "manual"), Message("user", user))
    base: dict[str, object] = dict(
        cell_id="c", engine="e", task="t", item_id=f"i{t}{user}", branch=0, turn=0, gen_name="g",
        constraint="none", warmup=warmup, t_sent=t, prompt=prompt,
    )  # fmt: skip
    base.update(kw)
    return CallRecord(**base)  # type: ignore[arg-type]


def test_cell_ideal_counts_in_send_order_and_seeds_with_warmup() -> None:
    # "manual|ab" (9), "manual|ac" (9): the second shares "manual|a" = 8 tokens.
    recs = [_rec(2.0, "ac"), _rec(1.0, "ab")]
    ideal = cell_ideal(recs, _chars(), 1)
    assert (ideal.prompts, ideal.prompt_tokens, ideal.covered_tokens) == (2, 18, 8)
    assert ideal.covered_block_tokens == 8 and ideal.tokenizer == "chars"
    # A warm-up with the same prompt first covers the measured "ab" whole but isn't counted.
    seeded = cell_ideal([_rec(0.5, "ab", warmup=True), *recs], _chars(), 1)
    assert (seeded.prompts, seeded.covered_tokens) == (2, 9 + 8)
    assert seeded.covered_block_tokens == 8 + 8  # the last token is always computed
    assert cell_ideal(recs, _chars(), 4).covered_block_tokens == 8
    assert cell_ideal([_rec(None, "ab")], _chars(), 1).prompt_tokens == 0  # never sent


def test_cell_ideal_counts_the_final_attempt_after_earlier_ones() -> None:
    # Attempt 1 ran (and failed) on its own clock, before attempt 2: it fills the cache.
    first = _rec(9.0, "ab", error="http 500", item_id="x")
    retry = _rec(1.0, "ab", attempt=2, item_id="x")
    ideal = cell_ideal([retry, first], _chars(), 1)
    assert (ideal.prompts, ideal.covered_tokens, ideal.covered_block_tokens) == (1, 9, 8)


def test_chatml_and_piece_tokenizer() -> None:
    text = chatml_render((Message("system", "S"), Message("user", "U")))
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    tok = piece_tokenizer()
    a, b = tok("Hello, world 12"), tok("Hello, there 13")
    assert a[:3] == b[:3] and a[3] != b[3]
    assert len(a) == len(["Hello", ",", " ", "world", " ", "1", "2"])
    c = approximate_counter()
    assert c.label == APPROX_LABEL and c.render([Message("user", "hi")]) == chatml_render(
        [Message("user", "hi")]
    )
    recs = [_rec(1.0, "Shared prefix. Q1"), _rec(2.0, "Shared prefix. Q2")]
    ideal = cell_ideal(recs, approximate_counter(), 1)
    # "<|im_start|>system\nmanual<|im_end|>\n" is 14 pieces, "<|im_start|>user\nShared
    # prefix. Q" 13 more; each prompt has 41.
    assert (ideal.covered_tokens, ideal.prompt_tokens) == (27, 82)


class _FakeHfTokenizer:
    """Duck-types the two methods of a Hugging Face tokenizer."""

    def apply_chat_template(
        self, conversation: list[dict[str, str]], *, tokenize: bool, add_generation_prompt: bool
    ) -> object:
        assert not tokenize and add_generation_prompt
        return "".join(f"[{m['role']}]{m['content']}" for m in conversation) + "[assistant]"

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        assert not add_special_tokens
        return [ord(c) for c in text]


def test_chat_template_counter_uses_the_tokenizer_as_given() -> None:
    c = chat_template_counter(_FakeHfTokenizer(), "model tokenizer (fake)")
    assert c.render([Message("user", "hi")]) == "[user]hi[assistant]"
    assert list(c.tokenize("ab")) == [97, 98] and c.label == "model tokenizer (fake)"


# ---------------------------------------------------------------- what no record shows

END = ord("$")


def _turns(msgs: Sequence[Message], generation_prompt: bool = True) -> str:
    # A chat template in miniature: "$" ends every turn, as "<|im_end|>" does in ChatML.
    return "".join(f"<{m.role}>{m.content}$" for m in msgs) + ("<assistant>" if generation_prompt else "")


def _template(stop_ids: tuple[int, ...] = (), forks: bool = False) -> PromptCounter:
    prefix = (lambda ms: _turns(ms, False)) if forks else None
    return PromptCounter(_turns, lambda s: [ord(c) for c in s], "chars", stop_ids, prefix)


def _chat(finish: str) -> list[CallRecord]:
    """A two-turn chat: "<system>manual$<user>ab$<assistant>" (35) is answered "xy", then
    turn 2 is "<system>manual$<user>ab$<assistant>xy$<user>c$<assistant>" (57)."""
    sys, q1 = Message("system", "manual"), Message("user", "ab")
    first = _rec(1.0, "ab", prompt=(sys, q1), text="xy", finish_reason=finish, item_id="chat")
    later = (sys, q1, Message("assistant", "xy"), Message("user", "c"))
    return [first, _rec(2.0, "c", prompt=later, turn=1, item_id="chat")]


def test_a_stopped_answer_holds_its_end_of_turn_token() -> None:
    # The text "xy" alone covers 35 + 2 tokens of turn 2; the engine also holds the "$"
    # it generated, which turn 2 repeats (SGLang's radix cache served it: one token above
    # the text's reach on the committed GPU run).
    assert len(_turns(_chat("stop")[1].prompt)) == 57
    for counter, finish, covered in [
        (_template(), "stop", 37),
        (_template((END,)), "stop", 38),
        (_template((END,)), "length", 37),  # cut off: no end token was generated
    ]:
        ideal = cell_ideal(_chat(finish), counter, 1)
        assert (ideal.prompts, ideal.prompt_tokens, ideal.covered_tokens) == (2, 35 + 57, covered)
    # In blocks of 2 the extra token completes a block.
    assert cell_ideal(_chat("stop"), _template((END,)), 2).covered_block_tokens == 38
    assert cell_ideal(_chat("stop"), _template(), 2).covered_block_tokens == 36


def _fork(item: str, system: str, t: float, users: Sequence[str]) -> list[CallRecord]:
    sys = Message("system", system)
    return [
        _rec(t + 0.1 * b, u, prompt=(sys, Message("user", u)), item_id=item, branch=b)
        for b, u in enumerate(users)
    ]


def test_an_engine_that_prefills_fork_prefixes_holds_them_from_the_first_send() -> None:
    # Branch prompts: "<system>manual$<user>ab$<assistant>" and "...<user>ac$..." (35 each).
    # The engine prefills "<system>manual$" (15) before the branches; branch 1 then shares
    # "<system>manual$<user>a" (22) with branch 0 either way.
    forked = _fork("f", "manual", 1.0, ["ab", "ac"])
    # A lone call first, with a later fork's prefix: the prefix is not held before its item runs.
    early = _rec(0.5, "zz", prompt=(Message("system", "late"), Message("user", "zz")), item_id="e")
    late = _fork("l", "late", 5.0, ["q", "r"])
    # One branch is no fork: nothing is prefilled for it.
    solo = _fork("s", "solo", 3.0, ["ab"])
    recs = [*forked, early, *late, *solo]
    plain = cell_ideal(recs, _template(), 1)
    primed = cell_ideal(recs, _template(forks=True), 1)
    assert plain.prompts == primed.prompts == 6 and plain.prompt_tokens == 2 * 35 + 33 + 33 + 2 * 32
    # Without prefills, in send order: early 0; f's branch 0 only "<system>" (8); branch 1
    # 22; solo 8; l's branches "<system>late$<user>" (19) from the early call and each other.
    assert plain.covered_tokens == 0 + 8 + 22 + 8 + 19 + 19
    # With them, f's branch 0 gets its 15-token prefix. l's prefix "<system>late$" (13) is
    # held from t=5 only, too late for the early call, and shorter than what l has anyway.
    assert primed.covered_tokens == plain.covered_tokens + 15 - 8


def test_earlier_cells_fill_the_cache_when_the_flush_did_not_succeed() -> None:
    # Cell b re-sends cell a's item x: 9 tokens held, 8 reusable. Cell a's clock and attempt
    # numbers don't matter: earlier cells come first and are never counted.
    earlier = [_rec(50.0, "ab", cell_id="a", attempt=3, item_id="x"), _rec(60.0, "zz", cell_id="a")]
    mine = [_rec(1.0, "ab", cell_id="b", item_id="x"), _rec(2.0, "ac", cell_id="b")]
    alone = cell_ideal(mine, _chars(), 1)
    after = cell_ideal(mine, _chars(), 1, before=earlier)
    assert (alone.prompts, alone.covered_tokens, alone.covered_block_tokens) == (2, 8, 8)
    assert (after.prompts, after.prompt_tokens, after.covered_tokens) == (2, 18, 9 + 8)
    assert after.covered_block_tokens == 8 + 8


# ---------------------------------------------------------------- a workload known by construction

# One token per word: render joins the message contents with spaces, tokenize splits them.
WORDS = PromptCounter(
    lambda ms: " ".join(m.content for m in ms), lambda s: [hash(w) for w in s.split()], "words"
)


def _words(tag: str, n: int) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


SYSTEM = _words("sys", 300)  # every prompt of the cell starts with it
DOC = _words("doc", 200)  # the fan-out's shared document


@dataclass(frozen=True, slots=True)
class _Call:
    messages: tuple[Message, ...]
    answer: str
    t_sent: float
    t_done: float
    warmup: bool = False


def _workload() -> list[_Call]:
    """Warm-up, a two-turn chat, and a four-way fan-out, all in one cell.

    Prompt lengths (words): warm-up 305; turn 1: 300 + 40 = 340, answer 60; turn 2:
    340 + 60 + 20 = 420; each fan-out branch: 300 + 200 + 10 = 510.
    """
    sys = Message("system", SYSTEM)
    q1, a1, q2 = _words("qa", 40), _words("ans", 60), _words("qb", 20)
    turn1 = (sys, Message("user", q1))
    calls = [
        _Call((sys, Message("user", _words("warm", 5))), _words("ok", 3), 0.0, 0.5, warmup=True),
        _Call(turn1, a1, 1.0, 2.0),
        _Call((*turn1, Message("assistant", a1), Message("user", q2)), _words("ans2", 30), 2.5, 3.0),
    ]
    # Four branches sent together (each sees the one before it as already prefilled).
    for b in range(4):
        user = Message("user", f"{DOC} {_words(f'br{b}x', 10)}")
        calls.append(_Call((sys, user), _words(f"out{b}x", 8), 4.0 + 0.01 * b, 5.0))
    return calls


def _records(calls: Sequence[_Call]) -> list[CallRecord]:
    return [
        CallRecord(
            cell_id="c",
            engine="e",
            task="t",
            item_id=f"i{i}",
            branch=0,
            turn=0,
            gen_name="g",
            constraint="none",
            warmup=c.warmup,
            t_sent=c.t_sent,
            t_done=c.t_done,
            prompt=c.messages,
            text=c.answer,
        )
        for i, c in enumerate(calls)
    ]


def _expected_block_tokens(block: int) -> int:
    def reuse(covered: int, length: int) -> int:
        return reusable_tokens(covered, length, block)

    return (
        reuse(300, 340)  # turn 1: the system prompt, from the warm-up
        + reuse(400, 420)  # turn 2: turn 1's prompt and answer
        + reuse(300, 510)  # branch 0: the system prompt
        + 3 * reuse(500, 510)  # branches 1-3: system prompt and document, from branch 0
    )


@pytest.mark.parametrize(
    ("block", "expected"), [(1, 2500), (16, 288 + 400 + 288 + 3 * 496), (128, 256 + 384 + 256 + 3 * 384)]
)
def test_ideal_of_a_known_workload(block: int, expected: int) -> None:
    ideal = cell_ideal(_records(_workload()), WORDS, block)
    assert ideal.prompts == 6  # the warm-up is not counted
    assert ideal.prompt_tokens == 340 + 420 + 4 * 510
    assert ideal.covered_tokens == 300 + 400 + 300 + 3 * 500
    assert ideal.covered_block_tokens == expected == _expected_block_tokens(block)
    assert ideal.block_size == block and ideal.tokenizer == "words"


def test_without_outputs_multi_turn_would_beat_the_ideal() -> None:
    # The bug this module fixes: counting prompts only, turn 2 gets 340 of its 420 tokens,
    # while a real cache serves 400 (the answer is cached too).
    calls = _workload()
    silent = [_Call(c.messages, "", c.t_sent, c.t_done, c.warmup) for c in calls]
    with_out = cell_ideal(_records(calls), WORDS, 1).covered_tokens
    without = cell_ideal(_records(silent), WORDS, 1).covered_tokens
    assert with_out - without == 400 - 340


# ---------------------------------------------------------------- a simulated engine cache


def simulate_block_cache(records: Sequence[CallRecord], counter: PromptCounter, block: int) -> float | None:
    """An unbounded block cache, as vLLM's prefix cache works, over time.

    A block is keyed by its tokens and every token before it (vLLM chains block hashes),
    and only full blocks are cached. A call reuses the leading cached blocks of its
    prompt, minus the last prompt token; its prompt's blocks are cached when it is sent
    (prefill at once: the kindest assumption) and its output's blocks when it is done.
    Returns Σ hit / Σ prompt tokens of the measured calls.
    """
    events: list[tuple[float, int, CallRecord]] = []
    for r in records:
        if r.t_sent is not None:
            events.append((r.t_sent, 1, r))
            events.append((r.t_done if r.t_done is not None else r.t_sent, 0, r))
    cached: set[tuple[int, ...]] = set()
    hit = total = 0

    def add(ids: Sequence[int]) -> None:
        cached.update(tuple(ids[: k * block]) for k in range(1, len(ids) // block + 1))

    for _, is_send, r in sorted(events, key=lambda e: (e[0], -e[1])):
        prompt = list(counter.tokenize(counter.render(r.prompt)))
        if is_send:
            n = 0
            while (n + 1) * block <= len(prompt) - 1 and tuple(prompt[: (n + 1) * block]) in cached:
                n += 1
            if not r.warmup:
                hit, total = hit + n * block, total + len(prompt)
            add(prompt)
        else:
            add([*prompt, *counter.tokenize(r.text)])
    return hit / total if total else None


@pytest.mark.parametrize("block", [1, 16, 128])
def test_simulated_cache_reaches_but_never_exceeds_the_ideal(block: int) -> None:
    recs = _records(_workload())
    achieved = simulate_block_cache(recs, WORDS, block)
    ideal = cell_ideal(recs, WORDS, block).block_hit_rate
    assert achieved is not None and ideal is not None
    # Every reuse of this workload is causally possible, so the bound is tight here.
    assert achieved == pytest.approx(ideal)


def _random_cell(rng: random.Random) -> list[_Call]:
    """Conversations that share system prompts, sent with overlapping lifetimes."""
    systems = [_words(f"s{k}x", rng.randrange(5, 60)) for k in range(3)]
    calls: list[_Call] = []
    t = 0.0
    for conv in range(rng.randrange(2, 8)):
        messages: tuple[Message, ...] = (Message("system", rng.choice(systems)),)
        t_conv = t
        for turn in range(rng.randrange(1, 4)):
            messages = (*messages, Message("user", _words(f"c{conv}t{turn}q", rng.randrange(1, 30))))
            answer = _words(f"c{conv}t{turn}a", rng.randrange(0, 40))
            done = t_conv + rng.uniform(0.1, 3.0)
            calls.append(_Call(messages, answer, t_conv, done, warmup=conv == 0 and rng.random() < 0.5))
            messages = (*messages, Message("assistant", answer))
            t_conv = done + rng.uniform(0.0, 0.5)
        t += rng.uniform(0.0, 1.5)
    return calls


@pytest.mark.parametrize("block", [1, 4, 16])
def test_simulated_cache_never_exceeds_the_ideal_on_random_cells(block: int) -> None:
    rng = random.Random(block)
    for _ in range(60):
        recs = _records(_random_cell(rng))
        achieved = simulate_block_cache(recs, WORDS, block)
        ideal = cell_ideal(recs, WORDS, block).block_hit_rate
        if ideal is None:
            assert achieved is None
            continue
        assert achieved is not None and achieved <= ideal + 1e-12
