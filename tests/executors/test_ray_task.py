"""What a Ray worker sends back for one cell, tested without Ray (``cell_messages`` is plain Python)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

import structbench.executors.ray_task as task_mod
from structbench.cells import CellWork
from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan
from structbench.errors import UserError
from structbench.executors.ray_task import CellJob, Failed, Finished, Records, Started, cell_messages
from structbench.ir import Gen
from structbench.run import plan_cells, plan_items
from structbench.spec.loader import load_suite


class _Engine:
    """Answers "positive" at once; or fails to start."""

    name = "fake"
    capabilities = Capabilities(frozenset({"choice"}))
    max_concurrency = None

    def __init__(self, start_error: str | None = None) -> None:
        self.start_error = start_error

    def plan(self, gen: Gen) -> Plan:
        return Plan("fake")

    def render(self, call: Call) -> str:
        return ""

    async def start(self) -> EngineInfo:
        if self.start_error:
            raise UserError(self.start_error)
        return EngineInfo("fake", "openai", "m", "0", "http://fake:1", ())

    async def close(self) -> None:
        return None

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        t = clock()
        return CallMeasure(t_sent=t, t_first_token=t, t_done=t, prompt_tokens=4, completion_tokens=1,
                           cached_tokens=0, text="positive")  # fmt: skip


def _job(tmp_path: Path) -> CellJob:
    rows = [{"q": f"q{j}"} for j in range(3)]
    task = {"name": "pick", "kind": "choice", "dataset": {"rows": rows}, "choices": ["positive", "negative"],
            "prompt": "{{ q }}", "max_tokens": 2, "scorers": ["choice_valid"]}  # fmt: skip
    (tmp_path / "pick.yaml").write_text(json.dumps(task))
    engines = [{"kind": "openai", "name": "fake", "url": "http://fake:1", "constraints": ["choice"]}]
    suite_doc = {"name": "s", "tasks": ["pick.yaml"], "engines": engines, "load": {"num_requests": 3}}
    (tmp_path / "suite.yaml").write_text(json.dumps(suite_doc))
    suite = load_suite(tmp_path / "suite.yaml")
    (cell,) = plan_cells(suite, suite.spec.engines)
    items = plan_items(suite, 0, 3)["pick"]
    return CellJob(suite.spec.engines[0], CellWork(cell, items), 0, 1, True, str(tmp_path / "nowhere"))


def _messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: _Engine) -> list[Any]:
    monkeypatch.setattr(task_mod, "create_engine", lambda spec, env: engine)
    return list(cell_messages(_job(tmp_path), "node-a"))


def test_a_cell_streams_started_then_each_item_then_its_cell_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs = _messages(tmp_path, monkeypatch, _Engine())
    assert [type(m) for m in msgs] == [Started, Records, Records, Records, Records, Finished]
    assert msgs[0].node == "node-a" and msgs[0].facts.name == "fake"
    recs = [r for m in msgs if isinstance(m, Records) for r in m.recs]
    assert [r.warmup for r in recs] == [True, False, False, False] and all(r.ok for r in recs)
    end = msgs[-1]
    assert not end.failed and (end.cell.status, end.cell.node, end.cell.n_items) == ("complete", "node-a", 4)


def test_an_engine_that_cannot_start_is_a_failed_message_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs = _messages(tmp_path, monkeypatch, _Engine(start_error="server exited with code 1"))
    assert msgs == [Failed("UserError: server exited with code 1")]


class _EnvEngine(_Engine):
    """Notes the OMP_NUM_THREADS that a server it launched would inherit."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str | None] = []

    async def start(self) -> EngineInfo:
        self.seen.append(os.environ.get("OMP_NUM_THREADS"))
        return await super().start()


@pytest.mark.parametrize("driver", [None, "8"])
def test_the_engine_starts_with_the_drivers_omp_threads_not_rays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: str | None
) -> None:
    """Ray sets OMP_NUM_THREADS=1 in a num_cpus=1 task; a launched server inherits it. On the H200
    the same servers then decoded faster under Ray than in the local run. The task puts back the
    driver's value (unset stays unset) while the cell runs, and Ray's afterwards."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray does in the worker
    engine = _EnvEngine()
    monkeypatch.setattr(task_mod, "create_engine", lambda spec, env: engine)
    job = dataclasses.replace(_job(tmp_path), env=(("OMP_NUM_THREADS", driver),))
    msgs = list(cell_messages(job, "node-a"))
    assert isinstance(msgs[-1], Finished) and engine.seen == [driver]
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_driver_env_reads_what_ray_would_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert task_mod.driver_env() == (("OMP_NUM_THREADS", None),)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert task_mod.driver_env() == (("OMP_NUM_THREADS", "4"),)
