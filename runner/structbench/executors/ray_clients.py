"""The clients of a multi-client load point as Ray actors (``load.clients`` under ``--executor ray``).

:mod:`structbench.load.clients` deals the point's schedule into :class:`ClientJob` shares and
merges what comes back; this module runs the shares on :class:`LoadClient` actors. Every actor
starts its engine client first; then the driver fixes one wall-clock start a little ahead, and
each actor maps it onto its own monotonic clock, so the offsets of all clients count from the
same instant (on one host exactly; across hosts to within their clock sync). An actor returns
its records when its share is done, with the start on its clock, so the driver can move them
onto its own.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

from structbench.engines.base import Engine
from structbench.load.clients import (
    START_LEAD_S,
    ClientJob,
    ClientShare,
    send_share,
    start_client,
)
from structbench.records import CallRecord


class LoadClient:
    """A Ray actor holding one engine client (one connection pool, one event loop)."""

    def __init__(self, job: ClientJob) -> None:
        self.job = job
        self.engine: Engine | None = None

    async def start(self) -> str | None:
        """Start the engine client; returns why it could not, else None."""
        try:
            self.engine = await start_client(self.job)
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        return None

    async def run(self, start_wall: float) -> ClientShare:
        """Send this client's share from the shared start."""
        out: list[tuple[CallRecord, ...]] = []
        if self.engine is None:
            return ClientShare(self.job.client, 0.0, (), "not started")
        try:
            t0 = await send_share(self.engine, self.job, start_wall, lambda r: out.append(tuple(r)))
        finally:
            await self.engine.close()
        return ClientShare(self.job.client, t0, tuple(out))


def run_jobs(jobs: Sequence[ClientJob]) -> tuple[float, list[ClientShare]]:
    """Run each job on its own actor; returns the shared start (wall clock) and the shares.

    Called inside a ``--executor ray`` cell task, where Ray is up (typed Any: Ray's own
    annotations are partial).
    """
    ray: Any = importlib.import_module("ray")
    actor = ray.remote(num_cpus=0)(LoadClient)  # waiting on the network, not computing
    actors = [actor.remote(j) for j in jobs]
    try:
        errors = ray.get([a.start.remote() for a in actors])
        start_wall = time.time() + START_LEAD_S
        runs = [a.run.remote(start_wall) for a in actors]
        shares: list[ClientShare] = []
        for job, err, ref in zip(jobs, errors, runs, strict=True):
            try:
                share = ray.get(ref)
            except Exception as e:  # an actor that died: its items become error records
                share = ClientShare(job.client, 0.0, (), f"{type(e).__name__}")
            shares.append(share if err is None else ClientShare(job.client, 0.0, (), err))
    finally:
        for a in actors:
            ray.kill(a)
    return start_wall, shares
