"""build_report on a hand-made run folder: files, schema, tables, HTML self-containment."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from runfolder import write_run

from structbench.errors import UserError
from structbench.metrics import RunSummary
from structbench.metrics.cell import SERVER_SOURCE
from structbench.records import cell_records_path, run_records
from structbench.report.build import build_report, summarize_run
from structbench.report.terminal import render_terminal_table

IMG = '<img src="data:image/png;base64,'


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary]:
    """One complete run, built once for the tests that only read its outputs."""
    run = write_run(tmp_path_factory.mktemp("runs"))
    return run, build_report(run)


def test_build_writes_everything(built: tuple[Path, RunSummary]) -> None:
    run, summary = built
    for name in ("scores.jsonl", "summary.json", "report.md", "report.html"):
        assert (run / name).is_file(), name
    assert len(summary.cells) == 10
    rows = list(csv.DictReader((run / "cells" / "vllm.invoice.c4" / "requests.csv").open()))
    assert len(rows) == 7  # warm-up included, flagged
    assert rows[0]["warmup"] == "1" and rows[1]["schema_valid"] == "1.0" and rows[1]["status"] == "ok"
    # One line of scores per measured call (warm-ups are not scored).
    assert len((run / "scores.jsonl").read_text().splitlines()) == sum(
        1 for r in run_records(run) if not r.warmup
    )


def test_summary_json_schema(built: tuple[Path, RunSummary]) -> None:
    run, _ = built
    d = json.loads((run / "summary.json").read_text())
    assert set(d) == {"schema_version", "run", "cells"} and d["schema_version"] == 1
    assert d["run"]["suite"] == "demo" and d["run"]["status"] == "complete"
    assert [e["name"] for e in d["run"]["engines"]] == ["vllm", "sglang"]
    cells = {c["cell_id"]: c for c in d["cells"]}
    inv = cells["vllm.invoice.c4"]
    for key in (
        "completed",
        "failed",
        "unsupported",
        "duration_s",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "std_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "p99_e2el_ms",
        "request_goodput",
        "client_cache_hit_rate",
        "server_cache_hit_rate",
        "scores",
        "validity",
        "accuracy",
        "field_accuracy",
        "canary",
    ):
        assert key in inv, key
    assert inv["load"] == {"mode": "concurrency", "concurrency": 4, "rate": "inf", "label": "c4"}
    assert (inv["completed"], inv["failed"], inv["warmup_calls"]) == (6, 0, 1)
    assert inv["validity"]["scorer"] == "schema_valid" and inv["validity"]["rate"] == 1.0
    assert inv["accuracy"]["scorer"] == "field_accuracy" and inv["accuracy"]["rate"] == 1.0
    assert inv["client_cache_hit_rate"] == pytest.approx(32 / 50)
    assert inv["server_cache_hit_rate"] == pytest.approx(0.5) and inv["server_cache_source"] == SERVER_SOURCE
    assert [f["path"] for f in inv["field_accuracy"]] == ["name", "total"]
    sg = cells["sglang.invoice.c4"]
    assert sg["validity"]["rate"] == pytest.approx(4 / 6)  # items 0 and 3 are truncated
    assert cells["vllm.canary.c4"]["canary"] == "applied"
    assert cells["sglang.canary.c4"]["canary"] == "NOT APPLIED: 4/6 outputs matched"
    assert cells["sglang.pick.c4"]["unsupported"] == 6 and cells["sglang.pick.c4"]["validity"]["rate"] is None
    assert cells["vllm.math.c4"]["calls"] == 12 and cells["vllm.math.c4"]["items"] == 6
    assert cells["sglang.math.c4"]["accuracy"]["rate"] == pytest.approx(8 / 12)


def test_html_is_self_contained_with_plots(built: tuple[Path, RunSummary]) -> None:
    run, _ = built
    html = (run / "report.html").read_text()
    # invoice: CDF + load sweep + latency-vs-throughput; canary, pick, math: CDF each; one validity
    # bar chart; the request timelines of the busiest load point.
    assert html.count(IMG) == 8
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)
    assert "NOT APPLIED: 4/6 outputs matched" in html
    assert len(list((run / "plots").glob("*.png"))) == 8
    # The timeline goes to the busiest load point: c4, where math made the most calls.
    assert {"tradeoff_invoice.png", "timeline_math_c4.png"} <= {p.name for p in (run / "plots").glob("*.png")}


def test_markdown_tables(built: tuple[Path, RunSummary]) -> None:
    run, _ = built
    md = (run / "report.md").read_text()
    for title in ("### Task invoice", "### Task canary", "### Task pick", "### Task math"):
        assert title in md
    assert "#### Per-field accuracy %: invoice" in md
    assert "## Canaries" in md and "## Unsupported and failed calls" in md
    assert "unsupported: constraint 'choice'" in md
    assert "## What the columns mean" in md
    table = md.split("### Task invoice")[1].split("\n\n")[1]
    header = table.splitlines()[0]
    assert "validity % [95% CI]" in header and "cache hit %" in header and "p99 TTFT ms" in header
    assert "| vllm | c1 | 6/0 |" in table
    assert "![invoice: latency CDF](plots/cdf_invoice.png)" in md


def test_terminal_table(built: tuple[Path, RunSummary]) -> None:
    table = render_terminal_table(built[1])
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "NOT APPLIED: 4/6 outputs matched" in text and "invoice" in text
    assert table.row_count == 10


@pytest.mark.parametrize("version", [1, 2])
def test_partial_interrupted_run(make_run: Callable[..., Path], version: int) -> None:
    run = make_run(status="interrupted", version=version)
    (run / "cells" / "sglang.math.c4" / "cell.json").unlink()
    (run / "items.jsonl").unlink()
    # The last cell's records end in a torn line: the run-level file (version 1) or the cell's.
    path = run / "requests.jsonl" if version == 1 else cell_records_path(run, "sglang.math.c4")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:40])
    summary = build_report(run)
    cells = {c.info.cell_id: c for c in summary.cells}
    math = cells["sglang.math.c4"]
    assert math.status == "missing" and math.counts.calls < 12
    assert "interrupted" in (run / "report.md").read_text()
    # Without items.jsonl the schema is unknown: schema_valid does not apply, json_parse still does.
    inv = cells["vllm.invoice.c4"].quality
    assert inv.validity is not None and inv.validity.rate is None
    assert {s.scorer: s.rate for s in inv.scores}["json_parse"] == 1.0


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a structbench run folder"):
        build_report(tmp_path)


def test_summarize_run_writes_nothing(make_run: Callable[..., Path]) -> None:
    run = make_run()
    before = sorted(p.name for p in run.rglob("*"))
    summary = summarize_run(run)
    assert len(summary.cells) == 10
    assert sorted(p.name for p in run.rglob("*")) == before


def test_cells_the_run_never_began_say_not_started(make_run: Callable[..., Path]) -> None:
    """After Ctrl-C, a cell with no cell file and no records is "not started", not "no completed outputs"."""
    run = make_run(status="interrupted")
    for cell in ("sglang.canary.c4", "sglang.math.c4"):
        (run / "cells" / cell / "cell.json").unlink()
        cell_records_path(run, cell).unlink()
    cells = {c.info.cell_id: c for c in build_report(run).cells}
    canary, math = cells["sglang.canary.c4"], cells["sglang.math.c4"]
    assert canary.status == math.status == "not started" and canary.quality.canary == "not started"
    assert math.quality.canary is None and cells["vllm.canary.c4"].quality.canary == "applied"
    md = (run / "report.md").read_text()
    assert "no completed outputs" not in md
    assert "| sglang | c4 (not started) |" in md
