"""Score every record of a run, and the ``scores.jsonl`` file that holds the result."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from structbench.errors import UserError
from structbench.ir import Gen
from structbench.records import CallRecord
from structbench.scoring.base import Score, ScoreOptions, Scorer
from structbench.scoring.registry import get_scorer

SCORES_SCHEMA_VERSION = 1

#: (cell_id, item_id, branch, turn, attempt): identifies one call record in a run.
RecordKey = tuple[str, str, int, int, int]
#: (item_id, branch, turn): identifies one gen of a work item.
GenKey = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    """The scores of one call record."""

    record_key: RecordKey
    scores: tuple[Score, ...]

    def get(self, scorer: str) -> Score | None:
        """The score named ``scorer``, or None when it wasn't computed."""
        for s in self.scores:
            if s.scorer == scorer:
                return s
        return None


def record_key(rec: CallRecord) -> RecordKey:
    """The key that ties a record to its scores."""
    return (rec.cell_id, rec.item_id, rec.branch, rec.turn, rec.attempt)


def _resolve(name: str) -> Scorer:
    try:
        return get_scorer(name)
    except UserError as e:
        msg = str(e)

        def unknown(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
            return Score(name, None, msg)

        return unknown


def _safe(name: str, fn: Scorer) -> Callable[[CallRecord, Gen, ScoreOptions], Score]:
    # A report must come out even if one scorer trips on an odd output; the error
    # lands in the score's reason where the reader sees it.
    def run(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
        try:
            return fn(rec, gen, opts)
        except Exception as e:
            return Score(name, None, f"scorer error: {type(e).__name__}: {e}")

    return run


def _gen_for(rec: CallRecord, gens: Mapping[GenKey, Gen]) -> Gen:
    return gens.get((rec.item_id, rec.branch, rec.turn)) or Gen(name=rec.gen_name, reference=rec.reference)


def score_records(
    records: Sequence[CallRecord],
    gens: Mapping[GenKey, Gen],
    scorers_by_task: Mapping[str, Sequence[str]],
    opts: ScoreOptions,
) -> list[ScoredRecord]:
    """Run each task's scorers over its records.

    Args:
        records: Call records. Warm-up ones are not scored: no metric counts them, and they
            share their item's key with its measured call, whose scores they would shadow.
        gens: The gen behind each record, keyed by ``(item_id, branch, turn)``. A record
            whose gen is missing (items file lost) is scored against a bare gen that
            keeps only the record's reference.
        scorers_by_task: Scorer names per task name.
        opts: Options shared by the scorers.

    Returns:
        One :class:`ScoredRecord` per measured record, in input order.
    """
    cache: dict[str, Callable[[CallRecord, Gen, ScoreOptions], Score]] = {}
    out: list[ScoredRecord] = []
    for rec in records:
        if rec.warmup:
            continue
        gen = _gen_for(rec, gens)
        scores = []
        for name in scorers_by_task.get(rec.task, ()):
            if name not in cache:
                cache[name] = _safe(name, _resolve(name))
            scores.append(cache[name](rec, gen, opts))
        out.append(ScoredRecord(record_key(rec), tuple(scores)))
    return out


def _score_to_dict(s: Score) -> dict[str, object]:
    d: dict[str, object] = {"scorer": s.scorer, "value": s.value}
    if s.reason:
        d["reason"] = s.reason
    if s.detail:
        d["detail"] = [[k, v] for k, v in s.detail]
    return d


def write_scores(path: Path, scored: Iterable[ScoredRecord]) -> None:
    """Write ``scores.jsonl``: one line per record, replacing any previous file.

    The file is written to a temporary name and renamed, so a reader never sees a
    half-written scores file.
    """
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for sr in scored:
            cell, item, branch, turn, attempt = sr.record_key
            line = {
                "v": SCORES_SCHEMA_VERSION,
                "cell_id": cell,
                "item_id": item,
                "branch": branch,
                "turn": turn,
                "attempt": attempt,
                "scores": [_score_to_dict(s) for s in sr.scores],
            }
            fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    tmp.replace(path)


def read_scores(path: Path) -> list[ScoredRecord]:
    """Read a ``scores.jsonl`` written by :func:`write_scores`."""
    out: list[ScoredRecord] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            d = json.loads(line)
            scores = tuple(
                Score(
                    scorer=s["scorer"],
                    value=s["value"],
                    reason=s.get("reason", ""),
                    detail=tuple((str(k), float(v)) for k, v in s.get("detail", ())),
                )
                for s in d["scores"]
            )
            key: RecordKey = (d["cell_id"], d["item_id"], d["branch"], d["turn"], d["attempt"])
            out.append(ScoredRecord(key, scores))
    return out
