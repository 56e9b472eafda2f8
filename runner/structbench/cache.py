"""The ideal prefix-cache hit rate of a workload (DESIGN.md "Prefix-cache benefit").

An engine with an unbounded prefix cache can at best reuse, for each prompt, the
leading tokens it shares with some earlier prompt. Summed over the prompts in arrival
order and divided by all prompt tokens, that is the ideal hit rate; the achieved rate
(cached/prompt tokens reported by the server) is judged against it.

Prompts are counted in the order they were *sent*, so concurrency matters: two prompts
sent together could both miss on a real server, but the ideal assumes the first one's
prefix is already cached. That is why it is an upper bound, and why "% of ideal" can
only approach 100 %.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from structbench.ir import Message
from structbench.records import CallRecord

#: Prompt text -> token ids (e.g. ``tokenizer.encode``, without special tokens added).
Tokenize = Callable[[str], Sequence[int]]
#: Chat messages -> the prompt text the engine sees (chat template, generation prompt).
Render = Callable[[Sequence[Message]], str]

#: vLLM's default KV-cache block size: it caches and reuses whole blocks only.
VLLM_BLOCK_SIZE = 16


@dataclass(frozen=True, slots=True)
class IdealCache:
    """Ideal prefix reuse of a sequence of prompts.

    Attributes:
        prompts: Number of prompts counted.
        prompt_tokens: Total prompt tokens.
        covered_tokens: Tokens of each prompt covered by the longest common prefix with
            any earlier prompt, summed.
        block_size: Block size used for ``covered_block_tokens``.
        covered_block_tokens: The same, as a block-based engine can reuse it: at most
            ``len - 1`` tokens of a prompt (the last prompt token is always computed, to
            get the first output token's logits), rounded down to whole blocks.
    """

    prompts: int
    prompt_tokens: int
    covered_tokens: int
    block_size: int
    covered_block_tokens: int

    @property
    def hit_rate(self) -> float | None:
        """Token-level ideal hit rate in [0, 1]; None without prompt tokens."""
        return self.covered_tokens / self.prompt_tokens if self.prompt_tokens else None

    @property
    def block_hit_rate(self) -> float | None:
        """Ideal hit rate for a block-based cache; None without prompt tokens."""
        return self.covered_block_tokens / self.prompt_tokens if self.prompt_tokens else None


class _Node:
    """A token-trie node; children keyed by token id."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}


def covered_prefix_lengths(prompts_token_ids: Iterable[Sequence[int]]) -> list[int]:
    """For each prompt, the length of its longest common prefix with any earlier prompt.

    A token trie of every prompt seen so far makes this one walk per prompt:
    O(total tokens) time and memory.

    Args:
        prompts_token_ids: Token ids per prompt, in arrival order.

    Returns:
        One covered length per prompt, in the same order.
    """
    root = _Node()
    out: list[int] = []
    for ids in prompts_token_ids:
        node, matched = root, 0
        for tok in ids:
            nxt = node.children.get(tok)
            if nxt is None:
                break
            node, matched = nxt, matched + 1
        out.append(matched)
        # Insert the unmatched tail, so later prompts can match this one.
        for tok in ids[matched:]:
            child = _Node()
            node.children[tok] = child
            node = child
    return out


def ideal_hit_rate(
    prompts_token_ids: Sequence[Sequence[int]], block_size: int = VLLM_BLOCK_SIZE
) -> IdealCache:
    """Compute the ideal prefix-cache reuse of prompts sent in the given order.

    Args:
        prompts_token_ids: Token ids per prompt, in arrival order.
        block_size: Cache block size for the block-rounded figure (1 = no rounding).

    Returns:
        The totals; ``hit_rate`` and ``block_hit_rate`` derive the two rates.

    Raises:
        ValueError: when ``block_size`` is not positive.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    covered = covered_prefix_lengths(prompts_token_ids)
    total = sum(len(p) for p in prompts_token_ids)
    blocks = sum(
        (min(c, max(len(p) - 1, 0)) // block_size) * block_size
        for c, p in zip(covered, prompts_token_ids, strict=True)
    )
    return IdealCache(
        prompts=len(prompts_token_ids),
        prompt_tokens=total,
        covered_tokens=sum(covered),
        block_size=block_size,
        covered_block_tokens=blocks,
    )


def sent_in_order(records: Iterable[CallRecord]) -> list[CallRecord]:
    """Non-warm-up records that reached the engine, ordered by the time they were sent.

    Records without ``t_sent`` (refused as unsupported, never sent) put nothing in a
    cache and are left out. Ties keep input order (the sort is stable).
    """
    sent = [r for r in records if not r.warmup and r.t_sent is not None]
    return sorted(sent, key=lambda r: r.t_sent if r.t_sent is not None else 0.0)


def prompts_in_arrival_order(
    records: Iterable[CallRecord], render: Render, tokenize: Tokenize
) -> list[list[int]]:
    """Token ids of each sent record's prompt, in the order the prompts were sent.

    Args:
        records: Call records of one cell (mixing cells mixes caches).
        render: Applies the served model's chat template to ``CallRecord.prompt``,
            generation prompt included, as the engine did.
        tokenize: Text to token ids, adding no special tokens the template already has.

    Returns:
        One list of token ids per sent, non-warm-up record.
    """
    return [list(tokenize(render(r.prompt))) for r in sent_in_order(records)]


def ideal_by_cell(
    records: Iterable[CallRecord], render: Render, tokenize: Tokenize, block_size: int = VLLM_BLOCK_SIZE
) -> dict[str, IdealCache]:
    """The ideal hit rate of every cell, each cell's prompts counted on their own.

    Each cell of an engine starts after the previous one, so an engine may still hold
    an earlier cell's prefixes; counting per cell keeps the ideal a property of the
    workload, not of the run order.
    """
    by_cell: dict[str, list[CallRecord]] = {}
    for r in records:
        by_cell.setdefault(r.cell_id, []).append(r)
    return {
        cell: ideal_hit_rate(prompts_in_arrival_order(recs, render, tokenize), block_size)
        for cell, recs in by_cell.items()
    }


def chatml_render(messages: Sequence[Message]) -> str:
    """Render messages in ChatML with the generation prompt (SmolLM2's format).

    A stand-in for a tokenizer's ``apply_chat_template`` where the tokenizer isn't at
    hand: the exact template shifts the counts by a few tokens per turn, not the shape.
    """
    parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


# Words, single digits and single punctuation marks: roughly a BPE tokenizer's pieces.
_PIECE = re.compile(r"\d|[^\W\d]+|[^\w\s]|\s+")


def piece_tokenizer() -> Tokenize:
    """A tokenizer-free stand-in: word, digit, punctuation and whitespace pieces as ids.

    The ids are only stable within the returned function, which is all prefix matching
    needs. The hit rate it gives tracks a real tokenizer's closely (both count shared
    leading text), so reports can show an approximate ideal without loading a model.
    """
    vocab: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [vocab.setdefault(p, len(vocab)) for p in _PIECE.findall(text)]

    return tokenize
