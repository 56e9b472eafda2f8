"""``--executor ray`` under faults: a worker that dies, a Ctrl-C; each leaves a run ``--resume`` finishes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeServer
from fault_suites import alive, cell_status, fake_vllm_python, manifest, ok_calls, openai_engine, write_suite

from structbench.cells import Executor
from structbench.engines.launch import free_port
from structbench.executors import ray_driver
from structbench.executors.ray_task import EXIT_AFTER_ENV
from structbench.records import CallRecord, cell_records_path, read_records
from structbench.resume import resume_run
from structbench.run import RunOptions, run_suite
from structbench.runfolder import CellFile, RunManifest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]
RAY = Executor("ray")


def test_killed_worker_leaves_error_records_then_resume_completes(
    tmp_path: Path, ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeServer() as srv:
        suite = write_suite(tmp_path, [openai_engine(srv.url)], n=4, tasks=2)
        baseline = ok_calls(run_suite(RunOptions(suite, tmp_path / "local", progress=False)).run_dir)
        assert len(baseline) == 8
        # The worker of pick0's cell exits abruptly once it has streamed two of its four items.
        monkeypatch.setenv(EXIT_AFTER_ENV, "fake.pick0.c1:2")
        out = run_suite(RunOptions(suite, tmp_path / "ray", progress=False, executor=RAY))
        assert out.failed_cells == ("fake.pick0.c1",) and not out.interrupted
        run_dir = out.run_dir
        recs = list(read_records(cell_records_path(run_dir, "fake.pick0.c1")))
        # The two streamed items are kept as they were; the two lost ones are error records.
        assert [r.status for r in recs] == ["ok", "ok", "error", "error"]
        assert all(r.error is not None and "Ray worker lost" in r.error for r in recs[2:])
        cell = CellFile.read(run_dir / "cells" / "fake.pick0.c1" / "cell.json")
        assert cell.status == "partial" and cell.error is not None and "WorkerCrashedError" in cell.error
        assert cell_status(run_dir, "fake.pick1.c1") == "complete"
        m = RunManifest.read(run_dir)
        assert (m.status, m.executor) == ("partial", "ray")
        assert all(c.node for c in m.cells), m.cells  # each cell names its node
        assert (run_dir / "report.md").exists()

        monkeypatch.delenv(EXIT_AFTER_ENV)
        n_sent = srv.behaviour.requests
        again = resume_run(run_dir, progress=False, executor=RAY)
        assert srv.behaviour.requests - n_sent == 2  # only the two lost items ran again
    assert not again.failed_cells
    assert ok_calls(run_dir) == baseline
    m2 = manifest(run_dir)
    assert m2["status"] == "complete" and m2["resumes"][0]["executor"] == "ray"  # type: ignore[index]
    redone = list(read_records(cell_records_path(run_dir, "fake.pick0.c1")))
    assert [r.attempt for r in redone] == [1, 1, 1, 1, 2, 2]


def test_killed_worker_takes_its_launched_server_with_it(
    tmp_path: Path, ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker exits with no cleanup while its cell's launched server runs; the server goes
    too, so --resume can launch one on the same fixed port."""
    pid_file = tmp_path / "server.pid"
    python = fake_vllm_python(tmp_path, "--pid-file", str(pid_file))
    launch = {"model": "m", "python": str(python), "port": free_port(), "startup_timeout_s": 30}
    suite = write_suite(tmp_path, [{"kind": "vllm", "name": "v", "launch": launch}], n=4)
    monkeypatch.setenv(EXIT_AFTER_ENV, "v.pick0.c1:2")
    out = run_suite(RunOptions(suite, tmp_path / "ray", progress=False, executor=RAY))
    assert out.failed_cells == ("v.pick0.c1",)
    server = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(server):  # never leave it behind, even when this test fails
        os.kill(server, signal.SIGKILL)
        pytest.fail("the launched server outlived the worker that launched it")
    monkeypatch.delenv(EXIT_AFTER_ENV)
    again = resume_run(out.run_dir, progress=False, executor=RAY)
    assert not again.failed_cells and len(ok_calls(out.run_dir)) == 4
    assert not alive(int(pid_file.read_text()))


def test_a_launched_server_gets_the_drivers_omp_threads_not_rays(
    tmp_path: Path, ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray sets OMP_NUM_THREADS=1 in every num_cpus=1 task. On the H200 (2026-12-03) the servers it
    launched decoded up to 36 % faster under Ray than the local run's, on another host: the server
    must start the same under both executors, with the driver's value (unset when the driver has none)."""
    launch = {"model": "m", "python": str(fake_vllm_python(tmp_path)), "startup_timeout_s": 30}
    suite = write_suite(tmp_path, [{"kind": "vllm", "name": "v", "launch": launch}], n=1)
    for driver, want in ((None, "<unset>"), ("3", "3")):
        if driver is None:
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        else:
            monkeypatch.setenv("OMP_NUM_THREADS", driver)
        out = run_suite(RunOptions(suite, tmp_path / f"ray-{want}", progress=False, executor=RAY))
        assert not out.failed_cells
        (log,) = (out.run_dir / "engines" / "v").glob("*/*.log")
        assert f"fake server OMP_NUM_THREADS={want}\n" in log.read_text(), log


def test_interrupt_cancels_the_tasks_keeps_records_and_resumes(
    tmp_path: Path, ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the driver's wait loop (raised in the wait after the first records, so it is
    deterministic): the task is cancelled, nothing hangs, and --resume finishes the run."""

    written: list[bool] = []
    pressed: list[bool] = []
    wait = ray_local.wait

    class Recorded(ray_driver.FolderOutput):
        def records(self, recs: list[CallRecord]) -> None:
            super().records(recs)
            written.append(True)

    def wait_then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        if written and not pressed:  # the first wait after the first records arrived
            pressed.append(True)
            raise KeyboardInterrupt
        return wait(*args, **kwargs)

    with FakeServer(delay_s=0.2) as srv:
        suite = write_suite(tmp_path, [openai_engine(srv.url)], n=4)
        monkeypatch.setattr(ray_driver, "FolderOutput", Recorded)
        monkeypatch.setattr(ray_local, "wait", wait_then_ctrl_c)
        out = run_suite(RunOptions(suite, tmp_path / "ray", progress=False, executor=RAY))
        assert out.interrupted
        recs = list(read_records(cell_records_path(out.run_dir, "fake.pick0.c1")))
        assert [r.status for r in recs] == ["ok", "cancelled", "cancelled", "cancelled"]
        assert cell_status(out.run_dir, "fake.pick0.c1") == "interrupted"
        assert manifest(out.run_dir)["status"] == "interrupted"
        monkeypatch.undo()
        again = resume_run(out.run_dir, progress=False, executor=RAY)
    assert not again.interrupted and not again.failed_cells
    assert len(ok_calls(out.run_dir)) == 4
