"""One cell on a Ray worker: start its engine there, run the cell, stream its results back.

The worker writes nothing into the run folder (it may be on another machine): every
item's records go back to the driver as a :class:`Records` message the moment the item
completes, then the cell file as :class:`Finished`. A failure to start the engine comes
back as :class:`Failed`, so the driver records it and the other cells go on.

Only :func:`remote_cell` touches Ray (to name its node); :func:`cell_messages` is plain
Python, so that it can be tested without a cluster.
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from structbench.cells import CellCtx, CellWork, run_cell_to, started_facts
from structbench.engines.registry import EngineEnv, create_engine
from structbench.executors.ray_clients import run_jobs
from structbench.limits import check_token_limits
from structbench.load.clients import fleet_for
from structbench.memory import gpu_baseline
from structbench.progress import Progress
from structbench.records import CallRecord
from structbench.runfolder import CellFile, EngineFacts
from structbench.spec.engines import EngineSpec

#: Fault injection for tests: ``<cell id>:<n>`` makes that cell's worker exit abruptly
#: (``os._exit``) once it has streamed ``n`` items, as a crashed or OOM-killed worker would.
EXIT_AFTER_ENV = "STRUCTBENCH_RAY_EXIT_AFTER"

#: What Ray sets in every task's environment that changes how an engine computes: it sets
#: OMP_NUM_THREADS to the task's num_cpus (1 for a cell) when the variable is unset, and a
#: server the task launches inherits it, so under Ray the servers ran with one OpenMP thread and
#: in a local run with torch's default (every core). A cell's task gives its engine the driver's
#: values instead (unset stays unset): the executor must not change what is measured, and a
#: suite that wants a value sets it in ``launch.env``, which wins under both executors.
DRIVER_ENV_VARS = ("OMP_NUM_THREADS",)
EnvValues = tuple[tuple[str, str | None], ...]


def driver_env() -> EnvValues:
    """This process's values of :data:`DRIVER_ENV_VARS` (None: unset), for :attr:`CellJob.env`."""
    return tuple((k, os.environ.get(k)) for k in DRIVER_ENV_VARS)


@contextmanager
def env_as(values: EnvValues) -> Iterator[None]:
    """Set (or unset, for None) each variable while the block runs, then put back what was there."""

    def put(key: str, value: str | None) -> None:
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    saved = [(k, os.environ.get(k)) for k, _ in values]
    try:
        for k, v in values:
            put(k, v)
        yield
    finally:
        for k, v in saved:
            put(k, v)


@dataclass(frozen=True, slots=True)
class CellJob:
    """Everything a worker needs to run one cell (pickled to it by Ray)."""

    spec: EngineSpec
    work: CellWork
    seed: int
    warmup: int
    reset_cache: bool
    #: The driver's run folder: the engine's own files go there when this node sees it.
    run_dir: str
    #: Test hook (see :data:`EXIT_AFTER_ENV`); None in real runs.
    exit_after: int | None = None
    #: The driver's :func:`driver_env`, which the cell's engine starts with.
    env: EnvValues = ()


@dataclass(frozen=True, slots=True)
class Started:
    """The engine is up on ``node``."""

    facts: EngineFacts
    node: str


@dataclass(frozen=True, slots=True)
class Records:
    """One completed item's records."""

    recs: tuple[CallRecord, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    """The cell ended; ``failed`` when calls failed or it timed out (the run's failed cells)."""

    cell: CellFile
    failed: bool


@dataclass(frozen=True, slots=True)
class Failed:
    """The cell could not run (its engine did not start, or the worker's code raised)."""

    error: str


Message = Started | Records | Finished | Failed
_Put = Callable[[Message | None], None]


def remote_cell(job: CellJob) -> Iterator[Message]:
    """The Ray task body: :func:`cell_messages` on this worker's node."""
    import ray  # on a worker, Ray is there by definition

    ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    ctx = ray.get_runtime_context()
    where = [ip, f"node {ctx.get_node_id()[:12]}"]
    # The GPUs Ray gave the task (its CUDA_VISIBLE_DEVICES, which the launched server inherits)
    # and its placement group: the manifest then says where each cell's server ran.
    if gpus := ray.get_gpu_ids():
        where.append(f"GPUs {','.join(str(g) for g in gpus)}")
    if pg := ctx.get_placement_group_id():
        where.append(f"placement group {pg[:12]}")
    yield from cell_messages(job, f"{socket.gethostname()} ({', '.join(where)})")


def cell_messages(job: CellJob, node: str) -> Iterator[Message]:
    """Run ``job`` and yield its messages as they happen; the last is Finished or Failed.

    The cell runs on its own event loop in a thread, because a generator cannot yield from
    inside ``asyncio.run``; a queue hands each message over as soon as it exists.
    """
    q: queue.Queue[Message | None] = queue.Queue()
    worker = threading.Thread(target=_run_in_thread, args=(job, node, q.put), daemon=True)
    worker.start()
    streamed = 0
    while (msg := q.get()) is not None:
        yield msg
        if isinstance(msg, Records):
            streamed += 1
            if job.exit_after is not None and streamed >= job.exit_after:
                os._exit(70)  # the fault the test injects: no cleanup, like a killed worker
    worker.join()


def _run_in_thread(job: CellJob, node: str, put: _Put) -> None:
    try:
        with env_as(job.env):
            asyncio.run(_run(job, node, put))
    except Exception as e:  # every failure reaches the driver as a message, never a silent end
        put(Failed(f"{type(e).__name__}: {e}"))
    finally:
        put(None)


class _StreamOutput:
    """A :class:`~structbench.cells.CellOutput` that sends records back instead of writing them."""

    def __init__(self, put: _Put) -> None:
        self._put = put
        self.cell: CellFile | None = None

    def records(self, recs: list[CallRecord]) -> None:
        self._put(Records(tuple(recs)))

    def cell_file(self, cell: CellFile) -> None:
        self.cell = cell


async def _run(job: CellJob, node: str, put: _Put) -> None:
    cell_id = job.work.cell.cell_id
    engine = create_engine(job.spec, EngineEnv(workdir=_engine_dir(job), seed=job.seed))
    try:
        info = await engine.start()
        check_token_limits(info, job.work.items)
        facts = started_facts(info, job.spec)
        put(Started(facts, node))
        ctx = CellCtx(
            Progress(enabled=False),
            job.seed,
            job.warmup,
            gpu_baseline(),
            job.reset_cache,
            facts,
            block_size=info.cache_block_size,
            block_source=info.cache_block_source,
            node=node,
            # A multi-client point's clients are Ray actors here, not processes of this task.
            fleet=fleet_for(job.spec, info.url, run_jobs) if info.url else None,
        )
        out = _StreamOutput(put)
        # Each task starts its own engine: no earlier cell is in its cache (earlier_cells stays empty).
        res, _ = await run_cell_to(engine, job.work, ctx, out)
        if out.cell is None:
            raise RuntimeError(f"cell {cell_id} ended without its cell file")
        put(Finished(out.cell, bool(res.timed_out or res.n_failed)))
    finally:
        await engine.close()


def _engine_dir(job: CellJob) -> Path:
    """The run folder's ``engines/<name>/<cell>`` when this node shares it, else a scratch folder."""
    run_dir = Path(job.run_dir)
    if run_dir.is_dir():
        return run_dir / "engines" / job.spec.name / job.work.cell.cell_id
    return Path(tempfile.mkdtemp(prefix=f"structbench-{job.work.cell.cell_id}-"))
