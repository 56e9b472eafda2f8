"""The typed run folder: round trips, version 1 migration, committed runs, one-line errors."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from structbench.engines.base import EngineInfo
from structbench.errors import UserError
from structbench.load.arrivals import LoadPoint
from structbench.runfolder import (
    CellEntry,
    CellFile,
    EngineFacts,
    GpuFacts,
    HardwareFacts,
    IdealFacts,
    LoadFacts,
    ManifestLog,
    MemoryFacts,
    ModelFacts,
    ResumedCell,
    ResumeEntry,
    RunManifest,
    TaskFacts,
)
from structbench.runfolder.facts import engine_facts
from structbench.runfolder.v1 import label_cache_arm
from structbench.spec.engines import OpenAIEngineSpec, SglangEngineSpec, VllmEngineSpec

RESULTS = Path(__file__).resolve().parents[1] / "results"
# The run folders written as version 1 (the migration's); later ones are version 2 from the start.
COMMITTED = sorted(
    p.parent
    for p in RESULTS.glob("**/manifest.json")
    if json.loads(p.read_text(encoding="utf-8"))["schema_version"] == 1
)
GPU_RUN = RESULTS / "gpu" / "gpu" / "20261128T160753Z_b93a04"
C8 = LoadPoint("concurrency", 8, max_concurrency=8)


def _manifest() -> RunManifest:
    facts = ModelFacts(source="/m/config.json", params=135, read_params=100, bytes_per_param=2, layers=30)
    engine = EngineFacts(
        name="vllm",
        kind="vllm",
        model="/m",
        extra={"cache": "off"},
        cache_block_size=16,
        cache_arm="off",
        cache_pair="vllm /m",
        model_paths=("/m",),
        served_model=facts,
    )
    return RunManifest(
        run_id="r1",
        suite="demo",
        seed=3,
        git_sha="a" * 40,
        git_dirty=True,
        hardware=HardwareFacts(platform="Linux", cpu_count=2, gpus=(GpuFacts(index=0, name="NVIDIA H200"),)),
        engines={"vllm": engine},
        tasks={"t": TaskFacts(kind="json", scorers=("json_parse",), canary=True)},
        cells=(
            CellEntry(cell_id="vllm.t.c8", engine="vllm", task="t", load=LoadFacts.of(C8), cache_arm="off"),
        ),
        spec={"suite": {"engines": [{"name": "vllm", "api_key_env": "KEY"}]}},
        resumes=(ResumeEntry(utc="now", cells={"vllm.t.c8": ResumedCell(attempt=2, items=1)}),),
    )


def test_manifest_round_trip(tmp_path: Path) -> None:
    m = _manifest()
    m.write(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["schema_version"] == 2
    back = RunManifest.read(tmp_path)
    assert back == m
    assert back.cells[0].load.point() == C8 and back.cells[0].load.rate == math.inf
    assert not list(tmp_path.glob("*.tmp"))  # written through a temp file and renamed


def test_cell_file_round_trip(tmp_path: Path) -> None:
    memory = MemoryFacts(
        gpu_available=True, n_samples=2, samples=((0.0, (2**20, 2**20), 5), (0.1, (2**21, 0), 5))
    )
    ideal = IdealFacts(
        prompts=4,
        prompt_tokens=400,
        covered_tokens=300,
        block_size=16,
        covered_block_tokens=288,
        tokenizer="t",
    )
    cell = CellFile(
        cell_id="vllm.t.c8",
        engine="vllm",
        task="t",
        load=LoadFacts.of(C8),
        cache_arm="on",
        cache_pair="vllm /m",
        status="partial",
        attempt=2,
        warmup_items=1,
        metrics_before={"prefix_cache_hits": 1.0},
        memory=memory,
        ideal=ideal,
        cache_block_size=16,
    )
    path = tmp_path / "cell.json"
    cell.write(path)
    assert CellFile.read(path) == cell
    assert memory.peak_gpu_mb() == 2.0  # the peak of the per-sample sums


def test_manifest_updates_return_new_models(tmp_path: Path) -> None:
    m = _manifest()
    started = m.with_engine(m.engines["vllm"].model_copy(update={"cache_pair": "other"}))
    assert started.cells[0].cache_pair == "other" and m.cells[0].cache_pair is None
    done = started.with_status("partial", failed=("vllm.t.c8",))
    assert (done.status, done.failed_cells, done.error) == ("partial", ("vllm.t.c8",), None)
    resumed = done.with_resume(ResumeEntry(utc="later"))
    assert resumed.status == "running" and len(resumed.resumes) == 2
    log = ManifestLog(tmp_path, m)
    log.save(resumed)
    assert RunManifest.read(tmp_path) == resumed == log.manifest
    unlisted = m.unlisted_cell("vllm.t.c9", "vllm", "t")
    assert (unlisted.load.mode, unlisted.cache_arm, unlisted.cache_pair) == ("offline", "off", "vllm /m")


def test_engine_facts_take_the_arm_from_the_spec() -> None:
    info = EngineInfo(
        "v-off", "vllm", "/m", extra=(("cache", "off"), ("root", "/srv/m")), cache_block_size=16
    )
    spec = VllmEngineSpec(name="v-off", url="http://h:1", cache="off", api="completions")
    f = engine_facts(info, spec)
    assert (f.cache_arm, f.cache_pair, f.cache_block_size, f.api) == ("off", "vllm /m", 16, "completions")
    assert f.model_paths == ("/m", "/srv/m")
    sg = engine_facts(
        EngineInfo("s", "sglang", "/m", extra=(("mode", "generate"),)), SglangEngineSpec(name="s")
    )
    assert (sg.cache_arm, sg.cache_pair) == ("on", "sglang /m generate")
    plain = engine_facts(EngineInfo("o", "openai", "m"), OpenAIEngineSpec(name="o", url="http://h:1"))
    assert (plain.cache_arm, plain.cache_pair) == (None, None)


def test_label_cache_arm_rule_of_version_1() -> None:
    assert label_cache_arm("c4", {"cache": "off"}) == "off"
    assert label_cache_arm("c4", {"prefix_caching": "true"}) == "on"
    assert label_cache_arm("c4-cache=on", {}) == "on"
    assert label_cache_arm("c4_cache-off", {}) == "off"
    assert label_cache_arm("nocache-c4", {}) == "off"
    assert label_cache_arm("c4", {}) is None
    assert label_cache_arm("cachedc4", {}) is None


@pytest.mark.parametrize("run_dir", COMMITTED, ids=lambda p: p.parent.name)
def test_every_committed_v1_run_folder_reads(run_dir: Path) -> None:
    raw = json.loads((run_dir / "manifest.json").read_text())
    m = RunManifest.read(run_dir)
    assert raw["schema_version"] == 1 and m.migrated_from == 1
    assert [c.cell_id for c in m.cells] == [c["cell_id"] for c in raw["cells"]]
    assert m.git_sha == ("unknown" if raw["git_sha"] == "HEAD" else raw["git_sha"])
    for c in m.cells:
        cell = CellFile.read(run_dir / "cells" / c.cell_id / "cell.json")
        assert (cell.cell_id, cell.status, cell.warmup_items) == (c.cell_id, "complete", None)
        assert cell.load.point().label == c.load.label == c.cell_id.rsplit(".", 1)[1]
        assert cell.metrics_before is None or all(isinstance(v, float) for v in cell.metrics_before.values())


def test_committed_gpu_run_migrates_cache_arms_and_pairs() -> None:
    m = RunManifest.read(GPU_RUN)
    arms = {c.engine: (c.cache_arm, c.cache_pair) for c in m.cells}
    assert arms["vllm"] == ("on", "vllm /tmp/payload/smollm2") and arms["vllm-nocache"][1] == arms["vllm"][1]
    assert arms["vllm-nocache"][0] == "off" and arms["sglang-nocache"][0] == "off"
    # A "program" SGLang engine is no arm of the "generate" comparison.
    assert arms["sglang-generate"][1] == arms["sglang-nocache"][1] != arms["sglang"][1]
    assert m.engines["vllm"].model_paths == ("/tmp/payload/smollm2",)
    assert m.hardware.gpus[0].name == "NVIDIA H200" and m.engines["vllm"].served_model is None


def test_resumed_v1_folder_is_rewritten_as_v2(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(GPU_RUN / "manifest.json", run / "manifest.json")
    m = RunManifest.read(run)
    m.with_status("complete").write(run)
    again = RunManifest.read(run)
    assert json.loads((run / "manifest.json").read_text())["schema_version"] == 2
    assert again.migrated_from == 1 and again.cells == m.cells and again.spec == m.spec


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "is not a structbench run folder (no manifest.json)"),
        ("{torn", "manifest.json: not valid JSON"),
        ("[1, 2]", "manifest.json: expected a JSON object, got list"),
        ('{"schema_version": 3}', "manifest.json: schema_version 3 is not one this structbench reads"),
        ('{"schema_version": 2, "run_id": "r"}', "manifest.json: suite: Field required"),
        ('{"schema_version": 2, "run_id": "r", "suite": "s", "seed": "x"}', "manifest.json: seed:"),
    ],
)
def test_bad_manifest_is_one_line_user_error(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(UserError, match=re.escape(message)) as err:
        RunManifest.read(tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_bad_cell_file_is_one_line_user_error(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    with pytest.raises(UserError, match="no such cell file"):
        CellFile.read(path)
    path.write_text('{"schema_version": 2, "cell_id": "c", "engine": "e", "task": "t", "status": "done"}')
    with pytest.raises(UserError, match=r"cell.json: load: Field required \(and 1 more\)") as err:
        CellFile.read(path)
    assert "\n" not in str(err.value)


def test_v1_reader_defaults_like_the_old_reader(tmp_path: Path) -> None:
    run = tmp_path / "suite" / "r7"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(
        json.dumps({"engines": {"e": {"kind": "embedded", "extra": {"n": 3}}}, "options": {"bootstrap": 0}})
    )
    m = RunManifest.read(run)
    assert (m.run_id, m.suite, m.status, m.seed, m.git_sha) == ("r7", "suite", "unknown", 0, "unknown")
    assert m.options.bootstrap == 1000 and m.options.schema_timeout_s == 2.0
    assert m.engines["e"].extra == {"n": "3"}
    (run / "cell.json").write_text(json.dumps({"status": "weird", "load": {"label": "c2-nocache"}}))
    cell = CellFile.read(run / "cell.json")
    assert (cell.cell_id, cell.status, cell.cache_arm, cell.load.mode) == ("r7", "unknown", "off", "offline")


def test_engine_facts_hold_no_secrets() -> None:
    server_info = json.dumps({"api_key": "sk-live-123", "admin_api_key": None, "port": 30000})
    extra = (("server_info", server_info), ("hf_token", "hf_abc"), ("mode", "generate"))
    info = EngineInfo("s", "sglang", "/m", url="http://user:pw@host:8000", extra=extra)
    f = engine_facts(info, SglangEngineSpec(name="s"))
    text = f.model_dump_json()
    assert "sk-live-123" not in text and "hf_abc" not in text and "pw@" not in text
    assert json.loads(f.extra["server_info"]) == {
        "api_key": "<redacted>",
        "admin_api_key": None,
        "port": 30000,
    }
    assert f.url == "http://<redacted>@host:8000" and f.extra["mode"] == "generate"
