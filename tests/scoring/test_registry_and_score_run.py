"""Scorer registry and run scoring (score_records, scores.jsonl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from structbench.errors import UserError
from structbench.ir import Choice, Gen
from structbench.records import CallRecord
from structbench.scoring.base import Score, ScoreOptions
from structbench.scoring.registry import SCORER_NAMES, SCORERS, get_scorer
from structbench.scoring.score_run import ScoredRecord, read_scores, score_records, write_scores


def test_every_registered_scorer_resolves() -> None:
    assert frozenset(SCORERS) == SCORER_NAMES
    assert {
        "json_parse",
        "schema_valid",
        "regex_match",
        "choice_valid",
        "exact_match",
        "field_accuracy",
        "final_number",
        "judge",
    } <= SCORER_NAMES
    for name in SCORER_NAMES:
        assert callable(get_scorer(name))


def test_unknown_scorer_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown scorer 'schema_vald'"):
        get_scorer("schema_vald")


def _rec(item: str, text: str, task: str = "t", attempt: int = 1, warmup: bool = False) -> CallRecord:
    return CallRecord("cell", "e", task, item, 0, 0, "g", "choice", text=text, attempt=attempt, warmup=warmup)


def test_score_records_and_jsonl_roundtrip(tmp_path: Path) -> None:
    gen = Gen("g", Choice(("yes", "no")), reference="yes")
    gens = {("t/1", 0, 0): gen, ("t/2", 0, 0): gen}
    recs = [
        _rec("t/1", "yes"),
        _rec("t/2", "maybe", attempt=2),
        _rec("t/1~warmup0", "no", warmup=True),  # a version 1 warm-up copy
        _rec("u/1", "x", "u"),
        _rec("t/2", "yes", warmup=True),  # a warm-up call keeps its item's id
    ]
    scored = score_records(recs, gens, {"t": ["choice_valid", "exact_match", "nope"]}, ScoreOptions())
    keys = [s.record_key[1::3] for s in scored]
    # Warm-up calls (version 1 copies and version 2 flagged calls alike) are not scored.
    assert keys == [("t/1", 1), ("t/2", 2), ("u/1", 1)]
    assert [s.value for s in scored[0].scores] == [1.0, 1.0, None]
    assert scored[0].scores[2].reason.startswith("unknown scorer 'nope'")
    assert [s.value for s in scored[1].scores[:2]] == [0.0, 0.0]
    assert scored[2].scores == ()  # task without scorers

    path = tmp_path / "scores.jsonl"
    write_scores(path, scored)
    assert read_scores(path) == scored


def test_a_crashing_scorer_becomes_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import structbench.scoring.score_run as sr

    def boom(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
        raise ValueError("bad")

    monkeypatch.setattr(sr, "get_scorer", lambda name: boom)
    out = score_records([_rec("t/1", "x")], {}, {"t": ["x"]}, ScoreOptions())
    assert out == [
        ScoredRecord(("cell", "t/1", 0, 0, 1), (Score("x", None, "scorer error: ValueError: bad"),))
    ]
