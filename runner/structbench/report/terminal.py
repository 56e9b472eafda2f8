"""The short terminal table printed at the end of ``structbench run``."""

from __future__ import annotations

from collections.abc import Callable

from rich import box
from rich.markup import escape
from rich.table import Table

from structbench.metrics import CellSummary, RunSummary
from structbench.report import fmt

__all__ = ["render_terminal_table"]


def _counts(c: CellSummary) -> str:
    k = c.counts
    return f"{k.completed}/{k.failed}" + (f" +{k.unsupported}u" if k.unsupported else "")


_COLUMNS: tuple[tuple[str, Callable[[CellSummary], str]], ...] = (
    ("ok/fail\n(+unsup)", _counts),
    ("req/s", lambda c: fmt.num(c.throughput.request_throughput)),
    ("tok/s", lambda c: fmt.num(c.throughput.output_throughput)),
    ("TTFT\np99 ms", lambda c: fmt.ms(c.latency.ttft.p99)),
    ("E2EL\np99 ms", lambda c: fmt.ms(c.latency.e2el.p99)),
    ("valid\n%", lambda c: fmt.pct(c.quality.validity.rate if c.quality.validity else None)),
    ("acc\n%", lambda c: fmt.pct(c.quality.accuracy.rate if c.quality.accuracy else None)),
)


def _caption(summary: RunSummary) -> str | None:
    """Canary verdicts under the table, where a narrow terminal can't crop them."""
    lines = []
    for c in summary.cells:
        verdict = c.quality.canary
        if verdict is None:
            continue
        where = escape(f"{c.info.task} / {c.info.engine} / {c.info.load.display()}")
        style = "bold red" if verdict.startswith("NOT APPLIED") else "green"
        lines.append(f"canary {where}: [{style}]{escape(verdict)}[/]")
    return "\n".join(lines) or None


def render_terminal_table(summary: RunSummary) -> Table:
    """One row per cell: counts, throughput, p99 latencies, validity and accuracy.

    Canary verdicts go in the caption. Numeric columns never wrap (a split
    "153,2|23" misreads); the name column folds instead, and columns with nothing to
    show are left out.
    """
    grid = [[value(c) for _, value in _COLUMNS] for c in summary.cells]
    keep = [i for i in range(len(_COLUMNS)) if i < 2 or any(row[i] != fmt.DASH for row in grid)]
    t = Table(
        title=f"{escape(summary.run.suite)} ({summary.run.status})",
        caption=_caption(summary),
        caption_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    t.add_column("task / engine / load", overflow="fold", min_width=12)
    for i in keep:
        t.add_column(_COLUMNS[i][0], justify="right", no_wrap=True)
    for c, row in zip(summary.cells, grid, strict=True):
        name = escape(f"{c.info.task} / {c.info.engine} / {fmt.load_label(c)}")
        t.add_row(name, *(row[i] for i in keep))
    return t
