"""Side-by-side comparison of several runs (``structbench compare RUN RUN ...``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from structbench.metrics import CellSummary, RunSummary
from structbench.report import fmt
from structbench.report.build import summarize_run
from structbench.report.markdown import render_table
from structbench.report.tables import Table

CellKey = tuple[str, str, str]  # (task, engine, load label)


@dataclass(frozen=True, slots=True)
class _Metric:
    header: str
    value: Callable[[CellSummary], float | None]
    render: Callable[[float | None], str]
    #: "rel": delta in % of the first run's value; "pp": delta in percentage points.
    delta: str


def _rate(c: CellSummary, validity: bool) -> float | None:
    s = c.quality.validity if validity else c.quality.accuracy
    return s.rate if s is not None else None


_METRICS: tuple[_Metric, ...] = (
    _Metric("req/s", lambda c: c.throughput.request_throughput, fmt.num, "rel"),
    _Metric("out tok/s", lambda c: c.throughput.output_throughput, fmt.num, "rel"),
    _Metric("p99 TTFT ms", lambda c: c.latency.ttft.p99, fmt.ms, "rel"),
    _Metric("p99 E2EL ms", lambda c: c.latency.e2el.p99, fmt.ms, "rel"),
    _Metric("validity %", lambda c: _rate(c, True), fmt.pct, "pp"),
    _Metric("accuracy %", lambda c: _rate(c, False), fmt.pct, "pp"),
)


def _key(c: CellSummary) -> CellKey:
    load = c.info.load.display() + (f" · cache {c.info.cache_arm}" if c.info.cache_arm else "")
    return (c.info.task, c.info.engine, load)


def _with_delta(m: _Metric, v: float | None, base: float | None) -> str:
    text = m.render(v)
    if v is None or base is None:
        return text
    if m.delta == "pp":
        return f"{text} ({100 * (v - base):+.1f} pp)"
    if base == 0:
        return text
    return f"{text} ({100 * (v - base) / base:+.1f}%)"


def _rows(key: CellKey, runs: Sequence[dict[CellKey, CellSummary]]) -> list[tuple[str, ...]]:
    base = runs[0].get(key)
    rows = []
    for i, cells in enumerate(runs, start=1):
        c = cells.get(key)
        if c is None:
            vals = ["(missing)", *(fmt.DASH for _ in _METRICS[1:])]
        elif i == 1 or base is None:
            vals = [m.render(m.value(c)) for m in _METRICS]
        else:
            vals = [_with_delta(m, m.value(c), m.value(base)) for m in _METRICS]
        rows.append((key[1], key[2], f"#{i}", *vals))
    return rows


def _columns(runs: Sequence[dict[CellKey, CellSummary]], keys: Sequence[CellKey]) -> list[int]:
    # Keep a metric column only if some run has a value for it.
    return [
        j
        for j, m in enumerate(_METRICS)
        if any(m.value(r[k]) is not None for r in runs for k in keys if k in r)
    ]


def compare_summaries(summaries: Sequence[RunSummary]) -> str:
    """Markdown comparison of already built summaries; deltas are against the first."""
    runs = [{_key(c): c for c in s.cells} for s in summaries]
    out = ["# structbench comparison", ""]
    out += [f"- **#{i}**: {s.run.suite} / {s.run.run_id} ({s.run.status}, {s.run.created_utc or '?'})"
            for i, s in enumerate(summaries, start=1)]  # fmt: skip
    out += ["", "Deltas are against run #1: % for throughput and latency, percentage points for rates.", ""]
    tasks = list(dict.fromkeys(t for s in summaries for t in s.tasks_in_order()))
    for task in tasks:
        keys = list(dict.fromkeys(k for r in runs for k in r if k[0] == task))
        if not keys:
            continue
        cols = _columns(runs, keys)
        rows = [r for k in keys for r in _rows(k, runs)]
        table = Table(
            title=f"Task {task}",
            headers=("Engine", "Load", "Run", *(_METRICS[j].header for j in cols)),
            rows=tuple((*r[:3], *(r[3 + j] for j in cols)) for r in rows),
            align=("l", "l", "l", *("r" for _ in cols)),
        )
        out.append(render_table(table, level=2))
    return "\n".join(out)


def compare_runs(run_dirs: Sequence[Path]) -> str:
    """Compare runs side by side per task x engine x load, as markdown.

    Each run is re-scored from its records (nothing is written into the run folders).

    Raises:
        UserError: when a folder is not a run folder.
    """
    return compare_summaries([summarize_run(d) for d in run_dirs])
