"""The Engine protocol that every engine module implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from structbench.ir import Constraint, ConstraintKind, Gen, GrammarSyntax, Message, WorkItem
from structbench.records import CallRecord

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine can run. Anything else becomes an "unsupported" record."""

    constraints: frozenset[ConstraintKind]
    grammar_syntaxes: frozenset[GrammarSyntax] = frozenset()
    #: Per-token timestamps (TTFT/ITL) are available.
    streaming: bool = True
    #: The engine reports cached prompt tokens.
    cached_tokens: bool = False

    def unsupported_reason(self, c: Constraint) -> str | None:
        """Return why ``c`` can't run here, or None when it can."""
        if c.kind not in self.constraints:
            return f"unsupported: constraint '{c.kind}'"
        if c.kind == "grammar" and not any(c.grammar(s) for s in self.grammar_syntaxes):
            have = ", ".join(s for s, _ in c.grammars) or "none"
            want = ", ".join(sorted(self.grammar_syntaxes)) or "none"
            return f"unsupported: grammar syntax (task has {have}; engine takes {want})"
        return None


@dataclass(frozen=True, slots=True)
class ExecContext:
    """What the driver hands an engine for one work item."""

    cell_id: str
    clock: Clock
    #: When the load schedule wanted this item sent (driver clock).
    t_scheduled: float
    warmup: bool = False
    attempt: int = 1
    #: Run seed; each call's sampling seed derives from it (:func:`structbench.program.gen_seed`).
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Compiled:
    """An engine's native form of a work item, printable for ``structbench compile``."""

    engine: str
    item_id: str
    #: Human-readable native form: Python source for SGLang, JSON bodies for vLLM.
    source: str
    #: Per-gen strategy labels, in ``WorkItem.gens()`` order.
    strategies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Facts about a started engine, for the manifest."""

    name: str
    kind: str
    model: str
    version: str = ""
    url: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())
    #: Prefix-cache block size in tokens, as the engine reports it (None: no prefix cache
    #: or unknown). The ideal hit rate is counted at this granularity.
    cache_block_size: int | None = None
    #: Where ``cache_block_size`` came from (the server's report, a launch flag, or the
    #: engine's documented default), for the report beside every figure that uses it.
    cache_block_source: str | None = None
    #: The weight dtype the engine serves when it sets one (None: the checkpoint's own).
    dtype: str | None = None
    #: Tokens a request's prompt and output share on the server (vLLM's ``max_model_len``,
    #: SGLang's ``context_length``); None when the engine does not say.
    context_length: int | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One generation the program walker asks an engine for.

    Attributes:
        item_id: The work item it belongs to.
        branch: Branch of the item (``fork`` index).
        turn: Turn within the branch.
        gen: What to generate (constraint, limits, temperature).
        messages: The chat so far: prefix, earlier turns with their real answers (or
            placeholders when compiling), and this turn's user message.
        seed: The call's sampling seed (:func:`structbench.program.gen_seed`).
    """

    item_id: str
    branch: int
    turn: int
    gen: Gen
    messages: tuple[Message, ...]
    seed: int = 0


@dataclass(frozen=True, slots=True)
class CallMeasure:
    """What one generation call measured. Times are on the driver's clock.

    Every engine returns this, whatever its wire protocol (GuideLLM's one-timings-per-request
    idea): the walker turns it into a :class:`~structbench.records.CallRecord`.
    """

    t_sent: float | None = None
    t_first_token: float | None = None
    t_done: float | None = None
    #: Arrival of every token after the first, as the engine's stream reveals them.
    token_times: tuple[float, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    text: str = ""
    #: None on success; the failure otherwise (never "unsupported": see :class:`Plan`).
    error: str | None = None
    #: The strategy that actually ran, when the engine only knows it after the call.
    strategy: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """How an engine will run one gen: its strategy label, or why it can't."""

    strategy: str
    #: Set when the engine can't run the gen ("unsupported: ..."); nothing is sent then.
    unsupported: str | None = None


@runtime_checkable
class Engine(Protocol):
    """One inference engine: one primitive, :meth:`generate`.

    Everything above one call (multi-turn, fork, skip policy, seeds, records) is the
    engine-neutral walker in :mod:`structbench.program`. ``plan`` and ``render`` are pure.
    ``generate`` never raises for a failed request: it returns a measure with ``error``.
    Only ``start`` may raise (as a UserError) when the engine can't be brought up.
    """

    name: str
    capabilities: Capabilities
    #: Largest useful number of concurrent items (None = unbounded).
    max_concurrency: int | None

    def plan(self, gen: Gen) -> Plan:
        """The strategy for ``gen``, or why it is unsupported (pure)."""
        ...

    def render(self, call: Call) -> str:
        """The native wire form of one call, for ``structbench compile`` (pure)."""
        ...

    async def start(self) -> EngineInfo:
        """Load or connect; return facts for the manifest."""
        ...

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        """Run one generation, timed with ``clock``; never raises for a failed request."""
        ...

    async def close(self) -> None:
        """Release the model, the server or the connections."""
        ...


@dataclass(frozen=True, slots=True)
class PromptTokens:
    """How an engine turns chat messages into the tokens it prefills and caches.

    For the ideal prefix-cache hit rate of the metrics stage (``metrics/cache.py``), which
    must hold every token the engine's cache can hold, including the ones no record shows.

    Attributes:
        render: Chat messages -> the prompt text the engine prefills (chat template and
            generation prompt).
        tokenize: Text -> token ids (no special tokens added: the rendered text has them).
        label: Which tokenizer this is, for the report (``model tokenizer (X)``).
        stop_ids: What a call that stopped generated after its text: its end-of-turn token
            (the chat template's end-of-turn marker, else EOS). The recorded text leaves it
            out; the engine caches it and the next turn's prompt repeats it.
        fork_prefix: How the engine renders a fork's shared prefix, which it prefills on
            its own before the branches run (SGLang's interpreter: ``max_new_tokens=0``);
            None for an engine that sends only the calls the records show.
    """

    render: Callable[[Sequence[Message]], str]
    tokenize: Callable[[str], Sequence[int]]
    label: str
    stop_ids: tuple[int, ...] = ()
    fork_prefix: Callable[[Sequence[Message]], str] | None = None


@runtime_checkable
class PromptTokenizer(Protocol):
    """An engine that can say exactly how it tokenizes its prompts (chat template included)."""

    def prompt_tokens(self) -> PromptTokens | None:
        """The engine's renderer and tokenizer, or None when its tokenizer isn't at hand.

        Called after the cell's calls, never on the request path; it may load a tokenizer.
        """
        ...


@runtime_checkable
class NativeProgram(Protocol):
    """An engine that can also run a whole work item natively (SGLang's interpreter).

    When ``native_mode`` is False the engine runs per call and the walker drives
    :meth:`Engine.generate`; when True, :meth:`native` runs the item and returns one
    measure per gen in ``WorkItem.gens()`` order.
    """

    @property
    def native_mode(self) -> bool:
        """True when items run as native programs."""
        ...

    def native_source(self, item: WorkItem) -> str:
        """The item's native program text (pure)."""
        ...

    async def native(self, item: WorkItem, clock: Clock) -> list[CallMeasure]:
        """Run the item as one native program; never raises for failed calls."""
        ...


def new_record(
    engine: str, item: WorkItem, where: tuple[int, int, Gen], ctx: ExecContext, **fields: Any
) -> CallRecord:
    """A call record with the identity fields every engine fills the same way.

    Args:
        engine: Engine name.
        item: The work item the call belongs to.
        where: ``(branch, turn, gen)`` of the call, as ``WorkItem.gens()`` yields them.
        ctx: The driver's context (cell, attempt, warm-up flag, scheduled time).
        **fields: The call's own fields (timestamps, usage, text, error, strategy, prompt).
    """
    branch, turn, gen = where
    return CallRecord(
        cell_id=ctx.cell_id,
        engine=engine,
        task=item.task,
        item_id=item.item_id,
        branch=branch,
        turn=turn,
        gen_name=gen.name,
        constraint=gen.constraint.kind,
        warmup=ctx.warmup,
        attempt=ctx.attempt,
        t_scheduled=ctx.t_scheduled,
        reference=gen.reference,
        meta=item.meta,
        **fields,
    )
