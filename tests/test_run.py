"""run_suite end to end against a scripted fake engine: the run folder it writes (version 2)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import structbench.run as run_mod
from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan
from structbench.engines.registry import EngineEnv
from structbench.ir import Gen
from structbench.records import cell_records_path, read_records, run_records
from structbench.runfolder import CellFile, RunManifest
from structbench.spec.engines import EngineSpec

CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 100,
}


@dataclass
class FakeEngine:
    """Answers every call "positive" at once; reports its spec's cache setting like vLLM does."""

    name: str
    cache: str
    model: str
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(frozenset({"choice"})))
    max_concurrency: int | None = None

    def plan(self, gen: Gen) -> Plan:
        return Plan("fake")

    def render(self, call: Call) -> str:
        return ""

    async def start(self) -> EngineInfo:
        return EngineInfo(self.name, "vllm", self.model, "0-fake", "http://fake:1", (("cache", self.cache),))

    async def close(self) -> None:
        return None

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        t = clock()
        return CallMeasure(
            t_sent=t,
            t_first_token=t + 0.01,
            t_done=t + 0.02,
            prompt_tokens=8,
            completion_tokens=1,
            cached_tokens=0,
            text="positive",
        )


def _suite(folder: Path, model: Path) -> Path:
    rows = [{"q": f"question {j}", "label": "positive"} for j in range(3)]
    task = {
        "name": "pick",
        "kind": "choice",
        "dataset": {"rows": rows},
        "choices": ["positive", "negative"],
        "prompt": "Q: {{ q }}",
        "max_tokens": 4,
        "reference": "{{ label }}",
        "scorers": ["choice_valid", "exact_match"],
    }
    (folder / "pick.yaml").write_text(json.dumps(task))
    launch = {"model": str(model)}
    engines = [
        {"kind": "vllm", "name": "v", "launch": launch},
        {"kind": "vllm", "name": "v-nocache", "launch": launch, "cache": "off"},
    ]
    load = {"mode": "concurrency", "concurrency": [2], "num_requests": 3, "warmup": 1}
    suite = {"name": "fake", "tasks": ["pick.yaml"], "engines": engines, "load": load, "bootstrap": 50}
    (folder / "suite.yaml").write_text(json.dumps(suite))
    return folder / "suite.yaml"


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))

    def create(spec: EngineSpec, env: EngineEnv) -> FakeEngine:
        return FakeEngine(spec.name, str(spec.model_dump()["cache"]), str(model))

    monkeypatch.setattr(run_mod, "create_engine", create)
    opts = run_mod.RunOptions(_suite(tmp_path, model), tmp_path / "results", progress=False)
    return run_mod.run_suite(opts).run_dir


def test_manifest_records_arms_pairs_and_model_facts(run_dir: Path) -> None:
    m = RunManifest.read(run_dir)
    assert json.loads((run_dir / "manifest.json").read_text())["schema_version"] == 2
    assert (m.status, m.migrated_from, m.failed_cells) == ("complete", None, ())
    assert {c.cell_id: c.cache_arm for c in m.cells} == {"v.pick.c2": "on", "v-nocache.pick.c2": "off"}
    assert {c.cache_pair for c in m.cells} == {f"vllm {run_dir.parents[2] / 'model'}"}
    facts = m.engines["v-nocache"].served_model
    assert facts is not None and (facts.layers, facts.hidden_size, facts.kv_heads) == (2, 64, 4)
    assert m.suite_path is not None and m.suite_path.endswith("suite.yaml") and m.spec["path"] == "suite.yaml"


def test_warm_up_keeps_the_item_id_and_is_flagged(run_dir: Path) -> None:
    recs = [r for r in run_records(run_dir) if r.cell_id == "v.pick.c2"]
    warm = [r for r in recs if r.warmup]
    assert len(warm) == 1 and "~" not in warm[0].item_id
    assert warm[0].item_id in {r.item_id for r in recs if not r.warmup}
    cell = CellFile.read(run_dir / "cells" / "v.pick.c2" / "cell.json")
    assert (cell.status, cell.warmup_items, cell.cache_arm, cell.n_items) == ("complete", 1, "on", 4)
    summary = json.loads((run_dir / "summary.json").read_text())
    got = {c["cell_id"]: (c["completed"], c["warmup_calls"], c["cache_arm"]) for c in summary["cells"]}
    assert got == {"v.pick.c2": (3, 1, "on"), "v-nocache.pick.c2": (3, 1, "off")}
    assert "Prefix-cache benefit" in (run_dir / "report.md").read_text()


def test_each_cell_writes_its_own_records_and_the_run_none(run_dir: Path) -> None:
    assert not (run_dir / "requests.jsonl").exists()
    m = RunManifest.read(run_dir)
    for c in m.cells:
        recs = list(read_records(cell_records_path(run_dir, c.cell_id)))
        assert {r.cell_id for r in recs} == {c.cell_id}
        assert len(recs) == CellFile.read(run_dir / "cells" / c.cell_id / "cell.json").n_records == 4
    # The one reader yields them cell by cell, in the manifest's order.
    cells = [r.cell_id for r in run_records(run_dir, [c.cell_id for c in m.cells])]
    assert cells == ["v.pick.c2"] * 4 + ["v-nocache.pick.c2"] * 4


def test_requests_per_concurrency_sizes_each_cell_from_one_item_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    monkeypatch.setattr(run_mod, "create_engine", lambda spec, env: FakeEngine(spec.name, "on", str(model)))
    path = _suite(tmp_path, model)
    suite = json.loads(path.read_text())
    suite["engines"] = suite["engines"][:1]
    # c1 sends max(2 * 1, 3) = 3 items, c4 sends 2 * 4 = 8 (the 3 rows cycled).
    suite["load"] = {"concurrency": [1, 4], "requests_per_concurrency": 2, "num_requests": 3, "warmup": 0}
    path.write_text(json.dumps(suite))
    run_dir = run_mod.run_suite(run_mod.RunOptions(path, tmp_path / "results", progress=False)).run_dir
    m = RunManifest.read(run_dir)
    assert {c.cell_id: c.items for c in m.cells} == {"v.pick.c1": 3, "v.pick.c4": 8}
    sent = {
        c.cell_id: [r.item_id for r in read_records(cell_records_path(run_dir, c.cell_id))] for c in m.cells
    }
    assert (len(sent["v.pick.c1"]), len(set(sent["v.pick.c4"]))) == (3, 8)
    # The smaller cell sends the first items of the bigger one's list: the cells share prompts.
    assert set(sent["v.pick.c1"]) < set(sent["v.pick.c4"])
    # A resume redoes a cell with the count it was planned with, not the whole item list.
    from structbench.resume import plan_resume
    from structbench.spec.loader import load_suite

    (run_dir / "cells" / "v.pick.c1" / "cell.json").unlink()
    cell_records_path(run_dir, "v.pick.c1").write_text("")
    plan = plan_resume(run_dir, m, load_suite(path))
    assert [(w.cell.cell_id, len(w.items)) for w in plan.work] == [("v.pick.c1", 3)]


def test_requests_per_concurrency_needs_a_closed_loop() -> None:
    from structbench.spec.suite import LoadSpec

    with pytest.raises(ValueError, match="requests_per_concurrency needs mode: concurrency"):
        LoadSpec(mode="rate", requests_per_concurrency=4)
    spec = LoadSpec(concurrency=(1, 16, 256), requests_per_concurrency=4, num_requests=32)
    assert [spec.items_for(c) for c in (1, 16, 256)] == [32, 64, 1024]
    assert spec.items_to_plan() == 1024 and LoadSpec(num_requests=5).items_to_plan() == 5


def test_too_few_items_for_the_workers_warns_and_reports_what_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A c8 cell over 3 items: a warning before the run, the folder printed first, ``3 of 8`` after."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))

    class SlowEngine(FakeEngine):
        async def generate(self, call: Call, clock: Clock) -> CallMeasure:
            t = clock()
            await asyncio.sleep(0.05)  # long enough for every item to be in flight at once
            done = clock()
            return CallMeasure(t_sent=t, t_first_token=t, t_done=done, completion_tokens=1, text="positive")

    monkeypatch.setattr(run_mod, "create_engine", lambda spec, env: SlowEngine(spec.name, "on", str(model)))
    suite = _suite(tmp_path, model)
    data = json.loads(suite.read_text())
    data["load"] = {"mode": "concurrency", "concurrency": [2, 8], "num_requests": 3}
    data["engines"] = data["engines"][:1]
    suite.write_text(json.dumps(data))
    notices: list[str] = []
    opts = run_mod.RunOptions(
        suite,
        tmp_path / "results",
        progress=False,
        on_run_dir=lambda d: notices.append(f"results: {d}"),
        warn=notices.append,
    )
    out = run_mod.run_suite(opts)
    assert notices == [
        "task 'pick' has 3 items, fewer than the workers of c8: at most 3 will be in flight there "
        "(give more items with -n, or a lower concurrency)",
        f"results: {out.run_dir}",
    ]
    cells = {c["cell_id"]: c for c in json.loads((out.run_dir / "summary.json").read_text())["cells"]}
    assert cells["v.pick.c2"]["max_in_flight"] == 2 and cells["v.pick.c8"]["max_in_flight"] == 3
    md = (out.run_dir / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Engine | Load |"))
    assert "| max in flight |" in header
    assert "| v | c8 · cache on | 3 of 8 |" in md and "| v | c2 · cache on |  |" in md
