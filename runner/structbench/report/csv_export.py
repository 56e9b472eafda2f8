"""``cells/<id>/requests.csv``: one row per call with derived timings and scores."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from structbench.metrics import call_timing
from structbench.records import CallRecord
from structbench.scoring.score_run import RecordKey, ScoredRecord, record_key

_BASE_COLUMNS = (
    "cell_id", "item_id", "branch", "turn", "attempt", "warmup", "gen_name", "constraint", "strategy",
    "status", "error", "ttft_ms", "tpot_ms", "e2el_ms", "queue_ms", "prompt_tokens",
    "completion_tokens", "cached_tokens", "finish_reason",
)  # fmt: skip


def _status(r: CallRecord) -> str:
    return "ok" if r.ok else "unsupported" if r.unsupported else "failed"


def _round(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _row(r: CallRecord, sr: ScoredRecord | None, scorers: Sequence[str]) -> list[object]:
    t = call_timing(r)
    row: list[object] = [
        r.cell_id, r.item_id, r.branch, r.turn, r.attempt, int(r.warmup), r.gen_name, r.constraint,
        r.strategy, _status(r), r.error or "", _round(t.ttft_ms), _round(t.tpot_ms), _round(t.e2el_ms),
        _round(t.queue_ms), r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.finish_reason or "",
    ]  # fmt: skip
    for name in scorers:
        s = sr.get(name) if sr is not None else None
        row += ["" if s is None or s.value is None else s.value, s.reason if s is not None else ""]
    row.append(r.text)
    return row


def write_cell_csv(
    path: Path,
    records: Sequence[CallRecord],
    scored: Mapping[RecordKey, ScoredRecord],
    scorers: Sequence[str],
) -> None:
    """Write one cell's calls (warm-up and retried attempts included, flagged) as CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        score_cols = [c for name in scorers for c in (name, f"{name}_reason")]
        w.writerow([*_BASE_COLUMNS, *score_cols, "text"])
        for r in records:
            w.writerow(_row(r, scored.get(record_key(r)), scorers))
    tmp.replace(path)
