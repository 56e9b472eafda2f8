"""The per-call scorers, on hand-built records."""

from __future__ import annotations

import json

import pytest

from structbench.ir import Choice, Gen, Grammar, JsonSchema, Regex
from structbench.records import CallRecord
from structbench.scoring.accuracy import exact_match, field_accuracy, final_number, flatten, last_number
from structbench.scoring.base import ScoreOptions
from structbench.scoring.guard import close_shared_checker
from structbench.scoring.json_scorers import json_parse, schema_valid
from structbench.scoring.regex_scorers import choice_valid, regex_match

OPTS = ScoreOptions(schema_timeout_s=5.0)
SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "price": {"type": "number", "minimum": 0},
            "email": {"type": "string", "format": "email"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "price"],
        "additionalProperties": False,
    },
    sort_keys=True,
)
JSON_GEN = Gen("g", JsonSchema(SCHEMA))


def rec(text: str, error: str | None = None, reference: str | None = None) -> CallRecord:
    return CallRecord(
        "c", "e", "t", "t/1", 0, 0, "g", "json_schema", text=text, error=error, reference=reference
    )


@pytest.fixture(scope="module", autouse=True)
def _stop_checker() -> object:
    yield
    close_shared_checker()


def test_json_parse_ok_and_reasons() -> None:
    assert json_parse(rec('{"a": 1}'), JSON_GEN, OPTS).value == 1.0
    truncated = json_parse(rec('{"a": 1, "b": [1, 2'), JSON_GEN, OPTS)
    assert truncated.value == 0.0 and truncated.reason.startswith("truncated:")
    bad = json_parse(rec('{"a": 1} trailing'), JSON_GEN, OPTS)
    assert bad.value == 0.0 and bad.reason.startswith("invalid: Extra data at 1:10")
    fenced = json_parse(rec('```json\n{"a": 1}\n```'), JSON_GEN, OPTS)
    assert fenced.value == 0.0 and "code fence" in fenced.reason
    assert json_parse(rec("  "), JSON_GEN, OPTS).reason == "empty output"
    deep = json_parse(rec("[" * 100_000 + "]" * 100_000), JSON_GEN, OPTS)
    assert deep.value == 0.0 and "deeply nested" in deep.reason


def test_failed_and_unsupported_calls_do_not_apply() -> None:
    s = json_parse(rec("", error="HTTP 500"), JSON_GEN, OPTS)
    assert s.value is None and s.reason == "call failed"
    s = schema_valid(rec("", error="unsupported: constraint 'json_schema'"), JSON_GEN, OPTS)
    assert s.value is None and s.reason == "unsupported"


def test_schema_valid() -> None:
    ok = schema_valid(rec('{"name": "x", "price": 2.5, "tags": ["a"]}'), JSON_GEN, OPTS)
    assert ok.value == 1.0, ok.reason
    bad = schema_valid(rec('{"name": "x", "price": -1}'), JSON_GEN, OPTS)
    assert bad.value == 0.0 and bad.reason.startswith("$.price:") and "minimum" in bad.reason
    nested = schema_valid(rec('{"name": "x", "price": 1, "tags": ["a", 3]}'), JSON_GEN, OPTS)
    assert nested.value == 0.0 and nested.reason.startswith("$.tags[1]:")
    # The format checker is on: a malformed email fails.
    email = schema_valid(rec('{"name": "x", "price": 1, "email": "not-an-email"}'), JSON_GEN, OPTS)
    assert email.value == 0.0 and "email" in email.reason
    assert schema_valid(rec("{oops"), JSON_GEN, OPTS).reason.startswith("not JSON:")
    assert schema_valid(rec("{}"), Gen("g"), OPTS).value is None


def test_schema_valid_times_out_and_recovers() -> None:
    # A catastrophic-backtracking pattern: validating one output would take ages.
    evil = json.dumps({"type": "string", "pattern": "^(a+)+$"})
    gen = Gen("g", JsonSchema(evil))
    s = schema_valid(rec(json.dumps("a" * 40 + "!")), gen, ScoreOptions(schema_timeout_s=0.5))
    # Its own verdict: not judged (None), neither valid nor the output's fault.
    assert s.value is None and s.reason.startswith("timeout")
    # The worker was replaced: the next check works.
    assert schema_valid(rec('{"name": "x", "price": 1}'), JSON_GEN, OPTS).value == 1.0


def test_schema_valid_deeply_nested_output() -> None:
    gen = Gen("g", JsonSchema(json.dumps({"type": "array"})))
    deep = "[" * 100_000 + "]" * 100_000
    s = schema_valid(rec(deep), gen, OPTS)
    assert s.value == 0.0 and "deeply nested" in s.reason


def test_regex_match() -> None:
    gen = Gen("g", Regex(r"[A-Z]{3}-\d{4}"))
    assert regex_match(rec("ABC-1234"), gen, OPTS).value == 1.0
    assert regex_match(rec("ABC-12345"), gen, OPTS).value == 0.0
    spaced = regex_match(rec("ABC-1234\n"), gen, OPTS)
    assert spaced.value == 0.0 and "whitespace" in spaced.reason
    assert regex_match(rec("x"), Gen("g", Grammar(())), OPTS).value is None
    broken = Gen("g", Regex("(unclosed"))
    assert regex_match(rec("x"), broken, OPTS).value is None


def test_regex_match_times_out() -> None:
    gen = Gen("g", Regex(r"(a+)+b"))
    s = regex_match(rec("a" * 40), gen, ScoreOptions(schema_timeout_s=0.5))
    assert s.value is None and s.reason.startswith("timeout")


def test_choice_valid() -> None:
    gen = Gen("g", Choice(("positive", "negative")))
    assert choice_valid(rec(" positive\n"), gen, OPTS).value == 1.0
    miss = choice_valid(rec("Positive"), gen, OPTS)
    assert miss.value == 0.0 and "'Positive'" in miss.reason
    assert choice_valid(rec("x"), Gen("g"), OPTS).value is None


def test_exact_match() -> None:
    ref = '{"a": 1, "b": [true, "x"]}'
    assert (
        exact_match(
            rec('{"b": [true, "x"], "a": 1.0}'), Gen("g", JSON_GEN.constraint, reference=ref), OPTS
        ).value
        == 1.0
    )
    # true is not 1 in JSON, even though Python says True == 1.
    assert (
        exact_match(rec('{"a": 1, "b": [1, "x"]}'), Gen("g", JSON_GEN.constraint, reference=ref), OPTS).value
        == 0.0
    )
    assert exact_match(rec(" Paris \n"), Gen("g", reference="Paris"), OPTS).value == 1.0
    assert exact_match(rec("paris"), Gen("g", reference="Paris"), OPTS).value == 0.0
    assert exact_match(rec("x"), Gen("g"), OPTS).value is None
    # The record's reference covers a missing items file.
    assert exact_match(rec("Paris", reference="Paris"), Gen("g"), OPTS).value == 1.0


def test_flatten_paths() -> None:
    doc: dict[str, object] = {"a": {"b": 1, "c": [{"d": "x"}, 2]}, "e": [], "f": None}
    assert flatten(doc) == [("a.b", 1), ("a.c[0].d", "x"), ("a.c[1]", 2), ("e", []), ("f", None)]


def test_field_accuracy() -> None:
    ref = json.dumps({"name": "Widget", "price": 9.99, "qty": 3, "ok": True, "tags": ["a", "b"]})
    gen = Gen("g", JSON_GEN.constraint, reference=ref)
    out = json.dumps({"name": " widget ", "price": 9.9900001, "qty": 4, "ok": 1, "tags": ["a"], "extra": 1})
    s = field_accuracy(rec(out), gen, OPTS)
    detail = dict(s.detail)
    assert detail == {"name": 1.0, "price": 1.0, "qty": 0.0, "ok": 0.0, "tags[0]": 1.0, "tags[1]": 0.0}
    assert s.value == pytest.approx(3 / 6)
    not_json = field_accuracy(rec("{"), gen, OPTS)
    assert not_json.value == 0.0 and all(v == 0.0 for _, v in not_json.detail) and len(not_json.detail) == 6
    assert field_accuracy(rec("{}"), Gen("g", reference="42"), OPTS).value is None


def test_final_number() -> None:
    gen = Gen("g", reference="Natalia sold 48/2 = 24 clips in May.\n#### 72")
    assert final_number(rec("So the total is 1,000 - 928 = 72."), gen, OPTS).value == 1.0
    wrong = final_number(rec("The answer is 71.5"), gen, OPTS)
    assert wrong.value == 0.0 and wrong.reason == "got 71.5, expected 72"
    assert final_number(rec("no idea"), gen, OPTS).value == 0.0
    assert final_number(rec("5"), Gen("g", reference="none"), OPTS).value is None
    assert last_number("costs $1,234.50 or -3") == -3.0
    assert last_number("1,2,3") == 3.0


def test_schema_valid_honours_draft04_exclusive_minimum() -> None:
    d4 = {"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 0, "exclusiveMinimum": True}
    gen = Gen("g", JsonSchema(json.dumps({**d4, "type": "number"})))
    zero = schema_valid(rec("0"), gen, OPTS)
    assert zero.value == 0.0 and "[minimum]" in zero.reason
    assert schema_valid(rec("0.5"), gen, OPTS).value == 1.0


def test_schema_valid_honours_draft07_dependencies() -> None:
    body = {"type": "object", "dependencies": {"card": ["billing"]}}
    d7 = Gen("g", JsonSchema(json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", **body})))
    missing = schema_valid(rec('{"card": "1"}'), d7, OPTS)
    assert missing.value == 0.0 and "billing" in missing.reason
    # The same schema read as 2020-12 (no $schema) ignores the keyword.
    assert schema_valid(rec('{"card": "1"}'), Gen("g", JsonSchema(json.dumps(body))), OPTS).value == 1.0


def test_schema_valid_schema_invalid_under_its_draft_is_not_the_outputs_fault() -> None:
    # A draft-04 boolean exclusiveMinimum in a schema that claims 2020-12.
    bad = {"$schema": "https://json-schema.org/draft/2020-12/schema", "minimum": 0, "exclusiveMinimum": True}
    s = schema_valid(rec("1"), Gen("g", JsonSchema(json.dumps(bad))), OPTS)
    assert s.value is None and s.reason.startswith("invalid schema under 2020-12: $.exclusiveMinimum:")
    # Named even when the engine refused it: the schema is at fault, not the engine.
    refused = schema_valid(rec("", error="http 400: bad schema"), Gen("g", JsonSchema(json.dumps(bad))), OPTS)
    assert refused.value is None and refused.reason.startswith("invalid schema under 2020-12")
    ok_schema_refused = schema_valid(rec("", error="http 400: bad schema"), JSON_GEN, OPTS)
    assert ok_schema_refused.reason == "call failed"
