"""The ``corpus`` part of ``summary.json``: coverage, the backend matrix and the cost of structure.

It gathers the pure reductions of :mod:`~structbench.metrics.coverage`,
:mod:`~structbench.metrics.backend_matrix` and :mod:`~structbench.metrics.cost` for the
``schema_corpus`` tasks of a run; the report's coverage section reads what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from structbench.metrics.backend_matrix import MatrixRow, backend_matrix
from structbench.metrics.cell import CellSummary
from structbench.metrics.cost import CostSummary, corpus_meta, summarize_cost
from structbench.metrics.coverage import CorpusCall, EngineCoverage, corpus_calls, engine_coverage
from structbench.metrics.inputs import EngineRow, SummaryOptions
from structbench.records import CallRecord
from structbench.scoring.score_run import RecordKey, ScoredRecord

__all__ = ["CorpusSummary", "summarize_corpus"]


@dataclass(frozen=True, slots=True)
class CorpusSummary:
    """Everything the coverage section of a report shows."""

    coverage: tuple[EngineCoverage, ...] = ()
    cost: CostSummary = field(default_factory=CostSummary)
    #: Engine variant x subset rows (grammar backend, coverage, compile time, TPOT ratio).
    matrix: tuple[MatrixRow, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``'s ``corpus`` key."""
        return {
            "coverage": [c.to_dict() for c in self.coverage],
            "backend_matrix": [m.to_dict() for m in self.matrix],
            **self.cost.to_dict(),
        }


def summarize_corpus(
    records: Sequence[CallRecord],
    scored: Mapping[RecordKey, ScoredRecord],
    cells: Sequence[CellSummary],
    options: SummaryOptions,
    engines: Sequence[EngineRow] = (),
) -> CorpusSummary | None:
    """Coverage and cost of every ``schema_corpus`` task of a run; None when it has none.

    Args:
        records: Every record of the run (warm-up included: compile times skip schemas
            the warm-up compiled).
        scored: Scores by record key (``schema_valid`` decides validity).
        cells: The run's cell summaries (throughput and TPOT for the cost ratios).
        options: Bootstrap resamples and seed.
        engines: The manifest's engines, whose facts name each one's grammar backend.
    """
    if not any(corpus_meta(r) is not None for r in records):
        return None
    calls = corpus_calls(records, scored)
    groups: dict[tuple[str, str], list[CorpusCall]] = {}
    for c in calls:
        groups.setdefault((c.engine, c.task), []).append(c)
    coverage = tuple(
        engine_coverage(e, t, cs, options.bootstrap, options.seed) for (e, t), cs in groups.items()
    )
    matrix = backend_matrix(records, calls, coverage, engines)
    return CorpusSummary(coverage, summarize_cost(records, cells), matrix)
