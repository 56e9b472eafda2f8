"""The per-task detail tables, in the order both report formats show them."""

from __future__ import annotations

from structbench.metrics import RunSummary
from structbench.report.cache_benefit import cache_benefit_table
from structbench.report.tables import Table, field_table, scores_table


def task_detail_tables(summary: RunSummary, task: str) -> list[Table]:
    """Cache benefit, scores and per-field accuracy of ``task`` (those that apply)."""
    tables = (cache_benefit_table(summary, task), scores_table(summary, task), field_table(summary, task))
    return [t for t in tables if t is not None]
