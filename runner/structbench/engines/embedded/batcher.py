"""The micro-batcher: a worker thread that owns the model and batches queued requests.

This module is model-agnostic (no torch): the worker drives a :class:`BatchExecutor`,
which the real runtime implements over transformers (``decode.py``) and the tests
implement with a scripted fake. Batching is continuous: when the batch is idle, the
worker waits up to the batch window for more requests after the first; while a batch
is decoding, newly queued requests join it at the next step boundary, up to
``max_batch`` rows.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from structbench.engines.embedded.api import GenRequest, GenResult


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Length-normalised log-probabilities of choices (``time.perf_counter`` times)."""

    logprobs: tuple[float, ...]
    prompt_tokens: int
    t_start: float
    t_done: float
    error: str | None = None


@dataclass(slots=True)
class GenJob:
    """A queued generation. ``payload`` is the executor's compiled constraint."""

    req: GenRequest
    future: Future[GenResult]
    t_submit: float
    payload: object = None


@dataclass(slots=True)
class ScoreJob:
    """A queued choice scoring."""

    prompt: str
    choices: tuple[str, ...]
    future: Future[ScoreResult]
    t_submit: float = field(default_factory=time.perf_counter)


Job = GenJob | ScoreJob


class BatchExecutor(Protocol):
    """The model side of the batcher; only the worker thread calls it."""

    @property
    def active(self) -> int:
        """Rows currently decoding."""
        ...

    def admit(self, jobs: list[GenJob]) -> None:
        """Prefill ``jobs`` and add them to the running batch (resolves failures itself)."""
        ...

    def step(self) -> None:
        """Decode one token for every active row; resolve the rows that finish."""
        ...

    def score(self, job: ScoreJob) -> None:
        """Score the choices of ``job`` and resolve its future."""
        ...

    def fail_all(self, error: str) -> None:
        """Resolve every active row with ``error`` and drop the batch."""
        ...


def collect(
    q: queue.Queue[Job | None],
    slots: int,
    window_s: float,
    block: bool,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[Job], bool]:
    """Take the next jobs from ``q``.

    Args:
        q: The request queue; ``None`` is the close sentinel.
        slots: How many generation jobs may join (score jobs take no slot).
        window_s: After the first job of an idle batch, how long to wait for more.
        block: True when the batch is idle: wait for a first job, then for the window.
            False while decoding: take only what is already queued.
        clock: Monotonic clock (injected by tests).

    Returns:
        The jobs in arrival order, and whether the close sentinel was seen.
    """
    jobs: list[Job] = []
    gens = 0
    deadline: float | None = None
    while gens < slots:
        try:
            if not block:
                item = q.get_nowait()
            elif deadline is None:
                item = q.get()
            else:
                item = q.get(timeout=max(0.0, deadline - clock()))
        except queue.Empty:
            break
        if item is None:
            return jobs, True
        jobs.append(item)
        if isinstance(item, GenJob):
            gens += 1
        if block and deadline is None:
            deadline = clock() + window_s
    return jobs, False


def fail_job(job: Job, error: str) -> None:
    """Resolve ``job``'s future with an error result (never raises)."""
    now = time.perf_counter()
    if isinstance(job, GenJob):
        res = GenResult(
            text="",
            prompt_tokens=0,
            completion_tokens=0,
            finish_reason="error",
            t_start=job.t_submit,
            t_first_token=None,
            t_done=now,
            error=error,
        )
        if not job.future.done():
            job.future.set_result(res)
    elif not job.future.done():
        job.future.set_result(ScoreResult((), 0, job.t_submit, now, error=error))


class Worker:
    """The thread that owns the model: collects jobs and runs the executor.

    Args:
        executor: The model side.
        max_batch: Largest number of decoding rows.
        window_s: Batch window after the first request of an idle batch.
    """

    def __init__(self, executor: BatchExecutor, max_batch: int, window_s: float) -> None:
        self._exe = executor
        self._max_batch = max(1, max_batch)
        self._window_s = max(0.0, window_s)
        self._q: queue.Queue[Job | None] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="structbench-embedded", daemon=True)
        self._thread.start()

    def put(self, job: Job) -> None:
        """Queue a job; after close it is failed at once."""
        with self._lock:  # atomic with close(): no job can slip in behind the sentinel
            if not self._closed.is_set():
                self._q.put(job)
                return
        fail_job(job, "runtime closed")

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread; queued and running jobs resolve with 'runtime closed'."""
        with self._lock:
            self._closed.set()
            self._q.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closed.is_set():
            idle = self._exe.active == 0
            jobs, sentinel = collect(self._q, self._max_batch - self._exe.active, self._window_s, idle)
            if sentinel or self._closed.is_set():
                for job in jobs:
                    fail_job(job, "runtime closed")
                break
            self._dispatch(jobs)
            if self._exe.active:
                self._guard(self._exe.step)
        self._exe.fail_all("runtime closed")
        self._drain()

    def _dispatch(self, jobs: list[Job]) -> None:
        gens: list[GenJob] = []
        for job in jobs:
            if isinstance(job, ScoreJob):
                self._guard(partial(self._exe.score, job), job)
            else:
                gens.append(job)
        if gens:
            self._guard(partial(self._exe.admit, gens), *gens)

    def _guard(self, fn: Callable[[], None], *jobs: Job) -> None:
        """Run ``fn``; an unexpected error fails the jobs involved, never the thread."""
        try:
            fn()
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            for job in jobs:
                fail_job(job, msg)
            if not jobs:
                self._exe.fail_all(msg)

    def _drain(self) -> None:
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                fail_job(item, "runtime closed")
