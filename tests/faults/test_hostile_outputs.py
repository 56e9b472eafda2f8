"""Hostile model outputs and specs: every scorer gives a score or a reason, never a hang or a crash.

tests/scoring covers a catastrophic schema ``pattern``, a catastrophic regex and a deeply
nested array under ``schema_valid``; this adds the other shapes (non-JSON, truncated,
deep objects, 10 MB outputs, integers past Python's digit limit, lone surrogates, NaN,
self-referencing schemas) across every registered scorer, through ``score_records``.
"""

from __future__ import annotations

import json
import time

import pytest

from structbench.ir import Gen, JsonSchema, Regex
from structbench.records import CallRecord
from structbench.scoring.base import ScoreOptions
from structbench.scoring.registry import SCORER_NAMES
from structbench.scoring.score_run import score_records

OPTS = ScoreOptions(schema_timeout_s=5.0)
SCORERS = sorted(SCORER_NAMES - {"judge"})  # the judge pass needs an engine
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
    "required": ["name", "price"],
}
MB = 1_000_000

HOSTILE = {
    "empty": "",
    "prose": "Sure! Here is the JSON you asked for:",
    "truncated": '{"name": "wid',
    "nul_bytes": '{"name": "a\u0000b", "price": 1}\u0000',
    "deep_array": "[" * 100_000 + "]" * 100_000,
    "deep_object": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "deep_unclosed": '{"a":' * 100_000,
    "huge_string": json.dumps({"name": "x" * (10 * MB), "price": 1}),
    "huge_array": "[" + "1," * MB + "1]",
    "deep_edge": '{"a":' * 990 + "1" + "}" * 990,  # parses, then deep for the scorers
    "big_int": '{"name": "x", "price": 1' + "0" * 5000 + "}",
    "nan": '{"name": "x", "price": NaN}',
    "lone_surrogate": '{"name": "\\ud800", "price": 1}',
    "many_keys": json.dumps({f"k{i}": i for i in range(200_000)}),
}


def _rec(text: str, task: str = "t") -> CallRecord:
    return CallRecord(
        "cell", "e", task, "t/1", 0, 0, "g", "json_schema", text=text, reference='{"name": "x", "price": 1}'
    )


def _score(text: str, gen: Gen) -> list[tuple[str, float | None, str]]:
    t0 = time.monotonic()
    [scored] = score_records([_rec(text)], {("t/1", 0, 0): gen}, {"t": SCORERS}, OPTS)
    assert time.monotonic() - t0 < 60, "scoring took too long"
    return [(s.scorer, s.value, s.reason) for s in scored.scores]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_output_gets_a_score_or_a_reason(name: str) -> None:
    gen = Gen("g", JsonSchema(json.dumps(SCHEMA)), reference='{"name": "x"}')
    for scorer, value, reason in _score(HOSTILE[name], gen):
        assert not reason.startswith("scorer error"), (scorer, reason[:300])
        assert value is None or 0.0 <= value <= 1.0
        if value == 0.0:
            assert reason, scorer  # an invalid output always says why
        assert len(reason) < 2000  # a reason never carries the 10 MB output along


@pytest.mark.parametrize(
    "name", ["prose", "truncated", "deep_array", "deep_object", "deep_unclosed", "big_int"]
)
def test_hostile_output_is_invalid_json(name: str) -> None:
    gen = Gen("g", JsonSchema(json.dumps(SCHEMA)))
    scores = {s: (v, r) for s, v, r in _score(HOSTILE[name], gen)}
    for scorer in ("json_parse", "schema_valid"):
        value, reason = scores[scorer]
        assert value == 0.0 and reason, (scorer, reason)


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},  # a reference loop
        {"type": "object", "properties": {"x": {"$ref": "#"}}},  # recursive, fine on finite input
        {"type": "string", "pattern": "^(a|a)*$"},  # catastrophic backtracking
        {"type": "nonsense"},  # not a valid schema at all
    ],
)
def test_pathological_schema_never_hangs(schema: dict[str, object]) -> None:
    gen = Gen("g", JsonSchema(json.dumps(schema)))
    text = json.dumps("a" * 40 + "!") if "pattern" in schema else '{"x": {"x": {"x": 1}}}'
    t0 = time.monotonic()
    scores = {s: (v, r) for s, v, r in _score(text, gen)}
    assert time.monotonic() - t0 < 30
    value, reason = scores["schema_valid"]
    assert value in (None, 0.0, 1.0) and not reason.startswith("scorer error")


def test_pathological_regex_never_hangs() -> None:
    gen = Gen("g", Regex(r"^(\w+\s?)*$"))
    text = "a" * 5000 + "!"
    t0 = time.monotonic()
    scores = {s: (v, r) for s, v, r in _score(text, gen)}
    assert time.monotonic() - t0 < 30
    value, reason = scores["regex_match"]
    # A timeout is its own verdict (not judged), not a failed match.
    assert value is None and reason.startswith("timeout")
