"""``structbench report`` and ``compare`` on the committed GPU sample runs (results/gpu, results/h200)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from structbench.cli import main
from structbench.records import open_text

RESULTS = Path(__file__).resolve().parents[2] / "results"
GPU_RUN = next(iter(sorted((RESULTS / "gpu" / "gpu").glob("*_*"))), None)
H200_RUN = next(iter(sorted((RESULTS / "h200" / "h200").glob("*_*"))), None)
DERIVED = ("summary.json", "report.md", "report.html", "scores.jsonl")
CHROMIUM = Path("/usr/bin/chromium")


def _copy(run: Path | None, dest: Path) -> Path:
    if run is None:
        pytest.skip("committed sample run not found")
    out = shutil.copytree(run, dest)
    for name in DERIVED:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "plots", ignore_errors=True)
    return out


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
def test_report_and_compare_h200_run(tmp_path: Path) -> None:
    run = _copy(H200_RUN, tmp_path / "h200")
    _report(run)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert {c["cell_id"] for c in summary["cells"]} == {
        "vllm.random_512.c16",
        "vllm.random_512.c64",
        "sglang.random_512.c16",
        "sglang.random_512.c64",
    }
    html = (run / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(list((run / "plots").glob("*.png"))) >= 2
    gpu = _copy(GPU_RUN, tmp_path / "gpu")
    res = CliRunner().invoke(main, ["compare", str(gpu), str(run)])
    assert res.exit_code == 0, res.output
    assert "## Task random_512" in res.output and "(missing)" in res.output


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    run = _copy(GPU_RUN, tmp_path / "gpu")
    _report(run)
    png = tmp_path / "report.png"
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}",
         "--window-size=1400,3000", (run / "report.html").as_uri()],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    assert png.stat().st_size > 10_000
