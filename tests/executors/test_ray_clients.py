"""One load point from several client actors: merged raw records equal the single schedule."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeServer
from fault_suites import openai_engine, write_suite

from structbench.cells import Executor
from structbench.executors.ray_clients import run_jobs
from structbench.load.arrivals import LoadPoint, arrival_offsets, split_schedule
from structbench.load.clients import Fleet, client_jobs
from structbench.load.driver import DriveConfig
from structbench.records import run_records
from structbench.run import RunOptions, plan_items, run_suite
from structbench.spec.loader import load_suite

RATE = LoadPoint("rate", rate=40.0, arrivals="poisson")


def test_split_schedule_deals_one_schedule_round_robin() -> None:
    shares = split_schedule(7, RATE, 3, clients=3)
    assert [[i for i, _ in s] for s in shares] == [[0, 3, 6], [1, 4], [2, 5]]
    merged = sorted((i, off) for s in shares for i, off in s)
    assert [off for _, off in merged] == arrival_offsets(7, RATE, random.Random(3))
    assert all(list(s) == sorted(s, key=lambda x: x[1]) for s in shares)  # each share in time order
    with pytest.raises(ValueError, match="closed-loop"):
        split_schedule(4, LoadPoint("concurrency", 2), 0, 2)


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_two_clients_together_send_the_schedule(tmp_path: Path, ray_local: Any) -> None:
    n, seed = 12, 5
    with FakeServer() as srv:
        suite = load_suite(write_suite(tmp_path, [openai_engine(srv.url)], n=n))
        items = plan_items(suite, seed, n)["pick0"]
        point = LoadPoint("rate", rate=RATE.rate, clients=2)
        jobs = client_jobs(Fleet(suite.spec.engines[0], run_jobs), items, point, DriveConfig("c", seed))
        _, shares = run_jobs(jobs)
        assert srv.behaviour.requests == n
    planned = arrival_offsets(n, RATE, random.Random(seed))
    index = {it.item_id: i for i, it in enumerate(items)}
    sent: dict[int, float] = {}
    for share in shares:
        assert len(share.records) == n // 2 and share.error is None
        for r in (r for recs in share.records for r in recs):
            assert r.ok and r.t_scheduled is not None and r.t_sent is not None
            i = index[r.item_id]
            assert i % 2 == share.client and i not in sent  # dealt round-robin, each item once
            sent[i] = r.t_scheduled - share.t0
            assert math.isclose(sent[i], planned[i], abs_tol=1e-9)  # on the shared start's clock
            assert 0 <= r.t_sent - r.t_scheduled < 0.5  # sent on time, not all at once
    assert sorted(sent) == list(range(n))


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_a_multi_client_cell_under_executor_ray_sends_the_schedule(tmp_path: Path, ray_local: Any) -> None:
    n, seed = 8, 0
    with FakeServer() as srv:
        path = write_suite(tmp_path, [openai_engine(srv.url)], n=n)
        suite = json.loads(path.read_text())
        suite["load"] = {"mode": "rate", "rate": [RATE.rate], "clients": 2, "num_requests": n, "warmup": 0}
        path.write_text(json.dumps(suite))
        opts = RunOptions(path, tmp_path / "r", progress=False, executor=Executor("ray"))
        run_dir = run_suite(opts).run_dir
        assert srv.behaviour.requests == n
    recs = list(run_records(run_dir))
    assert len(recs) == n and all(r.ok and r.t_scheduled is not None for r in recs)
    t0 = min(r.t_scheduled for r in recs if r.t_scheduled is not None)
    planned = arrival_offsets(n, RATE, random.Random(seed))
    got = {int(r.item_id.rsplit("/", 1)[1]): r.t_scheduled - t0 for r in recs if r.t_scheduled is not None}
    assert all(math.isclose(got[i], planned[i], abs_tol=1e-6) for i in range(n))
