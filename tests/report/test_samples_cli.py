"""``structbench report`` and ``compare`` on the committed GPU sample runs (results/gpu, results/h200)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from browser import find_chromium, inspect_page, report_problems
from click.testing import CliRunner

from structbench.cli import main
from structbench.records import open_text

RESULTS = Path(__file__).resolve().parents[2] / "results"
GPU_RUN = next(iter(sorted((RESULTS / "gpu" / "gpu").glob("*_*"))), None)
# suites/h200_ray.yaml on the H200: the same suite run locally, then with --executor ray.
H200_RUNS = sorted((RESULTS / "h200" / "ray" / "h200_ray").glob("*_*"))
DERIVED = ("summary.json", "report.md", "report.html", "scores.jsonl")


def _copy(run: Path | None, dest: Path) -> Path:
    if run is None:
        pytest.skip("committed sample run not found")
    out = shutil.copytree(run, dest)
    for name in DERIVED:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "plots", ignore_errors=True)
    return out


def _rounded(value: object) -> object:
    """``value`` with every float to 12 significant digits. The H200 runs were summarised on Python
    3.12, whose ``sum`` of floats is compensated; rebuilt on 3.11, a mean can differ in its last bit."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _report(run: Path) -> None:
    res = CliRunner().invoke(main, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output


def test_report_rebuilds_gpu_run(tmp_path: Path) -> None:
    run = _copy(GPU_RUN, tmp_path / "gpu")
    _report(run)
    for name in DERIVED:
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["schema_version"] == 1 and len(summary["cells"]) == 30
    manual = next(c for c in summary["cells"] if c["cell_id"] == "vllm.manual_qa.c8")
    assert manual["cache_arm"] == "on" and manual["client_cache_hit_rate"] > 0.5
    # The ideal is read from the cell files (written by benchmarks/migrate_results.py), never recomputed.
    assert manual["ideal_cache_basis"] == "blocks of 16"
    assert manual["client_cache_of_ideal"] == pytest.approx(1.0)
    assert manual["server_cache_source"] == "prefix_cache_hit_tokens/prefix_cache_query_tokens"
    assert manual["roofline"] is None  # v1: no model facts recorded, and the device model is not here
    nocache = next(c for c in summary["cells"] if c["cell_id"] == "sglang-nocache.manual_qa.c8")
    assert nocache["cache_arm"] == "off"  # from the spec: older engines did not report it
    html = (run / "report.html").read_text(encoding="utf-8")
    pngs = sorted((run / "plots").glob("*.png"))
    assert len(pngs) >= 7
    assert html.count('<img src="data:image/png;base64,') == len(pngs)
    srcs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html)
    assert all(s.startswith("data:") for s in srcs), srcs
    assert not re.search(r"https?://|@import|<script|<link", html)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "#### Prefix-cache benefit: manual_qa" in md
    assert "| vllm / vllm-nocache | c8 |" in md and "| sglang-generate / sglang-nocache | c8 |" in md
    assert md.count("](plots/") == len(pngs)


def test_compare_two_copies_shows_deltas(tmp_path: Path) -> None:
    a = _copy(GPU_RUN, tmp_path / "a")
    b = _copy(GPU_RUN, tmp_path / "b")
    # Make run b 2x slower on one cell: its TTFTs and E2ELs double.
    with open_text(b / "requests.jsonl") as fh:  # packed in results/; the plain file written below wins
        lines = fh.read().splitlines()
    slowed = []
    for line in lines:
        r = json.loads(line)
        if r["cell_id"] == "vllm.invoice.c8" and r["t_sent"] is not None:
            t0 = r["t_sent"]
            for k in ("t_first_token", "t_done"):
                r[k] = t0 + 2 * (r[k] - t0) if r[k] is not None else None
            r["token_times"] = [t0 + 2 * (t - t0) for t in r["token_times"]]
        slowed.append(json.dumps(r))
    (b / "requests.jsonl").write_text("\n".join(slowed) + "\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert out.startswith("# structbench comparison")
    assert "## Task invoice" in out and "## Task manual_qa" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("| vllm | c8 · cache on | #2 |")]
    assert rows and "(+0.0%)" in rows[-1]  # manual_qa unchanged
    invoice_b = next(ln for ln in out.splitlines() if ln.startswith("| vllm | c8 · cache on | #2 |"))
    assert "(+100.0%)" in invoice_b  # p99 TTFT doubled


@pytest.mark.slow
def test_report_and_compare_h200_local_and_ray_runs(tmp_path: Path) -> None:
    """The H200 runs under --executor ray are reported and compared by the same commands as their
    local twins, and the report rebuilds every committed summary (to 12 significant digits)."""
    # Three local runs and two Ray runs of one suite on one host (results/h200/ray/README.md).
    assert len(H200_RUNS) == 5, H200_RUNS
    runs = [_copy(run, tmp_path / run.name) for run in H200_RUNS]
    cells = {f"{e}.{t}.c16" for e in ("vllm", "sglang-generate") for t in ("invoice", "product")}
    for committed, run in zip(H200_RUNS, runs, strict=True):
        _report(run)
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        assert {c["cell_id"] for c in summary["cells"]} == cells
        kept = json.loads((committed / "summary.json").read_text(encoding="utf-8"))
        assert _rounded(summary) == _rounded(kept)
        html = (run / "report.html").read_text(encoding="utf-8")
        assert html.count("data:image/png;base64,") == len(list((run / "plots").glob("*.png"))) >= 2
    manifests = [json.loads((run / "manifest.json").read_text(encoding="utf-8")) for run in runs]
    executors = [m["executor"] for m in manifests]
    assert sorted(executors) == ["local", "local", "local", "ray", "ray"]
    for m in manifests:  # the Ray runs name each cell's node; the local runs name none
        assert all(bool(c["node"]) == (m["executor"] == "ray") for c in m["cells"])
    local, ray = executors.index("local"), executors.index("ray")
    res = CliRunner().invoke(main, ["compare", str(runs[local]), str(runs[ray])])
    assert res.exit_code == 0, res.output
    assert "## Task invoice" in res.output and "## Task product" in res.output
    assert "Only in run" not in res.output


def _chromium() -> Path:
    found = find_chromium()
    if found is None:
        # CI installs Chromium (.ci/run): there a missing browser is a broken set-up, not a skip.
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Chromium is installed (.ci/run installs it with apt)")
        pytest.skip("no Chromium on PATH")
    return found


def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    run = _copy(GPU_RUN, tmp_path / "gpu")
    _report(run)
    view = inspect_page(chromium, run / "report.html")
    assert report_problems(run, view) == []
    assert len(view.images) >= 7 and len(view.tables) >= 10  # the probe saw the page, not a blank one


def _broken(run: Path, name: str, old: str, new: str) -> Path:
    """A copy of ``run``'s report.html with the first ``old`` replaced by ``new``."""
    html = (run / "report.html").read_text(encoding="utf-8")
    assert old in html, old
    page = run / name
    page.write_text(html.replace(old, new, 1), encoding="utf-8")
    return page


def test_browser_check_catches_a_broken_report(tmp_path: Path) -> None:
    chromium = _chromium()
    run = _copy(GPU_RUN, tmp_path / "gpu")
    _report(run)
    html = (run / "report.html").read_text(encoding="utf-8")
    first_png = re.search(r'<img src="data:image/png;base64,([^"]{40})', html)
    assert first_png
    table = re.search(r"<h3>Task invoice</h3>\n<div class=\"tw\"><table>.*?</table></div>", html, re.S)
    assert table
    # The req/s of the first cell (the fourth column, after engine, load and OK/Fail), tripled.
    cell = json.loads((run / "summary.json").read_text(encoding="utf-8"))["cells"][0]
    label = re.escape(f"<tr><td>{cell['engine']}</td><td>{cell['load']['label']}")
    row = re.search(label + r'[^<]*</td>(?:<td class="r">[^<]*</td>)<td class="r">([^<]*)</td>', html)
    assert row
    wrong = row.group(0).replace(f">{row.group(1)}<", f">{3 * cell['request_throughput']:.2f}<")
    # The headline's output tok/s of its first engine, tripled.
    first_engine = re.search(r"<tr><th>Figure</th><th>([^<]*)</th>", html)
    tok_s = re.search(r'<tr><td>output tok/s</td><td class="r">(?:<b class="win">)?(?:★ )?([\d,.]+)', html)
    assert first_engine and tok_s
    tripled = tok_s.group(0).replace(tok_s.group(1), f"{3 * float(tok_s.group(1).replace(',', '')):.0f}")
    pages = {
        # Corrupt PNG data: the image fails to decode.
        "corrupt_plot.html": (first_png.group(1), "A" * 40),
        # A plot dropped from the page.
        "no_plot.html": ('<img src="data:image/png;base64,', '<span hidden="data:image/png;base64,'),
        # A task table dropped.
        "no_table.html": (table.group(0), ""),
        # A figure that does not match summary.json.
        "wrong_number.html": (row.group(0), wrong),
        # A headline figure that does not match summary.json.
        "wrong_headline.html": (tok_s.group(0), tripled),
        # The headline dropped.
        "no_headline.html": ("<h2>Headline: engines side by side</h2>", "<h2>Headline</h2>"),
        # A script error.
        "console_error.html": ("</body>", "<script>console.error('boom')</script></body>"),
    }
    want = {
        "corrupt_plot.html": "not shown at its size",
        "no_plot.html": "plots written",
        "no_table.html": "table 'Task invoice' missing",
        "wrong_number.html": f"{cell['cell_id']}: req/s shows",
        "console_error.html": "console: boom",
        "no_headline.html": "table 'Headline: engines side by side' missing",
        "wrong_headline.html": f"headline: {first_engine.group(1)} output tok/s shows",
    }
    for name, (old, new) in pages.items():
        view = inspect_page(chromium, _broken(run, name, old, new))
        problems = report_problems(run, view)
        assert any(want[name] in p for p in problems), (name, problems)
