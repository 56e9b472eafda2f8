"""What the metric reductions take in, besides the records: typed views of the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from structbench.load.arrivals import LoadPoint
from structbench.metrics.cache import IdealCache

#: Re-exported: the load stage's point is the only load-point type (``metrics.LoadPoint``).
__all__ = ["SLO", "CellInfo", "CellRuntime", "EngineRow", "LoadPoint", "SummaryOptions", "TaskRow"]


@dataclass(frozen=True, slots=True)
class SLO:
    """Service-level objectives in ms; None = not set."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    @property
    def any_set(self) -> bool:
        """True when at least one objective is set (goodput is then defined)."""
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms))


@dataclass(frozen=True, slots=True)
class CellInfo:
    """Static facts about a cell, from the manifest.

    Attributes:
        cache_arm: "on"/"off" when the cell is one arm of a prefix-cache on/off
            comparison (recorded at run time from the engine spec's ``cache``), else None.
        cache_pair: What the two arms of a comparison share (e.g. "vllm my-model" for
            engines "vllm" and "vllm-nocache"); the cache plot pairs cells by it.
    """

    cell_id: str
    engine: str
    task: str
    task_kind: str = ""
    load: LoadPoint = field(default_factory=lambda: LoadPoint("offline"))
    scorers: tuple[str, ...] = ()
    canary: bool = False
    cache_arm: Literal["on", "off"] | None = None
    cache_pair: str = ""
    #: The hit rate a ``prefix_hit`` task was built for (None: no target to check).
    target_hit_rate: float | None = None
    #: The prompt length in tokens it was built for.
    input_len: int | None = None


@dataclass(frozen=True, slots=True)
class CellRuntime:
    """What the runner wrote in ``cells/<id>/cell.json``; all optional for partial runs.

    ``metrics_before``/``metrics_after`` are server ``/metrics`` counters, summed per
    metric name.
    """

    status: str = "missing"
    t_start: float | None = None
    t_end: float | None = None
    duration_s: float | None = None
    n_items: int | None = None
    metrics_before: tuple[tuple[str, float], ...] | None = None
    metrics_after: tuple[tuple[str, float], ...] | None = None
    peak_gpu_memory_mb: float | None = None
    #: Peak RSS of the benchmark process (what the in-process engine uses).
    peak_rss_mb: float | None = None
    gpu_available: bool | None = None
    #: The cell's ideal prefix-cache reuse, computed at run time (None: not computed).
    ideal: IdealCache | None = None
    #: The engine's prefix-cache block size in tokens (None: unknown or no cache).
    cache_block_size: int | None = None
    #: Where the block size came from (server report, launch flag, default).
    cache_block_source: str | None = None


@dataclass(frozen=True, slots=True)
class SummaryOptions:
    """Run-wide settings of the reductions."""

    slo: SLO = SLO()
    bootstrap: int = 1000
    seed: int = 0


@dataclass(frozen=True, slots=True)
class EngineRow:
    """An engine of the run, from the manifest."""

    name: str
    kind: str = ""
    model: str = ""
    version: str = ""
    url: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task of the run, from the manifest."""

    name: str
    kind: str = ""
    scorers: tuple[str, ...] = ()
    canary: bool = False
    target_hit_rate: float | None = None
    input_len: int | None = None
