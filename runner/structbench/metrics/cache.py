"""Prefix-cache figures: client, server and ideal hit rates (DESIGN.md "Prefix-cache benefit").

One warm-up rule holds for all three: warm-up calls fill the cache (they run first, after
the cache flush) but are never counted. The server counters are read after the warm-ups,
the client rate skips warm-up records, and the ideal treats warm-up prompts as already
seen without counting them.

This module holds the pure types; the computations live beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from structbench.ir import Message

#: Prompt text -> token ids (e.g. ``tokenizer.encode``, without special tokens added).
Tokenize = Callable[[str], Sequence[int]]
#: Chat messages -> the prompt text the engine sees (chat template, generation prompt).
Render = Callable[[Sequence[Message]], str]


@dataclass(frozen=True, slots=True)
class PromptCounter:
    """Renders chat messages as the engine did and tokenizes them."""

    render: Render
    tokenize: Tokenize
    #: Which tokenizer this is, for the report ("model tokenizer (X)", "approximate ...").
    label: str


@dataclass(frozen=True, slots=True)
class IdealCache:
    """Ideal prefix reuse of one cell's measured calls.

    Attributes:
        prompts: Number of prompts counted (measured calls that were sent).
        prompt_tokens: Their prompt tokens.
        covered_tokens: Tokens of each prompt an infinite token-level cache could serve.
        block_size: The engine's cache block size (1 = any token prefix).
        covered_block_tokens: The same at the engine's block granularity.
        tokenizer: Label of the tokenizer that counted the tokens.
    """

    prompts: int
    prompt_tokens: int
    covered_tokens: int
    block_size: int
    covered_block_tokens: int
    tokenizer: str = ""

    @property
    def hit_rate(self) -> float | None:
        """Token-level ideal hit rate in [0, 1]; None without prompt tokens."""
        return self.covered_tokens / self.prompt_tokens if self.prompt_tokens else None

    @property
    def block_hit_rate(self) -> float | None:
        """Ideal hit rate at the engine's block size; None without prompt tokens."""
        return self.covered_block_tokens / self.prompt_tokens if self.prompt_tokens else None
