"""The report's grammar-backend matrix: engine variants side by side per corpus subset.

Three tables, built from ``summary.corpus.matrix``
(:mod:`structbench.metrics.backend_matrix`): the matrix itself, the grammar library
behind each variant (as the manifest recorded it), and a few silent failures per
variant and subset with the keyword they broke.
"""

from __future__ import annotations

from collections.abc import Sequence

from structbench.metrics.backend_matrix import ALL_SUBSETS, MatrixRow
from structbench.report import fmt
from structbench.report.tables import Table

__all__ = ["matrix_tables"]

_HEADERS: tuple[str, ...] = ("Subset", "Engine", "backend", "schemas", "declared %", "empirical %")
_HEADERS += ("compliance %", "silent", "loud", "truncated", "compile p50 ms", "compile p99 ms")
_HEADERS += ("cold TTFT p50", "cold TTFT p99", "warm TTFT p50", "TPOT ratio")
_MAX_REASON = 90


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


def matrix_tables(matrix: Sequence[MatrixRow]) -> list[Table]:
    """The matrix per task, then the library and silent-example tables; empty without rows."""
    if not matrix:
        return []
    tasks = list(dict.fromkeys(m.task for m in matrix))
    out = [_matrix_table(t, [m for m in matrix if m.task == t]) for t in tasks]
    out.append(_library_table(matrix))
    silent = _silent_table(matrix)
    return out + ([silent] if silent is not None else [])
