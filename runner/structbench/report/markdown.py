"""``report.md``: the headline, the run header, one side-by-side table per task, and the notes."""

from __future__ import annotations

from collections.abc import Sequence

from structbench.metrics import RunSummary
from structbench.report.coverage import COVERAGE_GLOSSARY, COVERAGE_TITLE, coverage_tables
from structbench.report.hit_target import hit_target_table
from structbench.report.sections import task_detail_tables
from structbench.report.tables import (
    GLOSSARY,
    Table,
    canary_table,
    header_rows,
    problems_table,
    task_table,
)


def _cell(text: str) -> str:
    # A pipe would end the cell; newlines would end the row.
    return " ".join(text.split()).replace("|", "\\|")


def render_table(t: Table, level: int = 3) -> str:
    """A GitHub-flavoured markdown table with a heading and notes."""
    lines = [f"{'#' * level} {t.title}", ""]
    lines.append("| " + " | ".join(_cell(h) for h in t.headers) + " |")
    lines.append("|" + "|".join("---:" if a == "r" else ":---" for a in t.align) + "|")
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in t.rows]
    if t.notes:
        lines += ["", *(f"- {_cell(n)}" for n in t.notes)]
    return "\n".join(lines) + "\n"


def _coverage_section(summary: RunSummary) -> list[str]:
    """The schema-coverage section (empty without a schema corpus)."""
    tables = coverage_tables(summary)
    if not tables:
        return []
    out = [f"## {COVERAGE_TITLE}", "", *(render_table(t) for t in tables)]
    return [*out, "#### Terms", "", *(f"- **{k}**: {v}" for k, v in COVERAGE_GLOSSARY), ""]


def _task_sections(summary: RunSummary) -> list[str]:
    parts = []
    for task in summary.tasks_in_order():
        if not summary.cells_of(task):
            continue
        parts.append(render_table(task_table(summary, task)))
        parts += [render_table(extra, level=4) for extra in task_detail_tables(summary, task)]
    return parts


def render_markdown(
    summary: RunSummary,
    plot_files: Sequence[tuple[str, str]] = (),
    headline: Table | None = None,
    plot_notes: Sequence[str] = (),
) -> str:
    """The whole ``report.md``.

    Args:
        summary: The run summary.
        plot_files: ``(title, relative path)`` of PNGs written next to the report.
        headline: The engines-side-by-side table (:mod:`structbench.report.headline`), first.
        plot_notes: Why a plot is absent (:mod:`structbench.report.curves`), listed with the plots.
    """
    r = summary.run
    out = [f"# structbench report: {r.suite}", ""]
    if headline is not None:
        out.append(render_table(headline, level=2))
    out += ["## Run", ""]
    out += [f"- **{k}**: {_cell(v)}" for k, v in header_rows(summary)]
    out.append("")
    if r.status not in ("complete",):
        out += [f"> Run status is **{r.status}**: numbers cover only the calls that were recorded.", ""]
    out += ["## Results per task", "", *_task_sections(summary)]
    out += _coverage_section(summary)
    for extra in (hit_target_table(summary), canary_table(summary), problems_table(summary)):
        if extra is not None:
            out.append(render_table(extra, level=2))
    if plot_files or plot_notes:
        out += ["## Plots", ""]
        out += [f"![{title}]({path})\n" for title, path in plot_files]
        out += [*(f"- {_cell(n)}" for n in plot_notes), ""] if plot_notes else []
    out += ["## What the columns mean", ""]
    out += [f"- **{k}**: {v}" for k, v in GLOSSARY]
    return "\n".join(out) + "\n"
