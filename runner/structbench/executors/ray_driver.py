"""``--executor ray``: every cell a Ray task; the driver writes results as they stream back.

Each cell becomes one streaming Ray task (:func:`structbench.executors.ray_task.remote_cell`)
that starts its own engine on its node and yields each item's records as it completes.
The driver's ``ray.wait`` loop appends them to ``cells/<id>/requests.jsonl`` on arrival and
writes ``cell.json`` when the cell ends, so the folder has the shape of a local run and
``report``/``--resume`` read it unchanged. The manifest names the executor and the node of
each cell.

A task that dies (worker killed, node lost) ends as a Ray error on its stream, never a
hang: the driver then writes an ``error`` record for every call it did not receive (an item
the worker streamed is acknowledged before it goes on, so none is lost in flight) and a
``partial`` cell file naming the error, so ``--resume`` redoes exactly those items. Tasks
are never retried by Ray (``max_retries=0``): a retry would send records twice.

Cells of an engine that attaches to a running server run one at a time, since parallel
cells on one server would measure each other and one's cache flush would hit the other.
Other cells (embedded, launched servers) run as the cluster's resources allow. A cell with
more than one GPU runs in a placement group, and a cell that no node can hold fails at once
(:mod:`structbench.executors.ray_placement`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

from structbench.cells import CellWork, FolderOutput, RunKnobs
from structbench.engines.base import ExecContext
from structbench.errors import UserError
from structbench.executors.ray_placement import Bundle, Groups, misfit
from structbench.executors.ray_task import (
    EXIT_AFTER_ENV,
    CellJob,
    Failed,
    Finished,
    Message,
    Records,
    Started,
    driver_env,
    remote_cell,
)
from structbench.load.driver import CANCELLED_INTERRUPT, error_records
from structbench.progress import Progress
from structbench.records import Status
from structbench.runfolder import CellFile, CellStatus, ManifestLog
from structbench.spec.engines import EngineSpec

#: How often the wait loop wakes without news, so Ctrl-C and SIGTERM are seen promptly.
_POLL_S = 1.0


def run_on_ray(
    engines: Sequence[EngineSpec], work: Sequence[CellWork], log: ManifestLog, knobs: RunKnobs
) -> tuple[bool, list[str]]:
    """Run ``work`` as Ray tasks and write their results; returns (interrupted, failed cells).

    Uses the Ray session :func:`connect` opened (or one the caller had), and shuts it down
    at the end only when :func:`connect` started it.

    Raises:
        UserError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = import_ray()
    connect(knobs.executor.address)
    try:
        return _Driver(ray, engines, log, knobs).run(work)
    finally:
        if _session.ours:
            _session.ours = False
            ray.shutdown()


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        UserError: Ray is not installed.
    """
    # Typed as Any: Ray's own annotations are partial, and its remote/options API is dynamic.
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'structbench[ray]'") from None


@dataclass(slots=True)
class _Session:
    #: True while the Ray session in this process is one :func:`connect` started.
    ours: bool = False


_session = _Session()


def connect(address: str | None) -> None:
    """Start or join Ray unless this process already has a session (a test's, a notebook's).

    Called by the run's preflight, so that an unreachable cluster is refused before any folder.

    Raises:
        UserError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        return
    if address is not None:
        _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or "a local Ray instance"
        raise UserError(f"--address: cannot start or join {where} ({_first_line(e)})") from None
    _session.ours = True


def _check_reachable(address: str) -> None:
    """A quick TCP check of ``HOST:PORT``: Ray itself waits about a minute before giving up."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...": left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as e:
        raise UserError(f"--address {address}: no Ray cluster answers there ({e.strerror or e})") from None


def exit_after(cell_id: str, value: str | None) -> int | None:
    """The fault-injection hook's item count for ``cell_id`` (see ``EXIT_AFTER_ENV``)."""
    if not value:
        return None
    target, _, n = value.rpartition(":")
    if not n.isdigit():
        raise UserError(f"{EXIT_AFTER_ENV}={value!r}: use CELL_ID:N")
    return int(n) if target == cell_id else None


@dataclass(slots=True)
class _Flight:
    """A cell whose task is in flight, and what has come back of it."""

    cw: CellWork
    spec: EngineSpec
    out: FolderOutput
    tick: Callable[[], None]
    node: str | None = None
    #: (item id, warm-up) of every item whose records arrived.
    done: set[tuple[str, bool]] = field(default_factory=set)
    n_records: int = 0
    n_errors: int = 0
    ended: bool = False


class _Driver:
    """The ``ray.wait`` loop of one run (or resume)."""

    def __init__(self, ray: Any, engines: Sequence[EngineSpec], log: ManifestLog, knobs: RunKnobs) -> None:
        self.ray, self.log, self.knobs = ray, log, knobs
        self.specs = {e.name: e for e in engines}
        self.task = ray.remote(remote_cell)
        self.live: dict[Any, _Flight] = {}
        #: Cells waiting for their placement group, by cell id (their task is not sent yet).
        self.held: dict[str, tuple[CellJob, _Flight]] = {}
        self.groups = Groups(ray, log.run_dir.name)
        self.waiting: dict[str, deque[CellWork]] = {}
        self.failed: list[str] = []
        self.bar = Progress(enabled=False)

    def run(self, work: Sequence[CellWork]) -> tuple[bool, list[str]]:
        with Progress(enabled=self.knobs.progress) as bar, _sigterm_interrupts():
            self.bar = bar
            self.waiting = _lanes(work, self.specs)
            try:
                for lane in self.waiting:
                    self._next(lane)
                while self.live or self.held:
                    self._wait_once()
            except KeyboardInterrupt:
                self._interrupt()
                return True, self.failed
            finally:
                self.groups.remove_all()
        return False, self.failed

    def _wait_once(self) -> None:
        """Wait for the next message of any stream, or a group becoming ready; then expire groups."""
        pending = self.groups.pending()
        ready, _ = self.ray.wait([*self.live, *pending], num_returns=1, timeout=_POLL_S)
        for ref in ready:
            if ref not in self.live:  # a placement group is ready: send its cell's task
                job, flight = self.held.pop(pending[ref])
                self._send(job, flight, self.groups.grant(pending[ref]))
            elif not self._step(ref, self.live[ref]):
                flight = self.live.pop(ref)
                self.groups.remove(flight.cw.cell.cell_id)  # the task has ended: its bundle is free
                self._next(_lane_of(flight.cw, self.specs))
        for cell_id, reason in self.groups.expired(others_running=bool(self.live)):
            _, flight = self.held.pop(cell_id)
            self._abandon(flight, f"error: {reason}")
            self._next(_lane_of(flight.cw, self.specs))

    def _next(self, lane: str) -> None:
        """Submit the lane's next cell; one that fails at once makes room for the one after."""
        queue = self.waiting[lane]
        while queue and not self._submit(queue.popleft()):
            pass

    def _submit(self, cw: CellWork) -> bool:
        """Send the cell's task (or ask for its placement group first); False: it failed at once."""
        cell_id = cw.cell.cell_id
        job = CellJob(
            spec=self.specs[cw.cell.engine],
            work=cw,
            seed=self.knobs.seed,
            warmup=self.knobs.warmup,
            reset_cache=self.knobs.reset_cache,
            run_dir=str(self.log.run_dir.resolve()),
            exit_after=exit_after(cell_id, os.environ.get(EXIT_AFTER_ENV)),
            env=driver_env(),
        )
        tick = self.bar.add_cell(cell_id, min(self.knobs.warmup, len(cw.items)) + len(cw.items))
        flight = _Flight(cw, job.spec, FolderOutput(self.log.run_dir, cell_id), tick)
        bundle = Bundle.of(job.spec)
        reason = misfit(bundle, self.ray.nodes())
        if reason is not None:
            self._abandon(flight, f"error: cell {cell_id}: {reason}")
            return False
        if bundle.needs_group:
            self.groups.create(cell_id, bundle, job.spec.cell_placement_timeout_s)
            self.held[cell_id] = (job, flight)
        else:
            self._send(job, flight, None)
        return True

    def _send(self, job: CellJob, flight: _Flight, strategy: Any) -> None:
        """Start the cell's task: in its placement group's bundle when ``strategy`` says so."""
        placed = {} if strategy is None else {"scheduling_strategy": strategy}
        task = self.task.options(
            num_returns="streaming",
            max_retries=0,
            # Inside a bundle too: a task asking for the bundle's GPUs is given their ids, and Ray
            # sets its CUDA_VISIBLE_DEVICES to them (a task asking for none would see none).
            num_cpus=job.spec.cell_cpus,
            num_gpus=job.spec.cell_gpus,
            # The worker's next yield waits until the driver has taken the previous item, so
            # a worker that dies right after sending an item has not lost it in flight
            # (without this, the kill test lost the last streamed item in 2 of 4 runs).
            _generator_backpressure_num_objects=1,
            **placed,
        )
        self.live[task.remote(job)] = flight

    def _step(self, gen: Any, f: _Flight) -> bool:
        """Take the next message of a ready stream; False once the cell is over."""
        try:
            ref = next(gen)
        except StopIteration:
            if not f.ended:
                self._abandon(f, "error: the Ray task ended before its cell did")
            return False
        try:
            msg: Message = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # the worker died, its node was lost, ...
            self._abandon(f, f"error: Ray worker lost ({type(e).__name__}: {_first_line(e)})")
            return False
        self._handle(f, msg)
        return True

    def _handle(self, f: _Flight, msg: Message) -> None:
        cell_id = f.cw.cell.cell_id
        if isinstance(msg, Started):
            f.node = msg.node
            m = self.log.manifest
            if msg.facts.name not in m.engines:
                m = m.with_engine(msg.facts)
            self.log.save(m.with_node(cell_id, msg.node))
        elif isinstance(msg, Records):
            f.out.records(list(msg.recs))  # to disk on arrival: completed records are never lost
            f.done.update((r.item_id, r.warmup) for r in msg.recs)
            f.n_records += len(msg.recs)
            f.n_errors += sum(1 for r in msg.recs if r.error is not None)
            f.tick()
        elif isinstance(msg, Finished):
            f.out.cell_file(msg.cell)
            self._close(f, failed=msg.failed)
        elif isinstance(msg, Failed):
            self._abandon(f, f"error: {msg.error}")

    def _abandon(
        self, f: _Flight, error: str, status: Status = "error", cell_status: CellStatus = "partial"
    ) -> None:
        """Record every call that never came back, and the cell as unfinished (resumable)."""
        cw, n_warm = f.cw, min(self.knobs.warmup, len(f.cw.items))
        for idx, item in enumerate([*cw.items[:n_warm], *cw.items]):
            warm = idx < n_warm
            if (item.item_id, warm) in f.done:
                continue
            ctx = ExecContext(cw.cell.cell_id, time.monotonic, 0.0, warmup=warm, attempt=cw.attempt)
            # The worker's clock is gone with it: no timestamp, rather than one from another clock.
            lost = error_records(item, f.spec.name, ctx, error, status)
            recs = [replace(r, t_scheduled=None) for r in lost]
            f.out.records(recs)
            f.done.add((item.item_id, warm))
            f.n_records += len(recs)
            f.n_errors += len(recs)
        engine = self.log.manifest.engines.get(f.spec.name)
        entry = cw.cell.entry(engine.cache_pair if engine else None, f.node)
        f.out.cell_file(
            CellFile(
                **entry.model_dump(),
                status=cell_status,
                attempt=cw.attempt,
                n_items=len(f.done),
                n_records=f.n_records,
                n_errors=f.n_errors,
                warmup_items=n_warm,
                error=error,
            )
        )
        self._close(f, failed=cell_status == "partial")

    def _close(self, f: _Flight, failed: bool) -> None:
        f.ended = True
        f.out.close()
        if failed:
            self.failed.append(f.cw.cell.cell_id)

    def _interrupt(self) -> None:
        """Ctrl-C or SIGTERM: cancel the tasks; their missing calls become cancelled records."""
        for gen, f in self.live.items():
            with contextlib.suppress(Exception):  # best effort: the task may be gone already
                self.ray.cancel(gen, force=True)
            if not f.ended:
                self._abandon(f, CANCELLED_INTERRUPT, "cancelled", "interrupted")
        for _, f in self.held.values():  # still waiting for its placement group: nothing ran
            self._abandon(f, CANCELLED_INTERRUPT, "cancelled", "interrupted")
        self.live.clear()
        self.held.clear()


def _lanes(work: Sequence[CellWork], specs: dict[str, EngineSpec]) -> dict[str, deque[CellWork]]:
    """Queues of cells that must run one after another; different lanes run in parallel."""
    lanes: dict[str, deque[CellWork]] = {}
    for cw in work:
        lanes.setdefault(_lane_of(cw, specs), deque()).append(cw)
    return lanes


def _lane_of(cw: CellWork, specs: dict[str, EngineSpec]) -> str:
    # One lane per attached server (see the module docstring); every other cell alone.
    spec = specs[cw.cell.engine]
    return f"engine:{spec.name}" if spec.attach_url is not None else f"cell:{cw.cell.cell_id}"


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C (a synchronous loop has no task to cancel)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: Ctrl-C still works there
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
