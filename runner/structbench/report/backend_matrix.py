"""The report's grammar-backend matrix: engine variants side by side per corpus subset.

Tables built from ``summary.corpus.matrix`` (:mod:`structbench.metrics.backend_matrix`):
the matrix itself, the grammar library behind each variant (as the manifest recorded
it), a few silent failures per variant and subset with the keyword they broke, and the
published figures (:mod:`structbench.report.reference`) beside ours wherever a variant's
backend maps to a published framework.
"""

from __future__ import annotations

from collections.abc import Sequence

from structbench.metrics.backend_matrix import ALL_SUBSETS, MatrixRow
from structbench.report import fmt
from structbench.report.reference import JSB_SOURCE, MASKBENCH_SOURCE, jsb_coverage, maskbench_figure
from structbench.report.tables import Table

__all__ = ["matrix_tables"]

_HEADERS: tuple[str, ...] = ("Subset", "Engine", "backend", "schemas", "declared %", "empirical %")
_HEADERS += ("compliance %", "silent", "loud", "truncated", "compile p50 ms", "compile p99 ms")
_HEADERS += ("cold TTFT p50", "cold TTFT p99", "warm TTFT p50", "TPOT ratio")
_MAX_REASON = 90
_PUB_HEADERS: tuple[str, ...] = ("Subset", "Engine", "Task", "backend", "empirical %", "declared %")
_PUB_HEADERS += ("published framework", "pub. empirical %", "pub. declared %", "pub. compliance %", "source")
_MASK_HEADERS: tuple[str, ...] = ("Engine", "Task", "backend", "compile p50 ms", "compile p99 ms")
_MASK_HEADERS += ("MaskBench engine", "version", "TTFM p50 ms", "TTFM p99 ms", "mask p50 µs", "mask p99 µs")
_MASK_HEADERS += ("passing",)


def _subset(m: MatrixRow) -> str:
    return "all" if m.subset == ALL_SUBSETS else m.subset


def _row(m: MatrixRow) -> tuple[str, ...]:
    s = m.stats
    return (
        _subset(m),
        m.engine,
        m.backend,
        str(s.schemas),
        fmt.pct_ci(s.declared),
        fmt.pct_ci(s.empirical),
        fmt.pct_ci(s.compliance),
        str(s.silent),
        str(s.loud),
        str(s.truncated),
        fmt.ms(m.compile_ms.median),
        fmt.ms(m.compile_ms.p99),
        fmt.ms(m.cold_ttft_ms.median),
        fmt.ms(m.cold_ttft_ms.p99),
        fmt.ms(m.warm_ttft_ms.median),
        fmt.num(m.tpot_ratio),
    )


def _matrix_table(task: str, rows: Sequence[MatrixRow]) -> Table:
    order = list(dict.fromkeys(m.subset for m in rows))
    shown = [m for subset in order for m in rows if m.subset == subset]
    return Table(
        f"Grammar-backend matrix: {task}",
        _HEADERS,
        tuple(_row(m) for m in shown),
        ("l", "l", "l", *("r",) * 13),
        notes=(
            "declared = the schema was accepted; empirical = its output validated; compliance = "
            "valid among accepted; silent = accepted but invalid; loud = rejected. "
            "[95% CI]: Wilson score intervals over schemas.",
            "compile = TTFT of a schema's first request (grammar unseen) minus TTFT of its warm "
            "repeat (same prompt and schema), per schema, p50/p99 over schemas; it needs "
            "repeats >= 2. TPOT ratio = mean TPOT constrained / free twin (same prompts).",
        ),
    )


def _library_table(rows: Sequence[MatrixRow]) -> Table:
    seen = dict.fromkeys((m.engine, m.backend, m.backend_source, m.library) for m in rows)
    return Table(
        "Grammar backends and library versions",
        ("Engine", "backend", "source", "library"),
        tuple(seen),
        ("l", "l", "l", "l"),
        notes=("Versions are read with importlib.metadata in the interpreter that ran the engine.",),
    )


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _silent_table(rows: Sequence[MatrixRow]) -> Table | None:
    has_subsets = any(m.subset != ALL_SUBSETS for m in rows)
    picked = [m for m in rows if (m.subset != ALL_SUBSETS) == has_subsets]
    out = tuple(
        (
            m.engine,
            m.backend,
            "all" if m.subset == ALL_SUBSETS else m.subset,
            e.schema_id,
            e.keyword,
            _clip(e.reason),
        )
        for m in picked
        for e in m.silent_examples
    )
    if not out:
        return None
    return Table(
        "Silent failures: examples",
        ("Engine", "backend", "subset", "schema", "keyword", "reason"),
        out,
        ("l",) * 6,
        notes=("At most three per engine and subset; summary.json's coverage failures list them all.",),
    )


def _published_pct(rate: float | None) -> str:
    return "NA" if rate is None else fmt.pct(rate)  # the paper's own word for a figure it lacks


def _published_table(rows: Sequence[MatrixRow]) -> Table | None:
    """Our empirical coverage per variant and subset beside JSONSchemaBench's for its framework."""
    out = []
    for m in rows:
        ref = jsb_coverage(m.backend, m.subset)
        if ref is None:
            continue  # a backend or subset the paper did not measure: nothing to set beside it
        ours = (fmt.pct_ci(m.stats.empirical), fmt.pct_ci(m.stats.declared))
        theirs = (_published_pct(r) for r in (ref.empirical, ref.declared, ref.compliance))
        out.append((m.subset, m.engine, m.task, m.backend, *ours, ref.framework, *theirs, JSB_SOURCE.label))
    if not out:
        return None
    return Table(
        "Beside the published coverage (JSONSchemaBench)",
        _PUB_HEADERS,
        tuple(out),
        ("l", "l", "l", "l", "r", "r", "l", "r", "r", "r", "l"),
        notes=(
            f"Published: {JSB_SOURCE.reference}; {JSB_SOURCE.setting}. Another model, prompt and "
            "library versions than ours: a reference to read ours against, not a target.",
        ),
    )


def _maskbench_table(rows: Sequence[MatrixRow]) -> Table | None:
    """Our compile time per variant (all subsets) beside MaskBench's mask and compile times."""
    out = []
    for m in (m for m in rows if m.subset == ALL_SUBSETS):
        ref = maskbench_figure(m.backend)
        if ref is None:
            continue
        ours = (fmt.ms(m.compile_ms.median), fmt.ms(m.compile_ms.p99))
        compile_ms = (fmt.ms(ref.ttfm_p50_us / 1000), fmt.ms(ref.ttfm_p99_us / 1000))
        mask_us = (f"{ref.tbm_p50_us:,.0f}", f"{ref.tbm_p99_us:,.0f}")
        passing = f"{ref.passing:,} / {ref.schemas:,}"
        out.append(
            (m.engine, m.task, m.backend, *ours, ref.engine, ref.version, *compile_ms, *mask_us, passing)
        )
    if not out:
        return None
    return Table(
        "Beside the published mask and compile times (MaskBench)",
        _MASK_HEADERS,
        tuple(out),
        ("l", "l", "l", "r", "r", "l", "l", "r", "r", "r", "r", "r"),
        notes=(
            f"Published: {MASKBENCH_SOURCE.reference}; {MASKBENCH_SOURCE.setting}. TTFM = time to the "
            "first mask (compilation); ours is TTFT cold minus warm inside a serving engine.",
        ),
    )


def matrix_tables(matrix: Sequence[MatrixRow]) -> list[Table]:
    """The matrix per task, the library and silent-example tables, then the published figures
    beside ours (only where a backend maps to them); empty without rows."""
    if not matrix:
        return []
    tasks = list(dict.fromkeys(m.task for m in matrix))
    out = [_matrix_table(t, [m for m in matrix if m.task == t]) for t in tasks]
    out.append(_library_table(matrix))
    extra = (_silent_table(matrix), _published_table(matrix), _maskbench_table(matrix))
    return out + [t for t in extra if t is not None]
