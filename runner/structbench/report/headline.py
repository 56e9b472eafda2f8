"""The headline: engines side by side on the key figures, each row's winner marked.

A reader's first question is "which engine wins, and by how much". Each engine's figures are
pooled over the task x load points that every engine ran, so the columns compare the same
work: throughput is Σ output tokens / Σ cell durations, percentiles are taken over the pooled
calls, and rates are weighted by the number of calls they cover. An engine without a figure
says so; it is never counted as 0 or left to look like a loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from structbench.metrics import CellSummary, RunSummary, ScoreRate
from structbench.report import fmt
from structbench.report.cache_benefit import cache_pairs
from structbench.report.samples import CellSamples
from structbench.report.tables import Table
from structbench.stats import describe

TITLE = "Headline: engines side by side"
WIN = "★"
NOT_RECORDED = "not recorded"
#: Values this close (relative) are a tie: the report's rounding could not tell them apart.
_TIE = 1e-9

#: A figure, or the reason it is missing.
Value = float | str


@dataclass(frozen=True, slots=True)
class _Pool:
    """One engine's cells in the headline and their calls."""

    engine: str
    cells: tuple[CellSummary, ...]
    samples: tuple[CellSamples, ...]
    #: Cache (on, off) arms whose "on" arm is this engine.
    pairs: tuple[tuple[CellSummary, CellSummary], ...]


@dataclass(frozen=True, slots=True)
class Figure:
    """One headline row: how to read it off a pool, which way is better, how to print it."""

    label: str
    higher_is_better: bool
    value: Callable[[_Pool], Value]
    show: Callable[[float], str]


def _output_tok_s(p: _Pool) -> Value:
    cells = [c for c in p.cells if c.throughput.output_throughput is not None and c.throughput.duration_s]
    dur = sum(c.throughput.duration_s or 0.0 for c in cells)
    return sum(c.throughput.total_output_tokens for c in cells) / dur if dur else NOT_RECORDED


def _percentile(select: Callable[[CellSamples], tuple[float, ...]], q: str) -> Callable[[_Pool], Value]:
    def value(p: _Pool) -> Value:
        pooled = [v for s in p.samples for v in select(s)]
        d = describe(pooled)
        got = d.median if q == "p50" else d.p99
        return NOT_RECORDED if got is None else got

    return value


def _rate(select: Callable[[CellSummary], ScoreRate | None]) -> Callable[[_Pool], Value]:
    def value(p: _Pool) -> Value:
        rates = [r for c in p.cells if (r := select(c)) is not None and r.rate is not None and r.n]
        n = sum(r.n for r in rates)
        return sum((r.rate or 0.0) * r.n for r in rates) / n if n else NOT_RECORDED

    return value


def _pooled_mean(cells: Sequence[CellSummary], select: Callable[[CellSummary], float | None]) -> float | None:
    # Means of cells pool exactly when weighted by their number of calls.
    got = [(v, c.counts.completed) for c in cells if (v := select(c)) is not None and c.counts.completed]
    n = sum(k for _, k in got)
    return sum(v * k for v, k in got) / n if n else None


def _cache_benefit(p: _Pool) -> Value:
    if not p.pairs:
        off_arm = any(c.info.cache_arm == "off" for c in p.cells)
        return "cache-off arm" if off_arm else "no cache-off arm"
    on = _pooled_mean([on for on, _ in p.pairs], lambda c: c.latency.ttft.mean)
    off = _pooled_mean([off for _, off in p.pairs], lambda c: c.latency.ttft.mean)
    return off / on if on and off is not None else NOT_RECORDED


def _peak(select: Callable[[CellSummary], float | None]) -> Callable[[_Pool], Value]:
    def value(p: _Pool) -> Value:
        got = [v for c in p.cells if (v := select(c)) is not None]
        return max(got) if got else NOT_RECORDED

    return value


def _pct(x: float) -> str:
    return fmt.pct(x)


def _times(x: float) -> str:
    return f"{x:.2f}x"


FIGURES: tuple[Figure, ...] = (
    Figure("output tok/s", True, _output_tok_s, fmt.num),
    Figure("p50 TTFT ms", False, _percentile(lambda s: s.ttft_ms, "p50"), fmt.ms),
    Figure("p99 TTFT ms", False, _percentile(lambda s: s.ttft_ms, "p99"), fmt.ms),
    Figure("p50 TPOT ms", False, _percentile(lambda s: s.tpot_ms, "p50"), fmt.ms),
    Figure("p99 TPOT ms", False, _percentile(lambda s: s.tpot_ms, "p99"), fmt.ms),
    Figure("validity %", True, _rate(lambda c: c.quality.validity), _pct),
    Figure("accuracy %", True, _rate(lambda c: c.quality.accuracy), _pct),
    Figure("cache benefit: mean TTFT off/on", True, _cache_benefit, _times),
)
_GPU = Figure("peak GPU memory MiB", False, _peak(lambda c: c.peak_gpu_memory_mb), fmt.num)
_RSS = Figure("peak RSS MiB (no GPU samples)", False, _peak(lambda c: c.peak_rss_mb), fmt.num)


def _ratio(best: float, other: float, higher_is_better: bool) -> float | None:
    num, den = (best, other) if higher_is_better else (other, best)
    return num / den if den > 0 else None


def _is_tie(a: float, b: float) -> bool:
    return abs(a - b) <= _TIE * max(abs(a), abs(b))


def verdict(values: Mapping[str, Value], higher_is_better: bool) -> tuple[set[str], str]:
    """The winners of one row and the sentence saying by how much.

    Args:
        values: Engine -> figure, or the reason it is missing (a string).
        higher_is_better: Which way the figure improves.

    Returns:
        The engines to mark (all of a tie) and e.g. "vllm, 1.17x over sglang".
    """
    nums = {e: v for e, v in values.items() if not isinstance(v, str)}
    if not nums:
        return set(), "no engine recorded it"
    if len(nums) == 1:
        (only,) = nums
        return set(), f"only {only} recorded it"
    ranked = sorted(nums.items(), key=lambda kv: kv[1], reverse=higher_is_better)
    best = ranked[0][1]
    winners = [e for e, v in ranked if _is_tie(v, best)]
    rest = [(e, v) for e, v in ranked if e not in winners]
    if not rest:
        return set(winners), "tie"
    runner_up, second = rest[0]
    lead = ", ".join(winners) + (" (tie)" if len(winners) > 1 else "")
    ratio = _ratio(best, second, higher_is_better)
    if ratio is None:
        return set(winners), f"{lead}; {runner_up} at 0"
    return set(winners), f"{lead}, {ratio:.2f}x over {runner_up}"


def _row(fig: Figure, pools: Sequence[_Pool]) -> tuple[str, ...]:
    values = {p.engine: fig.value(p) for p in pools}
    winners, says = verdict(values, fig.higher_is_better)
    shown = [
        v if isinstance(v, str) else f"{WIN} {fig.show(v)}" if e in winners else fig.show(v)
        for e, v in values.items()
    ]
    return (fig.label, *shown, says)


def _key(c: CellSummary) -> tuple[str, str]:
    return c.info.task, c.info.load.display()


def _pools(summary: RunSummary, samples: Mapping[str, CellSamples]) -> tuple[list[_Pool], str]:
    """Each engine's cells on the common task x load points, and a note on what was pooled."""
    engines = list(dict.fromkeys(c.info.engine for c in summary.cells))
    keys = {e: {_key(c) for c in summary.cells if c.info.engine == e} for e in engines}
    common = set.intersection(*keys.values()) if keys else set()
    every = set().union(*keys.values()) if keys else set()
    if common:
        left_out = len(every - common)
        note = f"pooled over the {len(common)} task x load points every engine ran"
        note += f" ({left_out} others left out)" if left_out else ""
    else:
        common = every
        note = "the engines ran no task x load point in common: each column pools its own cells"
    pairs = [p for t in summary.tasks_in_order() for p in cache_pairs(summary.cells_of(t))]
    out = []
    for e in engines:
        cells = tuple(c for c in summary.cells if c.info.engine == e and _key(c) in common)
        got = tuple(samples.get(c.info.cell_id, CellSamples()) for c in cells)
        mine = tuple((p.on, p.off) for p in pairs if p.on.info.engine == e and _key(p.on) in common)
        out.append(_Pool(e, cells, got, mine))
    return out, note


def headline_table(summary: RunSummary, samples: Mapping[str, CellSamples]) -> Table | None:
    """The headline table, or None for a run without cells."""
    pools, pooled = _pools(summary, samples)
    if not pools:
        return None
    figures = list(FIGURES)
    has_gpu = any(c.peak_gpu_memory_mb is not None for c in summary.cells)
    has_rss = any(c.peak_rss_mb is not None for c in summary.cells)
    figures.append(_RSS if has_rss and not has_gpu else _GPU)
    notes = (
        f"{WIN} marks the best engine of each row; Best says by how much it leads the runner-up "
        "(a ratio above 1, whichever way the figure improves)",
        pooled,
        "throughput = Σ output tokens / Σ cell durations; percentiles over the pooled calls; "
        "validity and accuracy weighted by calls",
        "cache benefit = mean TTFT of the cache-off arm / of the cache-on arm (> 1: the cache helped)",
    )
    headers = ("Figure", *(p.engine for p in pools), "Best")
    rows = tuple(_row(f, pools) for f in figures)
    return Table(TITLE, headers, rows, ("l", *("r" for _ in pools), "l"), notes)
