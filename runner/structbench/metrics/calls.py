"""Per-call timings derived from raw record timestamps."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from structbench.records import CallRecord

_MS = 1000.0


@dataclass(frozen=True, slots=True)
class CallTiming:
    """Latencies of one call in ms; None when the moments were not recorded.

    Attributes:
        ttft_ms: First token minus sent.
        tpot_ms: (done - first token) / (completion tokens - 1): decode time per
            output token after the first; None for single-token outputs.
        e2el_ms: Done minus sent.
        queue_ms: Sent minus scheduled: how long the client held the call back
            (concurrency cap, or a driver that fell behind its schedule).
        itl_ms: Gaps between consecutive streamed chunks, first token included.
    """

    ttft_ms: float | None
    tpot_ms: float | None
    e2el_ms: float | None
    queue_ms: float | None
    itl_ms: tuple[float, ...]


def _diff_ms(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier) * _MS


def call_timing(rec: CallRecord) -> CallTiming:
    """Derive a call's latencies from its timestamps."""
    tpot = None
    n = rec.completion_tokens
    if n is not None and n > 1 and rec.t_first_token is not None and rec.t_done is not None:
        tpot = (rec.t_done - rec.t_first_token) * _MS / (n - 1)
    itl: tuple[float, ...] = ()
    if rec.t_first_token is not None and rec.token_times:
        times = (rec.t_first_token, *rec.token_times)
        itl = tuple((b - a) * _MS for a, b in itertools.pairwise(times))
    return CallTiming(
        ttft_ms=_diff_ms(rec.t_first_token, rec.t_sent),
        tpot_ms=tpot,
        e2el_ms=_diff_ms(rec.t_done, rec.t_sent),
        queue_ms=_diff_ms(rec.t_sent, rec.t_scheduled),
        itl_ms=itl,
    )


def final_attempts(records: Iterable[CallRecord]) -> list[CallRecord]:
    """Keep only the last attempt of each call (a retried call counts once).

    Order follows the first appearance of each call. A warm-up call and the measured
    call of the same item are two calls (warm-up items keep their item's id).
    """
    best: dict[tuple[str, str, int, int, bool], CallRecord] = {}
    for r in records:
        k = (r.cell_id, r.item_id, r.branch, r.turn, r.warmup)
        if k not in best or r.attempt >= best[k].attempt:
            best[k] = r
    return list(best.values())


def measured(records: Iterable[CallRecord]) -> list[CallRecord]:
    """The records metrics are computed on: final attempts, warm-up excluded."""
    return [r for r in final_attempts(records) if not r.warmup]


def duration_s(records: Sequence[CallRecord]) -> float | None:
    """First ``t_sent`` to last ``t_done`` over the records, or None if unknown."""
    sent = [r.t_sent for r in records if r.t_sent is not None]
    done = [r.t_done for r in records if r.t_done is not None]
    if not sent or not done:
        return None
    span = max(done) - min(sent)
    return span if span > 0 else None


def max_in_flight(records: Iterable[CallRecord]) -> int | None:
    """The most work items that were in flight at once: the concurrency a cell reached.

    An item is in flight from its first call's ``t_sent`` to its last call's ``t_done`` (a
    multi-turn item holds its closed-loop slot between turns, a fork holds one slot for all
    its branches). None when no call was sent. An item that ends exactly when another
    starts does not overlap it: a closed loop hands its slot over at that instant.
    """
    spans: dict[tuple[str, int], list[float]] = {}
    for r in records:
        if r.t_sent is None or r.t_done is None:
            continue
        span = spans.setdefault((r.item_id, r.attempt), [r.t_sent, r.t_done])
        span[0], span[1] = min(span[0], r.t_sent), max(span[1], r.t_done)
    if not spans:
        return None
    # Ends sort before starts at the same instant (0 < 1), so a hand-over never counts twice.
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, 0) for _, e in spans.values()])
    now = most = 0
    for _, starts in events:
        now += 1 if starts else -1
        most = max(most, now)
    return most
