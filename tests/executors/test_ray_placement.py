"""Multi-GPU cells in STRICT_PACK placement groups, fit checks, the group timeout (``--executor ray``).

The cluster has fake GPUs (``ray_gpu_cluster``: a 2-GPU head and a 1-GPU worker); the cells'
"vLLM" servers are the fake OpenAI server under a launcher script that also writes down what
the server was given: its CUDA_VISIBLE_DEVICES and its command line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeServer
from fault_suites import REAL_PYTHON_FOR_C, cell_status, openai_engine, write_suite
from pydantic import ValidationError

from structbench.cells import Executor
from structbench.executors import ray_placement
from structbench.executors.ray_placement import Bundle, Groups, group_name, misfit
from structbench.records import cell_records_path, read_records
from structbench.resume import resume_run
from structbench.run import RunOptions, run_suite
from structbench.runfolder import CellFile, RunManifest
from structbench.spec.engines import LaunchSpec, VllmEngineSpec

RAY = Executor("ray")
FAULTS = Path(__file__).resolve().parents[1] / "faults"


def _node(cpu: float, gpu: float, alive: bool = True) -> dict[str, Any]:
    return {"Alive": alive, "Resources": {"CPU": cpu, "GPU": gpu, "memory": 1e9}}


def test_misfit_needs_one_node_that_holds_the_whole_bundle() -> None:
    nodes = [_node(2, 2), _node(1, 1), _node(8, 8, alive=False)]
    assert misfit(Bundle(1, 2), nodes) is None
    assert misfit(Bundle(1, 0.5), nodes) is None
    # 3 GPUs in the cluster, but never on one node (the dead one does not count).
    assert (
        misfit(Bundle(1, 3), nodes)
        == "no Ray node can hold {CPU: 1, GPU: 3} (the largest has CPU: 2, GPU: 2)"
    )
    assert misfit(Bundle(3, 0), nodes) is not None
    assert misfit(Bundle(1, 0), []) == "the Ray cluster has no alive node"


def test_only_cells_with_more_than_one_gpu_need_a_group() -> None:
    def bundle(gpus: float) -> Bundle:
        return Bundle.of(VllmEngineSpec(launch=LaunchSpec(model="m", num_gpus=gpus)))

    assert [bundle(g).needs_group for g in (0, 0.5, 1, 2)] == [False, False, False, True]
    assert bundle(2).resources() == {"CPU": 1.0, "GPU": 2.0}
    assert bundle(0).resources() == {"CPU": 1.0}  # a bundle may not hold a zero


def test_fractional_gpus_above_one_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match=r"num_gpus: 1\.5: use a fraction up to 1 or a whole number"):
        LaunchSpec(model="m", num_gpus=1.5)
    assert LaunchSpec(model="m", num_gpus=4).placement_timeout_s == 600.0


class _FakeGroup:
    def ready(self) -> str:
        return "ready-ref"


class _FakeUtil:
    def __init__(self) -> None:
        self.removed: list[_FakeGroup] = []

    def placement_group(self, bundles: list[dict[str, float]], strategy: str, name: str) -> _FakeGroup:
        assert (bundles, strategy) == ([{"CPU": 1.0, "GPU": 2.0}], "STRICT_PACK")
        return _FakeGroup()

    def remove_placement_group(self, pg: _FakeGroup) -> None:
        self.removed.append(pg)


class _FakeRay:
    def __init__(self) -> None:
        self.util = _FakeUtil()


def test_the_group_timeout_counts_only_while_no_other_cell_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(ray_placement.time, "monotonic", lambda: now[0])
    ray = _FakeRay()
    groups = Groups(ray, "run")
    groups.create("c", Bundle(1, 2), timeout_s=10)
    assert groups.pending() == {"ready-ref": "c"}
    now[0] += 60  # a minute behind this run's own cells: they will free the GPUs, no timeout
    assert groups.expired(others_running=True) == []
    now[0] += 9
    assert groups.expired(others_running=False) == []
    now[0] += 1
    ((cell_id, reason),) = groups.expired(others_running=False)
    assert cell_id == "c" and reason == (
        "cell c: its placement group {CPU: 1, GPU: 2} (STRICT_PACK) was not ready after 10 s "
        "(launch.placement_timeout_s)"
    )
    assert len(ray.util.removed) == 1 and groups.pending() == {}


def _launcher(folder: Path) -> tuple[Path, Path]:
    """A ``launch.python`` serving the fake server that first writes down its GPUs and argv."""
    seen = folder / "launched.jsonl"
    script = folder / "fake-vllm-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"{REAL_PYTHON_FOR_C}\n"
        f"sys.path.insert(0, {str(FAULTS)!r})\n"
        "run = {'gpus': os.environ.get('CUDA_VISIBLE_DEVICES'), 'argv': sys.argv[1:]}\n"
        f"with open({str(seen)!r}, 'a') as fh:\n"
        "    fh.write(json.dumps(run) + '\\n')\n"
        "import fake_openai\n"
        "fake_openai.main(sys.argv[1:])\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script, seen


def _vllm(name: str, python: Path, gpus: float, *args: str, **launch: object) -> dict[str, object]:
    spec = {"model": "fake", "python": str(python), "num_gpus": gpus, "args": list(args), **launch}
    return {"kind": "vllm", "name": name, "launch": spec, "request_timeout_s": 5}


def _groups_named(ray: Any, run_dir: Path, cell_id: str) -> list[dict[str, Any]]:
    table = ray.util.placement_group_table().values()
    return [g for g in table if g["name"] == group_name(run_dir.name, cell_id)]


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_two_gpu_cell_runs_in_a_strict_pack_group_and_one_no_node_fits_fails_alone(
    tmp_path: Path, ray_gpu_cluster: Any
) -> None:
    ray = ray_gpu_cluster
    python, seen = _launcher(tmp_path)
    engines = [
        _vllm("tp2", python, 2, "--tensor-parallel-size", "2"),
        _vllm("half", python, 0.5),
        _vllm("big", python, 3),  # the cluster has 3 GPUs, no node has
    ]
    with FakeServer() as srv:
        suite = write_suite(tmp_path, [*engines, openai_engine(srv.url)], n=2)
        out = run_suite(RunOptions(suite, tmp_path / "res", progress=False, executor=RAY))
    run_dir = out.run_dir
    assert out.failed_cells == ("big.pick0.c1",) and not out.interrupted
    for cell_id in ("tp2.pick0.c1", "half.pick0.c1", "fake.pick0.c1"):
        assert cell_status(run_dir, cell_id) == "complete", cell_id
    nodes = {c.cell_id: c.node or "" for c in RunManifest.read(run_dir).cells}

    # The 2-GPU cell ran in its own STRICT_PACK group, removed once the cell was over.
    (group,) = _groups_named(ray, run_dir, "tp2.pick0.c1")
    assert (group["strategy"], group["state"]) == ("STRICT_PACK", "REMOVED")
    assert group["bundles"] == {0: {"CPU": 1.0, "GPU": 2.0}}
    assert f"placement group {group['placement_group_id'][:12]}" in nodes["tp2.pick0.c1"]
    assert "GPUs 0,1" in nodes["tp2.pick0.c1"]
    # Its server saw the bundle's two GPUs and ran vLLM's own multiprocessing workers.
    runs = [json.loads(line) for line in seen.read_text().splitlines()]
    launched = [s for s in runs if s["argv"][:2] == ["-m", "vllm.entrypoints.openai.api_server"]]
    (tp2,) = [s for s in launched if "--tensor-parallel-size" in s["argv"]]
    assert tp2["gpus"] == "0,1"
    argv = tp2["argv"]
    assert argv[argv.index("--distributed-executor-backend") + 1] == "mp"
    # The fractional cell took the plain path: one GPU, no group.
    assert (
        _groups_named(ray, run_dir, "half.pick0.c1") == [] and "placement group" not in nodes["half.pick0.c1"]
    )
    (half,) = [s for s in launched if "--tensor-parallel-size" not in s["argv"]]
    assert half["gpus"] is not None and len(half["gpus"].split(",")) == 1

    # The cell no node can hold: error records naming it and its resources, nothing launched.
    reason = (
        "error: cell big.pick0.c1: no Ray node can hold {CPU: 1, GPU: 3} (the largest has CPU: 2, GPU: 2)"
    )
    recs = list(read_records(cell_records_path(run_dir, "big.pick0.c1")))
    assert [(r.status, r.error) for r in recs] == [("error", reason)] * 2
    cell = CellFile.read(run_dir / "cells" / "big.pick0.c1" / "cell.json")
    assert (cell.status, cell.error) == ("partial", reason)
    assert len(launched) == 2 and _groups_named(ray, run_dir, "big.pick0.c1") == []


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_group_that_is_never_ready_times_out_and_resume_finishes_the_cell(
    tmp_path: Path, ray_gpu_cluster: Any
) -> None:
    ray = ray_gpu_cluster
    python, _ = _launcher(tmp_path)
    # Something outside the run holds the head's two GPUs: the only node a 2-GPU cell fits on.
    blocker = ray.util.placement_group([{"GPU": 2}], strategy="STRICT_PACK")
    ray.get(blocker.ready(), timeout=60)
    try:
        with FakeServer() as srv:
            engines = [_vllm("tp2", python, 2, placement_timeout_s=2), openai_engine(srv.url)]
            suite = write_suite(tmp_path, engines, n=2)
            out = run_suite(RunOptions(suite, tmp_path / "res", progress=False, executor=RAY))
            run_dir = out.run_dir
            assert out.failed_cells == ("tp2.pick0.c1",)
            assert cell_status(run_dir, "fake.pick0.c1") == "complete"
            want = (
                "error: cell tp2.pick0.c1: its placement group {CPU: 1, GPU: 2} (STRICT_PACK) was not "
                "ready after 2 s (launch.placement_timeout_s)"
            )
            recs = list(read_records(cell_records_path(run_dir, "tp2.pick0.c1")))
            assert [(r.status, r.error) for r in recs] == [("error", want)] * 2
            assert cell_status(run_dir, "tp2.pick0.c1") == "partial"  # resumable
            (group,) = _groups_named(ray, run_dir, "tp2.pick0.c1")
            assert group["state"] == "REMOVED"
            ray.util.remove_placement_group(blocker)
            again = resume_run(run_dir, progress=False, executor=RAY)
    finally:
        ray.util.remove_placement_group(blocker)
    assert not again.failed_cells
    assert cell_status(run_dir, "tp2.pick0.c1") == "complete"
    assert RunManifest.read(run_dir).status == "complete"
    attempts = _groups_named(ray, run_dir, "tp2.pick0.c1")  # the timed-out one, then the resumed one
    assert [g["state"] for g in attempts] == ["REMOVED", "REMOVED"]
