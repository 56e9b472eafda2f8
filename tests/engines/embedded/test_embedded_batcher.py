"""The micro-batcher's grouping and lifecycle logic, with a scripted executor (no model)."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import pytest

from structbench.engines.embedded.api import GenRequest, GenResult
from structbench.engines.embedded.batcher import GenJob, Job, ScoreJob, ScoreResult, Worker, collect
from structbench.ir import NO_CONSTRAINT


def _job(name: str, max_tokens: int = 2) -> GenJob:
    return GenJob(GenRequest(name, NO_CONSTRAINT, max_tokens), Future(), 0.0)


def test_collect_idle_takes_what_is_queued_up_to_the_slots() -> None:
    q: queue.Queue[Job | None] = queue.Queue()
    jobs = [_job(str(i)) for i in range(5)]
    for j in jobs:
        q.put(j)
    got, closed = collect(q, slots=3, window_s=0.0, block=True)
    assert got == jobs[:3] and not closed
    got, closed = collect(q, slots=8, window_s=0.0, block=True)
    assert got == jobs[3:] and not closed


def test_collect_waits_for_the_window_after_the_first_job() -> None:
    q: queue.Queue[Job | None] = queue.Queue()
    first, late = _job("a"), _job("b")
    q.put(first)
    threading.Timer(0.05, q.put, args=(late,)).start()
    got, _ = collect(q, slots=2, window_s=5.0, block=True)  # returns as soon as the slots are full
    assert got == [first, late]


def test_collect_window_expires() -> None:
    q: queue.Queue[Job | None] = queue.Queue()
    q.put(_job("a"))
    got, closed = collect(q, slots=4, window_s=0.01, block=True)
    assert len(got) == 1 and not closed


def test_collect_nonblocking_while_decoding() -> None:
    q: queue.Queue[Job | None] = queue.Queue()
    assert collect(q, slots=4, window_s=10.0, block=False) == ([], False)
    j = _job("a")
    q.put(j)
    assert collect(q, slots=4, window_s=10.0, block=False) == ([j], False)


def test_collect_score_jobs_take_no_slot_and_sentinel_closes() -> None:
    q: queue.Queue[Job | None] = queue.Queue()
    s = ScoreJob("p", ("a", "b"), Future())
    g = _job("g")
    for item in (s, g, None, _job("after")):
        q.put(item)
    got, closed = collect(q, slots=1, window_s=0.0, block=True)
    assert got == [s, g] and not closed  # slot filled by g: the sentinel is still queued
    got, closed = collect(q, slots=1, window_s=0.0, block=True)
    assert got == [] and closed


class FakeExecutor:
    """Each admitted row finishes after ``max_tokens`` steps; records batch shapes."""

    def __init__(self, fail_step_at: int | None = None) -> None:
        self.rows: list[list[object]] = []  # [job, steps left]
        self.admits: list[list[str]] = []
        self.step_sizes: list[int] = []
        self.fail_step_at = fail_step_at
        self.gate = threading.Event()
        self.gate.set()

    @property
    def active(self) -> int:
        return len(self.rows)

    def admit(self, jobs: list[GenJob]) -> None:
        self.admits.append([j.req.prompt for j in jobs])
        self.rows += [[j, j.req.max_tokens] for j in jobs]

    def step(self) -> None:
        self.gate.wait(5)
        self.step_sizes.append(len(self.rows))
        if self.fail_step_at is not None and len(self.step_sizes) == self.fail_step_at:
            raise RuntimeError("boom")
        for r in self.rows:
            r[1] = int(str(r[1])) - 1
        for job, left in list(self.rows):
            if left == 0:
                assert isinstance(job, GenJob)
                job.future.set_result(_ok(job, len(self.step_sizes)))
        self.rows = [r for r in self.rows if r[1] != 0]

    def score(self, job: ScoreJob) -> None:
        job.future.set_result(ScoreResult((0.0,) * len(job.choices), 1, 0.0, 0.0))

    def fail_all(self, error: str) -> None:
        for job, _ in self.rows:
            assert isinstance(job, GenJob)
            job.future.set_result(GenResult("", 0, 0, "error", 0.0, None, 0.0, error=error))
        self.rows = []


def _ok(job: GenJob, step: int) -> GenResult:
    return GenResult(job.req.prompt, 1, job.req.max_tokens, "length", 0.0, 0.0, float(step))


def test_worker_batches_jobs_that_arrive_together() -> None:
    exe = FakeExecutor()
    w = Worker(exe, max_batch=3, window_s=0.2)
    jobs = [_job(str(i)) for i in range(5)]
    for j in jobs:
        w.put(j)
    results = [j.future.result(timeout=5) for j in jobs]
    w.close(timeout=5)
    assert [r.text for r in results] == [str(i) for i in range(5)]
    assert exe.admits[0] == ["0", "1", "2"]  # the first batch is full at max_batch
    assert max(exe.step_sizes) == 3


def test_worker_new_jobs_join_a_running_batch() -> None:
    exe = FakeExecutor()
    exe.gate.clear()  # hold the first step so the second job arrives mid-batch
    w = Worker(exe, max_batch=4, window_s=0.0)
    a, b = _job("a", max_tokens=3), _job("b", max_tokens=1)
    w.put(a)
    while not exe.admits:
        threading.Event().wait(0.01)
    w.put(b)
    exe.gate.set()
    assert a.future.result(timeout=5).text == "a" and b.future.result(timeout=5).text == "b"
    w.close(timeout=5)
    assert exe.admits == [["a"], ["b"]]
    assert 2 in exe.step_sizes  # b decoded next to a


def test_worker_step_error_fails_the_rows_but_keeps_serving() -> None:
    exe = FakeExecutor(fail_step_at=1)
    w = Worker(exe, max_batch=2, window_s=0.0)
    bad = _job("bad")
    w.put(bad)
    res = bad.future.result(timeout=5)
    assert res.error == "RuntimeError: boom" and res.finish_reason == "error"
    good = _job("good")
    w.put(good)
    assert good.future.result(timeout=5).error is None
    w.close(timeout=5)


def test_worker_close_fails_running_and_later_jobs() -> None:
    exe = FakeExecutor()
    exe.gate.clear()
    w = Worker(exe, max_batch=2, window_s=0.0)
    running = _job("r", max_tokens=100)
    w.put(running)
    while not exe.admits:
        threading.Event().wait(0.01)
    closer = threading.Thread(target=w.close, kwargs={"timeout": 5})
    closer.start()
    exe.gate.set()
    closer.join(5)
    assert running.future.result(timeout=5).error == "runtime closed"
    late = _job("late")
    w.put(late)
    assert late.future.result(timeout=1).error == "runtime closed"


def test_worker_scores_between_steps() -> None:
    exe = FakeExecutor()
    w = Worker(exe, max_batch=2, window_s=0.0)
    fut: Future[ScoreResult] = Future()
    w.put(ScoreJob("p", ("x", "y", "z"), fut))
    assert fut.result(timeout=5).logprobs == (0.0, 0.0, 0.0)
    w.close(timeout=5)


@pytest.mark.parametrize("max_batch", [0, 1])
def test_worker_max_batch_at_least_one(max_batch: int) -> None:
    exe = FakeExecutor()
    w = Worker(exe, max_batch=max_batch, window_s=0.0)
    jobs = [_job("a"), _job("b")]
    for j in jobs:
        w.put(j)
    assert all(j.future.result(timeout=5).error is None for j in jobs)
    w.close(timeout=5)
    assert max(exe.step_sizes) == 1
