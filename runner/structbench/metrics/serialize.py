"""JSON forms of the summaries (the ``summary.json`` schema, version 1)."""

from __future__ import annotations

import math

from structbench.metrics.cell import CellSummary
from structbench.metrics.inputs import LoadPoint
from structbench.stats import Distribution


def _rate_value(x: float | None) -> float | str | None:
    # JSON has no infinity; "inf" keeps the meaning (all at once) readable.
    if x is not None and math.isinf(x):
        return "inf"
    return x


def load_to_dict(load: LoadPoint) -> dict[str, object]:
    """JSON form of a load point."""
    return {
        "mode": load.mode,
        "concurrency": load.concurrency,
        "rate": _rate_value(load.rate),
        "label": load.display(),
    }


def dist_to_dict(name: str, d: Distribution) -> dict[str, object]:
    """``mean_<name>``, ``median_<name>``, ``std_``, ``p90_``, ``p99_`` keys."""
    return {
        f"mean_{name}": d.mean,
        f"median_{name}": d.median,
        f"std_{name}": d.std,
        f"p90_{name}": d.p90,
        f"p99_{name}": d.p99,
        f"n_{name}": d.n,
    }


def _head(c: CellSummary) -> dict[str, object]:
    k, t = c.counts, c.throughput
    return {
        "cell_id": c.info.cell_id,
        "engine": c.info.engine,
        "task": c.info.task,
        "task_kind": c.info.task_kind,
        "load": load_to_dict(c.info.load),
        "cache_arm": c.info.cache_arm,
        "status": c.status,
        "calls": k.calls,
        "completed": k.completed,
        "failed": k.failed,
        "unsupported": k.unsupported,
        "retried": k.retried,
        "warmup_calls": k.warmup,
        "items": k.items,
        "items_completed": k.items_completed,
        "max_in_flight": k.max_in_flight,
        "duration_s": t.duration_s,
        "request_throughput": t.request_throughput,
        "item_throughput": t.item_throughput,
        "output_throughput": t.output_throughput,
        "total_token_throughput": t.total_token_throughput,
        "total_input_tokens": t.total_input_tokens,
        "total_output_tokens": t.total_output_tokens,
        "request_goodput": t.goodput,
        "slo_attainment": t.slo_attainment,
    }


def _tail(c: CellSummary) -> dict[str, object]:
    q = c.quality
    return {
        "client_cache_hit_rate": c.cache.client_hit_rate,
        "server_cache_hit_rate": c.cache.server_hit_rate,
        "server_cache_source": c.cache.server_source,
        "ideal_cache_hit_rate": c.cache.ideal_hit_rate,
        "ideal_token_cache_hit_rate": c.cache.ideal_token_hit_rate,
        "ideal_cache_basis": c.cache.ideal_basis,
        "ideal_cache_tokenizer": c.cache.ideal_tokenizer,
        "client_cache_of_ideal": c.cache.client_of_ideal,
        "server_cache_of_ideal": c.cache.server_of_ideal,
        "scores": [s.to_dict() for s in q.scores],
        "validity": q.validity.to_dict() if q.validity else None,
        "accuracy": q.accuracy.to_dict() if q.accuracy else None,
        "field_accuracy": [{"path": f.path, "rate": f.rate, "n": f.n} for f in q.fields],
        "canary": q.canary,
        "errors": [{"error": e, "count": n} for e, n in c.errors],
        "strategies": list(c.strategies),
        "peak_gpu_memory_mb": c.peak_gpu_memory_mb,
        "peak_rss_mb": c.peak_rss_mb,
        "roofline": _roofline(c),
    }


def _roofline(c: CellSummary) -> dict[str, object] | None:
    r = c.roofline
    if r is None:
        return None
    return {
        "gpu": r.gpu.name,
        "bandwidth_bytes_per_s": r.gpu.bandwidth,
        "params": r.model.params,
        "weight_bytes_per_step": r.model.weight_bytes,
        "model_source": r.model.source,
        "limit_tok_s_per_seq": r.limit_tok_s,
        "achieved_tok_s_per_seq": r.achieved_tok_s,
        "fraction": r.fraction,
    }


def cell_to_dict(c: CellSummary) -> dict[str, object]:
    """One entry of ``summary.json``'s ``cells`` list.

    Counts, throughput, latency distributions (``mean_/median_/std_/p90_/p99_<x>_ms``),
    cache hit rates and scores.
    """
    d = _head(c)
    lat = c.latency
    for name, dist in (
        ("ttft_ms", lat.ttft),
        ("tpot_ms", lat.tpot),
        ("itl_ms", lat.itl),
        ("e2el_ms", lat.e2el),
        ("queue_ms", lat.queue),
    ):
        d.update(dist_to_dict(name, dist))
    d.update(_tail(c))
    if c.hit_target is not None:
        # Only on cells that have one, so summaries of runs without targets rebuild unchanged.
        d["hit_target"] = c.hit_target.to_dict()
    return d
