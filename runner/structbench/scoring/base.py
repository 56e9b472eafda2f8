"""What a scorer is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from structbench.ir import Gen
from structbench.records import CallRecord


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """Settings shared by all scorers."""

    schema_timeout_s: float = 2.0
    #: Grades of the LLM-judge pass (``judge.jsonl``), keyed like ``score_run.record_key``
    #: (cell, item, branch, turn, attempt); None when the pass did not run. See scoring/judge.py.
    judge_grades: Mapping[tuple[str, str, int, int, int], int | None] | None = field(
        default=None, compare=False
    )


@dataclass(frozen=True, slots=True)
class Score:
    """One scorer's verdict on one call.

    ``value`` is in [0, 1] (1 = pass for binary scorers); ``None`` means the scorer
    does not apply (no reference, failed call, unsupported constraint).
    """

    scorer: str
    value: float | None
    reason: str = ""
    #: Per-field (or per-part) values, e.g. field_accuracy's breakdown.
    detail: tuple[tuple[str, float], ...] = field(default=())


class Scorer(Protocol):
    """Scores one call against the gen that produced it."""

    def __call__(self, rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score: ...
