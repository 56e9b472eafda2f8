"""suites/h200_coverage.yaml and its tasks: valid over a written sample, and plain when it is missing.

The suite's schemas are a local sample of JSONSchemaBench (benchmarks/jsb_sample.py), never
committed, at .gpu/jsb of the repository root. The suite and task files are copied into a
scratch project here, so the test sees neither this checkout's .gpu/ nor its absence.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from jsb_sample import SampleOptions, sample_folder  # noqa: E402

from structbench.cli import main  # noqa: E402
from structbench.spec.engines import SglangEngineSpec, VllmEngineSpec  # noqa: E402
from structbench.spec.loader import load_suite  # noqa: E402
from structbench.spec.tasks import SchemaCorpusTaskSpec  # noqa: E402

SUBSETS: tuple[str, ...] = ("Glaiveai2K", "Github_trivial", "Github_easy", "Github_medium", "Github_hard")
SUBSETS += ("Github_ultra", "Snowplow", "Kubernetes", "WashingtonPost", "JsonSchemaStore")


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "suites").mkdir(parents=True)
    (proj / "tasks" / "coverage").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("")
    shutil.copy(ROOT / "suites" / "h200_coverage.yaml", proj / "suites")
    for name in ("jsb_h200.yaml", "jsb_h200_free.yaml"):
        shutil.copy(ROOT / "tasks" / "coverage" / name, proj / "tasks" / "coverage")
    return proj


def _sample(tmp_path: Path, proj: Path, per_subset: int) -> None:
    for subset in SUBSETS:
        for i in range(per_subset):
            path = tmp_path / "src" / "data" / subset / f"{subset.lower()}{i}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"type": "object", "title": f"{subset} {i}"}))
    sample_folder(SampleOptions(tmp_path / "src", proj / ".gpu" / "jsb", per_subset=per_subset))


def test_suite_over_a_sample(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    _sample(tmp_path, proj, per_subset=12)
    suite = load_suite(proj / "suites" / "h200_coverage.yaml")
    constrained, free = suite.tasks
    assert isinstance(constrained.spec, SchemaCorpusTaskSpec) and isinstance(free.spec, SchemaCorpusTaskSpec)
    assert constrained.spec.subsets == SUBSETS and free.spec.subsets == SUBSETS
    assert (constrained.spec.repeats, constrained.spec.invalid_schemas) == (2, "count")
    # The free twin pairs with the constrained task and sends fewer schemas per subset.
    assert (free.spec.mode, free.spec.pair) == ("free", constrained.spec.pair)
    assert len(constrained.rows) == 120 and len(free.rows) == 100
    engines = [e for e in suite.spec.engines if isinstance(e, VllmEngineSpec | SglangEngineSpec)]
    backends = {(e.kind, e.grammar_backend) for e in engines}
    assert len(engines) == len(suite.spec.engines) == 6
    assert backends == {
        ("vllm", "xgrammar"), ("vllm", "guidance"), ("vllm", "outlines"),
        ("sglang", "xgrammar"), ("sglang", "llguidance"), ("sglang", "outlines"),
    }  # fmt: skip
    for e in engines:
        assert e.launch is not None  # each one launched by structbench, alone on the GPU
        if isinstance(e, VllmEngineSpec):
            assert "--enforce-eager" in e.launch.args  # no torch.compile start on scarce GPU time
        else:
            assert e.mode == "generate"


def test_missing_sample_is_one_located_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _project(tmp_path)
    monkeypatch.chdir(proj)
    with pytest.raises(SystemExit) as exit_:
        main(["validate", "suites/h200_coverage.yaml"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(
        r" tasks/coverage/jsb_h200.yaml:\d+:\d+: subsets_dir: no such folder: .gpu/jsb/data$", err
    )
