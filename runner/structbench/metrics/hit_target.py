"""The hit-target check of a ``prefix_hit`` cell: achieved against target, with SGLang's tolerance.

A prompt can only be served from the cache in whole blocks, so an engine with blocks of
B tokens misses up to B - 1 tokens of a shared part that does not end on a block edge.
SGLang's prefix benchmark therefore passes a workload whose achieved hit rate is within
``max(0.5 percentage points, B / mean prompt length)`` of its target, and so does this
check. The achieved rate is the server counters' (the cell's delta of cached over queried
prompt tokens), else the engine's per-call cached tokens; primers are warm-ups, outside
both. Beside it, for reading the gap: the theoretical rate (what an infinite token-level
cache serves of these prompts) and the ideal rate (the same cache in whole blocks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from structbench.metrics.inputs import CellInfo, CellRuntime
from structbench.records import CallRecord

#: The floor of the tolerance: half a percentage point.
MIN_TOLERANCE = 0.005
SERVER = "server counters"
CLIENT = "client cached tokens"


@dataclass(frozen=True, slots=True)
class HitTarget:
    """One cell's achieved hit rate against the target its task was built for.

    Attributes:
        target: The target hit rate, in [0, 1).
        input_len: The prompt length the task was built for, in tokens.
        achieved: The measured hit rate (None: the engine reported none).
        achieved_source: :data:`SERVER` or :data:`CLIENT`.
        theoretical: Token-level ideal: what an infinite cache serves of these prompts.
        ideal: The ideal at the engine's block size.
        block_size: The engine's cache block size in tokens (None: unknown).
        block_source: Where the block size came from.
        mean_prompt_len: Mean prompt tokens of the measured calls.
    """

    target: float
    input_len: int | None = None
    achieved: float | None = None
    achieved_source: str | None = None
    theoretical: float | None = None
    ideal: float | None = None
    block_size: int | None = None
    block_source: str | None = None
    mean_prompt_len: float | None = None

    @property
    def tolerance(self) -> float | None:
        """``max(0.005, block_size / mean_prompt_len)``; None without both."""
        if self.block_size is None or not self.mean_prompt_len:
            return None
        return max(MIN_TOLERANCE, self.block_size / self.mean_prompt_len)

    @property
    def error(self) -> float | None:
        """Achieved minus target (None when nothing was achieved)."""
        return None if self.achieved is None else self.achieved - self.target

    @property
    def passed(self) -> bool | None:
        """Within the tolerance; None when the rate or the tolerance is unknown."""
        tol, err = self.tolerance, self.error
        if tol is None or err is None:
            return None
        # A hair of floating-point slack: a rate exactly on the edge passes.
        return abs(err) <= tol + 1e-12

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json`` (the cell's ``hit_target``)."""
        return {
            "target": self.target,
            "input_len": self.input_len,
            "achieved": self.achieved,
            "achieved_source": self.achieved_source,
            "theoretical": self.theoretical,
            "ideal": self.ideal,
            "block_size": self.block_size,
            "block_source": self.block_source,
            "mean_prompt_len": self.mean_prompt_len,
            "tolerance": self.tolerance,
            "error": self.error,
            "passed": self.passed,
        }


def hit_target(
    info: CellInfo,
    runtime: CellRuntime,
    measured: Sequence[CallRecord],
    rates: tuple[float | None, float | None],
    ideals: tuple[float | None, float | None],
) -> HitTarget | None:
    """The check of a cell whose task has a target, else None.

    Args:
        info: The cell (its task's target and input length).
        runtime: Its cell file (the engine's block size and where it came from).
        measured: The cell's measured calls (no warm-ups or primers).
        rates: (server counters' hit rate, client-reported hit rate).
        ideals: (token-level ideal, block-level ideal).
    """
    if info.target_hit_rate is None:
        return None
    server, client = rates
    achieved, source = (server, SERVER) if server is not None else (client, CLIENT)
    lens = [r.prompt_tokens for r in measured if r.ok and r.prompt_tokens]
    ideal = runtime.ideal
    if lens:
        mean_len: float | None = sum(lens) / len(lens)
    elif ideal is not None and ideal.prompts:
        mean_len = ideal.prompt_tokens / ideal.prompts
    else:
        mean_len = None
    return HitTarget(
        target=info.target_hit_rate,
        input_len=info.input_len,
        achieved=achieved,
        achieved_source=source if achieved is not None else None,
        theoretical=ideals[0],
        ideal=ideals[1],
        block_size=runtime.cache_block_size,
        block_source=runtime.cache_block_source,
        mean_prompt_len=mean_len,
    )
