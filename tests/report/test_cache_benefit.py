"""The prefix-cache on/off table from hand-built cells."""

from __future__ import annotations

import pytest

from structbench.metrics import CellInfo, CellSummary, Latency, LoadPoint, RunInfo, RunSummary, Throughput
from structbench.metrics.cell import CacheStats
from structbench.report.cache_benefit import cache_benefit_table, cache_pairs
from structbench.report.markdown import render_markdown
from structbench.stats import describe

C4 = LoadPoint("concurrency", 4)


def _cell(
    engine: str, arm: str | None, ttft: float, rps: float, hit: float | None, pair: str = "vllm m"
) -> CellSummary:
    info = CellInfo(f"{engine}.qa.c4", engine, "qa", "fanout", C4, cache_arm=arm, cache_pair=pair)
    cache = CacheStats(client_hit_rate=hit, ideal_hit_rate=0.8 if arm == "on" else None)
    return CellSummary(
        info,
        "complete",
        latency=Latency(ttft=describe([ttft, ttft])),
        throughput=Throughput(request_throughput=rps),
        cache=cache,
    )


def _summary(*cells: CellSummary) -> RunSummary:
    return RunSummary(RunInfo("r", "s"), cells)


def test_pairs_and_ratios() -> None:
    on, off = _cell("vllm", "on", 100.0, 3.0, 0.6), _cell("vllm-nocache", "off", 250.0, 2.0, 0.0)
    lone = _cell("sglang", "on", 90.0, 3.0, 0.5, pair="sglang m generate")
    (p,) = cache_pairs([on, lone, off])
    assert (p.on, p.off) == (on, off)
    assert p.ttft_ratio == pytest.approx(2.5)
    assert p.throughput_ratio == pytest.approx(1.5)
    table = cache_benefit_table(_summary(on, off, lone), "qa")
    assert table is not None
    (row,) = table.rows
    by = dict(zip(table.headers, row, strict=True))
    assert by["Engines (on / off)"] == "vllm / vllm-nocache"
    assert by["TTFT off/on"] == "2.50x" and by["throughput on/off"] == "1.50x"
    assert by["hit % on (client)"] == "60.0" and by["hit % off"] == "0.0"
    assert by["ideal hit %"] == "80.0" and by["% of ideal"] == "75.0"
    assert "#### Prefix-cache benefit: qa" in render_markdown(_summary(on, off, lone))


def test_no_table_without_both_arms() -> None:
    assert cache_benefit_table(_summary(_cell("vllm", "on", 1.0, 1.0, 0.5)), "qa") is None
    assert cache_benefit_table(_summary(_cell("a", None, 1.0, 1.0, None)), "qa") is None
    assert "Prefix-cache benefit" not in render_markdown(_summary(_cell("vllm", "on", 1.0, 1.0, 0.5)))
