"""The ideal prefix-cache hit rate of a cell (DESIGN.md "Prefix-cache benefit").

An engine with an unbounded prefix cache can at best serve, for each prompt, the
leading tokens it shares with a token sequence it already holds. It holds the prompts
it prefilled and the outputs it generated, so a later turn whose prompt repeats an
earlier answer is covered too. Summed over a cell's measured calls and divided by their
prompt tokens, that is the ideal hit rate; the achieved rates are judged against it.

Rules, each chosen so that the ideal stays an upper bound of what any engine can reach:

- **Send order.** Calls are taken in the order they were sent (``t_sent``; a resumed
  cell's later attempts after its earlier ones). Calls never sent are skipped.
- **Prompt and output, at send time.** After a call is matched, its prompt tokens
  followed by its output tokens join the cache at once. A real engine only holds a
  prompt once prefilled and an output as it is generated (vLLM caches an output's full
  blocks while the call still runs), so granting the whole output at send time never
  grants less than an engine could have. A prompt can only repeat an answer it was built
  from, so in practice the outputs serve the later turns of a conversation, which are
  sent after their earlier turns finished.
- **What no record shows.** A call that stopped also generated its end-of-turn token,
  which its text leaves out and the next turn's prompt repeats: it joins the cache after
  the output. An engine that prefills a fork's shared prefix before the branches (SGLang's
  interpreter) holds that prefix from the item's first send on. When the cell's cache
  flush did not succeed, the engine's earlier cells are still in its cache: they join it
  first. Each of these only adds token sequences to the cache, so none can lower the
  ideal, even where the engine held less.
- **One warm-up rule.** Warm-up calls (and earlier attempts of a retried call) fill the
  cache but are not counted: they run first, after the cache flush, and the client and
  server rates leave them out too.
- **Blocks.** At most ``len - 1`` tokens of a prompt are reusable (the last prompt token
  is always computed, for the first output token's logits), rounded down to whole
  blocks of the engine's block size (1 = any token prefix).
- **Undefined, not zero.** A cell with no prompt tokens has no ideal (None); a cell with
  nothing cacheable has ideal 0, and "% of ideal" is undefined there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from structbench.ir import Message
from structbench.metrics.calls import measured
from structbench.records import CallRecord

#: Prompt text -> token ids (e.g. ``tokenizer.encode``, without special tokens added).
Tokenize = Callable[[str], Sequence[int]]
#: Chat messages -> the prompt text the engine sees (chat template, generation prompt).
Render = Callable[[Sequence[Message]], str]

APPROX_LABEL = "approximate (word pieces over ChatML; model tokenizer not available here)"


@dataclass(frozen=True, slots=True)
class PromptCounter:
    """Renders chat messages as the engine did and tokenizes them."""

    render: Render
    tokenize: Tokenize
    #: Which tokenizer this is, for the report ("model tokenizer (X)", "approximate ...").
    label: str
    #: Token ids the engine holds after the text of a call that stopped (its end-of-turn token).
    stop_ids: tuple[int, ...] = ()
    #: How the engine renders a fork's shared prefix, which it prefills before the branches
    #: run; None when it sends only the calls the records show.
    fork_prefix: Render | None = None


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

    @property
    def basis(self) -> str:
        """What ``block_hit_rate`` counts: ``tokens`` or ``blocks of N``."""
        return f"blocks of {self.block_size}" if self.block_size > 1 else "tokens"


@dataclass(frozen=True, slots=True)
class CacheCall:
    """One call as the cache sees it.

    Attributes:
        prompt: Prompt token ids.
        output: Generated token ids (held by the engine after the call).
        counted: False for calls that only fill the cache (warm-up, earlier attempts).
    """

    prompt: Sequence[int]
    output: Sequence[int] = ()
    counted: bool = True


class _Edge:
    """A run of tokens between two trie nodes: ``seq[start:end]``, shared, not copied."""

    __slots__ = ("end", "node", "seq", "start")

    def __init__(self, seq: tuple[int, ...], start: int, end: int, node: _Node) -> None:
        self.seq, self.start, self.end, self.node = seq, start, end, node


class _Node:
    """A branching point; edges keyed by their first token."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: dict[int, _Edge] = {}


def _common(edge: _Edge, ids: Sequence[int], i: int) -> int:
    """How many leading tokens of the edge ``ids[i:]`` repeats."""
    k, n = 0, min(edge.end - edge.start, len(ids) - i)
    while k < n and edge.seq[edge.start + k] == ids[i + k]:
        k += 1
    return k


class PrefixTrie:
    """Every token sequence inserted so far, as a radix tree.

    Nodes exist only where sequences part, so memory grows with the number of
    sequences, not their length; each lookup and insertion walks its tokens once.
    """

    def __init__(self) -> None:
        self._root = _Node()

    def longest_prefix(self, ids: Sequence[int]) -> int:
        """Length of the longest prefix of ``ids`` that some inserted sequence starts with."""
        node, i = self._root, 0
        while i < len(ids):
            edge = node.children.get(ids[i])
            if edge is None:
                return i
            k = _common(edge, ids, i)
            i += k
            if k < edge.end - edge.start:
                return i
            node = edge.node
        return i

    def insert(self, ids: Sequence[int]) -> None:
        """Add a sequence (all its prefixes become matchable)."""
        seq = tuple(ids)
        node, i = self._root, 0
        while i < len(seq):
            edge = node.children.get(seq[i])
            if edge is None:
                node.children[seq[i]] = _Edge(seq, i, len(seq), _Node())
                return
            k = _common(edge, seq, i)
            if k < edge.end - edge.start:
                # Split the edge where the sequences part.
                mid = _Node()
                mid.children[edge.seq[edge.start + k]] = _Edge(edge.seq, edge.start + k, edge.end, edge.node)
                edge.end, edge.node = edge.start + k, mid
            i += k
            node = edge.node


def reusable_tokens(covered: int, prompt_len: int, block_size: int) -> int:
    """Covered tokens an engine can reuse: at most ``len - 1``, in whole blocks."""
    return (min(covered, max(prompt_len - 1, 0)) // block_size) * block_size


def ideal_of_calls(calls: Iterable[CacheCall], block_size: int, tokenizer: str = "") -> IdealCache:
    """The ideal reuse of calls given in send order (see the module rules).

    Args:
        calls: The cell's calls in the order they were sent.
        block_size: The engine's cache block size in tokens (1 = token-level).
        tokenizer: Label of the tokenizer that produced the ids.

    Raises:
        ValueError: when ``block_size`` is not positive.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    trie = PrefixTrie()
    prompts = prompt_tokens = covered_tokens = block_tokens = 0
    for call in calls:
        if call.counted:
            covered = trie.longest_prefix(call.prompt)
            prompts += 1
            prompt_tokens += len(call.prompt)
            covered_tokens += covered
            block_tokens += reusable_tokens(covered, len(call.prompt), block_size)
        trie.insert([*call.prompt, *call.output])
    return IdealCache(prompts, prompt_tokens, covered_tokens, block_size, block_tokens, tokenizer)


def _send_key(r: CallRecord) -> tuple[int, float]:
    # Attempts run one after another, each on its own clock: order by attempt first.
    return (r.attempt, r.t_sent if r.t_sent is not None else 0.0)


def _call_key(r: CallRecord) -> tuple[str, int, int, int]:
    return (r.item_id, r.branch, r.turn, r.attempt)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One thing the engine's cache receives, with where it falls in send order."""

    #: (0: an earlier cell, 1: this cell; then attempt, send time, 0: fork prefix, 1: call).
    order: tuple[int, int, float, int]
    record: CallRecord
    counted: bool
    #: A fork's shared prefix, prefilled for ``record``'s item (None: the record's own call).
    prefix: tuple[Message, ...] | None = None


def _fork_prefixes(records: Sequence[CallRecord], phase: int) -> list[_Entry]:
    """One uncounted entry per forked item: its shared prefix, just before its first sent call."""
    items: dict[tuple[str, str, bool, int], list[CallRecord]] = {}
    for r in records:
        items.setdefault((r.cell_id, r.item_id, r.warmup, r.attempt), []).append(r)
    out = []
    for rs in items.values():
        sent = [r for r in rs if r.t_sent is not None]
        firsts = [r for r in rs if r.turn == 0]
        if len({r.branch for r in rs}) < 2 or not sent or not firsts:
            continue
        # A first turn's prompt is the item's prefix and that turn's one user message.
        prefix = firsts[0].prompt[:-1]
        if prefix:  # an empty prefix prefills nothing
            first = min(sent, key=_send_key)
            out.append(_Entry((phase, *_send_key(first), 0), first, False, prefix))
    return out


def _entries(
    records: Sequence[CallRecord], phase: int, counted: Callable[[CallRecord], bool], forks: bool
) -> list[_Entry]:
    calls = [_Entry((phase, *_send_key(r), 1), r, counted(r)) for r in records if r.t_sent is not None]
    return calls + (_fork_prefixes(records, phase) if forks else [])


def _cache_call(e: _Entry, counter: PromptCounter) -> CacheCall:
    r = e.record
    if e.prefix is not None:
        assert counter.fork_prefix is not None  # only made when the engine prefills forks
        return CacheCall(counter.tokenize(counter.fork_prefix(e.prefix)), counted=False)
    output = list(counter.tokenize(r.text))
    if r.finish_reason == "stop":
        # Also when the engine did not cache the end token (or stopped on a stop string):
        # a longer held sequence can only lengthen later matches, never shorten one.
        output += counter.stop_ids
    return CacheCall(counter.tokenize(counter.render(r.prompt)), output, e.counted)


def cell_ideal(
    records: Sequence[CallRecord],
    counter: PromptCounter,
    block_size: int,
    before: Sequence[CallRecord] = (),
) -> IdealCache:
    """The ideal prefix-cache reuse of one cell (see the module rules).

    Args:
        records: The cell's call records, warm-up and retried attempts included (mixing
            cells would mix caches).
        counter: Renders ``CallRecord.prompt`` as the engine did and tokenizes it, and
            says what else the engine caches (end-of-turn tokens, fork prefixes).
        block_size: The engine's cache block size in tokens (1 = token-level).
        before: Records of the engine's earlier cells still in its cache (the cell's
            flush did not succeed): cache contents, never counted.

    Returns:
        The totals, counted over the cell's measured calls (final attempts, no warm-up).
    """
    keys = {_call_key(r) for r in measured(records)}
    forks = counter.fork_prefix is not None
    entries = [
        *_entries(before, 0, lambda r: False, forks),
        # A warm-up shares its item's key with the measured call of the same item.
        *_entries(records, 1, lambda r: not r.warmup and _call_key(r) in keys, forks),
    ]
    entries.sort(key=lambda e: e.order)
    return ideal_of_calls((_cache_call(e, counter) for e in entries), block_size, counter.label)


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
    leading text).
    """
    vocab: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [vocab.setdefault(p, len(vocab)) for p in _PIECE.findall(text)]

    return tokenize


def approximate_counter() -> PromptCounter:
    """The tokenizer-free stand-in over ChatML (a fresh vocabulary per call)."""
    return PromptCounter(chatml_render, piece_tokenizer(), APPROX_LABEL)


class ChatTokenizer(Protocol):
    """The two methods of a Hugging Face tokenizer that counting prompts needs."""

    def apply_chat_template(
        self, conversation: list[dict[str, str]], *, tokenize: bool, add_generation_prompt: bool
    ) -> object:
        """Render a conversation (``tokenize=False``: as text)."""
        ...

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        """Text to token ids."""
        ...


def chat_template_counter(tok: ChatTokenizer, label: str) -> PromptCounter:
    """A counter from an already loaded tokenizer with a chat template.

    The caller (the engine, which knows its model) loads the tokenizer; nothing heavy is
    imported here.

    Args:
        tok: A tokenizer whose ``chat_template`` is set.
        label: How the report names it, e.g. ``model tokenizer (SmolLM2-135M)``.
    """

    def render(messages: Sequence[Message]) -> str:
        conv = [{"role": m.role, "content": m.content} for m in messages]
        return str(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True))

    def tokenize(text: str) -> list[int]:
        # The template already wrote any BOS/special tokens into the text.
        return list(tok.encode(text, add_special_tokens=False))

    return PromptCounter(render, tokenize, label)
