"""The plots people look at before reading tables: the latency/throughput trade-off of a sweep,
per-request timelines of one load point, and the whole run's prefix-cache on/off in one picture.

Each builder returns a :class:`~structbench.report.plots.Plot`, or None when the run's data does
not allow it; :func:`make_curves` then leaves a one-line note saying why, which the report prints
with the plots, so a reader knows a plot is absent on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from structbench.metrics import CellSummary, RunSummary
from structbench.report.cache_benefit import CachePair, cache_pairs
from structbench.report.plots import Palette, Plot, new_figure, slug, to_png
from structbench.report.samples import CellSamples, Span

#: More requests than this and one timeline row per request is unreadable: the first ones are drawn.
MAX_TIMELINE_CALLS = 120
#: Engines drawn side by side in the timeline figure.
MAX_TIMELINE_PANELS = 4


NO_TRADEOFF = "no latency-vs-throughput curve: no engine ran 2 or more load points with throughput"
NO_TIMELINE = "no request timeline: no cell recorded first-token and done times for 2 or more calls"
NO_CACHE = "no cache on/off picture: the run has no pair of cache-on and cache-off cells"


@dataclass(frozen=True, slots=True)
class Drawn:
    """What the curve builders made: the plots, and a note for each one the data did not allow."""

    plots: tuple[Plot, ...]
    notes: tuple[str, ...]


def _sweep(cells: Sequence[CellSummary]) -> dict[str, list[CellSummary]]:
    """Each engine's cells with throughput and a latency, by load, when it has >= 2 load points."""
    by: dict[str, list[CellSummary]] = {}
    for c in cells:
        if c.info.load.x_value() is not None and c.throughput.output_throughput is not None:
            by.setdefault(c.info.engine, []).append(c)
    return {
        e: sorted(cs, key=lambda c: c.info.load.x_value() or 0.0)
        for e, cs in by.items()
        if len({c.info.load.x_value() for c in cs}) >= 2
    }


def tradeoff_curve(task: str, cells: Sequence[CellSummary], pal: Palette) -> Plot | None:
    """p50 and p99 latency against output throughput, one line per engine, points labelled by load.

    TTFT where the engine streamed, else end-to-end latency, so both axes are what each point
    really measured. The curve bends up where more load buys no more throughput.
    """
    sweeps = _sweep(cells)
    if not sweeps:
        return None
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    ttft = all(c.latency.ttft.median is not None for cs in sweeps.values() for c in cs)
    which = "TTFT" if ttft else "E2E latency"
    for engine, cs in sweeps.items():
        xs = [c.throughput.output_throughput or 0.0 for c in cs]
        dists = [c.latency.ttft if ttft else c.latency.e2el for c in cs]
        p50 = [float("nan") if d.median is None else d.median for d in dists]
        p99 = [float("nan") if d.p99 is None else d.p99 for d in dists]
        ax.plot(xs, p50, "o-", color=pal(engine), label=f"{engine} p50")
        ax.plot(xs, p99, "s--", color=pal(engine), alpha=0.7, label=f"{engine} p99")
        for x, y, c in zip(xs, p99, cs, strict=True):
            ax.annotate(c.info.load.display(), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("output throughput (tok/s)")
    ax.set_ylabel(f"{which} (ms)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    title = f"{task}: latency vs throughput across the load sweep"
    fig.suptitle(title)
    return Plot(f"tradeoff_{slug(task)}", title, to_png(fig), task)


def _timed(spans: Sequence[Span]) -> list[Span]:
    return [s for s in spans if s.first_token is not None and s.done is not None]


def _timeline_cells(summary: RunSummary, samples: Mapping[str, CellSamples]) -> list[CellSummary]:
    """The busiest task x load point with streamed calls, and each engine's cell at it."""
    timed = [c for c in summary.cells if len(_timed(samples.get(c.info.cell_id, CellSamples()).spans)) >= 2]
    if not timed:
        return []

    def busy(c: CellSummary) -> tuple[float, int]:
        return c.info.load.x_value() or 0.0, len(samples[c.info.cell_id].spans)

    top = max(timed, key=busy)
    same = [
        c for c in timed if (c.info.task, c.info.load.display()) == (top.info.task, top.info.load.display())
    ]
    return same[:MAX_TIMELINE_PANELS]


def request_timelines(summary: RunSummary, samples: Mapping[str, CellSamples], pal: Palette) -> Plot | None:
    """One row per request of one load point: waiting for the first token, then decoding.

    Shows what percentiles hide: requests queued behind others, stalls, a slow tail.
    """
    cells = _timeline_cells(summary, samples)
    if not cells:
        return None
    fig = new_figure(min(16.0, 4.0 * len(cells) + 1.0), 4.4)
    axes = fig.subplots(1, len(cells), squeeze=False, sharex=True)[0]
    for ax, c in zip(axes, cells, strict=True):
        spans = _timed(samples[c.info.cell_id].spans)[:MAX_TIMELINE_CALLS]
        rows = range(len(spans))
        # Send -> first token (queue + prefill) light; first token -> done (decode) in the engine's colour.
        ax.hlines(rows, [s.sent for s in spans], [s.first_token or 0.0 for s in spans], color="0.7", lw=2)
        ax.hlines(
            rows,
            [s.first_token or 0.0 for s in spans],
            [s.done or 0.0 for s in spans],
            color=pal(c.info.engine),
            lw=2,
        )
        ax.plot([s.first_token for s in spans], rows, "|", color="black", ms=4)
        ax.invert_yaxis()  # first request on top, as in a trace viewer
        ax.set_xlabel("seconds from the cell's first send")
        ax.set_ylabel("request (send order)")
        ax.set_title(f"{c.info.engine} {c.info.load.display()}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    shown = (
        f" (first {MAX_TIMELINE_CALLS} calls)"
        if any(len(_timed(samples[c.info.cell_id].spans)) > MAX_TIMELINE_CALLS for c in cells)
        else ""
    )
    task, load = cells[0].info.task, cells[0].info.load.display()
    title = f"{task} {load}: request timelines, send → first token (grey) → last token{shown}"
    fig.suptitle(title, fontsize=10)
    return Plot(f"timeline_{slug(task)}_{slug(load)}", title, to_png(fig))


def _pair_label(task: str, p: CachePair) -> str:
    return f"{task} · {p.on.info.engine} / {p.off.info.engine} · {p.on.info.load.display()}"


def cache_overview(summary: RunSummary) -> Plot | None:
    """Every cache on/off pair of the run in one picture: what the cache bought, as ratios.

    Bars are mean TTFT off/on and throughput on/off (> 1: the cache helped), against a line at
    1x; each row names the cache-on arm's hit rate and the ideal one.
    """
    pairs = [(t, p) for t in summary.tasks_in_order() for p in cache_pairs(summary.cells_of(t))]
    if not pairs:
        return None
    fig = new_figure(8.5, 1.2 + 0.45 * len(pairs))
    ax = fig.subplots()
    ys = range(len(pairs))
    ttft = [p.ttft_ratio for _, p in pairs]
    tput = [p.throughput_ratio for _, p in pairs]
    h = 0.38
    ax.barh(
        [y - h / 2 for y in ys],
        [r or 0.0 for r in ttft],
        h,
        color=(0.17, 0.45, 0.7, 1.0),
        label="mean TTFT off/on",
    )
    ax.barh(
        [y + h / 2 for y in ys],
        [r or 0.0 for r in tput],
        h,
        color=(0.17, 0.55, 0.35, 1.0),
        label="req/s on/off",
    )
    ax.axvline(1.0, color="black", lw=1)
    for y, (_, p), a, b in zip(ys, pairs, ttft, tput, strict=True):
        hit, ideal = p.on.cache.client_hit_rate, p.on.cache.ideal_hit_rate
        text = f"hit {100 * hit:.0f} %" if hit is not None else "hit n/a"
        text += f" (ideal {100 * ideal:.0f} %)" if ideal is not None else ""
        ends = [v for v in (a, b) if v is not None]
        ax.annotate(text, (max(ends, default=1.0), y), textcoords="offset points", xytext=(6, -3), fontsize=7)
        for dy, v in ((-h / 2, a), (h / 2, b)):
            if v is None:
                ax.annotate("n/a", (0.02, y + dy), va="center", fontsize=7)
    ax.set_yticks(list(ys), [_pair_label(t, p) for t, p in pairs], fontsize=8)
    ax.invert_yaxis()
    right = max([v for v in (*ttft, *tput) if v is not None], default=1.0)
    ax.set_xlim(0, max(1.2, right) * 1.35)  # room for the hit-rate labels
    ax.set_xlabel("ratio (> 1: the prefix cache helped)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Prefix cache on vs off, every pair of the run")
    return Plot("cache_overview", "Prefix cache on vs off, every pair of the run", to_png(fig))


def make_curves(summary: RunSummary, samples: Mapping[str, CellSamples]) -> Drawn:
    """The trade-off curve of each swept task, the request timelines and the cache picture."""
    pal = Palette([c.info.engine for c in summary.cells])
    plots: list[Plot] = []
    notes: list[str] = []
    tasks = [t for t in summary.tasks_in_order() if summary.cells_of(t)]
    curves = {t: tradeoff_curve(t, summary.cells_of(t), pal) for t in tasks}
    plots += [p for p in curves.values() if p is not None]
    if unswept := [t for t, p in curves.items() if p is None]:
        notes.append(f"{NO_TRADEOFF} ({', '.join(unswept)})")
    for made, why in (
        (request_timelines(summary, samples, pal), NO_TIMELINE),
        (cache_overview(summary), NO_CACHE),
    ):
        if made is None:
            notes.append(why)
        else:
            plots.append(made)
    return Drawn(tuple(plots), tuple(notes))
