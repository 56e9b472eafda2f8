"""One load point from several clients: Ray actors that share a start time and split the schedule.

A single Python process tops out at some send rate; past it, an open-loop point is late
before the server is the limit. :func:`run_multi_client` deals the point's arrival schedule
(:func:`structbench.load.arrivals.split_schedule`) over N :class:`LoadClient` actors, each
with its own engine client against the same endpoint. Every actor starts its client first;
then the driver fixes one wall-clock start a little ahead, and each actor maps it onto its
own monotonic clock, so the offsets of all clients count from the same instant (on one
host exactly; across hosts to within their clock sync). The raw records are merged on the
driver; percentiles are computed later from the merged records, never merged themselves.

Not wired into suites yet: this is the library step the ``clients:`` load field will use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from structbench.engines.base import Engine
from structbench.engines.registry import EngineEnv, create_engine
from structbench.executors.ray_driver import connect, import_ray
from structbench.ir import WorkItem
from structbench.load.arrivals import LoadPoint, split_schedule
from structbench.load.driver import DriveConfig, drive_share
from structbench.records import CallRecord
from structbench.spec.engines import EngineSpec

#: How far ahead of "all clients are ready" the shared start is set, so that every actor
#: has received its call before the first send is due.
START_LEAD_S = 0.5


@dataclass(frozen=True, slots=True)
class ClientShare:
    """What one client sent: its records and its start on its own clock."""

    client: int
    #: The shared start on this client's clock: ``t_scheduled - t0`` is the planned offset.
    t0: float
    records: tuple[CallRecord, ...]


class LoadClient:
    """A Ray actor holding one engine client (one connection pool, one event loop)."""

    def __init__(self, spec: EngineSpec, seed: int) -> None:
        self.spec, self.seed = spec, seed
        self.engine: Engine | None = None

    async def start(self) -> str:
        """Start the engine client; returns its name (a round trip that says it is ready)."""
        workdir = Path(mkdtemp(prefix="structbench-client-"))
        self.engine = create_engine(self.spec, EngineEnv(workdir, self.seed))
        await self.engine.start()
        return self.engine.name

    async def run(
        self, cell_id: str, items: Sequence[WorkItem], share: Sequence[tuple[int, float]], start_wall: float
    ) -> tuple[float, tuple[CallRecord, ...]]:
        """Send this client's share; returns (the shared start on this clock, the records)."""
        if self.engine is None:
            raise RuntimeError("LoadClient.run before start")
        cfg = DriveConfig(cell_id=cell_id, seed=self.seed)
        t0 = cfg.clock() + (start_wall - time.time())
        out: list[CallRecord] = []
        await drive_share(self.engine, items, share, t0, cfg, out.extend)
        return t0, tuple(out)

    async def close(self) -> None:
        """Close the engine client."""
        if self.engine is not None:
            await self.engine.close()


def run_multi_client(
    spec: EngineSpec, items: Sequence[WorkItem], point: LoadPoint, clients: int, seed: int, cell_id: str
) -> list[ClientShare]:
    """Send ``items`` at ``point`` from ``clients`` actors; returns each client's share.

    Raises:
        UserError: Ray is not installed or unreachable.
        ValueError: A closed-loop point (see ``split_schedule``).
    """
    ray: Any = import_ray()
    connect(None)
    shares = split_schedule(len(items), point, seed, clients)
    actor = ray.remote(num_cpus=0)(LoadClient)  # waiting on the network, not computing
    actors = [actor.remote(spec, seed) for _ in range(clients)]
    try:
        ray.get([a.start.remote() for a in actors])
        start_wall = time.time() + START_LEAD_S
        runs = zip(actors, shares, strict=True)
        done = ray.get([a.run.remote(cell_id, list(items), s, start_wall) for a, s in runs])
        ray.get([a.close.remote() for a in actors])
    finally:
        for a in actors:
            ray.kill(a)
    return [ClientShare(k, t0, recs) for k, (t0, recs) in enumerate(done)]
