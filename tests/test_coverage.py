"""Coverage metrics (declared / empirical / compliance) and the cost of structure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest
from jsonschema import Draft202012Validator

from structbench.ir import Gen, JsonSchema
from structbench.metrics import CellInfo, CellRuntime, CellSummary, LoadPoint, SummaryOptions, summarize_cell
from structbench.metrics.corpus import summarize_corpus
from structbench.metrics.cost import compile_costs, corpus_meta, structure_costs, task_roles, unique_costs
from structbench.metrics.coverage import (
    classify_call,
    corpus_calls,
    engine_coverage,
    failing_keyword,
    is_rejection,
)
from structbench.records import CallRecord
from structbench.report.coverage import _subset_table
from structbench.scoring.base import Score, ScoreOptions
from structbench.scoring.json_scorers import schema_valid
from structbench.scoring.score_run import ScoredRecord, record_key

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "email": {"type": "string", "format": "email"},
        },
        "required": ["code", "email"],
    }
)
GEN = Gen("answer", JsonSchema(SCHEMA))


def rec(
    schema_id: str,
    *,
    engine: str = "e",
    task: str = "corpus",
    repeat: int = 0,
    features: str = "pattern,format:email",
    error: str | None = None,
    mode: str = "constrained",
    unique: str = "0",
    ttft: float = 0.1,
    warmup: bool = False,
    text: str = "{}",
    tokens: int = 11,
) -> CallRecord:
    meta = (
        ("schema_id", schema_id),
        ("features", features),
        ("repeat", str(repeat)),
        ("mode", mode),
        ("unique", unique),
        ("pair", "p"),
    )
    sent = 10.0 + 3 * repeat
    ok = error is None
    return CallRecord(
        cell_id=f"{engine}.{task}.c1",
        engine=engine,
        task=task,
        item_id=f"{task}/{schema_id}/r{repeat}" + ("~warmup0" if warmup else ""),
        branch=0,
        turn=0,
        gen_name="answer",
        constraint="json_schema" if mode == "constrained" else "none",
        warmup=warmup,
        t_scheduled=sent,
        t_sent=sent,
        t_first_token=sent + ttft if ok else None,
        t_done=sent + ttft + 1.0 if ok else None,
        completion_tokens=tokens if ok else None,
        text=text,
        error=error,
        meta=meta,
    )


def scored(r: CallRecord, valid: float | None, reason: str = "") -> ScoredRecord:
    return ScoredRecord(record_key(r), (Score("schema_valid", valid, reason),))


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("error", "rejected"),
    [
        ("unsupported: constraint 'grammar'", True),
        ("constraint: cannot compile JSON schema: Format ipv4 is not supported by Outlines", True),
        ("http 400: {'error': 'invalid json_schema'}", True),
        ("HTTP 422: unprocessable", True),
        ("stream error: xgrammar failed to compile the grammar", True),
        ("timeout: ReadTimeout after 600 s", False),
        ("cancelled: cell timeout", False),
        ("ConnectError: connection refused", False),
        ("http 500: internal server error", False),
    ],
)
def test_is_rejection(error: str, rejected: bool) -> None:
    assert is_rejection(error) is rejected


def test_failing_keyword() -> None:
    assert failing_keyword("$.code: [pattern] 'ab' does not match '^[A-Z]{3}$'") == "pattern"
    assert failing_keyword("$: [required] 'code' is a required property") == "required"
    assert failing_keyword("not JSON: truncated: Expecting ',' delimiter at 1:40") == "truncated"
    assert failing_keyword("not JSON: invalid: Extra data at 1:3") == "not_json"
    assert failing_keyword("timeout: check took over 2s") == "timeout"
    assert failing_keyword("something else") is None


def test_classify_call() -> None:
    ok = rec("a")
    assert classify_call(ok, scored(ok, 1.0)) == ("valid", "", None)
    bad_reason = "$.email: [format] 'x' is not a 'email'"
    assert classify_call(ok, scored(ok, 0.0, bad_reason)) == ("invalid", bad_reason, "format")
    assert classify_call(ok, None)[0] == "error"  # not scored: unjudged, not invalid
    cut = replace(ok, finish_reason="length")
    unterminated = "not JSON: invalid: Unterminated string starting at at 1:69"
    assert classify_call(cut, scored(cut, 0.0, unterminated))[2] == "truncated"
    assert classify_call(ok, scored(ok, 0.0, unterminated))[2] == "not_json"
    refused = rec("a", error="unsupported: json_schema")
    assert classify_call(refused, scored(refused, None))[0] == "unsupported"
    lost = rec("a", error="timeout: ReadTimeout after 600 s")
    assert classify_call(lost, scored(lost, None))[0] == "error"


# ---------------------------------------------------------------- the deliberately invalid outputs


def test_format_checker_really_checks_the_formats() -> None:
    """jsonschema[format-nongpl] must be installed: without rfc3339-validator, date-time passes anything."""
    fc = Draft202012Validator.FORMAT_CHECKER
    for fmt, good, bad in (
        ("email", "ana@example.com", "ana.example.com"),
        ("date-time", "2024-05-01T12:30:00Z", "2024-05-01 12:30"),
        ("uuid", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "1b4e28ba2fa111d2883f0016d3cca427x"),
        ("ipv4", "10.0.0.1", "300.0.0.1"),
    ):
        assert fc.conforms(good, fmt), fmt
        assert not fc.conforms(bad, fmt), fmt


@pytest.mark.parametrize(
    ("text", "keyword", "path"),
    [
        ('{"code": "abc", "email": "ana@example.com"}', "pattern", "$.code"),  # engine ignored pattern
        ('{"code": "ABC", "email": "not-an-email"}', "format", "$.email"),  # engine ignored format
    ],
)
def test_ignored_pattern_or_format_is_a_silent_failure(text: str, keyword: str, path: str) -> None:
    """An engine that accepts the schema but ignores ``pattern``/``format``: well-formed JSON, invalid."""
    r = rec("s", text=text)
    score = schema_valid(r, GEN, ScoreOptions(schema_timeout_s=30.0))
    assert score.value == 0.0
    assert score.reason.startswith(f"{path}: [{keyword}] ")
    outcome, _, kw = classify_call(r, ScoredRecord(record_key(r), (score,)))
    assert (outcome, kw) == ("invalid", keyword)
    cov = engine_coverage(
        "e", "corpus", corpus_calls([r], {record_key(r): ScoredRecord(record_key(r), (score,))})
    )
    assert (cov.overall.declared.rate, cov.overall.empirical.rate, cov.overall.silent) == (1.0, 0.0, 1)
    assert cov.keywords == ((keyword, 1),)


# ---------------------------------------------------------------- coverage numbers


def _scripted() -> tuple[list[CallRecord], dict[tuple[str, str, int, int, int], ScoredRecord]]:
    """Five schemas, each sent twice: a valid, b invalid once, c rejected, d timed out, e valid."""
    plan: dict[str, list[tuple[str | None, float | None, str]]] = {
        "a": [(None, 1.0, ""), (None, 1.0, "")],
        "b": [(None, 1.0, ""), (None, 0.0, "$.code: [pattern] 'ab' does not match")],
        "c": [("constraint: cannot compile JSON schema", None, ""), ("constraint: cannot compile", None, "")],
        "d": [("timeout: ReadTimeout", None, ""), ("timeout: ReadTimeout", None, "")],
        "e": [(None, 1.0, ""), (None, 1.0, "")],
    }
    feats = {"a": "pattern", "b": "pattern,enum", "c": "format:ipv4", "d": "enum", "e": "enum"}
    records: list[CallRecord] = []
    scores: dict[tuple[str, str, int, int, int], ScoredRecord] = {}
    for sid, calls in plan.items():
        for k, (err, value, reason) in enumerate(calls):
            r = rec(sid, repeat=k, error=err, features=feats[sid])
            records.append(r)
            scores[record_key(r)] = scored(r, value, reason)
    return records, scores


def test_engine_coverage_counts_schemas_not_calls() -> None:
    records, scores = _scripted()
    free = rec("a", mode="free", task="corpus_free")
    calls = corpus_calls([*records, free, rec("z", warmup=True)], scores)
    assert {c.task for c in calls} == {"corpus"} and len(calls) == 10  # free and warm-up left out
    cov = engine_coverage("e", "corpus", calls, bootstrap=200, seed=1)
    o = cov.overall
    # 4 judged schemas (d only timed out): a, e valid; b silent; c loud.
    assert (o.schemas, o.errors, o.silent, o.loud) == (5, 1, 1, 1)
    assert o.declared.rate == pytest.approx(3 / 4) and o.declared.n == 4 and o.declared.n_na == 1
    assert o.empirical.rate == pytest.approx(2 / 4)
    assert o.compliance.rate == pytest.approx(2 / 3) and o.compliance.n == 3
    assert o.empirical.ci_low is not None and o.empirical.ci_low <= 0.5 <= (o.empirical.ci_high or 0)
    by = dict(cov.features)
    assert list(by) == ["enum", "pattern", "format:ipv4"]  # feature order
    assert (by["pattern"].empirical.rate, by["pattern"].silent) == (0.5, 1)
    assert (by["format:ipv4"].declared.rate, by["format:ipv4"].loud) == (0.0, 1)
    assert by["enum"].errors == 1 and by["enum"].compliance.rate == 0.5
    assert cov.keywords == (("pattern", 1),)
    assert [f[:2] for f in cov.failures] == [("b", "invalid"), ("c", "unsupported"), ("d", "error")]
    # Deterministic intervals: same seed, same numbers.
    assert engine_coverage("e", "corpus", calls, bootstrap=200, seed=1) == cov


# ---------------------------------------------------------------- cost of structure


def _cell(records: Sequence[CallRecord], task: str, engine: str = "e") -> CellSummary:
    info = CellInfo(f"{engine}.{task}.c1", engine, task, "schema_corpus", LoadPoint("concurrency", 1))
    return summarize_cell(info, CellRuntime(status="complete"), records, {}, SummaryOptions(bootstrap=0))


def test_compile_cost_is_first_minus_warm_ttft_and_skips_warmed_schemas() -> None:
    records = [
        rec("x", repeat=0, ttft=1.5),
        rec("x", repeat=1, ttft=0.3),
        rec("y", repeat=0, ttft=0.9),
        rec("y", repeat=1, ttft=0.4),
        rec("w", repeat=0, ttft=0.2, warmup=True),  # the warm-up compiled w
        rec("w", repeat=0, ttft=0.25),
        rec("w", repeat=1, ttft=0.2),
        rec("v", repeat=0, error="timeout: x"),
        rec("v", repeat=1, ttft=0.2),
    ]
    (cost,) = compile_costs(records, [_cell(records, "corpus")])
    assert cost.delta_ms.n == 2 and cost.skipped == 2
    assert cost.delta_ms.median == pytest.approx(850.0)  # (1200 + 500) / 2
    assert cost.cold_ttft_ms.mean == pytest.approx(1200.0) and cost.warm_ttft_ms.mean == pytest.approx(350.0)
    assert (cost.engine, cost.task, cost.load) == ("e", "corpus", "c1")


def test_roles_and_pairing_by_name_or_by_prompts() -> None:
    records = [rec("a", repeat=1), rec("a", task="free", mode="free"), rec("a", task="uniq", unique="1")]
    roles = task_roles(records)
    assert (roles["corpus"].repeats, roles["free"].mode, roles["uniq"].unique) == (2, "free", True)
    assert {r.pair_key for r in roles.values()} == {"p"}
    bare = CallRecord("c", "e", "t", "t/0", 0, 0, "answer", "none", meta=(("schema_id", "a"),))
    assert task_roles([bare])["t"].pair_key.startswith("prompts:")
    assert corpus_meta(CallRecord("c", "e", "t", "t/0", 0, 0, "g", "none")) is None


def test_structured_vs_free_and_unique_vs_repeated() -> None:
    constrained = [rec("a", ttft=1.0, tokens=11), rec("a", repeat=1, ttft=0.2, tokens=11)]
    free = [rec("a", task="free", mode="free", tokens=21)]
    uniq = [rec("a", task="uniq", unique="1", ttft=0.8)]
    records = [*constrained, *free, *uniq]
    cells = [
        _cell(constrained, "corpus"),
        _cell(free, "free"),
        _cell(uniq, "uniq"),
        _cell(free, "free", "other"),
    ]
    roles = task_roles(records)
    (s,) = structure_costs(roles, cells)  # the other engine's free cell has no constrained twin
    assert (s.constrained_task, s.free_task) == ("corpus", "free")
    # Constrained: 22 tokens from the first send (10 s) to the last done (14.2 s); free: 21 over 1.1 s.
    assert s.constrained_output_throughput == pytest.approx(22 / 4.2)
    assert s.throughput_ratio == pytest.approx((22 / 4.2) / (21 / 1.1))
    assert s.tpot_ratio == pytest.approx(100.0 / 50.0)  # 1 s over 10 vs 20 decode steps
    (u,) = unique_costs(records, roles, cells)
    assert (u.cold_ttft_ms, u.warm_ttft_ms, u.unique_ttft_ms) == pytest.approx((1000.0, 200.0, 800.0))


def test_summarize_corpus_only_for_corpus_runs() -> None:
    plain = CallRecord("c", "e", "json", "json/0", 0, 0, "answer", "json_schema")
    assert summarize_corpus([plain], {}, [], SummaryOptions()) is None
    records, scores = _scripted()
    summary = summarize_corpus(records, scores, [_cell(records, "corpus")], SummaryOptions(bootstrap=50))
    assert summary is not None
    (cov,) = summary.coverage
    assert cov.overall.schemas == 5
    d = summary.to_dict()
    assert set(d) == {"coverage", "backend_matrix", "compile", "structured_vs_free", "unique_vs_repeated"}
    json.dumps(d)  # JSON-ready


def test_verdicts_truncated_timeout_and_invalid_schema_are_counted_apart() -> None:
    plan: dict[str, tuple[str | None, float | None, str, str | None]] = {
        "ok": (None, 1.0, "", "stop"),
        "silent": (None, 0.0, "$.a: [pattern] 'x' does not match", "stop"),
        "cut": (None, 0.0, "not JSON: invalid: Unterminated string starting at 1:9", "length"),
        "slow": (None, None, "timeout: check took over 2s", "stop"),
        "broken": (None, None, "invalid schema under draft-04: $.minimum: 'x' is not of type", "stop"),
        "refused": ("http 400: xgrammar cannot compile", None, "", None),
    }
    records, scores = [], {}
    for sid, (err, value, reason, finish) in plan.items():
        r = replace(rec(sid, error=err, features="pattern"), finish_reason=finish)
        records.append(r)
        scores[record_key(r)] = scored(r, value, reason)
    calls = corpus_calls(records, scores)
    assert {c.schema_id: c.outcome for c in calls} == {
        "ok": "valid",
        "silent": "invalid",
        "cut": "truncated",
        "slow": "timeout",
        "broken": "invalid_schema",
        "refused": "unsupported",
    }
    cov = engine_coverage("e", "corpus", calls, bootstrap=100, seed=0)
    o = cov.overall
    assert (o.schemas, o.silent, o.truncated, o.loud, o.timeouts, o.invalid_schemas, o.errors) == (
        6,
        1,
        1,
        1,
        1,
        1,
        0,
    )
    # Timeouts and broken schemas leave the denominators: 4 judged, 3 accepted.
    assert (o.declared.n, o.declared.rate) == (4, pytest.approx(3 / 4))
    assert (o.compliance.n, o.compliance.rate) == (3, pytest.approx(1 / 3))
    assert cov.keywords == (("pattern", 1),)  # truncation is not a silent failure
    why = {sid: reason for sid, _, reason in cov.failures}
    assert why["broken"].startswith("invalid schema under draft-04")
    assert o.to_dict()["invalid_schemas"] == 1


def test_an_invalid_schema_outranks_the_engines_verdict() -> None:
    r = rec("x", error="http 400: grammar compile failed")
    s = scored(r, None, "invalid schema under 2020-12: $.type: 'objekt' is not valid")
    assert classify_call(r, s)[0] == "invalid_schema"


def test_coverage_per_subset_and_its_report_table() -> None:
    plan = {"Github_easy/o1": 1.0, "Github_easy/o2": 0.0, "Kubernetes/k1": 1.0, "flat": 1.0}
    records, scores = [], {}
    for sid, value in plan.items():
        subset = sid.split("/")[0] if "/" in sid else ""
        r = rec(sid)
        r = replace(r, meta=(*r.meta, ("subset", subset)))
        records.append(r)
        scores[record_key(r)] = scored(r, value, "" if value else "$.a: [type] 1 is not of type 'string'")
    cov = engine_coverage("e", "corpus", corpus_calls(records, scores), bootstrap=100, seed=0)
    by = dict(cov.subsets)
    assert list(by) == ["Github_easy", "Kubernetes"]  # a schema without a subset is in none
    assert (by["Github_easy"].schemas, by["Github_easy"].empirical.rate, by["Github_easy"].silent) == (
        2,
        0.5,
        1,
    )
    assert (by["Kubernetes"].schemas, by["Kubernetes"].empirical.rate) == (1, 1.0)
    assert cov.overall.schemas == 4
    assert cov.to_dict()["subsets"]["Kubernetes"]["schemas"] == 1  # type: ignore[index]
    table = _subset_table("corpus", [cov])
    assert table is not None and [row[:3] for row in table.rows] == [
        ("Github_easy", "e", "2"),
        ("Kubernetes", "e", "1"),
    ]
    assert _subset_table("corpus", [replace(cov, subsets=())]) is None
