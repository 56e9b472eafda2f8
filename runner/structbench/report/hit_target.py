"""The hit-target table: every ``prefix_hit`` cell of the run, achieved against target.

One table for the whole run, so a sweep of targets (one task per target) reads top to
bottom: target, achieved, the gap and the tolerance it is judged by, the verdict, and
the theoretical and ideal rates that explain a gap.
"""

from __future__ import annotations

from structbench.metrics import CellSummary, HitTarget, RunSummary
from structbench.metrics.hit_target import SERVER
from structbench.report import fmt
from structbench.report.tables import Table

TITLE = "Prefix hit-rate targets"
HEADERS = (
    "Task",
    "Engine",
    "Load",
    "target %",
    "achieved %",
    "achieved - target (pp)",
    "tolerance (pp)",
    "check",
    "theoretical %",
    "ideal %",
    "block",
    "mean prompt tokens",
)
NOTES = (
    "achieved: the server's cache counters over the cell (cached / queried prompt tokens), else the "
    "engine's per-call cached tokens; the primers that cache each group's prefix are warm-ups, outside it",
    "tolerance: max(0.5 pp, block size / mean prompt tokens), SGLang's prefix benchmark rule: a cache "
    "serves whole blocks only",
    "theoretical: what an infinite token-level cache serves of these prompts; ideal: the same in whole "
    "blocks of the engine's size",
)


def _pp(x: float | None) -> str:
    return fmt.DASH if x is None else f"{100 * x:+.2f}"


def _verdict(h: HitTarget) -> str:
    if h.passed is None:
        return "not measured" if h.achieved is None else "no block size"
    return "pass" if h.passed else "FAIL"


def _row(c: CellSummary, h: HitTarget) -> tuple[str, ...]:
    tol = fmt.DASH if h.tolerance is None else f"{100 * h.tolerance:.2f}"
    achieved = fmt.pct(h.achieved)
    if h.achieved_source is not None and h.achieved is not None and h.achieved_source != SERVER:
        achieved += " (client)"
    return (
        c.info.task,
        c.info.engine,
        fmt.load_label(c),
        fmt.pct(h.target),
        achieved,
        _pp(h.error),
        tol,
        _verdict(h),
        fmt.pct(h.theoretical),
        fmt.pct(h.ideal),
        fmt.DASH if h.block_size is None else str(h.block_size),
        fmt.num(h.mean_prompt_len),
    )


def hit_target_table(summary: RunSummary) -> Table | None:
    """The run's hit-target table, or None when no cell has a target."""
    rows = [_row(c, c.hit_target) for c in summary.cells if c.hit_target is not None]
    if not rows:
        return None
    sources = sorted(
        {
            f"{c.info.engine}: {c.hit_target.block_size} from {c.hit_target.block_source}"
            for c in summary.cells
            if c.hit_target is not None and c.hit_target.block_source is not None
        }
    )
    notes = (*NOTES, *(f"block size {s}" for s in sources))
    align = ("l", "l", "l", *("r",) * (len(HEADERS) - 3))
    return Table(TITLE, HEADERS, tuple(rows), align, notes)
