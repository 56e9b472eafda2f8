"""The Engine protocol that every engine module implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from structbench.ir import Constraint, ConstraintKind, Gen, GrammarSyntax, WorkItem
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


@runtime_checkable
class Engine(Protocol):
    """One inference engine.

    ``compile`` is pure. ``execute`` never raises for a failed request: it returns
    records with ``error`` set. Only ``start`` may raise (as a UserError) when the
    engine can't be brought up.
    """

    name: str
    capabilities: Capabilities
    #: Largest useful number of concurrent items (None = unbounded).
    max_concurrency: int | None

    def compile(self, item: WorkItem) -> Compiled:
        """Return the native form of ``item`` (pure: no I/O)."""
        ...

    async def start(self) -> EngineInfo:
        """Load or connect; return facts for the manifest."""
        ...

    async def execute(self, item: WorkItem, ctx: ExecContext) -> list[CallRecord]:
        """Run every gen of ``item``; one record per gen, in program order."""
        ...

    async def close(self) -> None:
        """Release the model, the server or the connections."""
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
