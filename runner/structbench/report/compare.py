"""Side-by-side comparison of several runs (``structbench compare RUN RUN ...``).

Runs made on different machines rarely share engine names (``vllm-cpu`` on a laptop,
``vllm`` on the GPU box) or every task, so the comparison can rename engines
(:attr:`CompareOptions.engine_map`) and keep only some tasks, engines and metrics. A cell
that only one run has is named once, on one line per task, not given a row of blanks.

Each delta is against run #1 and is marked ``≈`` when it is inside the noise: for a latency
figure, when the 95 % bootstrap interval of the difference (from the two cells' per-call
values, :func:`structbench.stats.bootstrap_diff_ci`) holds 0; for a rate, when the two
cells' 95 % intervals overlap. Throughput is one number per cell, with no sample to
resample: its deltas are never marked. Both tests know only the spread of calls inside a run, not
that between runs with separate server starts, which the output says (benchmarks/repeat_noise.py
judges repeated runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from structbench.errors import UserError
from structbench.metrics import CellSummary, RunSummary
from structbench.metrics.calls import CallTiming, call_timing, measured
from structbench.records import CallRecord
from structbench.report import fmt
from structbench.report.build import summarize_run
from structbench.report.load import load_run
from structbench.report.markdown import render_table
from structbench.report.tables import Table
from structbench.stats import bootstrap_diff_ci, derive_seed

__all__ = ["METRIC_NAMES", "CompareOptions", "compare_runs", "compare_summaries"]

CellKey = tuple[str, str, str]  # (task, engine after the map, load label)
#: Per-call values of a run's cells, by cell id (what the latency noise is resampled from).
CallValues = Mapping[str, Sequence[CallTiming]]
NOISE = "≈"


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """What to compare. Empty filters keep everything."""

    #: ``(old, new)`` engine renames, applied to every run before cells are matched.
    engine_map: tuple[tuple[str, str], ...] = ()
    tasks: tuple[str, ...] = ()
    #: Engine names after the map.
    engines: tuple[str, ...] = ()
    #: Metric names (:data:`METRIC_NAMES`); empty: the default set.
    metrics: tuple[str, ...] = ()
    #: Bootstrap resamples of the noise test (0: no delta is marked).
    resamples: int = 1000


@dataclass(frozen=True, slots=True)
class _Metric:
    name: str
    header: str
    value: Callable[[CellSummary], float | None]
    render: Callable[[float | None], str]
    #: "rel": delta in % of the first run's value; "pp": delta in percentage points.
    delta: Literal["rel", "pp"]
    #: The per-call value the figure reduces, and its statistic (None: the mean; q: the
    #: q-th percentile). No sample: no noise test.
    sample: Callable[[CallTiming], float | None] | None = None
    q: float | None = None
    default: bool = True


def _rate(c: CellSummary, validity: bool) -> float | None:
    s = c.quality.validity if validity else c.quality.accuracy
    return s.rate if s is not None else None


# Names are summary.json's (and vllm bench serve's) keys.
_METRICS: tuple[_Metric, ...] = (
    _Metric("request_throughput", "req/s", lambda c: c.throughput.request_throughput, fmt.num, "rel"),
    _Metric("output_throughput", "out tok/s", lambda c: c.throughput.output_throughput, fmt.num, "rel"),
    _Metric(
        "mean_ttft_ms", "mean TTFT ms", lambda c: c.latency.ttft.mean, fmt.ms, "rel",
        lambda t: t.ttft_ms, default=False,
    ),
    _Metric(
        "p99_ttft_ms", "p99 TTFT ms", lambda c: c.latency.ttft.p99, fmt.ms, "rel", lambda t: t.ttft_ms, 99,
    ),
    _Metric(
        "mean_tpot_ms", "mean TPOT ms", lambda c: c.latency.tpot.mean, fmt.ms, "rel",
        lambda t: t.tpot_ms, default=False,
    ),
    _Metric(
        "mean_e2el_ms", "mean E2EL ms", lambda c: c.latency.e2el.mean, fmt.ms, "rel",
        lambda t: t.e2el_ms, default=False,
    ),
    _Metric(
        "p99_e2el_ms", "p99 E2EL ms", lambda c: c.latency.e2el.p99, fmt.ms, "rel", lambda t: t.e2el_ms, 99,
    ),
    _Metric("validity", "validity %", lambda c: _rate(c, True), fmt.pct, "pp"),
    _Metric("accuracy", "accuracy %", lambda c: _rate(c, False), fmt.pct, "pp"),
)  # fmt: skip
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in _METRICS)


@dataclass(frozen=True, slots=True)
class _Run:
    summary: RunSummary
    cells: dict[CellKey, CellSummary]
    calls: CallValues


def _key(c: CellSummary, engine: str) -> CellKey:
    load = c.info.load.display() + (f" · cache {c.info.cache_arm}" if c.info.cache_arm else "")
    return (c.info.task, engine, load)


def _keyed(i: int, s: RunSummary, rename: Mapping[str, str]) -> dict[CellKey, CellSummary]:
    out: dict[CellKey, CellSummary] = {}
    for c in s.cells:
        key = _key(c, rename.get(c.info.engine, c.info.engine))
        if key in out:
            raise UserError(
                f"--map: run #{i} has engines '{out[key].info.engine}' and '{c.info.engine}' both as "
                f"'{key[1]}' (task {key[0]}, {key[2]}): map only one of them"
            )
        out[key] = c
    return out


def _noise(m: _Metric, a: CellSummary, b: CellSummary, runs: tuple[_Run, _Run], resamples: int) -> bool:
    """True when the delta from ``a`` (run #1) to ``b`` is inside the noise."""
    if m.delta == "pp":
        sa = a.quality.validity if m.name == "validity" else a.quality.accuracy
        sb = b.quality.validity if m.name == "validity" else b.quality.accuracy
        if sa is None or sb is None or None in (sa.ci_low, sa.ci_high, sb.ci_low, sb.ci_high):
            return False
        return bool(sa.ci_low <= sb.ci_high and sb.ci_low <= sa.ci_high)  # type: ignore[operator]
    if m.sample is None:
        return False
    va, vb = ([v for t in r.calls.get(c.info.cell_id, ()) if (v := m.sample(t)) is not None]
              for r, c in zip(runs, (a, b), strict=True))  # fmt: skip
    ci = bootstrap_diff_ci(va, vb, m.q, resamples, derive_seed(0, m.name, a.info.cell_id, b.info.cell_id))
    return ci is not None and ci[0] <= 0.0 <= ci[1]


def _with_delta(m: _Metric, v: float | None, base: float | None, noise: bool) -> str:
    text = m.render(v)
    if v is None or base is None or (m.delta == "rel" and base == 0):
        return text
    mark = f" {NOISE}" if noise else ""
    if m.delta == "pp":
        return f"{text} ({100 * (v - base):+.1f} pp{mark})"
    return f"{text} ({100 * (v - base) / base:+.1f}%{mark})"


def _rows(
    key: CellKey, runs: Sequence[_Run], metrics: Sequence[_Metric], resamples: int
) -> list[tuple[str, ...]]:
    base = runs[0].cells.get(key)
    rows = []
    for i, run in enumerate(runs, start=1):
        c = run.cells.get(key)
        if c is None:
            vals = ["(missing)", *(fmt.DASH for _ in metrics[1:])]
        elif i == 1 or base is None:
            vals = [m.render(m.value(c)) for m in metrics]
        else:
            pair = (runs[0], run)
            vals = [
                _with_delta(m, m.value(c), m.value(base), _noise(m, base, c, pair, resamples))
                for m in metrics
            ]
        rows.append((key[1], key[2], f"#{i}", *vals))
    return rows


def _pick(what: str, wanted: Sequence[str], known: Sequence[str], where: str = " in these runs") -> None:
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UserError(f"--{what}: no {what} {', '.join(unknown)}{where} (have: {', '.join(known)})")


def _metrics(names: Sequence[str]) -> list[_Metric]:
    if not names:
        return [m for m in _METRICS if m.default]
    _pick("metric", names, METRIC_NAMES, where="")
    return [m for m in _METRICS if m.name in names]


def _task_table(
    task: str, runs: Sequence[_Run], metrics: Sequence[_Metric], opts: CompareOptions
) -> list[str]:
    keys = [k for k in dict.fromkeys(k for r in runs for k in r.cells) if k[0] == task]
    keys = [k for k in keys if not opts.engines or k[1] in opts.engines]
    holders = {k: [i for i, r in enumerate(runs, start=1) if k in r.cells] for k in keys}
    shared = [k for k in keys if len(holders[k]) > 1]
    out = []
    if shared:
        # Keep a metric column only if some run has a value for it.
        cols = [
            m
            for m in metrics
            if any(m.value(r.cells[k]) is not None for r in runs for k in shared if k in r.cells)
        ]
        rows = [r for k in shared for r in _rows(k, runs, cols, opts.resamples)]
        table = Table(
            title=f"Task {task}",
            headers=("Engine", "Load", "Run", *(m.header for m in cols)),
            rows=tuple(rows),
            align=("l", "l", "l", *("r" for _ in cols)),
        )
        out.append(render_table(table, level=2))
    alone: dict[int, list[str]] = {}
    for k in keys:
        if len(holders[k]) == 1:
            alone.setdefault(holders[k][0], []).append(f"{k[1]} {k[2]}")
    if alone:
        if not shared:
            out.append(f"## Task {task}\n")
        out += [f"Only in run #{i}: {', '.join(cells)}.\n" for i, cells in sorted(alone.items())]
    return out


def compare_summaries(
    summaries: Sequence[RunSummary],
    opts: CompareOptions | None = None,
    calls: Sequence[CallValues] | None = None,
) -> str:
    """Markdown comparison of already built summaries; deltas are against the first.

    ``calls``: per-call values of each run's cells, for the latency noise test (None: no
    latency delta is marked).
    """
    opts = opts or CompareOptions()
    rename = dict(opts.engine_map)
    runs = [
        _Run(s, _keyed(i, s, rename), calls[i - 1] if calls is not None else {})
        for i, s in enumerate(summaries, start=1)
    ]
    metrics = _metrics(opts.metrics)
    tasks = list(dict.fromkeys(t for s in summaries for t in s.tasks_in_order()))
    _pick("task", opts.tasks, tasks)
    _pick("engine", opts.engines, list(dict.fromkeys(k[1] for r in runs for k in r.cells)))
    out = ["# structbench comparison", ""]
    out += [f"- **#{i}**: {s.run.suite} / {s.run.run_id} ({s.run.status}, {s.run.created_utc or '?'})"
            for i, s in enumerate(summaries, start=1)]  # fmt: skip
    out += (
        [f"- engines renamed: {', '.join(f'{a} → {b}' for a, b in opts.engine_map)}"]
        if opts.engine_map
        else []
    )
    out += [
        "",
        "Deltas are against run #1: % for throughput and latency, percentage points for rates. "
        f"{NOISE}: inside the noise (latency: the 95 % bootstrap interval of the difference holds 0; "
        "rates: the 95 % intervals overlap; throughput is never marked, one number per cell). "
        "That is the noise among one run's calls: runs with separate server starts can differ by more "
        "(repeat each, then judge them with benchmarks/repeat_noise.py from the source tree).",
        "",
    ]
    for task in tasks:
        if not opts.tasks or task in opts.tasks:
            out += _task_table(task, runs, metrics, opts)
    return "\n".join(out)


def _call_values(run_dir: Path) -> dict[str, list[CallTiming]]:
    by_cell: dict[str, list[CallTiming]] = {}
    recs: Sequence[CallRecord] = measured(load_run(run_dir).records)
    for r in recs:
        if r.ok:
            by_cell.setdefault(r.cell_id, []).append(call_timing(r))
    return by_cell


def compare_runs(run_dirs: Sequence[Path], opts: CompareOptions | None = None) -> str:
    """Compare runs side by side per task x engine x load, as markdown.

    Each run is re-scored from its records (nothing is written into the run folders).

    Raises:
        UserError: when a folder is not a run folder, or a filter or map names nothing.
    """
    opts = opts or CompareOptions()
    summaries = [summarize_run(d) for d in run_dirs]
    calls = [_call_values(d) for d in run_dirs] if opts.resamples > 0 else None
    return compare_summaries(summaries, opts, calls)
