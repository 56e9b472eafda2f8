"""Metric reductions on hand-built records with a scripted clock: every number checked."""

from __future__ import annotations

import pytest

from structbench.metrics import (
    SLO,
    CellInfo,
    CellRuntime,
    CellSummary,
    LoadPoint,
    RunInfo,
    RunSummary,
    SummaryOptions,
    call_timing,
    final_attempts,
    meets_slo,
    summarize_cell,
)
from structbench.records import CallRecord
from structbench.scoring.base import Score
from structbench.scoring.score_run import RecordKey, ScoredRecord, record_key
from structbench.stats import wilson_ci

CELL = "vllm.regex.c2"
INFO = CellInfo(
    CELL,
    "vllm",
    "regex",
    "regex",
    LoadPoint("concurrency", 2),
    ("regex_match", "exact_match"),
    canary=True,
)


def rec(item: str, **kw: object) -> CallRecord:
    base: dict[str, object] = {
        "cell_id": CELL,
        "engine": "vllm",
        "task": "regex",
        "item_id": item,
        "branch": 0,
        "turn": 0,
        "gen_name": "g",
        "constraint": "regex",
    }
    base.update(kw)
    return CallRecord(**base)  # type: ignore[arg-type]


# Scripted timestamps (seconds on the driver clock).
RECORDS = [
    rec(
        "w", warmup=True, t_scheduled=-5.0, t_sent=-5.0, t_first_token=-4.0, t_done=-3.0, completion_tokens=9
    ),
    rec(
        "a",
        t_scheduled=0.0,
        t_sent=0.0,
        t_first_token=0.1,
        token_times=(0.2, 0.3, 0.4),
        t_done=0.4,
        prompt_tokens=10,
        completion_tokens=4,
        cached_tokens=5,
        strategy="structured_outputs.regex",
    ),
    rec(
        "b",
        t_scheduled=0.0,
        t_sent=0.5,
        t_first_token=0.7,
        token_times=(0.8, 1.0),
        t_done=1.0,
        prompt_tokens=20,
        completion_tokens=3,
        cached_tokens=0,
        strategy="structured_outputs.regex",
    ),
    rec("c", t_scheduled=1.0, t_sent=1.0, t_done=1.2, error="HTTP 500: boom"),
    rec("d", t_scheduled=1.0, error="unsupported: constraint 'regex'"),
    rec("e", attempt=1, t_scheduled=1.2, t_sent=1.2, t_done=1.4, error="timeout"),
    rec(
        "e",
        attempt=2,
        t_scheduled=1.5,
        t_sent=1.5,
        t_first_token=1.6,
        t_done=2.0,
        prompt_tokens=10,
        completion_tokens=1,
    ),
]
RUNTIME = CellRuntime(
    status="complete",
    duration_s=9.0,
    metrics_before=(("vllm:prefix_cache_hits_total", 10.0), ("vllm:prefix_cache_queries_total", 100.0)),
    metrics_after=(("vllm:prefix_cache_hits_total", 30.0), ("vllm:prefix_cache_queries_total", 180.0)),
)
MATCH = {"w": 1.0, "a": 1.0, "b": 0.0, "c": None, "d": None, "e": 1.0}
EXACT = {"a": 1.0, "b": 0.0, "e": 0.0}


def scored_map(records: list[CallRecord]) -> dict[RecordKey, ScoredRecord]:
    out = {}
    for r in records:
        scores = (Score("regex_match", MATCH.get(r.item_id)), Score("exact_match", EXACT.get(r.item_id)))
        out[record_key(r)] = ScoredRecord(record_key(r), scores)
    return out


OPTS = SummaryOptions(slo=SLO(ttft_ms=150.0, tpot_ms=120.0, e2el_ms=450.0), bootstrap=500, seed=3)


@pytest.fixture(scope="module")
def cell() -> CellSummary:
    return summarize_cell(INFO, RUNTIME, RECORDS, scored_map(RECORDS), OPTS)


def test_call_timing() -> None:
    t = call_timing(RECORDS[1])
    assert t.ttft_ms == pytest.approx(100.0)
    assert t.tpot_ms == pytest.approx(100.0)  # (0.4 - 0.1) / (4 - 1)
    assert t.e2el_ms == pytest.approx(400.0)
    assert t.queue_ms == 0.0
    assert t.itl_ms == pytest.approx((100.0, 100.0, 100.0))
    one = call_timing(RECORDS[-1])
    assert one.tpot_ms is None and one.itl_ms == ()
    assert call_timing(RECORDS[4]).e2el_ms is None


def test_final_attempts_keeps_the_last_try() -> None:
    kept = final_attempts(RECORDS)
    assert [(r.item_id, r.attempt) for r in kept] == [
        ("w", 1),
        ("a", 1),
        ("b", 1),
        ("c", 1),
        ("d", 1),
        ("e", 2),
    ]


def test_counts(cell: CellSummary) -> None:
    c = cell.counts
    assert (c.calls, c.completed, c.failed, c.unsupported) == (5, 3, 1, 1)
    assert (c.retried, c.warmup, c.items, c.items_completed) == (1, 1, 5, 3)


def test_throughput(cell: CellSummary) -> None:
    t = cell.throughput
    assert t.duration_s == pytest.approx(2.0)  # first send (a, 0.0) to last done (e, 2.0)
    assert t.request_throughput == pytest.approx(1.5)
    assert t.item_throughput == pytest.approx(1.5)
    assert (t.total_input_tokens, t.total_output_tokens) == (40, 8)
    assert t.output_throughput == pytest.approx(4.0)
    assert t.total_token_throughput == pytest.approx(24.0)
    # Only "a" meets TTFT <= 150, TPOT <= 120 and E2EL <= 450 (b: TTFT 200; e: E2EL 500).
    assert t.goodput == pytest.approx(0.5)
    assert t.slo_attainment == pytest.approx(0.2)


def test_latency(cell: CellSummary) -> None:
    lat = cell.latency
    assert lat.ttft.n == 3
    assert (lat.ttft.mean, lat.ttft.median, lat.ttft.p90, lat.ttft.p99) == pytest.approx(
        (400 / 3, 100, 180, 198)
    )
    assert lat.ttft.std == pytest.approx((20000 / 9) ** 0.5)
    assert (lat.tpot.n, lat.tpot.mean, lat.tpot.median, lat.tpot.p99) == pytest.approx((2, 125, 125, 149.5))
    assert (lat.itl.n, lat.itl.mean, lat.itl.median, lat.itl.p99) == pytest.approx((5, 120, 100, 196))
    assert (lat.e2el.n, lat.e2el.mean, lat.e2el.median, lat.e2el.p99) == pytest.approx(
        (3, 1400 / 3, 500, 500)
    )
    # Queue delay over every measured call that was sent: a 0, b 500, c 0, e 0.
    assert (lat.queue.n, lat.queue.mean, lat.queue.p99) == pytest.approx((4, 125, 485))


def test_cache(cell: CellSummary) -> None:
    c = cell.cache
    assert c.client_hit_rate == pytest.approx(5 / 30)
    assert c.server_hit_rate == pytest.approx(20 / 80)
    assert c.server_source == "prefix_cache_hit_tokens/prefix_cache_query_tokens"


def test_scores_validity_accuracy_canary(cell: CellSummary) -> None:
    q = cell.quality
    assert [s.scorer for s in q.scores] == ["regex_match", "exact_match"]
    v = q.validity
    assert v is not None
    assert (v.scorer, v.n, v.n_na) == ("regex_match", 3, 2)
    assert v.rate == pytest.approx(2 / 3)
    assert (v.ci_low, v.ci_high) == wilson_ci(2, 3)  # a 0/1 rate: Wilson, not the bootstrap
    a = q.accuracy
    assert a is not None
    assert (a.scorer, a.n) == ("exact_match", 3)
    assert a.rate == pytest.approx(1 / 3)
    assert q.canary == "NOT APPLIED: 2/3 outputs matched"
    assert cell.errors == (("HTTP 500: boom", 1), ("unsupported: constraint 'regex'", 1))
    assert cell.strategies == ("structured_outputs.regex",)


def test_canary_applied_and_empty_cell() -> None:
    recs = [r for r in RECORDS if r.item_id in ("a", "e")]
    s = summarize_cell(INFO, RUNTIME, recs, scored_map(recs), OPTS)
    assert s.quality.canary == "applied"
    empty = summarize_cell(INFO, CellRuntime(), [], {}, OPTS)  # no cell file, no record: never began
    assert empty.quality.canary == "not started" and empty.status == "not started"
    failed = [r for r in RECORDS if r.error is not None and not r.unsupported][:1]
    assert failed and summarize_cell(INFO, RUNTIME, failed, {}, OPTS).quality.canary == "no completed outputs"
    assert empty.counts.calls == 0 and empty.throughput.request_throughput is None
    assert empty.latency.ttft.mean is None and empty.quality.validity is not None
    assert empty.quality.validity.rate is None
    unsup = [RECORDS[4]]
    assert summarize_cell(INFO, RUNTIME, unsup, scored_map(unsup), OPTS).quality.canary == "unsupported"


def test_duration_falls_back_to_the_cell_file() -> None:
    recs = [rec("x", prompt_tokens=3, completion_tokens=2)]  # a non-timed engine
    s = summarize_cell(INFO, RUNTIME, recs, {}, SummaryOptions())
    assert s.throughput.duration_s == 9.0
    assert s.throughput.request_throughput == pytest.approx(1 / 9)
    assert s.throughput.goodput is None  # no SLO set
    assert s.cache.client_hit_rate is None


def test_meets_slo_rules() -> None:
    single = RECORDS[-1]
    t = call_timing(single)
    assert meets_slo(single, t, SLO(tpot_ms=1.0))  # one token: nothing to pace
    assert not meets_slo(RECORDS[3], call_timing(RECORDS[3]), SLO())  # failed call
    no_ttft = rec("z", t_sent=0.0, t_done=1.0, completion_tokens=5)
    assert not meets_slo(no_ttft, call_timing(no_ttft), SLO(ttft_ms=1e9))


def test_summary_dict_uses_bench_names(cell: CellSummary) -> None:
    run = RunInfo(run_id="r1", suite="s")
    d = RunSummary(run=run, cells=(cell,)).to_dict()
    assert d["schema_version"] == 1
    c = d["cells"][0]  # type: ignore[index]
    for key in (
        "request_throughput",
        "output_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "std_tpot_ms",
        "p90_itl_ms",
        "p99_e2el_ms",
        "request_goodput",
        "validity",
        "canary",
    ):
        assert key in c
    assert c["load"] == {"mode": "concurrency", "concurrency": 2, "rate": "inf", "label": "c2"}
