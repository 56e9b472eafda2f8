"""A load point sent by several client processes: the merged records are the one schedule."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeServer
from fault_suites import openai_engine, write_suite

from structbench.cli import main
from structbench.errors import UserError
from structbench.load.arrivals import LoadPoint, arrival_offsets
from structbench.load.clients import rebase
from structbench.records import CallRecord, run_records
from structbench.spec.loader import load_suite


def _suite(tmp_path: Path, url: str, n: int, load: dict[str, object]) -> Path:
    path = write_suite(tmp_path, [openai_engine(url)], n=n)
    suite = json.loads(path.read_text())
    suite["load"] = {"num_requests": n, "warmup": 1, **load}
    path.write_text(json.dumps(suite))
    return Path(path)


@pytest.mark.timeout(240)
def test_two_client_processes_send_exactly_the_schedule(tmp_path: Path) -> None:
    n, rate = 12, 40.0
    with FakeServer() as srv:
        suite = _suite(tmp_path, srv.url, n, {"mode": "rate", "rate": [rate], "clients": 2})
        res = CliRunner().invoke(
            main, ["run", str(suite), "--results-dir", str(tmp_path / "r"), "--no-progress"]
        )
        assert res.exit_code == 0, res.output
        assert srv.behaviour.requests == n + 1  # the warm-up, then each item once
    [run_dir] = [p.parent for p in (tmp_path / "r").glob("*/*/manifest.json")]
    recs = list(run_records(run_dir))
    measured = [r for r in recs if not r.warmup]
    assert len(recs) == n + 1 and all(r.ok for r in recs)
    # Merged on the driver's clock: the planned offsets from the shared start are the schedule
    # a single client draws for the seed (the warm-up's item runs again, first, in the schedule).
    t0 = min(r.t_scheduled for r in measured if r.t_scheduled is not None)
    planned = arrival_offsets(n, LoadPoint("rate", rate=rate), random.Random(0))
    by_item = sorted(measured, key=lambda r: int(r.item_id.rsplit("/", 1)[1]))
    got = [r.t_scheduled - t0 for r in by_item if r.t_scheduled is not None]
    assert [math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, planned, strict=True)] == [True] * n
    for r in measured:
        assert r.t_sent is not None and r.t_done is not None and r.t_scheduled is not None
        assert 0 <= r.t_sent - r.t_scheduled < 0.5 and r.t_sent <= r.t_done  # on time, on one clock
    cell = json.loads(next(run_dir.glob("cells/*/cell.json")).read_text())
    assert cell["load"]["clients"] == 2 and cell["status"] == "complete" and cell["n_items"] == n + 1


def test_clients_only_split_open_loops_of_servers(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="closed loop"):
        load_suite(_suite(tmp_path, "http://127.0.0.1:1", 2, {"mode": "concurrency", "clients": 2}))
    path = _suite(tmp_path, "http://127.0.0.1:1", 2, {"mode": "rate", "rate": [5], "clients": 2})
    suite = json.loads(path.read_text())
    suite["engines"] = [{"kind": "embedded", "name": "emb"}]
    path.write_text(json.dumps(suite))
    with pytest.raises(UserError, match="emb run in process"):
        load_suite(path)


def test_rebase_moves_every_timestamp() -> None:
    r = CallRecord("c", "e", "t", "t/0", 0, 0, "g", "none", t_scheduled=1.0, t_sent=2.0, t_first_token=3.0,
                   t_done=5.0, token_times=(4.0,))  # fmt: skip
    [m] = rebase([r], 10.0)
    assert (m.t_scheduled, m.t_sent, m.t_first_token, m.t_done, m.token_times) == (
        11.0,
        12.0,
        13.0,
        15.0,
        (14.0,),
    )
    assert rebase([CallRecord("c", "e", "t", "t/0", 0, 0, "g", "none")], 1.0)[0].t_sent is None
