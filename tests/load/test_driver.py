"""The load driver, against a scripted fake engine and (where timing matters) a fake clock."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import pytest

from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan
from structbench.ir import Branch, Gen, JsonSchema, Turn, WorkItem
from structbench.load.arrivals import LoadPoint
from structbench.load.driver import CANCELLED_TIMEOUT, DriveConfig, DriveResult, drive, precise_sleep
from structbench.records import CallRecord


def _item(i: int, gens: int = 1) -> WorkItem:
    turns = tuple(Turn(f"q{i}.{t}", Gen(f"g{t}")) for t in range(gens))
    return WorkItem(f"t/{i}", "t", "json", (), (Branch(turns),))


class FakeClock:
    """A clock that only moves when the driver sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, dt: float) -> None:
        self.now += dt
        await asyncio.sleep(0)


@dataclass
class FakeEngine:
    """Scripted engine: each call yields ``steps`` times, tracks concurrency."""

    name: str = "fake"
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(frozenset({"none"})))
    max_concurrency: int | None = None
    steps: int = 3
    real_delay: float = 0.0
    raise_on: frozenset[str] = frozenset()
    #: item id -> the error its calls come back with (the engine answered, and refused).
    answer_error: dict[str, str] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    #: (item id, t_sent) of every call, in send order.
    seen: list[tuple[str, float]] = field(default_factory=list)

    def plan(self, gen: Gen) -> Plan:
        return Plan("none")

    def render(self, call: Call) -> str:
        return ""

    async def start(self) -> EngineInfo:
        return EngineInfo(self.name, "fake", "m")

    async def close(self) -> None:
        return None

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        t_sent = clock()
        self.seen.append((call.item_id, t_sent))
        try:
            for _ in range(self.steps):
                await asyncio.sleep(self.real_delay)
            if call.item_id in self.raise_on:
                raise RuntimeError("boom")
            return CallMeasure(t_sent=t_sent, t_done=clock(), error=self.answer_error.get(call.item_id))
        finally:
            self.in_flight -= 1


def _run(
    engine: FakeEngine, items: list[WorkItem], point: LoadPoint, cfg: DriveConfig
) -> tuple[DriveResult, list[list[CallRecord]]]:
    batches: list[list[CallRecord]] = []
    res = asyncio.run(drive(engine, items, point, cfg, batches.append))
    return res, batches


def _conc(n: int) -> LoadPoint:
    return LoadPoint("concurrency", n, math.inf, "poisson", 1.0, n)


def test_closed_loop_never_exceeds_concurrency() -> None:
    eng = FakeEngine()
    done: list[int] = []
    res, batches = _run(
        eng, [_item(i) for i in range(20)], _conc(4), DriveConfig("c", 0, on_item_done=lambda: done.append(1))
    )
    assert eng.max_in_flight == 4
    assert res.n_items == 20 and res.n_records == 20 and res.n_errors == 0
    assert len(batches) == 20 and len(done) == 20
    assert sorted(r.item_id for b in batches for r in b) == sorted(f"t/{i}" for i in range(20))
    assert not res.timed_out and not res.interrupted


def test_warmup_first_sequential_and_flagged() -> None:
    eng = FakeEngine()
    items = [_item(i, gens=2) for i in range(6)]
    res, batches = _run(eng, items, _conc(3), DriveConfig("c", 0, warmup=2))
    assert [s[0] for s in eng.seen[:4]] == ["t/0", "t/0", "t/1", "t/1"]
    # Sequential warm-up: the first two items finished before anything else was sunk.
    assert [b[0].item_id for b in batches[:2]] == ["t/0", "t/1"]
    assert all(r.warmup for b in batches[:2] for r in b)
    assert not any(r.warmup for b in batches[2:] for r in b)
    assert res.n_records == 12


def test_rate_mode_respects_offsets_and_cap() -> None:
    clock = FakeClock()
    eng = FakeEngine(steps=2)
    pt = LoadPoint("rate", None, 2.0, "constant", 1.0, None)
    cfg = DriveConfig("c", 0, clock=clock, sleep=clock.sleep)
    res, batches = _run(eng, [_item(i) for i in range(5)], pt, cfg)
    recs = sorted((r for b in batches for r in b), key=lambda r: r.item_id)
    assert [r.t_scheduled for r in recs] == pytest.approx([res.t_start + 0.5 * i for i in range(5)])
    assert all(r.t_sent is not None and r.t_scheduled is not None for r in recs)
    assert all((r.t_sent or 0) >= (r.t_scheduled or 0) - 1e-9 for r in recs)

    eng = FakeEngine(real_delay=0.001)
    capped = LoadPoint("rate", None, math.inf, "poisson", 1.0, 2)
    res, _ = _run(eng, [_item(i) for i in range(10)], capped, DriveConfig("c", 0))
    assert eng.max_in_flight == 2 and res.n_items == 10


def test_queueing_delay_shows_in_t_scheduled() -> None:
    """Offline with a cap: t_scheduled stays the planned start, so waits are visible."""
    clock = FakeClock()
    eng = FakeEngine()
    pt = LoadPoint("offline", None, math.inf, "poisson", 1.0, 1)
    _, batches = _run(
        eng, [_item(i) for i in range(3)], pt, DriveConfig("c", 0, clock=clock, sleep=clock.sleep)
    )
    assert len({r.t_scheduled for b in batches for r in b}) == 1


def test_offline_launches_everything() -> None:
    eng = FakeEngine()
    pt = LoadPoint("offline", None, math.inf, "poisson", 1.0, None)
    res, _ = _run(eng, [_item(i) for i in range(12)], pt, DriveConfig("c", 0))
    assert eng.max_in_flight == 12 and res.n_items == 12


def test_engine_exception_becomes_error_records() -> None:
    eng = FakeEngine(raise_on=frozenset({"t/1"}))
    res, batches = _run(eng, [_item(i, gens=3) for i in range(3)], _conc(2), DriveConfig("c", 0))
    bad = [r for b in batches for r in b if r.item_id == "t/1"]
    assert len(bad) == 3 and all(r.error and "RuntimeError: boom" in r.error for r in bad)
    # The first call failed; the walker skips the rest of its branch.
    assert [r.status for r in bad] == ["error", "skipped", "skipped"]
    assert res.n_errors == 3 and res.n_records == 9


def test_cell_timeout_cancels_and_records() -> None:
    eng = FakeEngine(steps=1, real_delay=0.05)
    slow = FakeEngine(steps=1, real_delay=30.0)
    items = [_item(i) for i in range(6)]

    async def mixed(call: Call, clock: Clock) -> CallMeasure:
        # The first two items are fast, the rest hang until cancelled.
        return await (eng if call.item_id in ("t/0", "t/1") else slow).generate(call, clock)

    eng_mixed = FakeEngine()
    eng_mixed.generate = mixed  # type: ignore[method-assign]
    res, batches = _run(eng_mixed, items, _conc(2), DriveConfig("c", 0, cell_timeout_s=0.5))
    recs = {r.item_id: r for b in batches for r in b}
    assert res.timed_out and not res.interrupted
    assert set(recs) == {f"t/{i}" for i in range(6)}
    assert recs["t/0"].ok and recs["t/1"].ok
    assert all(recs[f"t/{i}"].error == CANCELLED_TIMEOUT for i in range(2, 6))
    assert all(recs[f"t/{i}"].status == "cancelled" for i in range(2, 6))
    assert res.n_errors == 4 and slow.in_flight == 0


def test_interrupt_stops_cleanly() -> None:
    eng = FakeEngine(steps=1, real_delay=30.0)
    batches: list[list[CallRecord]] = []

    async def main() -> DriveResult:
        task = asyncio.ensure_future(
            drive(eng, [_item(i) for i in range(3)], _conc(3), DriveConfig("c", 0), batches.append)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        return await task

    res = asyncio.run(main())
    assert res.interrupted and not res.timed_out
    assert res.n_items == 3 and eng.in_flight == 0
    assert all(r.error == "cancelled: interrupted" for b in batches for r in b)


def test_sink_error_propagates() -> None:
    def bad_sink(recs: list[CallRecord]) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        asyncio.run(drive(FakeEngine(), [_item(0)], _conc(1), DriveConfig("c", 0), bad_sink))


def test_loud_rejection_of_a_schema_is_unsupported_not_a_failure() -> None:
    refusal = "http 400: xgrammar could not compile the JSON schema"
    eng = FakeEngine(answer_error={"t/0": refusal, "t/1": "http 400: maximum context length exceeded"})
    gen = Gen("g", JsonSchema('{"type": "object"}'))
    items = [WorkItem(f"t/{i}", "t", "schema_corpus", (), (Branch((Turn("q", gen),)),)) for i in range(3)]
    res, batches = _run(eng, items, _conc(1), DriveConfig("c", 0))
    by = {r.item_id: r for b in batches for r in b}
    assert by["t/0"].rejected and not by["t/1"].rejected and not by["t/2"].rejected
    # The refusal is the engine's coverage; only the context-length 400 is a failed call.
    assert (res.n_errors, res.n_unsupported, res.n_failed) == (2, 1, 1)


def test_precise_sleep_never_ends_early() -> None:
    # Only the lower bound is certain (the deadline is checked on the same clock); how late a
    # sleep ends is measured by benchmarks/client_scaling.py, not here.
    async def go() -> list[float]:
        out = []
        for delay in (0.0, 0.0004, 0.003):
            t0 = time.perf_counter()
            await precise_sleep(delay)
            out.append(time.perf_counter() - t0 - delay)
        return out

    assert all(extra >= 0 for extra in asyncio.run(go()))


def test_gc_frozen_nests_and_thaws() -> None:
    import gc

    from structbench.load.driver import gc_frozen

    assert gc.get_freeze_count() == 0
    with gc_frozen():
        frozen = gc.get_freeze_count()
        with gc_frozen():
            assert gc.get_freeze_count() >= frozen > 0
        assert gc.get_freeze_count() >= frozen  # the inner drive ending does not thaw the outer
    assert gc.get_freeze_count() == 0
