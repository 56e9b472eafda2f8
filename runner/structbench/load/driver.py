"""The asyncio load driver: sends work items to an engine on a schedule and sinks records.

The driver owns timing policy only. Each item runs through the shared program walker
(:func:`structbench.program.run_item`), whose engine calls take the timestamps of their own
requests (with the clock passed in :class:`~structbench.engines.base.ExecContext`);
the driver stamps ``t_scheduled`` (the planned time, so queueing delay shows as
``t_sent - t_scheduled``), hands finished records to ``sink`` and ticks ``on_item_done``,
both outside the engine's request path.

Every item ends with records, whatever happens: an engine that raises (it shouldn't) gives
error records, a cell timeout gives ``cancelled: cell timeout`` records for the items it
cut off, and Ctrl-C gives ``cancelled: interrupted`` records for unfinished items.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from structbench.engines.base import Clock, Engine, ExecContext, new_record
from structbench.ir import WorkItem
from structbench.load.arrivals import LoadPoint, arrival_offsets
from structbench.program import run_item
from structbench.records import CallRecord, Status

Sink = Callable[[list[CallRecord]], None]

CANCELLED_TIMEOUT = "cancelled: cell timeout"
CANCELLED_INTERRUPT = "cancelled: interrupted"

#: The event loop's epoll waits in whole milliseconds, rounded up, so a plain sleep ends up to
#: 1 ms late: at 1,000 req/s that is a send lag as large as the gap between requests.
SPIN_S = 0.001


_frozen = [0]  # drives in progress in this process (the GC's frozen set is process-wide)


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Keep what exists at the start of a drive out of the GC's collections during it.

    A full collection scans every live object, and a benchmark process holds many (items,
    modules, the records so far): the pause delays the sends and stamps due meanwhile
    (``benchmarks/client_scaling.py``: on a quiet machine, p99 send lag at 1,000 req/s went
    from about 1.2-1.5 ms to 0.4-0.8 ms; on a loaded one other stalls dominate).
    Collections still run, over what the drive itself creates.
    """
    if _frozen[0] == 0:
        gc.freeze()
    _frozen[0] += 1
    try:
        yield
    finally:
        _frozen[0] -= 1
        if _frozen[0] == 0:
            gc.unfreeze()


async def precise_sleep(delay: float) -> None:
    """Sleep ``delay`` seconds to well under a millisecond: the last one is spent yielding.

    The loop keeps serving I/O while it yields; the cost is a busy last millisecond per wait,
    which only open-loop schedules pay (a closed loop never sleeps).
    """
    deadline = time.perf_counter() + delay
    if delay > SPIN_S:
        await asyncio.sleep(delay - SPIN_S)
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)


@dataclass(frozen=True, slots=True)
class DriveConfig:
    """How one cell is driven.

    Attributes:
        cell_id: Written into every record.
        seed: Seeds the arrival schedule and (through ``ExecContext.seed``) every call.
        warmup: The first ``warmup`` items run first, one at a time, flagged warm-up.
        clock: Monotonic clock for every timestamp (injected so tests can fake it).
        cell_timeout_s: Wall-clock limit for the whole cell (warm-up included).
        attempt: Attempt number written into records (retries of a cell).
        on_item_done: Called after each item's records are sunk (progress bars).
        sleep: Awaitable sleep matching ``clock`` (tests pair a fake clock with a fake sleep);
            the default, :func:`precise_sleep`, is not late by epoll's millisecond.
        on_warmup_done: Awaited once after the warm-up items and before the measured
            window starts (the runner reads the server's counters there).
    """

    cell_id: str
    seed: int
    warmup: int = 0
    clock: Clock = time.perf_counter
    cell_timeout_s: float | None = None
    attempt: int = 1
    on_item_done: Callable[[], None] | None = None
    sleep: Callable[[float], Awaitable[None]] = precise_sleep
    on_warmup_done: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class DriveResult:
    """What happened in one cell.

    ``t_start`` is taken after the warm-up items, so ``t_end - t_start`` is the measured
    window. The counts include warm-up and cancelled items.
    """

    t_start: float
    t_end: float
    n_items: int
    n_records: int
    n_errors: int
    interrupted: bool
    timed_out: bool
    #: Errors that are "unsupported: ..." or a loud rejection of the constraint by the
    #: engine (:attr:`CallRecord.rejected`): a limit of the engine, not a failure.
    n_unsupported: int = 0

    @property
    def n_failed(self) -> int:
        """Error records that are real failures (unsupported constraints excluded)."""
        return self.n_errors - self.n_unsupported


def error_records(
    item: WorkItem, engine: str, ctx: ExecContext, error: str, status: Status = "error"
) -> list[CallRecord]:
    """One record per gen of ``item`` with the same status and reason (nothing came back)."""
    return [new_record(engine, item, where, ctx, error=error, status=status) for where in item.gens()]


class _Cell:
    """Mutable bookkeeping of one drive() call (never shared between cells)."""

    def __init__(self, engine: Engine, cfg: DriveConfig, sink: Sink, n: int) -> None:
        self.engine, self.cfg, self.sink = engine, cfg, sink
        self.planned: list[float | None] = [None] * n
        self.finished: list[bool] = [False] * n
        self.t0: float | None = None
        self.n_items = self.n_records = self.n_errors = self.n_unsupported = 0

    def ctx(self, t_scheduled: float, warmup: bool = False) -> ExecContext:
        c = self.cfg
        return ExecContext(c.cell_id, c.clock, t_scheduled, warmup=warmup, attempt=c.attempt, seed=c.seed)

    def finish(self, idx: int, recs: list[CallRecord]) -> None:
        self.finished[idx] = True
        self.sink(recs)
        self.n_items += 1
        self.n_records += len(recs)
        self.n_errors += sum(1 for r in recs if r.error is not None)
        # Loud rejections too: the engine said what it cannot do, which is a coverage result.
        self.n_unsupported += sum(1 for r in recs if r.unsupported or r.rejected)
        if self.cfg.on_item_done is not None:
            self.cfg.on_item_done()

    async def run_item(self, idx: int, item: WorkItem, t_scheduled: float, warmup: bool = False) -> None:
        self.planned[idx] = t_scheduled
        ctx = self.ctx(t_scheduled, warmup)
        try:
            recs = await run_item(self.engine, item, ctx)
        except Exception as e:  # the walker must not raise; a bug still leaves records
            recs = error_records(item, self.engine.name, ctx, f"engine raised {type(e).__name__}: {e}")
        self.finish(idx, recs)

    def cancel_rest(self, items: Sequence[WorkItem], error: str) -> None:
        now = self.cfg.clock()
        for idx, item in enumerate(items):
            if not self.finished[idx]:
                planned = self.planned[idx]
                ctx = self.ctx(now if planned is None else planned, warmup=idx < self.cfg.warmup)
                self.finish(idx, error_records(item, self.engine.name, ctx, error, "cancelled"))


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Stop tasks still running (after a timeout, Ctrl-C or a sink error) and wait for them."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _closed_loop(cell: _Cell, work: Iterator[tuple[int, WorkItem]], n_workers: int) -> None:
    async def worker() -> None:
        # One shared iterator: next() never interleaves in a single-threaded loop.
        for idx, item in work:
            await cell.run_item(idx, item, cell.cfg.clock())

    tasks = [asyncio.ensure_future(worker()) for _ in range(n_workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        await _cancel_all(tasks)


async def _open_loop(cell: _Cell, work: list[tuple[int, WorkItem]], point: LoadPoint, t0: float) -> None:
    offsets = arrival_offsets(len(work), point, random.Random(cell.cfg.seed))
    sem = asyncio.Semaphore(point.max_concurrency) if point.max_concurrency else None

    async def launch(idx: int, item: WorkItem, t_plan: float) -> None:
        if sem is None:
            await cell.run_item(idx, item, t_plan)
            return
        async with sem:
            await cell.run_item(idx, item, t_plan)

    for (idx, _), off in zip(work, offsets, strict=True):
        cell.planned[idx] = t0 + off
    tasks: list[asyncio.Task[None]] = []
    try:
        for (idx, item), off in zip(work, offsets, strict=True):
            t_plan = t0 + off
            delay = t_plan - cell.cfg.clock()
            if delay > 0:
                await cell.cfg.sleep(delay)
            tasks.append(asyncio.ensure_future(launch(idx, item, t_plan)))
        await asyncio.gather(*tasks)
    finally:
        await _cancel_all(tasks)


async def _main(cell: _Cell, items: Sequence[WorkItem], point: LoadPoint) -> None:
    n_warm = min(cell.cfg.warmup, len(items))
    for idx in range(n_warm):
        await cell.run_item(idx, items[idx], cell.cfg.clock(), warmup=True)
    if cell.cfg.on_warmup_done is not None:
        await cell.cfg.on_warmup_done()
    t0 = cell.t0 = cell.cfg.clock()
    work = [(idx, items[idx]) for idx in range(n_warm, len(items))]
    if point.mode == "concurrency":
        await _closed_loop(cell, iter(work), max(1, min(point.concurrency or 1, len(work))))
    else:
        await _open_loop(cell, work, point, t0)


async def drive(
    engine: Engine,
    items: Sequence[WorkItem],
    point: LoadPoint,
    cfg: DriveConfig,
    sink: Callable[[list[CallRecord]], None],
) -> DriveResult:
    """Run ``items`` against a started ``engine`` at one load point.

    Args:
        engine: A started engine.
        items: The cell's work items; the first ``cfg.warmup`` are the warm-up.
        point: Closed loop (``concurrency``), open loop (``rate``) or ``offline``.
        cfg: Cell id, seed, clock, timeout and callbacks.
        sink: Receives each item's records as soon as the item finishes.

    Returns:
        Counts and flags. Never raises for failed requests; an exception from ``sink``
        propagates (the records could not be stored).
    """
    cell = _Cell(engine, cfg, sink, len(items))
    t_begin = cfg.clock()
    main = asyncio.ensure_future(_main(cell, items, point))
    timed_out = interrupted = False
    try:
        with gc_frozen():
            done, _ = await asyncio.wait({main}, timeout=cfg.cell_timeout_s)
        timed_out = main not in done
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
    if timed_out or interrupted:
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
        cell.cancel_rest(items, CANCELLED_TIMEOUT if timed_out else CANCELLED_INTERRUPT)
    else:
        main.result()  # re-raises a sink error
    return DriveResult(
        t_start=t_begin if cell.t0 is None else cell.t0,
        t_end=cfg.clock(),
        n_items=cell.n_items,
        n_records=cell.n_records,
        n_errors=cell.n_errors,
        interrupted=interrupted,
        timed_out=timed_out,
        n_unsupported=cell.n_unsupported,
    )


async def drive_share(
    engine: Engine,
    items: Sequence[WorkItem],
    share: Sequence[tuple[int, float]],
    t0: float,
    cfg: DriveConfig,
    sink: Callable[[list[CallRecord]], None],
) -> DriveResult:
    """One client's share of a load point split over several clients (``split_schedule``).

    Sends ``items[i]`` at ``t0 + offset`` for each ``(i, offset)`` of ``share``; ``t0`` is the
    start every client shares, on this client's ``cfg.clock``. No warm-up and no cap on
    items in flight here: the caller warms the server up once, and the clients together pace
    the load.
    """
    cell = _Cell(engine, cfg, sink, len(items))
    cell.t0 = t0
    for idx, off in share:
        cell.planned[idx] = t0 + off
    tasks: list[asyncio.Task[None]] = []
    try:
        with gc_frozen():
            for idx, off in share:
                delay = t0 + off - cfg.clock()
                if delay > 0:
                    await cfg.sleep(delay)
                tasks.append(asyncio.ensure_future(cell.run_item(idx, items[idx], t0 + off)))
            await asyncio.gather(*tasks)
    finally:
        await _cancel_all(tasks)
    return DriveResult(
        t_start=t0,
        t_end=cfg.clock(),
        n_items=cell.n_items,
        n_records=cell.n_records,
        n_errors=cell.n_errors,
        interrupted=False,
        timed_out=False,
        n_unsupported=cell.n_unsupported,
    )
