"""The roofline of each summarized cell, from model facts that are already known.

The report only reads: it tokenizes nothing and loads no model (the ideal prefix-cache
hit rate is computed at run time and read from the cell file, see
:mod:`structbench.metrics.cache`). The roofline needs the model's size and the GPU,
which :func:`roofline_cells` takes as plain values; where they come from is the
caller's business: the run's manifest, or for runs written before the manifest carried
model facts, :func:`local_model_sizes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from structbench.metrics import CellSummary
from structbench.metrics.roofline import Gpu, ModelSize, roofline
from structbench.report.model_facts import RunModels, local_model_size


def roofline_cells(
    cells: Sequence[CellSummary], sizes: Mapping[str, ModelSize | None], gpu: Gpu | None
) -> tuple[CellSummary, ...]:
    """Cells with the decode roofline filled in where model size and GPU are known.

    Args:
        cells: Summarized cells.
        sizes: Model size per engine name (None or absent: unknown).
        gpu: The run's GPU (None: no GPU, no roofline).
    """
    out = []
    for c in cells:
        roof = roofline(c.latency.tpot.mean, sizes.get(c.info.engine), gpu)
        out.append(replace(c, roofline=roof) if roof is not None else c)
    return tuple(out)


def local_model_sizes(models: RunModels) -> dict[str, ModelSize | None]:
    """Model sizes from local ``config.json`` files: the fallback for older runs.

    Newer runs record the model facts in their manifest; this reads a file only where
    the model folder the manifest names exists on this machine.
    """
    return {name: local_model_size(m) for name, m in models.engines.items()}
