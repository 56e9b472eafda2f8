"""The headline: engines side by side, the winner of each row marked, by how much, and what is missing."""

from __future__ import annotations

from typing import Literal

import pytest

from structbench.metrics import CellInfo, CellSummary, LoadPoint, Quality, RunInfo, RunSummary, ScoreRate
from structbench.metrics.cell import Counts, Latency, Throughput
from structbench.report.headline import NOT_RECORDED, TITLE, WIN, headline_table, verdict
from structbench.report.html import render_html
from structbench.report.markdown import render_markdown
from structbench.report.samples import CellSamples
from structbench.stats import describe


def test_verdict_higher_and_lower_is_better() -> None:
    winners, says = verdict({"a": 300.0, "b": 400.0, "c": 100.0}, higher_is_better=True)
    assert winners == {"b"} and says == "b, 1.33x over a"
    winners, says = verdict({"a": 50.0, "b": 40.0, "c": 100.0}, higher_is_better=False)
    assert winners == {"b"} and says == "b, 1.25x over a"


def test_verdict_ties_missing_and_zero() -> None:
    assert verdict({"a": 1.0, "b": 1.0}, True) == ({"a", "b"}, "tie")
    assert verdict({"a": 2.0, "b": 2.0, "c": 1.0}, True) == ({"a", "b"}, "a, b (tie), 2.00x over c")
    # A missing figure is neither a loss nor a win: the ranking ignores it.
    assert verdict({"a": NOT_RECORDED, "b": 10.0, "c": 20.0}, False) == ({"b"}, "b, 2.00x over c")
    assert verdict({"a": NOT_RECORDED, "b": 10.0}, True) == (set(), "only b recorded it")
    assert verdict({"a": NOT_RECORDED, "b": "cache-off arm"}, True) == (set(), "no engine recorded it")
    assert verdict({"a": 0.5, "b": 0.0}, True) == ({"a"}, "a; b at 0")


def _cell(engine: str, task: str, arm: Literal["on", "off"] | None = None, **kw: float | None) -> CellSummary:
    load = LoadPoint("concurrency", 8)
    info = CellInfo(
        f"{engine}.{task}", engine, task, "json", load, cache_arm=arm, cache_pair="p" if arm else ""
    )
    ttft = kw.get("ttft")
    return CellSummary(
        info=info,
        status="complete",
        counts=Counts(calls=4, completed=4),
        throughput=Throughput(
            duration_s=kw.get("dur", 2.0),
            output_throughput=(kw.get("tokens") or 0.0) / (kw.get("dur") or 2.0),
            total_output_tokens=int(kw.get("tokens") or 0),
        ),
        latency=Latency(ttft=describe([] if ttft is None else [ttft])),
        quality=Quality(validity=ScoreRate("schema_valid", kw.get("valid", 1.0), n=4)),
        peak_gpu_memory_mb=kw.get("gpu"),
        peak_rss_mb=kw.get("rss"),
    )


def _samples(cells: list[CellSummary], ttft: dict[str, list[float]]) -> dict[str, CellSamples]:
    return {c.info.cell_id: CellSamples(ttft_ms=tuple(ttft.get(c.info.engine, ()))) for c in cells}


def _rows(cells: list[CellSummary], samples: dict[str, CellSamples]) -> dict[str, tuple[str, ...]]:
    table = headline_table(RunSummary(run=RunInfo("r", "s"), cells=tuple(cells)), samples)
    assert table is not None and table.title == TITLE
    return {row[0]: row for row in table.rows}


def test_headline_pools_common_work_marks_winner_and_says_what_is_missing() -> None:
    cells = [
        _cell("on", "t1", "on", tokens=800, ttft=50.0, gpu=1000.0),
        _cell("on", "t2", "on", tokens=400, ttft=70.0, gpu=1200.0),
        _cell("off", "t1", "off", tokens=400, ttft=100.0, valid=0.5),
        _cell("off", "t2", "off", tokens=400, ttft=110.0, valid=0.5),
        _cell("prog", "t1", tokens=200),  # no TTFT (no stream), no GPU samples
        _cell("prog", "t2", tokens=200),
        _cell("on", "only_on", "on", tokens=10_000),  # not run by the others: left out
    ]
    samples = _samples(cells, {"on": [40.0, 60.0, 80.0], "off": [90.0, 100.0, 120.0]})
    rows = _rows(cells, samples)
    # (800 + 400) tokens over 4 s, against 800 / 4 s and 400 / 4 s; only_on is not pooled.
    assert rows["output tok/s"] == ("output tok/s", f"{WIN} 300", "200", "100", "on, 1.50x over off")
    assert rows["p50 TTFT ms"] == ("p50 TTFT ms", f"{WIN} 60.0", "100", NOT_RECORDED, "on, 1.67x over off")
    assert rows["validity %"][1:4] == (f"{WIN} 100.0", "50.0", f"{WIN} 100.0")
    assert rows["validity %"][4] == "on, prog (tie), 2.00x over off"
    # Cache benefit: mean TTFT off / on, pooled by calls: (100 + 110) / (50 + 70).
    assert rows["cache benefit: mean TTFT off/on"][1:] == (
        "1.75x",
        "cache-off arm",
        "no cache-off arm",
        "only on recorded it",
    )
    assert rows["peak GPU memory MiB"][1:] == ("1,200", NOT_RECORDED, NOT_RECORDED, "only on recorded it")
    assert rows["accuracy %"][1:] == (NOT_RECORDED, NOT_RECORDED, NOT_RECORDED, "no engine recorded it")


def test_headline_notes_what_was_pooled_and_falls_back_to_rss() -> None:
    cells = [_cell("a", "t1", tokens=10, rss=500.0), _cell("b", "t1", tokens=20, rss=400.0), _cell("a", "t2")]
    summary = RunSummary(run=RunInfo("r", "s"), cells=tuple(cells))
    table = headline_table(summary, {})
    assert table is not None
    assert "pooled over the 1 task x load points every engine ran (1 others left out)" in table.notes
    rows = {r[0]: r for r in table.rows}
    assert "peak GPU memory MiB" not in rows
    assert rows["peak RSS MiB (no GPU samples)"][1:] == ("500", f"{WIN} 400", "b, 1.25x over a")
    # Calls were not sampled: percentiles say so rather than borrow the cells' own.
    assert rows["p99 TTFT ms"][1:] == (NOT_RECORDED, NOT_RECORDED, "no engine recorded it")
    disjoint = RunSummary(run=RunInfo("r", "s"), cells=(_cell("a", "t1"), _cell("b", "t2")))
    table = headline_table(disjoint, {})
    assert table is not None and any("no task x load point in common" in n for n in table.notes)


def test_headline_comes_first_in_both_reports() -> None:
    cells = [_cell("a", "t1", tokens=10), _cell("b", "t1", tokens=20)]
    summary = RunSummary(run=RunInfo("r", "s"), cells=tuple(cells))
    table = headline_table(summary, {})
    md = render_markdown(summary, (), table)
    assert (
        md.index("# structbench report") < md.index(f"## {TITLE}") < md.index("## Run") < md.index("Task t1")
    )
    html = render_html(summary, [], table)
    assert html.index("<h1>") < html.index(TITLE) < html.index("<h2>Run</h2>") < html.index("Task t1")
    assert f'<b class="win">{WIN} 10.0</b>' in html
    assert headline_table(RunSummary(run=RunInfo("r", "s"), cells=()), {}) is None


@pytest.mark.parametrize("higher", [True, False])
def test_verdict_ratio_is_never_below_one(higher: bool) -> None:
    for values in ({"a": 3.0, "b": 7.0}, {"a": 7.0, "b": 3.0}):
        _, says = verdict(values, higher)
        assert float(says.split(", ")[1].split("x")[0]) == pytest.approx(7 / 3, abs=0.005)
