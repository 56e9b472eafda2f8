"""Per-call figures of each cell, read once from the records for the plots and the headline.

The summary holds each cell's percentiles; pooling calls across cells (the headline) and
drawing distributions or timelines (the plots) need the calls themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from structbench.metrics import call_timing, measured
from structbench.records import CallRecord


@dataclass(frozen=True, slots=True)
class Span:
    """One call's moments in seconds from the cell's first send; None where not recorded."""

    sent: float
    first_token: float | None
    done: float | None


@dataclass(frozen=True, slots=True)
class CellSamples:
    """Per-call latencies of one cell (completed, measured calls), for distributions."""

    e2el_ms: tuple[float, ...] = ()
    ttft_ms: tuple[float, ...] = ()
    tpot_ms: tuple[float, ...] = ()
    #: Completed measured calls in send order, for the per-request timeline.
    spans: tuple[Span, ...] = ()


def _spans(recs: Sequence[CallRecord]) -> tuple[Span, ...]:
    sent = sorted((r for r in recs if r.t_sent is not None), key=lambda r: r.t_sent or 0.0)
    if not sent:
        return ()
    t0 = sent[0].t_sent or 0.0

    def rel(t: float | None) -> float | None:
        return None if t is None else t - t0

    return tuple(Span((r.t_sent or t0) - t0, rel(r.t_first_token), rel(r.t_done)) for r in sent)


def cell_samples(records: Sequence[CallRecord]) -> dict[str, CellSamples]:
    """Completed measured calls (warm-ups out, last attempts only) grouped by cell."""
    by_cell: dict[str, list[CallRecord]] = {}
    for r in measured(records):
        if r.ok:
            by_cell.setdefault(r.cell_id, []).append(r)
    out = {}
    for cell_id, recs in by_cell.items():
        timings = [call_timing(r) for r in recs]
        out[cell_id] = CellSamples(
            e2el_ms=tuple(t.e2el_ms for t in timings if t.e2el_ms is not None),
            ttft_ms=tuple(t.ttft_ms for t in timings if t.ttft_ms is not None),
            tpot_ms=tuple(t.tpot_ms for t in timings if t.tpot_ms is not None),
            spans=_spans(recs),
        )
    return out
