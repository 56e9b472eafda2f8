"""One cell: the cache is flushed before the warm-ups, counters are read after them, the ideal is stored."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from structbench.cells import Cell, CellCtx, CellWork, run_cell, run_engine_cells
from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan, PromptTokens
from structbench.ir import Branch, Gen, Message, Turn, WorkItem
from structbench.load.arrivals import LoadPoint
from structbench.progress import Progress
from structbench.records import cell_records_path, read_records
from structbench.runfolder import CELL_FILE, CellFile, EngineFacts

PREFIX = "shared words " * 8


@dataclass
class CountingEngine:
    """Each call adds its prompt words to the server's counters; half of them hit the cache."""

    name: str = "counting"
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(frozenset({"none"})))
    max_concurrency: int | None = None
    queries: float = 0.0
    events: list[str] = field(default_factory=list)
    #: What the server answers to a flush (False: it refused, e.g. requests in flight).
    flushes: bool = True

    def plan(self, gen: Gen) -> Plan:
        return Plan("none")

    def render(self, call: Call) -> str:
        return ""

    async def start(self) -> EngineInfo:
        return EngineInfo(self.name, "fake", "m", cache_block_size=4)

    async def close(self) -> None:
        return None

    async def reset_prefix_cache(self) -> bool:
        self.events.append("reset")
        return self.flushes

    async def metrics_snapshot(self) -> dict[str, float]:
        self.events.append("metrics")
        return {"prefix_cache_hit_tokens": self.queries / 2, "prefix_cache_query_tokens": self.queries}

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        self.events.append("call")
        words = sum(len(m.content.split()) for m in call.messages)
        self.queries += words
        t = clock()
        return CallMeasure(t_sent=t, t_first_token=t, t_done=t, prompt_tokens=words, text="ok")

    def prompt_tokens(self) -> PromptTokens:
        vocab: dict[str, int] = {}

        def render(msgs: object) -> str:
            assert isinstance(msgs, tuple)
            return " ".join(m.content for m in msgs if isinstance(m, Message))

        def tokenize(text: str) -> list[int]:
            return [vocab.setdefault(w, len(vocab)) for w in text.split()]

        return PromptTokens(render, tokenize, "word tokenizer")


def _item(i: int) -> WorkItem:
    turn = Turn(f"{PREFIX}question {i}", Gen("g", max_tokens=4))
    return WorkItem(f"t/{i}", "t", "chat", (), (Branch((turn,)),))


def test_counters_bracket_the_measured_calls_and_the_ideal_is_stored(tmp_path: Path) -> None:
    engine = CountingEngine()
    point = LoadPoint("concurrency", 1)
    work = CellWork(Cell("counting.t.c1", "counting", "t", point), [_item(i) for i in range(3)])

    async def main() -> None:
        with Progress(enabled=False) as bar:
            ctx = CellCtx(bar, 0, 1, (), True, EngineFacts(name="counting"), block_size=4)
            await run_cell(engine, work, tmp_path, ctx)

    asyncio.run(main())
    # Flush, then the warm-up call, then the first counter read: warm-ups are outside the deltas.
    assert engine.events[:4] == ["reset", "call", "metrics", "call"]
    cell = CellFile.read(tmp_path / "cells" / "counting.t.c1" / CELL_FILE)
    assert cell.metrics_before is not None and cell.metrics_after is not None
    words = len(PREFIX.split()) + 2
    assert cell.metrics_before["prefix_cache_query_tokens"] == words  # the warm-up's only
    assert cell.metrics_after["prefix_cache_query_tokens"] - cell.metrics_before[
        "prefix_cache_query_tokens"
    ] == (3 * words)
    # The cell wrote its records into its own sub-folder, and nothing at the run level.
    sunk = list(read_records(cell_records_path(tmp_path, "counting.t.c1")))
    assert len(sunk) == 4 and sum(r.warmup for r in sunk) == 1
    assert not (tmp_path / "requests.jsonl").exists()
    # The ideal: item 0 was the warm-up (cache contents), so all three measured prompts reuse the
    # 16 shared words plus "question" (17 tokens), rounded down to blocks of 4: 16 each.
    assert cell.cache_block_size == 4 and cell.ideal is not None
    assert (cell.ideal.prompts, cell.ideal.prompt_tokens) == (3, 3 * words)
    assert cell.ideal.covered_block_tokens == 3 * 16 and cell.ideal.tokenizer == "word tokenizer"


def _run_two_cells(tmp_path: Path, engine: CountingEngine, reset_cache: bool) -> tuple[CellFile, CellFile]:
    """Two cells of one engine: the second re-sends the first's items, then new ones."""
    point = LoadPoint("concurrency", 1)
    first = CellWork(Cell("counting.t.a", "counting", "t", point), [_item(i) for i in range(2)])
    second = CellWork(Cell("counting.t.b", "counting", "t", point), [_item(i) for i in range(4)])

    async def main() -> tuple[bool, list[str]]:
        with Progress(enabled=False) as bar:
            ctx = CellCtx(bar, 0, 0, (), reset_cache, EngineFacts(name="counting"), block_size=1)
            return await run_engine_cells(engine, [first, second], tmp_path, ctx)

    assert asyncio.run(main()) == (False, [])
    a, b = (CellFile.read(tmp_path / "cells" / c / CELL_FILE) for c in ("counting.t.a", "counting.t.b"))
    return a, b


def test_a_cell_whose_flush_fails_sees_the_previous_cells_prompts(tmp_path: Path) -> None:
    words = len(PREFIX.split()) + 2  # "shared words" x 8, "question", the item number
    a, b = _run_two_cells(tmp_path / "refused", CountingEngine(flushes=False), reset_cache=True)
    assert (a.cache_reset, b.cache_reset) == (False, False)
    assert a.ideal is not None and b.ideal is not None
    # Cell a: item 1 shares 17 words with item 0.
    assert (a.ideal.prompts, a.ideal.covered_tokens) == (2, 17)
    # Cell b: items 0 and 1 are whole in the cache from cell a (reusable: all but the last
    # token), items 2 and 3 share 17 words with them.
    assert (b.ideal.prompts, b.ideal.covered_tokens) == (4, 2 * words + 2 * 17)
    assert b.ideal.covered_block_tokens == 2 * (words - 1) + 2 * 17
    # Not asked to flush: the same. Flushed: cell b starts from an empty cache.
    _, unasked = _run_two_cells(tmp_path / "unasked", CountingEngine(), reset_cache=False)
    assert unasked.cache_reset is None and unasked.ideal == b.ideal
    _, flushed = _run_two_cells(tmp_path / "flushed", CountingEngine(), reset_cache=True)
    assert flushed.cache_reset is True and flushed.ideal is not None
    assert flushed.ideal.covered_tokens == 3 * 17
