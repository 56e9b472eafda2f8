"""Embedded engine throughput: output tok/s at concurrency 1 and 8, and their ratio.

One process, one model load, the same workload at each concurrency: ``--requests``
single-turn requests of ``--max-tokens`` new tokens, free text and JSON-constrained
(outlines, compact whitespace). Requests go through ``EmbeddedEngine.execute`` in a closed
loop (a new request starts when one finishes), so concurrency 8 exercises the
micro-batcher: up to 8 rows decode in one batched forward pass.

It prints, per workload and concurrency, the output tokens, wall time, output tok/s,
mean TTFT and the JSON validity, then the c8/c1 ratio (of the medians over
``--repeats``). The 1-minute load average is printed too: on a shared machine the
absolute figures move with the other tenants; on an oversubscribed one, try
``--threads 1`` (two spinning torch threads lose more than they gain there).

Usage::

    python benchmarks/embedded_throughput.py
    python benchmarks/embedded_throughput.py --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from structbench.engines.base import ExecContext
from structbench.engines.embedded.engine import EmbeddedEngine
from structbench.engines.registry import EngineEnv
from structbench.ir import NO_CONSTRAINT, Branch, Gen, JsonSchema, Turn, WorkItem
from structbench.program import run_item
from structbench.records import CallRecord
from structbench.spec.engines import EmbeddedEngineSpec

# Small enough that a compact answer fits in 48 tokens, so validity is meaningful too.
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "city": {"type": "string", "maxLength": 20},
        "job": {"type": "string", "maxLength": 40},
    },
    "required": ["name", "age", "city", "job"],
    "additionalProperties": False,
}
SUBJECTS = (
    "a retired sailor", "a young chemist", "a jazz drummer", "a mountain guide", "a baker in Lyon",
    "a chess teacher", "a beekeeper", "a train driver", "a marine biologist", "a night-shift nurse",
    "a potter", "a tax lawyer", "a glassblower", "a radio host", "a librarian", "a cyclist",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Point:
    """One measured (workload, concurrency) point."""

    workload: str
    concurrency: int
    records: tuple[CallRecord, ...]
    wall_s: float

    @property
    def out_tokens(self) -> int:
        return sum(r.completion_tokens or 0 for r in self.records)

    @property
    def tok_s(self) -> float:
        return self.out_tokens / self.wall_s

    @property
    def mean_ttft_s(self) -> float:
        ttfts = [r.t_first_token - r.t_sent for r in self.records if r.t_first_token and r.t_sent]
        return statistics.fmean(ttfts) if ttfts else float("nan")

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.records)

    def valid_json(self) -> int:
        ok = 0
        for r in self.records:
            try:
                jsonschema.validate(json.loads(r.text), SCHEMA)
                ok += 1
            except (ValueError, jsonschema.ValidationError):
                pass
        return ok


def items(workload: str, n: int, max_tokens: int) -> list[WorkItem]:
    """``n`` distinct single-turn items of the workload."""
    out = []
    for i in range(n):
        who = SUBJECTS[i % len(SUBJECTS)]
        if workload == "json":
            user = f"Invent a person: {who}. Reply with JSON: name, age, city, job."
            c = JsonSchema(json.dumps(SCHEMA, sort_keys=True))
        else:
            user, c = f"Write a long, detailed story about {who}.", NO_CONSTRAINT
        gen = Gen("out", c, max_tokens=max_tokens)
        out.append(WorkItem(f"{workload}/{i}", "bench", workload, (), (Branch((Turn(user, gen),)),)))
    return out


async def closed_loop(engine: EmbeddedEngine, work: list[WorkItem], concurrency: int) -> list[CallRecord]:
    """Run ``work`` keeping ``concurrency`` items in flight."""
    sem = asyncio.Semaphore(concurrency)

    async def one(item: WorkItem) -> list[CallRecord]:
        async with sem:
            ctx = ExecContext("bench", time.perf_counter, t_scheduled=time.perf_counter())
            return await run_item(engine, item, ctx)

    done = await asyncio.gather(*(one(it) for it in work))
    return [r for recs in done for r in recs]


async def measure(engine: EmbeddedEngine, args: argparse.Namespace) -> list[Point]:
    """Warm up (model and JSON index), then measure every workload at every concurrency.

    Repeats interleave the concurrencies, so a noisy neighbour slows both alike.
    """
    for wl in args.workloads:
        await closed_loop(engine, items(wl, 2, 4), 2)
    points = []
    for _ in range(args.repeats):
        for wl in args.workloads:
            for c in args.concurrency:
                work = items(wl, args.requests, args.max_tokens)
                t0 = time.perf_counter()
                recs = await closed_loop(engine, work, c)
                points.append(Point(wl, c, tuple(recs), time.perf_counter() - t0))
                print_point(points[-1])
    return points


def print_point(p: Point) -> None:
    """One line of results."""
    valid = f"{p.valid_json()}/{len(p.records)}" if p.workload == "json" else "-"
    print(
        f"{p.workload:<5} c={p.concurrency:<2} requests={len(p.records):<3} out_tokens={p.out_tokens:<5} "
        f"wall={p.wall_s:7.1f}s  {p.tok_s:6.1f} tok/s  mean_ttft={p.mean_ttft_s:6.2f}s  "
        f"valid_json={valid}  errors={p.errors}  load1={os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    """Parse arguments, run, print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--workloads", nargs="+", default=["free", "json"], choices=["free", "json"])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1, help="runs of every point; the ratio uses medians")
    args = ap.parse_args()
    spec = EmbeddedEngineSpec(model=args.model, threads=args.threads, max_batch=args.max_batch)
    engine = EmbeddedEngine(spec, EngineEnv(Path(".")))

    async def run() -> list[Point]:
        info = await engine.start()
        print(f"model {info.model} | {info.version} | max_batch {spec.max_batch} | threads {args.threads}")
        try:
            return await measure(engine, args)
        finally:
            await engine.close()

    points = asyncio.run(run())
    lo, hi = min(args.concurrency), max(args.concurrency)
    for wl in args.workloads:
        med = {
            c: statistics.median(p.tok_s for p in points if p.workload == wl and p.concurrency == c)
            for c in (lo, hi)
        }
        print(
            f"{wl:<5} median tok/s c{lo}={med[lo]:.1f} c{hi}={med[hi]:.1f}  "
            f"ratio c{hi}/c{lo}: {med[hi] / med[lo]:.2f}x  ({args.repeats} run(s))"
        )


if __name__ == "__main__":
    main()
