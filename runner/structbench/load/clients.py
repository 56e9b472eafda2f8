"""One load point sent by several client processes (``load.clients``), merged into one cell.

One Python process tops out at some send rate; past it, an open loop runs late before the
server is the limit. :func:`drive_clients` deals the point's one arrival schedule
(:func:`~structbench.load.arrivals.split_schedule`) over N clients, each with its own engine
client against the same server: spawned local processes by default, Ray actors inside a
``--executor ray`` cell (:mod:`structbench.executors.ray_clients`). The warm-up runs first,
on the cell's own engine client, as in a single-client cell.

Every client starts its engine client, says it is ready, then waits for one wall-clock start
that the driver fixes a little ahead; each maps it onto its own monotonic clock, so all
offsets count from the same instant. Records come back as each item finishes (processes)
or at the end of a share (Ray), are moved onto the driver's clock (the shared start is the
same instant on both) and sunk at once, so completed records are never lost. Percentiles
are computed later from the merged raw records, never merged themselves. A client that
fails or dies leaves error records for the items it did not return, never a hang.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import mkdtemp
from typing import Any, Literal

from structbench.engines.base import Engine, ExecContext
from structbench.engines.registry import EngineEnv, create_engine
from structbench.ir import WorkItem
from structbench.load.arrivals import LoadPoint, split_schedule
from structbench.load.driver import (
    CANCELLED_INTERRUPT,
    CANCELLED_TIMEOUT,
    DriveConfig,
    DriveResult,
    drive,
    drive_share,
    error_records,
)
from structbench.records import CallRecord
from structbench.spec.engines import EngineSpec

#: How far ahead of "every client is ready" the shared start is set, so that each client has
#: been told it before its first send is due.
START_LEAD_S = 0.5
#: How long the clients may take to import and reach the server before the cell fails.
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class ClientShare:
    """What one remote client sent: its records per item, and its start on its own clock."""

    client: int
    #: The shared start on this client's clock: ``t_scheduled - t0`` is the planned offset.
    t0: float
    records: tuple[tuple[CallRecord, ...], ...]
    #: Why the client failed (its unreturned items become error records), else None.
    error: str | None = None


#: Runs the jobs elsewhere (Ray actors); returns the shared start (wall clock) and the shares.
RemoteRunner = Callable[[Sequence["ClientJob"]], tuple[float, list[ClientShare]]]


@dataclass(frozen=True, slots=True)
class Fleet:
    """How a cell's clients reach its engine: an attach spec, and where they run.

    ``remote`` None: spawned local processes; else the runner of ``--executor ray``
    (:func:`structbench.executors.ray_clients.run_jobs`).
    """

    spec: EngineSpec
    remote: RemoteRunner | None = None


@dataclass(frozen=True, slots=True)
class ClientJob:
    """One client's share of a load point: its items in send order and their offsets."""

    client: int
    spec: EngineSpec
    cfg: DriveConfig
    items: tuple[WorkItem, ...]
    offsets: tuple[float, ...]


def fleet_for(spec: EngineSpec, url: str, remote: RemoteRunner | None = None) -> Fleet | None:
    """The fleet of an engine serving at ``url``; None when no other process can reach it."""
    attach = spec.client_spec(url)
    return None if attach is None else Fleet(attach, remote)


def client_jobs(
    fleet: Fleet, items: Sequence[WorkItem], point: LoadPoint, cfg: DriveConfig
) -> list[ClientJob]:
    """The point's schedule for ``items``, dealt over ``point.clients`` clients."""
    # Only picklable fields cross to a client: callbacks stay with the driver.
    plain = DriveConfig(cfg.cell_id, cfg.seed, attempt=cfg.attempt)
    return [
        ClientJob(k, fleet.spec, plain, tuple(items[i] for i, _ in share), tuple(off for _, off in share))
        for k, share in enumerate(split_schedule(len(items), point, cfg.seed, point.clients))
    ]


def rebase(records: Sequence[CallRecord], shift: float) -> list[CallRecord]:
    """``records`` with every timestamp moved by ``shift`` (a client's clock onto the driver's)."""

    def move(t: float | None) -> float | None:
        return None if t is None else t + shift

    return [
        replace(
            r,
            t_scheduled=move(r.t_scheduled),
            t_sent=move(r.t_sent),
            t_first_token=move(r.t_first_token),
            t_done=move(r.t_done),
            token_times=tuple(t + shift for t in r.token_times),
        )
        for r in records
    ]


# ---- one client ----------------------------------------------------------------------------


async def start_client(job: ClientJob) -> Engine:
    """The client's own started engine client."""
    engine = create_engine(job.spec, EngineEnv(Path(mkdtemp(prefix="structbench-client-")), job.cfg.seed))
    await engine.start()
    return engine


async def send_share(
    engine: Engine, job: ClientJob, start_wall: float, emit: Callable[[list[CallRecord]], None]
) -> float:
    """Send the share from the shared start; returns that start on this client's clock."""
    t0 = job.cfg.clock() + (start_wall - time.time())
    share = list(enumerate(job.offsets))
    await drive_share(engine, job.items, share, t0, job.cfg, emit)
    return t0


def _process_main(job: ClientJob, out: Any, go: Any, start: Any) -> None:
    """A spawned client process: messages ``(kind, client, payload)`` go to ``out``."""
    asyncio.run(_process_async(job, out, go, start))


async def _process_async(job: ClientJob, out: Any, go: Any, start: Any) -> None:
    k = job.client
    try:
        engine = await start_client(job)
    except Exception as e:
        out.put(("failed", k, f"{type(e).__name__}: {e}"))
        return
    try:
        out.put(("ready", k, None))
        await asyncio.to_thread(go.wait)
        start_wall = float(start.value)
        t0 = job.cfg.clock() + (start_wall - time.time())
        out.put(("t0", k, t0))
        await drive_share(
            engine, job.items, list(enumerate(job.offsets)), t0, job.cfg, lambda r: out.put(("recs", k, r))
        )
        out.put(("done", k, None))
    finally:
        await engine.close()


# ---- the driver's side -----------------------------------------------------------------------


class _Merge:
    """The driver's view of the clients: records moved onto its clock, and what is missing."""

    def __init__(self, jobs: Sequence[ClientJob], sink: Callable[[list[CallRecord]], None], cfg: DriveConfig):
        self.jobs, self.sink, self.cfg = jobs, sink, cfg
        self.t0 = 0.0
        self.shift = [0.0] * len(jobs)
        self.returned: set[str] = set()
        self.n_items = self.n_records = self.n_errors = self.n_unsupported = 0

    def take(self, client: int, recs: list[CallRecord]) -> None:
        recs = rebase(recs, self.shift[client])
        self.sink(recs)  # kept first: completed records are never lost
        self.returned.update(r.item_id for r in recs)
        self.n_items += 1
        self.n_records += len(recs)
        self.n_errors += sum(1 for r in recs if r.error is not None)
        self.n_unsupported += sum(1 for r in recs if r.unsupported or r.rejected)
        if self.cfg.on_item_done is not None:
            self.cfg.on_item_done()

    def fail_rest(
        self, clients: Sequence[int], error: str, status: Literal["error", "cancelled"] = "error"
    ) -> None:
        """Error (or cancelled) records for the items these clients did not return."""
        for k in clients:
            job = self.jobs[k]
            for item, off in zip(job.items, job.offsets, strict=True):
                if item.item_id not in self.returned:
                    ctx = ExecContext(
                        self.cfg.cell_id,
                        self.cfg.clock,
                        self.t0 + off,
                        attempt=self.cfg.attempt,
                        seed=self.cfg.seed,
                    )
                    self.take(
                        k, rebase(error_records(item, job.spec.name, ctx, error, status), -self.shift[k])
                    )


async def _run_processes(jobs: Sequence[ClientJob], merge: _Merge) -> None:
    ctx = mp.get_context("spawn")  # never fork a process with an event loop and threads
    out, go, start = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_process_main, args=(j, out, go, start), daemon=True) for j in jobs]
    for p in procs:
        p.start()
    pending = set(range(len(jobs)))
    try:
        waiting, deadline = set(pending), time.monotonic() + STARTUP_TIMEOUT_S
        while waiting:
            msg = await _get(out, procs, waiting, deadline, merge)
            if msg is not None and msg[0] in ("ready", "failed"):
                waiting.discard(msg[1])
                if msg[0] == "failed":
                    merge.fail_rest([msg[1]], f"error: load client {msg[1]} did not start ({msg[2]})")
                    pending.discard(msg[1])
        start_wall = time.time() + START_LEAD_S
        merge.t0 = merge.cfg.clock() + START_LEAD_S
        start.value = start_wall
        go.set()
        while pending:
            msg = await _get(out, procs, pending, None, merge)
            if msg is None:
                continue
            kind, k, payload = msg
            if kind == "t0":
                merge.shift[k] = merge.t0 - payload
            elif kind == "recs":
                merge.take(k, payload)
            elif kind == "done":
                pending.discard(k)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            await asyncio.to_thread(p.join, 5)


async def _get(out: Any, procs: Sequence[Any], live: set[int], deadline: float | None, merge: _Merge) -> Any:
    """The next client message, or None after a pause in which dead clients were written off."""
    try:
        return await asyncio.to_thread(out.get, True, 0.2)
    except queue.Empty:
        pass
    dead = [k for k in live if procs[k].exitcode is not None]
    late = deadline is not None and time.monotonic() > deadline
    for k in dead:
        live.discard(k)
    if dead:
        code = ", ".join(f"{k}: exit code {procs[k].exitcode}" for k in dead)
        merge.fail_rest(dead, f"error: load client died ({code})")
    if late:
        merge.fail_rest(sorted(live), f"error: load client did not start within {STARTUP_TIMEOUT_S:g} s")
        live.clear()
    return None


async def _run_remote(remote: RemoteRunner, jobs: Sequence[ClientJob], merge: _Merge) -> None:
    start_wall, shares = await asyncio.to_thread(remote, jobs)
    merge.t0 = merge.cfg.clock() + (start_wall - time.time())
    for share in shares:
        merge.shift[share.client] = merge.t0 - share.t0
        for recs in share.records:
            merge.take(share.client, list(recs))
        if share.error is not None:
            merge.fail_rest([share.client], f"error: load client {share.client} failed ({share.error})")


async def drive_clients(
    engine: Engine,
    fleet: Fleet,
    items: Sequence[WorkItem],
    point: LoadPoint,
    cfg: DriveConfig,
    sink: Callable[[list[CallRecord]], None],
) -> DriveResult:
    """:func:`~structbench.load.driver.drive` for a point of ``point.clients`` clients.

    The first ``cfg.warmup`` items run first on ``engine`` (the cell's own client), then the
    rest is dealt over the clients. Never raises for failed requests or clients.
    """
    n_warm = min(cfg.warmup, len(items))
    # drive() calls on_warmup_done after these (even none): the counters bracket the clients.
    warm_res = await drive(engine, items[:n_warm], LoadPoint("concurrency", 1), cfg, sink)
    rest = list(items[n_warm:])
    jobs = client_jobs(fleet, rest, point, cfg)
    merge = _Merge(jobs, sink, cfg)
    run = _run_processes(jobs, merge) if fleet.remote is None else _run_remote(fleet.remote, jobs, merge)
    timed_out = interrupted = False
    try:
        await asyncio.wait_for(run, cfg.cell_timeout_s)
    except TimeoutError:
        timed_out = True
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
    if timed_out or interrupted:
        why = CANCELLED_TIMEOUT if timed_out else CANCELLED_INTERRUPT
        merge.fail_rest(range(len(jobs)), why, "cancelled")
    return DriveResult(
        t_start=merge.t0,
        t_end=cfg.clock(),
        n_items=warm_res.n_items + merge.n_items,
        n_records=warm_res.n_records + merge.n_records,
        n_errors=warm_res.n_errors + merge.n_errors,
        interrupted=interrupted,
        timed_out=timed_out,
        n_unsupported=warm_res.n_unsupported + merge.n_unsupported,
    )
