"""The cache figures of a cell summary: run-time ideal, neutral server counters, "% of ideal"."""

from __future__ import annotations

import pytest

from structbench.metrics import CellInfo, CellRuntime, CellSummary, SummaryOptions, summarize_cell
from structbench.metrics.cache import IdealCache
from structbench.metrics.serialize import cell_to_dict
from structbench.records import CallRecord
from structbench.report import fmt

RECS = [
    CallRecord(
        "c",
        "e",
        "t",
        f"i{i}",
        0,
        0,
        "g",
        "none",
        t_sent=float(i),
        t_done=i + 0.5,
        prompt_tokens=100,
        cached_tokens=40,
    )
    for i in range(3)
]


def _summary(runtime: CellRuntime) -> CellSummary:
    return summarize_cell(CellInfo("c", "e", "t"), runtime, RECS, {}, SummaryOptions(bootstrap=0))


def test_ideal_comes_from_the_cell_file() -> None:
    ideal = IdealCache(3, 300, 250, 16, 192, "model tokenizer (m)")
    c = _summary(CellRuntime(status="complete", ideal=ideal)).cache
    assert c.client_hit_rate == pytest.approx(0.4)
    assert (c.ideal_hit_rate, c.ideal_token_hit_rate) == pytest.approx((0.64, 250 / 300))
    assert (c.ideal_basis, c.ideal_tokenizer) == ("blocks of 16", "model tokenizer (m)")
    assert c.client_of_ideal == pytest.approx(0.4 / 0.64)
    token_level = _summary(CellRuntime(ideal=IdealCache(3, 300, 250, 1, 247))).cache
    assert token_level.ideal_basis == "tokens" and token_level.ideal_tokenizer is None


def test_old_runs_have_no_ideal() -> None:
    c = _summary(CellRuntime(status="complete")).cache
    assert c.ideal_hit_rate is None and c.client_of_ideal is None and c.ideal_basis is None
    d = cell_to_dict(_summary(CellRuntime()))
    assert d["ideal_cache_hit_rate"] is None and d["client_cache_of_ideal"] is None


def test_nothing_cacheable_gives_ideal_zero_and_no_fraction() -> None:
    s = _summary(CellRuntime(ideal=IdealCache(3, 300, 0, 16, 0), metrics_before=(), metrics_after=()))
    assert s.cache.ideal_hit_rate == 0.0
    assert s.cache.client_of_ideal is None and s.cache.server_of_ideal is None
    assert fmt.of_ideal(s) == fmt.DASH and fmt.pct(s.cache.ideal_hit_rate) == "0.0"
    d = cell_to_dict(s)
    assert d["ideal_cache_hit_rate"] == 0.0 and d["client_cache_of_ideal"] is None
    # No prompt tokens: no ideal at all.
    assert _summary(CellRuntime(ideal=IdealCache(0, 0, 0, 16, 0))).cache.ideal_hit_rate is None


@pytest.mark.parametrize(
    ("hits", "queries"),
    [
        ("prefix_cache_hit_tokens", "prefix_cache_query_tokens"),
        ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
        ("vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
        ("sglang:cached_tokens_total", "sglang:prompt_tokens_total"),
    ],
)
def test_server_rate_from_neutral_or_raw_counters(hits: str, queries: str) -> None:
    rt = CellRuntime(
        metrics_before=((hits, 10.0), (queries, 100.0)), metrics_after=((hits, 30.0), (queries, 180.0))
    )
    c = _summary(rt).cache
    assert c.server_hit_rate == pytest.approx(20 / 80)
    assert c.server_source == "prefix_cache_hit_tokens/prefix_cache_query_tokens"


def test_server_rate_absent_without_queries() -> None:
    flat = (("prefix_cache_hit_tokens", 5.0), ("prefix_cache_query_tokens", 50.0))
    c = _summary(CellRuntime(metrics_before=flat, metrics_after=flat)).cache
    assert c.server_hit_rate is None and c.server_source is None
    other = (("vllm:num_requests_running", 1.0),)
    assert _summary(CellRuntime(metrics_before=other, metrics_after=other)).cache.server_hit_rate is None
