"""``--save-result`` files: vLLM's field names and units, and the summary's own values.

An ad-hoc run (flags, no suite file) on a scripted streaming engine whose calls differ in
latency and length, with one failed call, so that every figure is distinct from its
neighbours and a swapped or mis-scaled field shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import structbench.run as run_mod
from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan
from structbench.engines.registry import EngineEnv
from structbench.ir import Gen
from structbench.report.vllm_result import RESULT_FILE, VllmResultOptions, write_vllm_results
from structbench.spec.adhoc import EndpointFlags, LoadFlags, RunFlags
from structbench.spec.engines import EngineSpec

ROOT = Path(__file__).resolve().parents[2]

#: The keys of a ``vllm bench serve --save-result`` file (vllm/benchmarks/serve.py), with
#: ``--percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99``.
VLLM_KEYS = {
    *("date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts"),
    *("request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed"),
    *("total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput"),
    *("output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls"),
    *("start_times", "generated_texts", "errors"),
    *(
        f"{s}_{m}_ms"
        for m in ("ttft", "tpot", "itl", "e2el")
        for s in ("mean", "median", "std", "p50", "p99")
    ),
}


@dataclass
class StreamingFake:
    """Call k: first token after 10+3k ms, then 2+k tokens 4+k ms apart; call 3 fails."""

    name: str
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(frozenset({"json_schema"})))
    max_concurrency: int | None = None
    calls: int = 0

    def plan(self, gen: Gen) -> Plan:
        return Plan("fake")

    def render(self, call: Call) -> str:
        return ""

    async def start(self) -> EngineInfo:
        return EngineInfo(self.name, "vllm", "fake-model", "0-fake", "http://fake:1", ())

    async def close(self) -> None:
        return None

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        k, t = self.calls, clock()
        self.calls += 1
        if k == 3:
            return CallMeasure(t_sent=t, t_done=t + 0.005, error="HTTP 500: boom")
        first = t + (10 + 3 * k) / 1000
        times = tuple(first + (i + 1) * (4 + k) / 1000 for i in range(2 + k))
        text = '{"a": 1}'
        return CallMeasure(t_sent=t, t_first_token=first, t_done=times[-1], token_times=times,
                           prompt_tokens=20 + k, completion_tokens=3 + k, text=text)  # fmt: skip


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def create(spec: EngineSpec, env: EngineEnv) -> StreamingFake:
        return StreamingFake(spec.name)

    monkeypatch.setattr(run_mod, "create_engine", create)
    monkeypatch.setattr(run_mod, "check_reachable", lambda name, url: None)
    flags = RunFlags(
        endpoint=EndpointFlags(engines=("vllm",), base_url="http://fake:1", model="fake-model"),
        tasks=(ROOT / "tasks" / "json" / "invoice.yaml",),
        load=LoadFlags(concurrency=(1,), warmup=0),
    )
    opts = run_mod.RunOptions(None, tmp_path / "results", num_requests=6, progress=False, flags=flags)
    out = run_mod.run_suite(opts)
    write_vllm_results(out.run_dir, out.summary, VllmResultOptions((50.0, 99.0)))
    return out.run_dir


def test_saved_result_has_vllms_fields_and_the_summarys_values(run_dir: Path) -> None:
    (cell,) = json.loads((run_dir / "summary.json").read_text())["cells"]
    saved = json.loads((run_dir / "cells" / cell["cell_id"] / RESULT_FILE).read_text())
    assert set(saved) >= VLLM_KEYS, VLLM_KEYS - set(saved)
    for key in ("completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput"):
        assert saved[key] == cell[key], key
    assert saved["duration"] == cell["duration_s"]
    assert saved["output_throughput"] == cell["output_throughput"]
    assert saved["total_token_throughput"] == cell["total_token_throughput"]
    for m in ("ttft", "tpot", "itl", "e2el"):
        for s in ("mean", "median", "std", "p99"):
            assert saved[f"{s}_{m}_ms"] == pytest.approx(cell[f"{s}_{m}_ms"], rel=1e-12), (s, m)
    assert (saved["completed"], saved["failed"], saved["num_prompts"]) == (5, 1, 6)
    assert (saved["backend"], saved["model_id"], saved["max_concurrency"]) == ("vllm", "fake-model", 1)


def test_per_request_arrays_are_in_vllms_units(run_dir: Path) -> None:
    """Recomputed from the arrays as vLLM does (seconds, ok requests only), they give the ms figures."""
    (path,) = run_dir.glob(f"cells/*/{RESULT_FILE}")
    saved = json.loads(path.read_text())
    ok = [e == "" for e in saved["errors"]]
    assert len(saved["ttfts"]) == len(saved["itls"]) == len(saved["generated_texts"]) == 6
    assert ok.count(False) == 1 and "boom" in saved["errors"][ok.index(False)]
    assert saved["output_lens"][ok.index(False)] == 0
    ttfts = [x for x, good in zip(saved["ttfts"], ok, strict=True) if good]
    itls = [x for row in saved["itls"] for x in row]
    assert np.mean(ttfts) * 1000 == pytest.approx(saved["mean_ttft_ms"])
    assert np.percentile(itls, 50) * 1000 == pytest.approx(saved["p50_itl_ms"])
    assert sum(saved["output_lens"]) == saved["total_output_tokens"]
    assert sorted(set(saved["output_lens"]) - {0}) == [3, 4, 5, 7, 8]


def test_an_adhoc_run_is_refused_by_resume_in_one_line(run_dir: Path) -> None:
    from structbench.errors import UserError
    from structbench.resume import resume_run

    with pytest.raises(UserError, match="command-line flags"):
        resume_run(run_dir, progress=False)


def test_report_rebuilds_the_saved_results_with_other_percentiles(run_dir: Path) -> None:
    from click.testing import CliRunner

    from structbench.cli import main

    args = [
        "report",
        str(run_dir),
        "--save-result",
        "--metric-percentiles",
        "90,99.9",
        "--percentile-metrics",
        "ttft",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    (path,) = run_dir.glob(f"cells/*/{RESULT_FILE}")
    saved = json.loads(path.read_text())
    assert {"p90_ttft_ms", "p99.9_ttft_ms", "mean_ttft_ms"} <= set(saved)
    assert "p99_ttft_ms" not in saved and "mean_itl_ms" not in saved
    assert f"wrote {path}" in res.output


def test_a_suite_run_with_overriding_flags_is_refused_by_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structbench.errors import UserError
    from structbench.resume import resume_run

    monkeypatch.setattr(run_mod, "create_engine", lambda spec, env: StreamingFake(spec.name))
    monkeypatch.setattr(run_mod, "check_reachable", lambda name, url: None)
    monkeypatch.setenv("STRUCTBENCH_ALLOW_OUTSIDE_PATHS", "1")
    suite = tmp_path / "suite.yaml"
    engines = [{"kind": "vllm", "url": "http://fake:1"}]
    suite.write_text(
        json.dumps({"name": "s", "tasks": [str(ROOT / "tasks/json/invoice.yaml")], "engines": engines})
    )
    flags = RunFlags(load=LoadFlags(concurrency=(1,), warmup=0))
    opts = run_mod.RunOptions(suite, tmp_path / "results", num_requests=1, progress=False, flags=flags)
    run_dir = run_mod.run_suite(opts).run_dir
    with pytest.raises(UserError, match="flags overrode"):
        resume_run(run_dir, progress=False)
