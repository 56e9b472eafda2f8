"""``--executor ray``: embedded cells as parallel Ray tasks give the records a local run gives.

Also: without ``--executor ray`` nothing imports Ray, and Ray's absence or a wrong flag is
one line and exit code 2.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from structbench.cells import Executor
from structbench.errors import UserError
from structbench.records import CallRecord, run_records
from structbench.run import RunOptions, run_suite
from structbench.runfolder import CellFile, RunManifest
from structbench.spec.engines import EmbeddedEngineSpec, LaunchSpec, VllmEngineSpec

ROOT = Path(__file__).resolve().parents[2]
CELLS = ("embedded.canary_code.c1", "embedded.iso_date.c1")


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suites" / "two.yaml"
    suite.parent.mkdir()
    (tmp_path / "tasks").symlink_to(ROOT / "tasks")
    (tmp_path / "pyproject.toml").write_text("")  # marks the project root for path checks
    suite.write_text(
        "name: two\n"
        "engines: [{kind: embedded, threads: 1}]\n"
        "tasks: [../tasks/canary/code.yaml, ../tasks/regex/iso_date.yaml]\n"
        "load: {concurrency: [1], num_requests: 2, warmup: 0}\n"
    )
    return suite


def _calls(run_dir: Path) -> dict[tuple[str, str, int, int, bool], tuple[object, ...]]:
    def key(r: CallRecord) -> tuple[str, str, int, int, bool]:
        return (r.cell_id, r.item_id, r.branch, r.turn, r.warmup)

    return {key(r): (r.status, r.seed, r.text, r.prompt, r.completion_tokens) for r in run_records(run_dir)}


@pytest.mark.ray
@pytest.mark.embedded
@pytest.mark.timeout(300)
def test_two_embedded_cells_in_parallel_match_a_local_run(tmp_path: Path, ray_local: Any) -> None:
    pytest.importorskip("outlines")
    suite = _suite(tmp_path)
    local = run_suite(RunOptions(suite, tmp_path / "local", progress=False)).run_dir
    ray = run_suite(RunOptions(suite, tmp_path / "ray", progress=False, executor=Executor("ray"))).run_dir
    want, got = _calls(local), _calls(ray)
    assert len(want) == 4 and {k[0] for k in want} == set(CELLS)
    assert all(v[0] == "ok" for v in want.values()), want
    assert got == want  # same calls, statuses, seeds, prompts and (temperature 0) outputs
    m = RunManifest.read(ray)
    assert (m.status, m.executor) == ("complete", "ray")
    assert RunManifest.read(local).executor == "local"
    assert {c.cell_id for c in m.cells} == set(CELLS) and all(c.node for c in m.cells)
    assert "embedded" in m.engines and m.engines["embedded"].model
    # The same folder shape: one sub-folder per cell with its records and cell file, then the report.
    nodes = {c.cell_id: c.node for c in m.cells}
    for cell_id in CELLS:
        cell = CellFile.read(ray / "cells" / cell_id / "cell.json")
        assert (cell.status, cell.n_items, cell.node) == ("complete", 2, nodes[cell_id])
    for name in ("items.jsonl", "summary.json", "report.md", "report.html"):
        assert (ray / name).is_file(), name


def _cli(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_local_run_imports_no_ray(tmp_path: Path) -> None:
    """The CLI runs a local suite (against the fake server) and Ray is never imported."""
    script = f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests" / "faults")!r})
        from click.testing import CliRunner
        from fake_openai import FakeServer
        from fault_suites import openai_engine, write_suite
        from pathlib import Path
        from structbench.cli import main

        with FakeServer() as srv:
            suite = write_suite(Path("."), [openai_engine(srv.url)], n=2)
            res = CliRunner().invoke(main, ["run", str(suite), "--no-progress", "--results-dir", "res"])
        assert res.exit_code == 0, res.output
        assert "ray" not in sys.modules, "a local run imported ray"
        print("ok")
    """
    out = _cli(tmp_path, script)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_executor_ray_without_ray_is_one_line_exit_2(tmp_path: Path) -> None:
    script = f"""
        import sys
        sys.modules["ray"] = None  # as if the ray extra were not installed
        sys.path.insert(0, {str(ROOT / "tests" / "faults")!r})
        from fake_openai import FakeServer
        from fault_suites import openai_engine, write_suite
        from pathlib import Path
        from structbench.cli import main

        with FakeServer() as srv:
            suite = write_suite(Path("."), [openai_engine(srv.url)], n=1)
            sys.argv = ["structbench", "run", str(suite), "--executor", "ray", "--no-progress"]
            main()
    """
    out = _cli(tmp_path, script)
    assert out.returncode == 2, out.stdout + out.stderr
    want = "error: --executor ray needs Ray: pip install 'structbench[ray]'"
    assert out.stderr.strip().splitlines() == [want]
    assert not (tmp_path / "results").exists()  # refused before any run folder


def test_address_without_executor_ray_is_one_line_exit_2(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "structbench.cli", "run", "suite.yaml", "--address", "auto"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["error: --address needs --executor ray"]


def test_unreachable_address_is_one_line_exit_2_before_any_folder(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "structbench.cli", "run", str(suite), "--executor", "ray",
         "--address", "127.0.0.1:1", "--results-dir", str(tmp_path / "res")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --address 127.0.0.1:1: no Ray cluster answers"), lines
    assert not (tmp_path / "res").exists()


def test_cells_reserve_what_their_engine_declares() -> None:
    launched = VllmEngineSpec(launch=LaunchSpec(model="m", num_gpus=0.5))
    assert (launched.cell_cpus, launched.cell_gpus) == (1.0, 0.5)
    assert VllmEngineSpec(url="http://h:1").cell_gpus == 0.0  # an attached server's GPUs are elsewhere
    assert (EmbeddedEngineSpec(threads=3).cell_cpus, EmbeddedEngineSpec().cell_gpus) == (3.0, 0.0)


@pytest.mark.ray
@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ("{kind: embedded, threads: 4}", "engine 'embedded': a cell needs 4 CPUs, the Ray cluster has 2"),
        (
            "{kind: vllm, name: v, launch: {model: m, num_gpus: 0.5}}",
            "engine 'v': a cell needs 0.5 GPUs, the Ray cluster has 0",
        ),
    ],
)
def test_a_cell_the_cluster_cannot_hold_is_refused_before_any_folder(
    tmp_path: Path, ray_local: Any, engine: str, message: str
) -> None:
    """Ray would leave such a task pending for ever: refused up front instead of hanging."""
    suite = _suite(tmp_path)
    suite.write_text(suite.read_text().replace("{kind: embedded, threads: 1}", engine))
    with pytest.raises(UserError) as e:
        run_suite(RunOptions(suite, tmp_path / "res", progress=False, executor=Executor("ray")))
    assert str(e.value) == message
    assert not (tmp_path / "res").exists()
