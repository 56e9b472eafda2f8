"""``--save-result``: one JSON per cell in the format of ``vllm bench serve --save-result``.

Scripts and dashboards built around vLLM's benchmark read these files unchanged. The
field names, units and conventions are vLLM's (``vllm/benchmarks/serve.py``): rates per
second, summary latencies in ms (``mean_/median_/std_ttft_ms``, ``p<P>_ttft_ms`` for each
requested percentile), per-request arrays in seconds (``ttfts``, ``itls`` as one list of
gaps per request, ``latencies``), one array entry per request that was sent, failed ones
included (``output_lens`` 0 and ``errors`` non-empty for them, as vLLM does).

The values are structbench's own: the summary's figures for the same cell (the same
records, warm-ups excluded, last attempt of each call), so the file and ``summary.json``
never disagree. A "request" is one call (one ``gen``); calls the engine declared
unsupported were never sent and are left out. Where structbench has no measurement
(no streamed TTFT), the field is ``null`` rather than vLLM's 0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from structbench.metrics import CellSummary, RunSummary, call_timing, measured
from structbench.metrics.summary import RunInfo
from structbench.records import CallRecord, run_records
from structbench.stats import Distribution, percentile

__all__ = ["RESULT_FILE", "VllmResultOptions", "vllm_result", "write_vllm_results"]

#: Written into each cell's folder, next to its ``requests.jsonl`` and ``requests.csv``.
RESULT_FILE = "vllm_result.json"


@dataclass(frozen=True, slots=True)
class VllmResultOptions:
    """vLLM's ``--metric-percentiles`` and ``--percentile-metrics``."""

    percentiles: tuple[float, ...] = (99.0,)
    metrics: tuple[str, ...] = ("ttft", "tpot", "itl", "e2el")


def _date(created_utc: str) -> str:
    try:
        return datetime.fromisoformat(created_utc).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        return created_utc


def _p_word(p: float) -> str:
    # vLLM's key spelling: p99, p99.9
    return str(int(p)) if int(p) == p else str(p)


def _samples(recs: Sequence[CallRecord]) -> dict[str, list[float]]:
    """Per-metric samples over completed calls, in ms (what the summary's distributions describe)."""
    timings = [call_timing(r) for r in recs if r.ok]
    return {
        "ttft": [t.ttft_ms for t in timings if t.ttft_ms is not None],
        "tpot": [t.tpot_ms for t in timings if t.tpot_ms is not None],
        "itl": [x for t in timings for x in t.itl_ms],
        "e2el": [t.e2el_ms for t in timings if t.e2el_ms is not None],
    }


def _s(ms: float | None) -> float:
    return 0.0 if ms is None else ms / 1000.0


def _per_request(sent: Sequence[CallRecord]) -> dict[str, object]:
    timings = [call_timing(r) for r in sent]
    return {
        "input_lens": [r.prompt_tokens or 0 for r in sent],
        "output_lens": [(r.completion_tokens or 0) if r.ok else 0 for r in sent],
        "ttfts": [_s(t.ttft_ms) if r.ok else 0.0 for r, t in zip(sent, timings, strict=True)],
        "itls": [[x / 1000.0 for x in t.itl_ms] if r.ok else [] for r, t in zip(sent, timings, strict=True)],
        "latencies": [_s(t.e2el_ms) if r.ok else 0.0 for r, t in zip(sent, timings, strict=True)],
        "start_times": [r.t_sent for r in sent],
        "generated_texts": [r.text for r in sent],
        "errors": [r.error or "" for r in sent],
    }


def vllm_result(
    run: RunInfo, cell: CellSummary, records: Sequence[CallRecord], opts: VllmResultOptions
) -> dict[str, object]:
    """The ``vllm bench serve --save-result`` dict of one cell.

    Args:
        run: The run's facts (engine kind and model, date).
        cell: The cell's summary (the figures come from it).
        records: The cell's records, warm-ups and earlier attempts included.
        opts: Which percentiles of which metrics to add.
    """
    recs = measured(records)
    sent = [r for r in recs if not r.unsupported]
    engine = next((e for e in run.engines if e.name == cell.info.engine), None)
    load, k, t = cell.info.load, cell.counts, cell.throughput
    out: dict[str, object] = {
        "date": _date(run.created_utc),
        "endpoint_type": engine.kind if engine else "",
        "backend": engine.kind if engine else "",
        "label": cell.info.cell_id,
        "model_id": engine.model if engine else "",
        "tokenizer_id": None,
        "num_prompts": len(sent),
        "request_rate": "inf" if load.rate == float("inf") else load.rate,
        "burstiness": load.burstiness,
        "max_concurrency": load.max_concurrency,
        "duration": t.duration_s,
        "completed": k.completed,
        "failed": k.failed,
        "total_input_tokens": t.total_input_tokens,
        "total_output_tokens": t.total_output_tokens,
        "request_throughput": t.request_throughput,
        "request_goodput": t.goodput,
        "output_throughput": t.output_throughput,
        "total_token_throughput": t.total_token_throughput,
        **_per_request(sent),
    }
    dists: dict[str, Distribution] = {
        "ttft": cell.latency.ttft,
        "tpot": cell.latency.tpot,
        "itl": cell.latency.itl,
        "e2el": cell.latency.e2el,
    }
    samples = _samples(recs)
    for name in opts.metrics:
        d = dists[name]
        out.update({f"mean_{name}_ms": d.mean, f"median_{name}_ms": d.median, f"std_{name}_ms": d.std})
        for p in opts.percentiles:
            out[f"p{_p_word(p)}_{name}_ms"] = percentile(samples[name], p)
    q = cell.quality
    # structbench's own figures, under one key that vLLM's readers ignore.
    out["structbench"] = {
        "cell_id": cell.info.cell_id,
        "engine": cell.info.engine,
        "task": cell.info.task,
        "validity": q.validity.to_dict() if q.validity else None,
        "accuracy": q.accuracy.to_dict() if q.accuracy else None,
    }
    return out


def write_vllm_results(run_dir: Path, summary: RunSummary, opts: VllmResultOptions) -> tuple[Path, ...]:
    """Write ``cells/<id>/vllm_result.json`` for every cell of ``summary``; returns the paths."""
    by_cell: dict[str, list[CallRecord]] = {}
    for r in run_records(run_dir, [c.info.cell_id for c in summary.cells]):
        by_cell.setdefault(r.cell_id, []).append(r)
    paths = []
    for cell in summary.cells:
        path = run_dir / "cells" / cell.info.cell_id / RESULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = vllm_result(summary.run, cell, by_cell.get(cell.info.cell_id, []), opts)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        paths.append(path)
    return tuple(paths)
