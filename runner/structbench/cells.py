"""One cell, start to end: flush, warm-up, counters, load, memory, ideal cache, cell file.

A cell is one engine x task x load point (DESIGN.md "Cells"). :func:`run_cell` runs it on
a started engine and writes only into its own sub-folder ``cells/<id>/``: its call records,
appended to ``requests.jsonl`` as they complete, then ``cell.json``. It shares no records
with other cells, so that it could run anywhere (a Ray task later).

The one warm-up rule of the cache figures holds here: the prefix cache is flushed before
the warm-ups, the server counters are read *after* them (so the counter deltas bracket
exactly the calls the client rate counts), and the ideal hit rate treats warm-up calls as
cache contents, never as counted calls (:func:`structbench.metrics.cache.cell_ideal`).
When the flush did not succeed, the engine's earlier cells are cache contents too: the run
loop (:func:`run_engine_cells`) hands each cell the records of the cells before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from structbench.engines.base import Engine, EngineInfo, PromptTokenizer
from structbench.errors import UserError
from structbench.ir import WorkItem
from structbench.load.arrivals import LoadPoint
from structbench.load.clients import Fleet, drive_clients
from structbench.load.driver import DriveConfig, DriveResult, drive
from structbench.memory import MemoryReport, MemorySampler
from structbench.metrics.cache import IdealCache, PromptCounter, approximate_counter, cell_ideal
from structbench.model_config import served_model_facts
from structbench.progress import Progress
from structbench.records import CallRecord, RecordWriter, cell_records_path
from structbench.runfolder import (
    CELL_FILE,
    CacheArm,
    CellEntry,
    CellFile,
    CellStatus,
    EngineFacts,
    IdealFacts,
    LoadFacts,
    MemoryFacts,
)
from structbench.runfolder.facts import engine_facts

Snapshot = dict[str, float]


@dataclass(frozen=True, slots=True)
class Cell:
    """One engine x task x load point: the unit that writes its own sub-folder."""

    cell_id: str
    engine: str
    task: str
    point: LoadPoint
    #: The engine spec's ``cache`` (on/off arm of a cache comparison); None when it has none.
    cache_arm: CacheArm | None = None
    #: The cell sends the first ``items`` of its task's items (``requests_per_concurrency``);
    #: None: all of them.
    items: int | None = None

    def entry(self, cache_pair: str | None = None, node: str | None = None) -> CellEntry:
        """Manifest form (the cache pair and node are known once the engine has started)."""
        return CellEntry(
            cell_id=self.cell_id,
            engine=self.engine,
            task=self.task,
            load=LoadFacts.of(self.point),
            cache_arm=self.cache_arm,
            cache_pair=cache_pair,
            node=node,
            items=self.items,
        )


@dataclass(frozen=True, slots=True)
class CellWork:
    """A cell and the items to run in it (all of them, or the unfinished ones on resume)."""

    cell: Cell
    items: list[WorkItem]
    #: Written into the records: 1 for a fresh run, previous max + 1 when resuming.
    attempt: int = 1
    #: The cell's records from earlier attempts (resume): they count for its ideal cache.
    previous: tuple[CallRecord, ...] = field(default=())
    #: The same engine's earlier cells' records in this run, oldest first. They are still
    #: in its cache unless this cell's flush succeeds; the ideal then holds them, uncounted.
    earlier_cells: tuple[CallRecord, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class CellCtx:
    """What every cell of one started engine shares (no records: each cell writes its own)."""

    bar: Progress
    seed: int
    warmup: int
    gpu_baseline: tuple[int, ...]
    reset_cache: bool
    #: The started engine, as the manifest records it.
    engine: EngineFacts
    #: The engine's prefix-cache block size (None: no prefix cache, no ideal).
    block_size: int | None = None
    #: Where ``block_size`` came from (:attr:`EngineInfo.cache_block_source`).
    block_source: str | None = None
    #: The Ray node the cell runs on (None: in the driver's process).
    node: str | None = None
    #: How clients in other processes reach the engine (``load.clients``); None: they can't.
    fleet: Fleet | None = None


@dataclass(frozen=True, slots=True)
class Executor:
    """Where the cells run: in this process one after another, or as Ray tasks."""

    kind: Literal["local", "ray"] = "local"
    #: The Ray cluster to join (``ray.init(address=...)``); None starts a local one.
    address: str | None = None


@dataclass(frozen=True, slots=True)
class RunKnobs:
    """Run-wide settings the cell loop needs."""

    seed: int
    #: Warm-up items per cell (excluded from metrics).
    warmup: int
    progress: bool
    #: Flush the engine's prefix cache before each cell.
    reset_cache: bool
    executor: Executor = field(default_factory=Executor)


class CellOutput(Protocol):
    """Where a cell's results go: its sub-folder here, or a stream back to the driver (Ray)."""

    def records(self, recs: list[CallRecord]) -> None:
        """Keep one item's records (called as each item completes)."""
        ...

    def cell_file(self, cell: CellFile) -> None:
        """Keep the cell's ``cell.json`` (called once, when the cell ends)."""
        ...


class FolderOutput:
    """A cell's own sub-folder of the run: ``requests.jsonl`` appended, then ``cell.json``."""

    def __init__(self, run_dir: Path, cell_id: str) -> None:
        self.path = cell_records_path(run_dir, cell_id)
        self._writer = RecordWriter(self.path)

    def records(self, recs: list[CallRecord]) -> None:
        """Append and flush (completed records are never lost)."""
        self._writer.write_all(recs)

    def cell_file(self, cell: CellFile) -> None:
        """Write ``cell.json`` beside the records."""
        cell.write(self.path.parent / CELL_FILE)

    def close(self) -> None:
        """Close the records file."""
        self._writer.close()


def started_facts(info: EngineInfo, spec: BaseModel) -> EngineFacts:
    """The manifest's facts of a started engine, with its model's size when readable here."""
    facts = engine_facts(info, spec)
    return facts.model_copy(update={"served_model": served_model_facts(facts.model_paths, facts.dtype)})


@runtime_checkable
class CacheResetter(Protocol):
    """Engines whose server can drop its prefix cache on request."""

    async def reset_prefix_cache(self) -> bool:
        """True when the server accepted the flush."""
        ...


@runtime_checkable
class MetricsSource(Protocol):
    """Engines backed by a server with Prometheus /metrics."""

    async def metrics_snapshot(self) -> Snapshot | None:
        """Counters summed per metric name, or None when unavailable."""
        ...


@dataclass(slots=True)
class _CellRun:
    """What happened around one cell's drive, for its cell file."""

    n_warmup: int
    cache_reset: bool | None = None
    metrics_before: Snapshot | None = None
    metrics_after: Snapshot | None = None
    records: list[CallRecord] = field(default_factory=list)
    memory: MemoryReport | None = None
    ideal: IdealCache | None = None


async def run_cell(engine: Engine, cw: CellWork, run_dir: Path, ctx: CellCtx) -> DriveResult:
    """Run one cell on a started engine and write its sub-folder; returns the driver's result.

    The records are appended to the cell's ``requests.jsonl`` (a resumed cell's new attempt
    follows its earlier ones), then its ``cell.json`` is written.
    """
    res, _ = await _run_cell(engine, cw, run_dir, ctx)
    return res


async def run_engine_cells(
    engine: Engine, work: Sequence[CellWork], run_dir: Path, ctx: CellCtx
) -> tuple[bool, list[str]]:
    """Run a started engine's cells one after another; returns (interrupted, failed cell ids).

    Each cell is handed the records of the engine's cells before it (``earlier_cells``),
    kept in memory here: a cell whose flush does not succeed still has them in its cache.
    A cancelled run (Ctrl-C, SIGTERM) ends as interrupted, with the failures so far.
    """
    held: list[CallRecord] = []
    failed: list[str] = []
    try:
        for cw in work:
            res, records = await _run_cell(engine, replace(cw, earlier_cells=tuple(held)), run_dir, ctx)
            held.extend(records)
            if res.interrupted:
                return True, failed
            if res.timed_out or res.n_failed:
                failed.append(cw.cell.cell_id)
    except asyncio.CancelledError:
        return True, failed
    return False, failed


async def _run_cell(
    engine: Engine, cw: CellWork, run_dir: Path, ctx: CellCtx
) -> tuple[DriveResult, list[CallRecord]]:
    """:func:`run_cell`, also returning the records this attempt wrote."""
    out = FolderOutput(run_dir, cw.cell.cell_id)
    try:
        return await run_cell_to(engine, cw, ctx, out)
    finally:
        out.close()


async def run_cell_to(
    engine: Engine, cw: CellWork, ctx: CellCtx, out: CellOutput
) -> tuple[DriveResult, list[CallRecord]]:
    """Run one cell on a started engine into ``out``; returns the driver's result and records."""
    res, ran = await _drive_cell(engine, cw, ctx, out)
    # Without a successful flush the engine's earlier cells are still in its cache.
    before = () if ran.cache_reset is True else cw.earlier_cells
    records = [*cw.previous, *ran.records]
    ran.ideal = await asyncio.to_thread(_ideal, engine, records, before, ctx.block_size)
    out.cell_file(_cell_file(cw, res, ran, ctx))
    return res, ran.records


async def _drive_cell(
    engine: Engine, cw: CellWork, ctx: CellCtx, out: CellOutput
) -> tuple[DriveResult, _CellRun]:
    """Flush, warm up, read the counters, drive the cell's load and sample memory around it."""
    cell = cw.cell
    warm, items = warmup_split(cw.items, ctx.warmup)
    ran = _CellRun(len(warm))
    if ctx.reset_cache and isinstance(engine, CacheResetter):
        ran.cache_reset = await engine.reset_prefix_cache()

    async def after_warmup() -> None:
        ran.metrics_before = await _metrics(engine)

    def sink(recs: list[CallRecord]) -> None:
        out.records(recs)  # kept first: completed records are never lost
        ran.records.extend(recs)

    tick = ctx.bar.add_cell(cell.cell_id, len(warm) + len(items))
    cfg = DriveConfig(
        cell_id=cell.cell_id,
        seed=ctx.seed,
        warmup=len(warm),
        attempt=cw.attempt,
        on_item_done=tick,
        on_warmup_done=after_warmup,
    )
    with MemorySampler(ctx.gpu_baseline) as mem:
        if cell.point.clients > 1:
            if ctx.fleet is None:
                raise UserError(f"{cell.cell_id}: load.clients needs an engine with a server")
            res = await drive_clients(engine, ctx.fleet, warm + items, cell.point, cfg, sink)
        else:
            res = await drive(engine, warm + items, cell.point, cfg, sink)
    ran.metrics_after = await _metrics(engine)
    ran.memory = mem.report
    return res, ran


def warmup_split(items: Sequence[WorkItem], warmup: int) -> tuple[list[WorkItem], list[WorkItem]]:
    """The cell's warm-up items and its measured ones; the driver flags the warm-ups' records.

    A task with primers (a prefix workload's shared prefixes) warms up with them alone:
    replaying a measured item would cache all of that item's prompt and lift its hit
    rate above what the task built. Otherwise the first ``warmup`` items run again first.
    """
    primers = [it for it in items if it.primer]
    if primers:
        return primers, [it for it in items if not it.primer]
    return list(items[:warmup]), list(items)


def prompt_counter(engine: Engine) -> PromptCounter:
    """How the engine tokenizes its prompts, or the labelled approximation when it can't say."""
    found = engine.prompt_tokens() if isinstance(engine, PromptTokenizer) else None
    if found is None:
        return approximate_counter()
    return PromptCounter(found.render, found.tokenize, found.label, found.stop_ids, found.fork_prefix)


def _ideal(
    engine: Engine, records: Sequence[CallRecord], before: Sequence[CallRecord], block_size: int | None
) -> IdealCache | None:
    """The cell's ideal prefix reuse at the engine's block size (tokenizing: off the loop).

    ``before``: earlier cells' records still in the engine's cache (uncounted).
    """
    if block_size is None or not records:
        return None
    return cell_ideal(records, prompt_counter(engine), block_size, before)


def _cell_file(cw: CellWork, res: DriveResult, ran: _CellRun, ctx: CellCtx) -> CellFile:
    return CellFile(
        **cw.cell.entry(ctx.engine.cache_pair, ctx.node).model_dump(),
        status=cell_status(res),
        attempt=cw.attempt,
        t_start=res.t_start,
        t_end=res.t_end,
        duration_s=res.t_end - res.t_start,
        n_items=res.n_items,
        n_records=res.n_records,
        n_errors=res.n_errors,
        warmup_items=ran.n_warmup,
        cache_reset=ran.cache_reset,
        metrics_before=ran.metrics_before,
        metrics_after=ran.metrics_after,
        memory=None if ran.memory is None else MemoryFacts.model_validate(ran.memory.to_dict()),
        cache_block_size=ctx.block_size,
        cache_block_source=ctx.block_source,
        ideal=None if ran.ideal is None else IdealFacts(**asdict(ran.ideal)),
    )


def cell_status(res: DriveResult) -> CellStatus:
    """``partial`` when calls failed: ``--resume`` re-runs the items of any cell not ``complete``."""
    if res.interrupted:
        return "interrupted"
    if res.timed_out:
        return "timed_out"
    return "partial" if res.n_failed else "complete"


async def _metrics(engine: Engine) -> Snapshot | None:
    if isinstance(engine, MetricsSource):
        return await engine.metrics_snapshot()
    return None
