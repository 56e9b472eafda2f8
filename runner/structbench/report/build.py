"""Rebuild scores, summary and reports of a run folder from its records alone.

This is what ``structbench report RUN`` and the end of ``structbench run`` call. No
engine is touched, so a report can be rebuilt (after a scorer fix, say) at any time,
including for a run that was interrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from structbench.metrics import CellSummary, RunSummary, summarize_cell
from structbench.metrics.corpus import summarize_corpus
from structbench.records import CallRecord
from structbench.report.coverage import coverage_plots
from structbench.report.csv_export import write_cell_csv
from structbench.report.curves import make_curves
from structbench.report.enrich import local_model_sizes, roofline_cells
from structbench.report.headline import headline_table
from structbench.report.html import render_html
from structbench.report.load import RunData, load_run
from structbench.report.markdown import render_markdown
from structbench.report.model_facts import run_models
from structbench.report.plots import Plot, make_plots
from structbench.report.samples import cell_samples
from structbench.scoring.score_run import ScoredRecord, score_records, write_scores


@dataclass(frozen=True, slots=True)
class _Built:
    data: RunData
    scored: tuple[ScoredRecord, ...]
    summary: RunSummary


def _by_cell(records: Sequence[CallRecord]) -> dict[str, list[CallRecord]]:
    out: dict[str, list[CallRecord]] = {}
    for r in records:
        out.setdefault(r.cell_id, []).append(r)
    return out


def _build(data: RunData) -> _Built:
    # The checker process stays up for the next build (compare builds several); it
    # exits at interpreter exit, or by itself when this process dies (its stdin closes).
    scored = score_records(data.records, data.gens, data.scorers_by_task, data.score_options)
    by_key = {s.record_key: s for s in scored}
    by_cell = _by_cell(data.records)
    cells: list[CellSummary] = [
        summarize_cell(
            info, data.runtimes[info.cell_id], by_cell.get(info.cell_id, []), by_key, data.info.options
        )
        for info in data.cells
    ]
    models = run_models(data.run_dir)
    cells = list(roofline_cells(cells, local_model_sizes(models), models.gpu))
    corpus = summarize_corpus(data.records, by_key, cells, data.info.options, data.info.engines)
    return _Built(data, tuple(scored), RunSummary(run=data.info, cells=tuple(cells), corpus=corpus))


def summarize_run(run_dir: Path) -> RunSummary:
    """Score and summarize a run folder without writing anything into it."""
    return _build(load_run(run_dir)).summary


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_plots(run_dir: Path, plots: Sequence[Plot]) -> list[tuple[str, str]]:
    folder = run_dir / "plots"
    folder.mkdir(exist_ok=True)
    out = []
    for p in plots:
        (folder / f"{p.name}.png").write_bytes(p.png)
        out.append((p.title, f"plots/{p.name}.png"))
    return out


def build_report(run_dir: Path) -> RunSummary:
    """Re-score a run and write its derived files.

    Writes ``scores.jsonl``, ``summary.json`` (``{"schema_version": 1, "run": ...,
    "cells": [...]}``), ``report.md``, ``report.html`` (self-contained), ``plots/*.png``
    and ``cells/<id>/requests.csv``. Works on partial and interrupted runs.

    Raises:
        UserError: when ``run_dir`` is not a run folder.
    """
    built = _build(load_run(run_dir))
    data, summary = built.data, built.summary
    write_scores(run_dir / "scores.jsonl", built.scored)
    _write_text(run_dir / "summary.json", json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
    by_key = {s.record_key: s for s in built.scored}
    by_cell = _by_cell(data.records)
    for info in data.cells:
        path = run_dir / "cells" / info.cell_id / "requests.csv"
        write_cell_csv(path, by_cell.get(info.cell_id, []), by_key, info.scorers)
    samples = cell_samples(data.records)
    curves = make_curves(summary, samples)
    plots = make_plots(summary, samples) + list(curves.plots) + coverage_plots(summary)
    plot_files = _write_plots(run_dir, plots)
    headline = headline_table(summary, samples)
    _write_text(run_dir / "report.md", render_markdown(summary, plot_files, headline, curves.notes))
    _write_text(run_dir / "report.html", render_html(summary, plots, headline, curves.notes))
    return summary
