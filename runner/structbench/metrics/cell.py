"""Per-cell reductions: the numbers one row of the report shows."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from structbench.engines.counters import HIT_TOKENS, QUERY_TOKENS, neutral_counters
from structbench.metrics.cache import IdealCache
from structbench.metrics.calls import (
    CallTiming,
    call_timing,
    duration_s,
    final_attempts,
    max_in_flight,
    measured,
)
from structbench.metrics.hit_target import HitTarget, hit_target
from structbench.metrics.inputs import SLO, CellInfo, CellRuntime, SummaryOptions
from structbench.metrics.roofline import Roofline
from structbench.metrics.scores import FieldRate, ScoreRate, canary_verdict, field_rates, score_rates
from structbench.records import CallRecord
from structbench.scoring.registry import ACCURACY_SCORERS, VALIDITY_SCORERS
from structbench.scoring.score_run import RecordKey, ScoredRecord
from structbench.stats import EMPTY_DISTRIBUTION, Distribution, describe

#: The status (and canary verdict) of a cell the run never began.
NOT_STARTED = "not started"
#: ``CacheStats.server_source``: the engine-neutral counter pair the server rate divides.
SERVER_SOURCE = f"{HIT_TOKENS}/{QUERY_TOKENS}"


@dataclass(frozen=True, slots=True)
class Counts:
    """How many calls and items a cell measured (warm-up excluded, last attempt only)."""

    calls: int = 0
    completed: int = 0
    failed: int = 0
    unsupported: int = 0
    retried: int = 0
    warmup: int = 0
    items: int = 0
    items_completed: int = 0
    #: The most items in flight at once (None: nothing was sent). A closed loop of 8
    #: workers over 2 items reaches 2: its ``c8`` label is what was asked, this what ran.
    max_in_flight: int | None = None


@dataclass(frozen=True, slots=True)
class Throughput:
    """Rates over the cell's duration; request = one call (one gen)."""

    duration_s: float | None = None
    request_throughput: float | None = None
    item_throughput: float | None = None
    output_throughput: float | None = None
    total_token_throughput: float | None = None
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    goodput: float | None = None
    slo_attainment: float | None = None


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency distributions over completed calls, in ms."""

    ttft: Distribution = EMPTY_DISTRIBUTION
    tpot: Distribution = EMPTY_DISTRIBUTION
    itl: Distribution = EMPTY_DISTRIBUTION
    e2el: Distribution = EMPTY_DISTRIBUTION
    queue: Distribution = EMPTY_DISTRIBUTION


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Prefix-cache hit rates: client-reported cached tokens and server counter deltas.

    Attributes:
        client_hit_rate: Σ cached / Σ prompt tokens the engine reported per call.
        server_hit_rate: Delta of the server's hit / query token counters over the cell.
        server_source: The counter pair ``server_hit_rate`` divides (engine-neutral).
        ideal_hit_rate: The cell's ideal hit rate (:mod:`structbench.metrics.cache`),
            at the engine's cache block size; None when it was not computed at run time.
        ideal_token_hit_rate: The token-level ideal, whatever the engine.
        ideal_basis: "tokens" or "blocks of N" (what ``ideal_hit_rate`` counts).
        ideal_tokenizer: Which tokenizer counted the prompt tokens (the model's own, or
            an approximation when it was not at hand).
    """

    client_hit_rate: float | None = None
    server_hit_rate: float | None = None
    server_source: str | None = None
    ideal_hit_rate: float | None = None
    ideal_token_hit_rate: float | None = None
    ideal_basis: str | None = None
    ideal_tokenizer: str | None = None

    @property
    def client_of_ideal(self) -> float | None:
        """Achieved client-side hit rate as a fraction of the ideal one."""
        return _of_ideal(self.client_hit_rate, self.ideal_hit_rate)

    @property
    def server_of_ideal(self) -> float | None:
        """Server counters' hit rate as a fraction of the ideal one."""
        return _of_ideal(self.server_hit_rate, self.ideal_hit_rate)


def _of_ideal(achieved: float | None, ideal: float | None) -> float | None:
    # An ideal of 0 leaves nothing to achieve: the ratio is undefined, not 100 %.
    return achieved / ideal if achieved is not None and ideal else None


@dataclass(frozen=True, slots=True)
class Quality:
    """Score reductions: every scorer, the headline validity/accuracy, fields, canary."""

    scores: tuple[ScoreRate, ...] = ()
    validity: ScoreRate | None = None
    accuracy: ScoreRate | None = None
    fields: tuple[FieldRate, ...] = ()
    canary: str | None = None


@dataclass(frozen=True, slots=True)
class CellSummary:
    """Everything the report says about one engine x task x load cell."""

    info: CellInfo
    status: str = "missing"
    counts: Counts = Counts()
    throughput: Throughput = Throughput()
    latency: Latency = Latency()
    cache: CacheStats = CacheStats()
    quality: Quality = Quality()
    #: Most frequent error messages with counts (unsupported included).
    errors: tuple[tuple[str, int], ...] = field(default=())
    #: Strategies the engine reported using (e.g. "response_format").
    strategies: tuple[str, ...] = field(default=())
    peak_gpu_memory_mb: float | None = None
    peak_rss_mb: float | None = None
    #: Decode rate against the memory-bandwidth bound, where model size and GPU are known.
    roofline: Roofline | None = None
    #: Achieved against target hit rate, for a task built for one (``prefix_hit``).
    hit_target: HitTarget | None = None


def _counts(all_records: Sequence[CallRecord], recs: Sequence[CallRecord]) -> Counts:
    items: dict[str, bool] = {}
    for r in recs:
        items[r.item_id] = items.get(r.item_id, True) and r.ok
    return Counts(
        calls=len(recs),
        completed=sum(r.ok for r in recs),
        failed=sum(not r.ok and not r.unsupported for r in recs),
        unsupported=sum(r.unsupported for r in recs),
        retried=sum(r.attempt > 1 for r in recs),
        warmup=sum(r.warmup for r in final_attempts(all_records)),
        items=len(items),
        items_completed=sum(items.values()),
        max_in_flight=max_in_flight(recs),
    )


def meets_slo(rec: CallRecord, t: CallTiming, slo: SLO) -> bool:
    """True when a completed call meets every set objective.

    A single-token output has no TPOT and passes that objective; any other missing
    measurement fails the objective it is needed for.
    """
    if not rec.ok:
        return False
    checks = ((slo.ttft_ms, t.ttft_ms), (slo.e2el_ms, t.e2el_ms))
    if any(limit is not None and (v is None or v > limit) for limit, v in checks):
        return False
    if slo.tpot_ms is not None and t.tpot_ms is not None:
        return t.tpot_ms <= slo.tpot_ms
    return not (slo.tpot_ms is not None and (rec.completion_tokens or 0) > 1)


def _rate(x: float, dur: float | None) -> float | None:
    return x / dur if dur else None


def _throughput(recs: Sequence[CallRecord], c: Counts, runtime: CellRuntime, slo: SLO) -> Throughput:
    if c.calls == c.unsupported:
        # Nothing was sent: a rate of 0/s would read as "slow", not "not run".
        return Throughput(goodput=None)
    dur = duration_s(recs)
    if dur is None:
        dur = runtime.duration_s
        if dur is None and runtime.t_start is not None and runtime.t_end is not None:
            dur = runtime.t_end - runtime.t_start
    ok = [r for r in recs if r.ok]
    t_in = sum(r.prompt_tokens or 0 for r in ok)
    t_out = sum(r.completion_tokens or 0 for r in ok)
    has_out = any(r.completion_tokens is not None for r in ok)
    good = sum(meets_slo(r, call_timing(r), slo) for r in ok) if slo.any_set else None
    return Throughput(
        duration_s=dur,
        request_throughput=_rate(c.completed, dur),
        item_throughput=_rate(c.items_completed, dur),
        output_throughput=_rate(t_out, dur) if has_out else None,
        total_token_throughput=_rate(t_in + t_out, dur) if has_out else None,
        total_input_tokens=t_in,
        total_output_tokens=t_out,
        goodput=None if good is None else _rate(good, dur),
        slo_attainment=None if good is None or not recs else good / len(recs),
    )


def _latency(recs: Sequence[CallRecord]) -> Latency:
    timings = [call_timing(r) for r in recs if r.ok]
    queue = [q for r in recs if (q := call_timing(r).queue_ms) is not None]
    return Latency(
        ttft=describe([t.ttft_ms for t in timings if t.ttft_ms is not None]),
        tpot=describe([t.tpot_ms for t in timings if t.tpot_ms is not None]),
        itl=describe([x for t in timings for x in t.itl_ms]),
        e2el=describe([t.e2el_ms for t in timings if t.e2el_ms is not None]),
        queue=describe(queue),
    )


def _server_hit_rate(runtime: CellRuntime) -> float | None:
    if runtime.metrics_before is None or runtime.metrics_after is None:
        return None
    # Cell files of version 1 hold the servers' raw counter names: translate them here.
    before, after = (
        neutral_counters(dict(runtime.metrics_before)),
        neutral_counters(dict(runtime.metrics_after)),
    )
    if not after:
        return None
    dq = after[QUERY_TOKENS] - before.get(QUERY_TOKENS, 0.0)
    return (after[HIT_TOKENS] - before.get(HIT_TOKENS, 0.0)) / dq if dq > 0 else None


def _cache(recs: Sequence[CallRecord], runtime: CellRuntime) -> CacheStats:
    rep = [r for r in recs if r.ok and r.cached_tokens is not None and r.prompt_tokens]
    prompt = sum(r.prompt_tokens or 0 for r in rep)
    client = sum(r.cached_tokens or 0 for r in rep) / prompt if prompt else None
    server = _server_hit_rate(runtime)
    stats = CacheStats(client, server, SERVER_SOURCE if server is not None else None)
    return _with_ideal(stats, runtime.ideal)


def _with_ideal(stats: CacheStats, ideal: IdealCache | None) -> CacheStats:
    # Runs from before the ideal was computed at run time have none: it stays absent
    # rather than being recomputed here with a tokenizer the report would have to load.
    if ideal is None or not ideal.prompt_tokens:
        return stats
    return replace(
        stats,
        ideal_hit_rate=ideal.block_hit_rate,
        ideal_token_hit_rate=ideal.hit_rate,
        ideal_basis=ideal.basis,
        ideal_tokenizer=ideal.tokenizer or None,
    )


def _quality(
    info: CellInfo, recs: Sequence[CallRecord], scored: Mapping[RecordKey, ScoredRecord], opts: SummaryOptions
) -> Quality:
    rates = score_rates(recs, scored, info.scorers, opts.bootstrap, opts.seed)
    by_name = {s.scorer: s for s in rates}
    validity = next((by_name[n] for n in VALIDITY_SCORERS if n in by_name), None)
    accuracy = next((by_name[n] for n in ACCURACY_SCORERS if n in by_name), None)
    return Quality(
        scores=rates,
        validity=validity,
        accuracy=accuracy,
        fields=field_rates(recs, scored) if "field_accuracy" in by_name else (),
        canary=canary_verdict(recs, scored) if info.canary else None,
    )


def _errors(recs: Sequence[CallRecord], top: int = 5) -> tuple[tuple[str, int], ...]:
    msgs = Counter(" ".join((r.error or "").split())[:160] for r in recs if r.error is not None)
    return tuple(msgs.most_common(top))


def summarize_cell(
    info: CellInfo,
    runtime: CellRuntime,
    records: Sequence[CallRecord],
    scored: Mapping[RecordKey, ScoredRecord],
    opts: SummaryOptions,
) -> CellSummary:
    """Reduce one cell's records and scores.

    Args:
        info: The cell's static facts (engine, task, load, scorers).
        runtime: Its ``cell.json``, or a default for a cell that never finished.
        records: The cell's call records, warm-up and retried attempts included.
        scored: Scores of the run's records by :func:`record_key`.
        opts: SLOs, bootstrap resamples, seed.
    """
    recs = measured(records)
    counts = _counts(records, recs)
    strategies = tuple(dict.fromkeys(r.strategy for r in recs if r.strategy))
    quality = _quality(info, recs, scored, opts)
    status = runtime.status
    if status == "missing" and not records:
        # No cell file and not one record: the run stopped before this cell began (an item
        # that began always leaves records, "cancelled: interrupted" ones at the least).
        status = NOT_STARTED
        quality = replace(quality, canary=NOT_STARTED if info.canary else None)
    cache = _cache(recs, runtime)
    rates = (cache.server_hit_rate, cache.client_hit_rate)
    ideals = (cache.ideal_token_hit_rate, cache.ideal_hit_rate)
    return CellSummary(
        info=info,
        status=status,
        counts=counts,
        throughput=_throughput(recs, counts, runtime, opts.slo),
        latency=_latency(recs),
        cache=cache,
        quality=quality,
        errors=_errors(recs),
        strategies=strategies,
        peak_gpu_memory_mb=runtime.peak_gpu_memory_mb,
        peak_rss_mb=runtime.peak_rss_mb,
        hit_target=hit_target(info, runtime, recs, rates, ideals),
    )


def finite(x: float | None) -> float | None:
    """``x`` when it is a finite number, else None (JSON has no inf/NaN)."""
    return x if x is not None and math.isfinite(x) else None
