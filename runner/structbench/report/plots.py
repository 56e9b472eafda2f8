"""Report plots as PNG bytes (matplotlib, Agg, imported lazily).

Figures are built on ``matplotlib.figure.Figure`` directly, never through pyplot's
global state, so building a report from a thread or twice in a process is safe.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from structbench.metrics import CellSummary, RunSummary
from structbench.report import fmt
from structbench.report.cache_benefit import cache_pairs
from structbench.report.samples import CellSamples

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_DPI = 110
Color = tuple[float, float, float, float]
_LINESTYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True, slots=True)
class Plot:
    """One rendered figure."""

    name: str
    title: str
    png: bytes
    #: The task the plot belongs to; None for plots across tasks.
    task: str | None = None


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot's global state (see the module docstring)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes at the report's resolution."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def slug(text: str) -> str:
    """A file-name-safe form of a task or cell name."""
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "x"


class Palette:
    """One colour per engine, the same in every figure of a report."""

    def __init__(self, engines: Sequence[str]) -> None:
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        self._colors = {e: cmap(i % 10) for i, e in enumerate(dict.fromkeys(engines))}

    def __call__(self, engine: str) -> Color:
        return self._colors.get(engine, (0.3, 0.3, 0.3, 1.0))


def _cdf(ax: Axes, values: Sequence[float], **style: object) -> None:
    xs = sorted(values)
    n = len(xs)
    # Start at 0 on the fastest call, so a one-call cell still draws a visible step.
    ax.step([xs[0], *xs], [0.0, *((i + 1) / n for i in range(n))], where="post", **style)  # type: ignore[arg-type]


_CDF_PANELS: tuple[tuple[str, Callable[[CellSamples], tuple[float, ...]]], ...] = (
    ("E2E latency (ms)", lambda s: s.e2el_ms),
    ("TTFT (ms)", lambda s: s.ttft_ms),
)


def _latency_axis(ax: Axes, values: Sequence[float]) -> None:
    """An x axis read in plain ms: from 0 (log when spread over decades), no offset."""
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > 100:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0, right=hi * 1.05 if hi > 0 else 1.0)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # room for "150,000"-wide labels
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}" if hi >= 10 else "{x:,.2g}"))


def latency_cdf(
    task: str, cells: Sequence[CellSummary], samples: Mapping[str, CellSamples], pal: Palette
) -> Plot | None:
    """E2EL and TTFT CDFs of a task, one line per cell (colour = engine, style = load)."""
    got = [samples.get(c.info.cell_id, CellSamples()) for c in cells]
    panels = [(label, sel) for label, sel in _CDF_PANELS if any(sel(s) for s in got)]
    if not panels:
        return None
    fig = new_figure(5.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    loads = list(dict.fromkeys(c.info.load.display() for c in cells))
    for ax, (label, sel) in zip(axes, panels, strict=True):
        for c, s in zip(cells, got, strict=True):
            if sel(s):
                ls = _LINESTYLES[loads.index(c.info.load.display()) % len(_LINESTYLES)]
                name = f"{c.info.engine} {fmt.load_label(c)}"
                _cdf(ax, sel(s), color=pal(c.info.engine), linestyle=ls, label=name)
        _latency_axis(ax, [v for s in got for v in sel(s)])
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of calls")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{task}: latency CDF")
    return Plot(f"cdf_{slug(task)}", f"{task}: latency CDF", to_png(fig), task)


def _sweeps(cells: Sequence[CellSummary]) -> dict[str, list[CellSummary]]:
    """Cells of each engine that form a sweep (>= 2 load points with a numeric x)."""
    by_engine: dict[str, list[CellSummary]] = {}
    for c in cells:
        if c.info.load.x_value() is not None:
            by_engine.setdefault(c.info.engine, []).append(c)
    return {
        e: sorted(cs, key=lambda c: c.info.load.x_value() or 0.0)
        for e, cs in by_engine.items()
        if len({c.info.load.x_value() for c in cs}) >= 2
    }


Selector = Callable[[CellSummary], float | None]


def _sweep_metrics(cells: Sequence[CellSummary]) -> tuple[Selector, str, Selector, str]:
    """Output tok/s and p99 TTFT, falling back to req/s and p99 E2EL when not recorded."""
    if any(c.throughput.output_throughput is not None for c in cells):
        tp: tuple[Selector, str] = (lambda c: c.throughput.output_throughput, "output tok/s")
    else:
        tp = (lambda c: c.throughput.request_throughput, "req/s")
    if any(c.latency.ttft.p99 is not None for c in cells):
        lat: tuple[Selector, str] = (lambda c: c.latency.ttft.p99, "p99 TTFT (ms)")
    else:
        lat = (lambda c: c.latency.e2el.p99, "p99 E2EL (ms)")
    return tp[0], tp[1], lat[0], lat[1]


def _nan(v: float | None) -> float:
    return float("nan") if v is None else v


def throughput_vs_load(task: str, cells: Sequence[CellSummary], pal: Palette) -> Plot | None:
    """Throughput and p99 latency against concurrency or rate, one line per engine."""
    sweeps = _sweeps(cells)
    if not sweeps:
        return None
    tp_of, tp_label, lat_of, lat_label = _sweep_metrics(cells)
    modes = {c.info.load.mode for cs in sweeps.values() for c in cs}
    xlabel = "concurrency" if modes == {"concurrency"} else "rate (items/s)" if modes == {"rate"} else "load"
    fig = new_figure(10.4, 3.6)
    ax_tp, ax_lat = fig.subplots(1, 2)
    for engine, cs in sweeps.items():
        xs = [c.info.load.x_value() or 0.0 for c in cs]
        ax_tp.plot(xs, [_nan(tp_of(c)) for c in cs], "o-", color=pal(engine), label=engine)
        ax_lat.plot(xs, [_nan(lat_of(c)) for c in cs], "o-", color=pal(engine), label=engine)
    ticks = sorted({x for cs in sweeps.values() for c in cs if (x := c.info.load.x_value()) is not None})
    for ax, label in ((ax_tp, tp_label), (ax_lat, lat_label)):
        if ticks[0] > 0 and ticks[-1] / ticks[0] >= 8:
            ax.set_xscale("log", base=2)  # concurrency sweeps double: 1, 2, 4, ... 64
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax_tp.legend(fontsize=8)
    fig.suptitle(f"{task}: throughput and latency vs load")
    return Plot(f"load_{slug(task)}", f"{task}: throughput and latency vs load", to_png(fig), task)


def _pooled(cells: Sequence[CellSummary]) -> float | None:
    """Validity pooled over a task's load points for one engine (weighted by n)."""
    vs = [c.quality.validity for c in cells if c.quality.validity and c.quality.validity.rate is not None]
    n = sum(v.n for v in vs)
    return sum((v.rate or 0.0) * v.n for v in vs) / n if n else None


def _grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    color: Callable[[str], Color],
) -> None:
    """Bars per group (x) and series (colour), each labelled with its value."""
    width = 0.8 / max(1, len(series))
    for i, (engine, vals) in enumerate(series.items()):
        xs = [g + i * width - 0.4 + width / 2 for g in range(len(groups))]
        ys = [0.0 if v is None else v for v in vals]
        bars = ax.bar(xs, ys, width=width * 0.95, color=color(engine), label=engine)
        for bar, v in zip(bars, vals, strict=True):
            text = "n/a" if v is None else f"{v:.0f}" if v >= 10 else f"{v:.1f}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(groups)), list(groups), rotation=20 if len(groups) > 4 else 0, fontsize=8)
    top = max((v for vals in series.values() for v in vals if v is not None), default=1.0) or 1.0
    ax.set_ylim(0, top * 1.25)  # headroom for the value labels and the legend
    ax.legend(fontsize=8, loc="upper center", ncol=min(4, len(series)), frameon=False)
    ax.grid(axis="y", alpha=0.3)


def validity_bars(summary: RunSummary, pal: Palette) -> Plot | None:
    """Validity % per task (groups) and engine (bars)."""
    tasks = [t for t in summary.tasks_in_order() if any(c.quality.validity for c in summary.cells_of(t))]
    if not tasks:
        return None
    engines = list(dict.fromkeys(c.info.engine for c in summary.cells))
    series: dict[str, list[float | None]] = {}
    for e in engines:
        vals = [_pooled([c for c in summary.cells_of(t) if c.info.engine == e]) for t in tasks]
        series[e] = [None if v is None else 100 * v for v in vals]
    fig = new_figure(max(5.0, 1.3 * len(tasks) * max(1, len(engines)) ** 0.5 + 2), 3.6)
    ax = fig.subplots()
    _grouped_bars(ax, tasks, series, pal)
    ax.set_ylabel("valid outputs (%)")
    ax.set_yticks(range(0, 101, 20))
    fig.suptitle("Validity per task and engine")
    return Plot("validity", "Validity per task and engine", to_png(fig))


def cache_bars(task: str, cells: Sequence[CellSummary]) -> Plot | None:
    """Prefix cache on vs off: mean TTFT, mean E2EL and request throughput per pair of arms.

    Cells pair up by ``cache_pair`` (same engine kind, model and mode) and load point.
    """
    pairs = cache_pairs(cells)
    if not pairs:
        return None
    fig = new_figure(13.5, 3.8)
    ax_ttft, ax_lat, ax_tp = fig.subplots(1, 3)
    panels: tuple[tuple[Axes, Selector, str], ...] = (
        (ax_ttft, lambda c: c.latency.ttft.mean, "mean TTFT (ms)"),
        (ax_lat, lambda c: c.latency.e2el.mean, "mean E2EL (ms)"),
        (ax_tp, lambda c: c.throughput.request_throughput, "req/s"),
    )
    groups = [f"{p.on.info.engine} / {p.off.info.engine}\n{p.on.info.load.display()}" for p in pairs]
    for ax, sel, label in panels:
        series = {"cache on": [sel(p.on) for p in pairs], "cache off": [sel(p.off) for p in pairs]}
        _grouped_bars(ax, groups, series, _arm_color)
        ax.set_ylabel(label)
    fig.suptitle(f"{task}: prefix cache on vs off")
    return Plot(f"cache_{slug(task)}", f"{task}: prefix cache on vs off", to_png(fig), task)


def _arm_color(arm: str) -> Color:
    return (0.17, 0.55, 0.35, 1.0) if arm == "cache on" else (0.75, 0.4, 0.2, 1.0)


def make_plots(summary: RunSummary, samples: Mapping[str, CellSamples]) -> list[Plot]:
    """Every plot the run's data supports, in report order."""
    pal = Palette([c.info.engine for c in summary.cells])
    plots: list[Plot | None] = []
    for task in summary.tasks_in_order():
        cells = summary.cells_of(task)
        plots += [
            latency_cdf(task, cells, samples, pal),
            throughput_vs_load(task, cells, pal),
            cache_bars(task, cells),
        ]
    plots.append(validity_bars(summary, pal))
    return [p for p in plots if p is not None]
