"""``report.html``: one self-contained file (inline CSS, plots as base64 PNG, no URLs)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from structbench.metrics import RunSummary
from structbench.report.coverage import COVERAGE_GLOSSARY, COVERAGE_PLOTS, COVERAGE_TITLE, coverage_tables
from structbench.report.headline import WIN
from structbench.report.hit_target import hit_target_table
from structbench.report.plots import Plot
from structbench.report.sections import task_detail_tables
from structbench.report.tables import (
    GLOSSARY,
    Table,
    canary_table,
    header_rows,
    problems_table,
    task_table,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1400px;
padding:0 1rem;color:#1d2330;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d6dae3}
h3{font-size:1.05rem;margin-top:1.5rem}h4{font-size:.95rem;margin:1rem 0 .3rem;color:#3a4356}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}
th,td{border:1px solid #d6dae3;padding:.25rem .55rem;white-space:nowrap}
th{background:#eef1f6;text-align:left}td.r{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#f8f9fb}
.hdr td:first-child{font-weight:600}.hdr td{white-space:normal}
.notes{font-size:.8rem;color:#555e70;margin:.2rem 0 .8rem}
.warn{background:#fff4d6;border:1px solid #e8c766;padding:.5rem .8rem;border-radius:4px}
.bad{color:#b3261e;font-weight:600}.good{color:#1e7b3a}
.tw{overflow-x:auto}figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #e3e6ee}
figcaption{font-size:.8rem;color:#555e70}.win{color:#1e7b3a}
dl{font-size:.85rem}dt{font-weight:600;float:left;clear:left;width:7rem}dd{margin-left:7.5rem}
"""


def _td(value: str, align: str) -> str:
    cls = ' class="r"' if align == "r" else ""
    text = escape(value)
    if value.startswith(WIN):
        text = f'<b class="win">{text}</b>'
    elif value.startswith("NOT APPLIED"):
        text = f'<span class="bad">{text}</span>'
    elif value == "applied":
        text = f'<span class="good">{text}</span>'
    return f"<td{cls}>{text}</td>"


def render_table(t: Table, level: int = 3) -> str:
    """A titled HTML table with its notes."""
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    body = "".join(
        "<tr>" + "".join(_td(v, a) for v, a in zip(row, t.align, strict=True)) + "</tr>" for row in t.rows
    )
    notes = f'<p class="notes">{escape(" · ".join(t.notes))}</p>' if t.notes else ""
    table = f'<div class="tw"><table><tr>{head}</tr>{body}</table></div>'
    return f"<h{level}>{escape(t.title)}</h{level}>\n{table}\n{notes}\n"


def _figure(p: Plot) -> str:
    data = base64.b64encode(p.png).decode("ascii")
    alt = escape(p.title)
    img = f'<img src="data:image/png;base64,{data}" alt="{alt}">'
    return f"<figure>{img}<figcaption>{alt}</figcaption></figure>\n"


def _coverage_section(summary: RunSummary, plots: Sequence[Plot]) -> str:
    """The schema-coverage section with its figures (empty without a schema corpus)."""
    tables = coverage_tables(summary)
    if not tables:
        return ""
    parts = [f"<h2>{escape(COVERAGE_TITLE)}</h2>\n", *(render_table(t) for t in tables)]
    parts += [_figure(p) for p in plots if p.task == COVERAGE_PLOTS]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in COVERAGE_GLOSSARY)
    return "".join(parts) + f"<dl>{items}</dl>\n"


def _header(summary: RunSummary) -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in header_rows(summary))
    out = f'<table class="hdr">{rows}</table>\n'
    if summary.run.status != "complete":
        out += (
            f'<p class="warn">Run status is <b>{escape(summary.run.status)}</b>: numbers cover only the '
            "calls that were recorded.</p>\n"
        )
    return out


def _task_sections(summary: RunSummary, plots: Sequence[Plot]) -> str:
    parts = []
    for task in summary.tasks_in_order():
        if not summary.cells_of(task):
            continue
        parts.append(render_table(task_table(summary, task)))
        parts += [render_table(extra, level=4) for extra in task_detail_tables(summary, task)]
        parts += [_figure(p) for p in plots if p.task == task]
    return "".join(parts)


def render_html(
    summary: RunSummary, plots: Sequence[Plot], headline: Table | None = None, plot_notes: Sequence[str] = ()
) -> str:
    """The whole ``report.html``: the headline first; a task's plots under its table, the rest at the end."""
    title = f"structbench report: {summary.run.suite}"
    general = [p for p in plots if p.task is None]
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f"<style>{_CSS}</style></head><body>\n<h1>{escape(title)}</h1>\n",
        render_table(headline, level=2) if headline is not None else "",
        "<h2>Run</h2>\n",
        _header(summary),
        "<h2>Results per task</h2>\n",
        _task_sections(summary, plots),
        _coverage_section(summary, plots),
    ]
    for extra in (hit_target_table(summary), canary_table(summary), problems_table(summary)):
        if extra is not None:
            parts.append(render_table(extra, level=2))
    if general or plot_notes:
        parts += ["<h2>Across tasks</h2>\n", *(_figure(p) for p in general)]
        parts += [f'<p class="notes">{escape(n)}</p>\n' for n in plot_notes]
    parts.append("<h2>What the columns mean</h2>\n<dl>")
    parts += [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in GLOSSARY]
    parts.append("</dl>\n</body></html>\n")
    return "".join(parts)
