"""Plot selection: which figures a run's data supports, and that they are PNGs."""

from __future__ import annotations

from structbench.metrics import CellInfo, CellSummary, LoadPoint, Quality, RunInfo, RunSummary, ScoreRate
from structbench.metrics.cell import Latency, Throughput
from structbench.report.html import render_html
from structbench.report.plots import make_plots
from structbench.report.samples import CellSamples
from structbench.stats import describe

PNG = b"\x89PNG\r\n\x1a\n"


def cell(engine: str, task: str, load: LoadPoint, arm: str | None = None, pair: str = "") -> CellSummary:
    info = CellInfo(
        f"{engine}.{task}.{load.display()}.{arm}",
        engine,
        task,
        "json",
        load,
        cache_arm=arm,
        cache_pair=pair or engine,
    )
    x = load.x_value() or 1.0
    return CellSummary(
        info=info,
        status="complete",
        throughput=Throughput(duration_s=1.0, request_throughput=x, output_throughput=10 * x),
        latency=Latency(ttft=describe([10.0 * x]), e2el=describe([50.0 * x, 60.0 * x])),
        quality=Quality(validity=ScoreRate("schema_valid", 0.9, n=10)),
    )


def test_sweep_and_cache_plots() -> None:
    cells = [cell(e, "t", LoadPoint("concurrency", c)) for e in ("a", "b") for c in (1, 2, 4, 8)]
    # Cache arms as two engine entries of one kind/model, paired by cache_pair.
    cells += [
        cell("v", "fan", LoadPoint("concurrency", 4), "on", "vllm m"),
        cell("v-nocache", "fan", LoadPoint("concurrency", 4), "off", "vllm m"),
    ]
    summary = RunSummary(run=RunInfo("r", "s"), cells=tuple(cells))
    samples = {c.info.cell_id: CellSamples((1.0, 2.0, 3.0), (0.5,)) for c in cells}
    plots = make_plots(summary, samples)
    assert [p.name for p in plots] == ["cdf_t", "load_t", "cdf_fan", "cache_fan", "validity"]
    assert [p.task for p in plots] == ["t", "t", "fan", "fan", None]
    assert all(p.png.startswith(PNG) for p in plots)
    html = render_html(summary, plots)
    assert html.count('<img src="data:image/png;base64,') == 5
    # Task plots sit under their task's table; the validity chart goes at the end.
    assert html.index("Task t") < html.index("t: latency CDF") < html.index("Task fan")
    assert html.index("Across tasks") < html.index("Validity per task and engine")


def test_no_samples_no_sweep_means_only_bars() -> None:
    cells = [cell("a", "t", LoadPoint("offline"))]
    plots = make_plots(RunSummary(run=RunInfo("r", "s"), cells=tuple(cells)), {})
    assert [p.name for p in plots] == ["validity"]


def test_html_escapes_names() -> None:
    cells = [cell("<script>alert(1)</script>", "t&t", LoadPoint("offline"))]
    html = render_html(RunSummary(run=RunInfo("r", "<b>suite</b>"), cells=tuple(cells)), [])
    assert "<script>" not in html and "&lt;script&gt;" in html and "t&amp;t" in html
    assert "&lt;b&gt;suite&lt;/b&gt;" in html
