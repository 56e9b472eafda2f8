"""``cells/<id>/cell.json`` as a versioned pydantic model (see :mod:`structbench.runfolder.models`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from structbench.runfolder import v1
from structbench.runfolder.io import read_object, schema_version, validate, write_model
from structbench.runfolder.models import SCHEMA_VERSION, CellEntry, Frozen

CELL_FILE = "cell.json"
#: ``--resume`` redoes every cell not ``complete``. "unknown": a version 1 file without one.
CellStatus = Literal["complete", "partial", "interrupted", "timed_out", "unknown"]


class GpuMemory(Frozen):
    """One GPU's memory over a cell (bytes)."""

    index: int
    name: str = ""
    peak_bytes: int = 0
    mean_bytes: float = 0.0
    baseline_bytes: int = 0
    peak_minus_baseline_bytes: int = 0


class MemoryFacts(Frozen):
    """What the memory sampler saw over a cell (``memory.MemoryReport.to_dict()``)."""

    gpu_available: bool = False
    n_samples: int = 0
    gpus: tuple[GpuMemory, ...] = ()
    rss_peak_bytes: int | None = None
    rss_mean_bytes: float | None = None
    samples: tuple[tuple[float, tuple[int, ...], int], ...] = ()
    """``(seconds, bytes used per GPU, process RSS)``."""

    def peak_gpu_mb(self) -> float | None:
        """Peak GPU memory in MiB, summed over devices; None without a GPU."""
        if not self.gpu_available:
            return None
        # The peak of the per-sample sums is the true simultaneous peak; the
        # per-device peaks are the fallback.
        totals = [sum(gpu) for _, gpu, _ in self.samples if gpu]
        if totals:
            return max(totals) / 2**20
        return sum(g.peak_bytes for g in self.gpus) / 2**20 if self.gpus else None

    def peak_rss_mb(self) -> float | None:
        """Peak RSS of the benchmark process in MiB, when sampled."""
        return self.rss_peak_bytes / 2**20 if self.rss_peak_bytes else None


class IdealFacts(Frozen):
    """The cell's ideal prefix reuse (mirror of :class:`structbench.metrics.cache.IdealCache`)."""

    prompts: int
    prompt_tokens: int
    covered_tokens: int
    block_size: int
    covered_block_tokens: int
    tokenizer: str = ""


class CellFile(CellEntry):
    """``cells/<id>/cell.json``: what happened in one cell. Written when the cell ends."""

    schema_version: Literal[2] = SCHEMA_VERSION
    status: CellStatus
    attempt: int = 1
    t_start: float | None = None
    t_end: float | None = None
    duration_s: float | None = None
    n_items: int | None = None
    n_records: int | None = None
    n_errors: int | None = None
    warmup_items: int | None = None
    """Warm-up items run before the measured ones (None: a version 1 file)."""
    cache_reset: bool | None = None
    """Whether the prefix-cache flush before the cell succeeded (None: not attempted)."""
    metrics_before: dict[str, float] | None = None
    """Server ``/metrics`` counters summed per name, before the cell (None: no source)."""
    metrics_after: dict[str, float] | None = None
    memory: MemoryFacts | None = None
    ideal: IdealFacts | None = None
    cache_block_size: int | None = None
    """The engine's prefix-cache block size in tokens (None: unknown or no cache)."""
    cache_block_source: str | None = None
    """Where the block size came from: the server's report, a launch flag, or a default."""
    error: str | None = None
    """Why the cell ended early when no record says it (its Ray worker died); None otherwise."""

    @classmethod
    def read(cls, path: Path) -> CellFile:
        """Read a ``cell.json`` (version 1 or 2).

        Raises:
            UserError: Missing, unreadable or invalid, naming the file.
        """
        data = read_object(path, f"{path}: no such cell file")
        if schema_version(data, path, (1, SCHEMA_VERSION)) == 1:
            data = v1.cell(data, path)
        return validate(cls, data, path)

    def write(self, path: Path) -> None:
        """Write the file atomically."""
        write_model(path, self)


__all__ = ["CELL_FILE", "CellFile", "CellStatus", "GpuMemory", "IdealFacts", "MemoryFacts"]
