"""The report's section on schema coverage and the cost of structure.

Shown when the run has ``schema_corpus`` tasks (``summary.corpus`` is set): a feature x
engine coverage table per constrained task, the silent failures by keyword, the schemas
that failed, and the cost tables (compile time, structured/free, unique/repeated), with
two figures. This module builds the tables and figures; ``report/markdown.py`` and
``report/html.py`` render them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from structbench.metrics import RunSummary
from structbench.metrics.corpus import CorpusSummary
from structbench.metrics.cost import CompileCost, StructureCost, UniqueCost
from structbench.metrics.coverage import CoverageStats, EngineCoverage
from structbench.report import fmt
from structbench.report.backend_matrix import matrix_tables
from structbench.report.plots import Plot
from structbench.report.tables import Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "COVERAGE_GLOSSARY",
    "COVERAGE_PLOTS",
    "COVERAGE_TITLE",
    "coverage_plots",
    "coverage_tables",
]

#: ``Plot.task`` of this section's figures: not a valid task name, so the per-task and
#: across-task parts of the HTML report leave them to the coverage section.
COVERAGE_PLOTS = "#coverage"
#: Heading of the section in ``report.md`` and ``report.html``.
COVERAGE_TITLE = "Schema coverage and the cost of structure"
_MAX_FAILURE_ROWS = 30
_MAX_REASON = 90
_COMPILE_HEADERS: tuple[str, ...] = ("Engine", "Task", "Load", "schemas", "median ms", "mean ms")
_COMPILE_HEADERS += ("p90 ms", "cold TTFT", "warm TTFT")
_STRUCTURE_HEADERS: tuple[str, ...] = ("Engine", "Load", "constrained", "free", "out tok/s", "free tok/s")
_STRUCTURE_HEADERS += ("ratio", "TPOT ms", "free TPOT ms", "TPOT ratio")
_UNIQUE_HEADERS: tuple[str, ...] = ("Engine", "Load", "reused", "unique", "cold TTFT", "warm TTFT")
_UNIQUE_HEADERS += ("unique TTFT", "tok/s ratio")

COVERAGE_GLOSSARY: tuple[tuple[str, str], ...] = (
    ("declared", "share of schemas the engine accepted (no unsupported / compile / HTTP 400 error)"),
    ("empirical", "share of schemas whose output validates (the schema's own draft, formats checked)"),
    ("compliance", "empirical / declared: of the accepted schemas, the share with valid output"),
    ("silent", "schemas accepted but answered with invalid output (the constraint was not enforced)"),
    ("loud", "schemas the engine rejected as unsupported"),
    ("errors", "schemas whose calls failed for other reasons (transport, server): not counted"),
    ("truncated", "schemas accepted whose output was cut by the token limit: neither valid nor silent"),
    ("timeout", "schemas whose output took longer to validate than the per-output limit: not counted"),
    ("bad schema", "schemas invalid under their own $schema draft: not counted; the reasons are listed"),
    (
        "compile limit",
        "grammar compile past the engine's time or memory limit: not accepted, not loud",
    ),
    ("compile ms", "TTFT of a schema's first request minus TTFT of its warm repeat"),
)


def _stats_row(feature: str, engine: str, s: CoverageStats, ci: bool) -> tuple[str, ...]:
    rate = fmt.pct_ci if ci else (lambda r: fmt.pct(r.rate))
    return (
        feature,
        engine,
        str(s.schemas),
        rate(s.declared),
        rate(s.empirical),
        rate(s.compliance),
        str(s.silent),
        str(s.loud),
        str(s.errors),
        str(s.truncated),
        str(s.timeouts),
        str(s.invalid_schemas),
        str(s.compile_limits),
    )


def _feature_table(task: str, covs: Sequence[EngineCoverage]) -> Table:
    rows = [_stats_row("all schemas", c.engine, c.overall, ci=True) for c in covs]
    features = list(dict.fromkeys(f for c in covs for f, _ in c.features))
    for f in features:
        rows += [_stats_row(f, c.engine, s, ci=False) for c in covs for g, s in c.features if g == f]
    headers = ("Feature", "Engine", "schemas", "declared %", "empirical %", "compliance %", "silent", "loud")
    return Table(
        f"Coverage by feature: {task}",
        (*headers, "errors", "truncated", "timeout", "bad schema", "compile limit"),
        tuple(rows),
        ("l", "l", *("r",) * 11),
        notes=(
            "One verdict per schema: valid only when every request for it validated; "
            "a truncated output (max_tokens) is neither valid nor a silent failure.",
            "A schema counts under each feature it uses; [95% CI] is a Wilson score interval over schemas.",
        ),
    )


def _subset_table(task: str, covs: Sequence[EngineCoverage]) -> Table | None:
    """Engines side by side per corpus subset (JSONSchemaBench's ``data/<subset>/``)."""
    names = list(dict.fromkeys(n for c in covs for n, _ in c.subsets))
    if not names:
        return None
    rows = [_stats_row(n, c.engine, s, ci=True) for n in names for c in covs for g, s in c.subsets if g == n]
    headers = ("Subset", "Engine", "schemas", "declared %", "empirical %", "compliance %", "silent", "loud")
    return Table(
        f"Coverage by subset: {task}",
        (*headers, "errors", "truncated", "timeout", "bad schema", "compile limit"),
        tuple(rows),
        ("l", "l", *("r",) * 11),
        notes=("One verdict per schema, as above; [95% CI] is a Wilson score interval over schemas.",),
    )


def _keyword_table(covs: Sequence[EngineCoverage]) -> Table | None:
    rows = tuple((c.engine, c.task, k, str(n)) for c in covs for k, n in c.keywords)
    if not rows:
        return None
    return Table(
        "Silent failures by failing keyword",
        ("Engine", "Task", "keyword", "schemas"),
        rows,
        ("l", "l", "l", "r"),
        notes=("Outputs cut by the token limit are counted apart, as truncated.",),
    )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _failure_table(covs: Sequence[EngineCoverage]) -> Table | None:
    rows = [(c.engine, c.task, sid, out, _clip(why)) for c in covs for sid, out, why in c.failures]
    if not rows:
        return None
    shown = f"First {_MAX_FAILURE_ROWS} of {len(rows)} shown; summary.json lists all."
    notes = (shown,) if len(rows) > _MAX_FAILURE_ROWS else ()
    return Table(
        "Schemas that failed",
        ("Engine", "Task", "schema", "outcome", "reason"),
        tuple(rows[:_MAX_FAILURE_ROWS]),
        ("l", "l", "l", "l", "l"),
        notes,
    )


def _compile_row(c: CompileCost) -> tuple[str, ...]:
    d = c.delta_ms
    ms = map(fmt.ms, (d.median, d.mean, d.p90, c.cold_ttft_ms.median, c.warm_ttft_ms.median))
    return (c.engine, c.task, c.load, str(d.n), *ms)


def _structure_row(s: StructureCost) -> tuple[str, ...]:
    tput = (s.constrained_output_throughput, s.free_output_throughput, s.throughput_ratio)
    tpot = (fmt.ms(s.constrained_tpot_ms), fmt.ms(s.free_tpot_ms), fmt.num(s.tpot_ratio))
    return (s.engine, s.load, s.constrained_task, s.free_task, *map(fmt.num, tput), *tpot)


def _unique_row(u: UniqueCost) -> tuple[str, ...]:
    ttft = map(fmt.ms, (u.cold_ttft_ms, u.warm_ttft_ms, u.unique_ttft_ms))
    return (u.engine, u.load, u.repeated_task, u.unique_task, *ttft, fmt.num(u.throughput_ratio))


def _cost_tables(corpus: CorpusSummary) -> list[Table]:
    cost = corpus.cost
    out = []
    if cost.compile:
        note = (
            "TTFTs are medians in ms. Schemas the warm-up compiled are left out. TTFT includes "
            "queueing in the engine: read these at low concurrency."
        )
        rows = tuple(_compile_row(c) for c in cost.compile)
        title = "Compile time (first request minus warm repeat, TTFT)"
        out.append(Table(title, _COMPILE_HEADERS, rows, ("l",) * 3 + ("r",) * 6, (note,)))
    if cost.structure:
        note = "ratio = constrained / free output tokens per second (below 1: structure costs)."
        rows = tuple(_structure_row(s) for s in cost.structure)
        title = "Structured vs free generation (same prompts)"
        out.append(Table(title, _STRUCTURE_HEADERS, rows, ("l",) * 4 + ("r",) * 6, (note,)))
    if cost.unique:
        note = "Mean TTFT in ms; tok/s ratio = unique / reused output throughput."
        rows = tuple(_unique_row(u) for u in cost.unique)
        out.append(Table("Unseen vs reused schemas", _UNIQUE_HEADERS, rows, ("l",) * 4 + ("r",) * 4, (note,)))
    return out


def coverage_tables(summary: RunSummary) -> list[Table]:
    """Every table of the section, in order; empty when the run has no schema corpus."""
    corpus = summary.corpus
    if corpus is None:
        return []
    tasks = list(dict.fromkeys(c.task for c in corpus.coverage))
    out: list[Table] = []
    for t in tasks:
        covs = [c for c in corpus.coverage if c.task == t]
        by_subset = _subset_table(t, covs)
        out += [_feature_table(t, covs), *([by_subset] if by_subset is not None else [])]
    out += matrix_tables(corpus.matrix)
    out += [t for t in (_keyword_table(corpus.coverage), _failure_table(corpus.coverage)) if t is not None]
    return out + _cost_tables(corpus)


# ---------------------------------------------------------------- figures


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _coverage_figure(task: str, covs: Sequence[EngineCoverage]) -> Plot:
    """Horizontal bars per feature: empirical % filled, declared % as an outline."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    labels = ["all schemas", *dict.fromkeys(f for c in covs for f, _ in c.features)]
    fig = _figure(7.5, 1.2 + 0.28 * len(labels) * max(1, len(covs)) ** 0.5)
    ax = fig.subplots()
    h = 0.8 / len(covs)
    for i, c in enumerate(covs):
        stats = {"all schemas": c.overall, **dict(c.features)}
        ys = [n + i * h - 0.4 + h / 2 for n in range(len(labels))]
        emp = [100 * (s.empirical.rate or 0.0) if (s := stats.get(f)) else 0.0 for f in labels]
        dec = [100 * (s.declared.rate or 0.0) if (s := stats.get(f)) else 0.0 for f in labels]
        ax.barh(ys, dec, height=h * 0.9, fill=False, edgecolor=cmap(i % 10), linewidth=1.0)
        ax.barh(ys, emp, height=h * 0.9, color=cmap(i % 10), label=f"{c.engine} (outline: declared)")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("schemas with valid output (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    title = f"{task}: empirical and declared coverage by feature"
    fig.suptitle(title, fontsize=10)
    return Plot(f"coverage_{_slug(task)}", title, _png(fig), COVERAGE_PLOTS)


def _cost_figure(corpus: CorpusSummary) -> Plot | None:
    """Compile time per engine and load, and the structured/free throughput ratio."""
    cost = corpus.cost
    panels = [p for p in ("compile", "structure") if getattr(cost, p)]
    if not panels:
        return None
    fig = _figure(4.6 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "compile":
            labels = [f"{c.engine}\n{c.load}" for c in cost.compile]
            meds = [c.delta_ms.median or 0.0 for c in cost.compile]
            errs = [max(0.0, (c.delta_ms.p90 or 0.0) - m) for c, m in zip(cost.compile, meds, strict=True)]
            ax.bar(range(len(labels)), meds, yerr=[[0.0] * len(errs), errs], capsize=3, color="#4c72b0")
            ax.set_ylabel("compile time, median (whisker p90), ms")
        else:
            labels = [f"{s.engine}\n{s.load}" for s in cost.structure]
            ax.bar(range(len(labels)), [s.throughput_ratio or 0.0 for s in cost.structure], color="#dd8452")
            ax.axhline(1.0, color="#555", linewidth=0.8, linestyle="--")
            ax.set_ylabel("constrained / free output tok/s")
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Cost of structure", fontsize=10)
    return Plot("cost_of_structure", "Cost of structure", _png(fig), COVERAGE_PLOTS)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "x"


def coverage_plots(summary: RunSummary) -> list[Plot]:
    """The section's figures (tagged :data:`COVERAGE_PLOTS`); empty without a corpus."""
    corpus = summary.corpus
    if corpus is None:
        return []
    tasks = list(dict.fromkeys(c.task for c in corpus.coverage))
    plots: list[Plot | None] = [
        _coverage_figure(t, [c for c in corpus.coverage if c.task == t]) for t in tasks
    ]
    plots.append(_cost_figure(corpus))
    return [p for p in plots if p is not None]
