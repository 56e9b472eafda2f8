"""The prefix-cache on/off table: what the cache bought, per task and engine pair.

Two cells are the two arms of one comparison when they share ``CellInfo.cache_pair``
(same engine kind, model and mode; see ``report/load.py``) and load point, one with
``cache_arm`` "on" and one "off". The table sets their TTFT and throughput side by side,
with the achieved and ideal hit rates of the "on" arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from structbench.metrics import CellSummary, RunSummary
from structbench.report import fmt
from structbench.report.tables import Table

HEADERS = (
    "Engines (on / off)",
    "Load",
    "mean TTFT ms on",
    "mean TTFT ms off",
    "TTFT off/on",
    "req/s on",
    "req/s off",
    "throughput on/off",
    "hit % on (client)",
    "hit % on (server)",
    "hit % off",
    "ideal hit %",
    "% of ideal",
)


@dataclass(frozen=True, slots=True)
class CachePair:
    """The two arms of one prefix-cache comparison."""

    on: CellSummary
    off: CellSummary

    @property
    def ttft_ratio(self) -> float | None:
        """Mean TTFT off / on (> 1: the cache made the first token come sooner)."""
        return _ratio(self.off.latency.ttft.mean, self.on.latency.ttft.mean)

    @property
    def throughput_ratio(self) -> float | None:
        """Request throughput on / off (> 1: the cache made the cell faster)."""
        return _ratio(self.on.throughput.request_throughput, self.off.throughput.request_throughput)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def cache_pairs(cells: Sequence[CellSummary]) -> list[CachePair]:
    """Pair the on and off arms among one task's cells (first cell wins on duplicates)."""
    arms: dict[tuple[str, str, str], CellSummary] = {}
    for c in cells:
        if c.info.cache_arm in ("on", "off"):
            arms.setdefault((c.info.cache_pair, c.info.load.display(), c.info.cache_arm), c)
    keys = dict.fromkeys((pair, load) for pair, load, _ in arms)
    return [
        CachePair(arms[(p, ld, "on")], arms[(p, ld, "off")])
        for p, ld in keys
        if (p, ld, "on") in arms and (p, ld, "off") in arms
    ]


def _times(x: float | None) -> str:
    return fmt.DASH if x is None else f"{x:.2f}x"


def _row(p: CachePair) -> tuple[str, ...]:
    on, off = p.on, p.off
    off_hit = (
        off.cache.client_hit_rate if off.cache.client_hit_rate is not None else off.cache.server_hit_rate
    )
    return (
        f"{on.info.engine} / {off.info.engine}",
        on.info.load.display(),
        fmt.ms(on.latency.ttft.mean),
        fmt.ms(off.latency.ttft.mean),
        _times(p.ttft_ratio),
        fmt.num(on.throughput.request_throughput),
        fmt.num(off.throughput.request_throughput),
        _times(p.throughput_ratio),
        fmt.pct(on.cache.client_hit_rate),
        fmt.pct(on.cache.server_hit_rate),
        fmt.pct(off_hit),
        fmt.pct(on.cache.ideal_hit_rate),
        fmt.of_ideal(on),
    )


def cache_benefit_table(summary: RunSummary, task: str) -> Table | None:
    """The on/off table of one task, or None when it has no complete pair of arms."""
    pairs = cache_pairs(summary.cells_of(task))
    if not pairs:
        return None
    notes = (
        "TTFT off/on > 1x and throughput on/off > 1x mean the prefix cache helped",
        "hit % on: Σ cached / Σ prompt tokens of the cache-on arm; % of ideal = achieved / ideal",
    )
    return Table(
        f"Prefix-cache benefit: {task}",
        HEADERS,
        tuple(_row(p) for p in pairs),
        ("l", "l", *("r" for _ in HEADERS[2:])),
        notes,
    )
