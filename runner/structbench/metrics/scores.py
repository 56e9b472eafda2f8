"""Reductions of per-call scores: rates with intervals, per-field accuracy, canary.

A rate of 0/1 scores (validity, exact match, coverage) gets a Wilson score interval; a
mean of fractional scores (field accuracy, judge grades) keeps the bootstrap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from structbench.records import CallRecord
from structbench.scoring.score_run import RecordKey, ScoredRecord, record_key
from structbench.stats import derive_seed, rate_ci


@dataclass(frozen=True, slots=True)
class ScoreRate:
    """Mean of one scorer's applicable values over a cell.

    Attributes:
        scorer: Scorer name.
        rate: Mean of the non-None values (0..1), None when none applied.
        ci_low: Lower end of the 95 % interval (Wilson for 0/1 scores, else bootstrap).
        ci_high: Upper end.
        n: Number of values that applied.
        n_na: Number of records the scorer did not apply to.
    """

    scorer: str
    rate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    n_na: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``."""
        return {
            "scorer": self.scorer,
            "rate": self.rate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "n_na": self.n_na,
        }


@dataclass(frozen=True, slots=True)
class FieldRate:
    """Accuracy of one reference field path across a cell's records."""

    path: str
    rate: float
    n: int


def scorer_values(
    records: Sequence[CallRecord], scored: Mapping[RecordKey, ScoredRecord], scorer: str
) -> tuple[list[float], int]:
    """Applicable values of ``scorer`` over ``records``, and how many did not apply."""
    values: list[float] = []
    na = 0
    for r in records:
        sr = scored.get(record_key(r))
        s = sr.get(scorer) if sr is not None else None
        if s is None or s.value is None:
            na += 1
        else:
            values.append(s.value)
    return values, na


def score_rate(values: Sequence[float], n_na: int, scorer: str, bootstrap: int, seed: int) -> ScoreRate:
    """Mean and 95 % interval of a scorer's values (Wilson for 0/1 values, else bootstrap)."""
    if not values:
        return ScoreRate(scorer, None, n=0, n_na=n_na)
    ci = rate_ci(values, n_resamples=bootstrap, seed=seed)
    low, high = ci if ci is not None else (None, None)
    return ScoreRate(scorer, sum(values) / len(values), low, high, len(values), n_na)


def score_rates(
    records: Sequence[CallRecord],
    scored: Mapping[RecordKey, ScoredRecord],
    scorers: Sequence[str],
    bootstrap: int,
    seed: int,
) -> tuple[ScoreRate, ...]:
    """One :class:`ScoreRate` per scorer; the interval seed depends on cell and scorer only."""
    cell = records[0].cell_id if records else ""
    out = []
    for name in scorers:
        values, na = scorer_values(records, scored, name)
        out.append(score_rate(values, na, name, bootstrap, derive_seed(seed, cell, name)))
    return tuple(out)


def field_rates(
    records: Sequence[CallRecord], scored: Mapping[RecordKey, ScoredRecord]
) -> tuple[FieldRate, ...]:
    """Per-field accuracy from ``field_accuracy`` details, fields in first-seen order."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in records:
        sr = scored.get(record_key(r))
        s = sr.get("field_accuracy") if sr is not None else None
        if s is None or s.value is None:
            continue
        for path, v in s.detail:
            sums[path] = sums.get(path, 0.0) + v
            counts[path] = counts.get(path, 0) + 1
    return tuple(FieldRate(p, sums[p] / counts[p], counts[p]) for p in sums)


def canary_verdict(records: Sequence[CallRecord], scored: Mapping[RecordKey, ScoredRecord]) -> str:
    """Verdict of a canary task: "applied" when every completed output matched its regex.

    A canary pattern is one the model would never follow unprompted, so any miss
    means the engine did not enforce the constraint (or silently ignored the field).
    """
    done = [r for r in records if r.ok]
    if not done:
        unsupported = sum(r.unsupported for r in records)
        return "unsupported" if unsupported and unsupported == len(records) else "no completed outputs"
    values, _ = scorer_values(done, scored, "regex_match")
    matched = sum(1 for v in values if v == 1.0)
    if matched == len(done):
        return "applied"
    return f"NOT APPLIED: {matched}/{len(done)} outputs matched"
