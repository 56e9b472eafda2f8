"""The shipped tasks: references fit their schemas and grammars, labels fit their choices."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from structbench.spec.loader import LoadedTask, load_task
from structbench.spec.tasks import ChoiceTaskSpec, GrammarTaskSpec, RegexTaskSpec
from structbench.templates import render

REPO = Path(__file__).resolve().parents[2]
JSON_TASKS = ["tasks/json/invoice.yaml", "tasks/json/ticket.yaml", "tasks/json/product.yaml"]


def task(rel: str) -> LoadedTask:
    return load_task(REPO / rel)


@pytest.mark.parametrize("rel", JSON_TASKS)
def test_json_references_validate_with_formats(rel: str) -> None:
    t = task(rel)
    assert t.schema is not None and t.spec.reference is not None
    validator = Draft202012Validator(t.schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert len(t.rows) >= 20
    for i, row in enumerate(t.rows):
        ref = json.loads(render(t.spec.reference, row))
        errors = [e.message for e in validator.iter_errors(ref)]
        assert not errors, (i, errors)
    # A few-shot answer must itself be a valid example.
    for shot in t.spec.few_shot:
        assert not list(validator.iter_errors(json.loads(shot.assistant)))


def test_schemas_use_formats_enums_nesting() -> None:
    text = "".join(
        (REPO / "grammars" / f).read_text()
        for f in ("invoice.schema.json", "ticket.schema.json", "product.schema.json")
    )
    for needle in ('"format": "date"', '"format": "email"', '"enum"', '"type": "array"', '"required"'):
        assert needle in text


def test_invoice_totals_add_up() -> None:
    for row in task("tasks/json/invoice.yaml").rows:
        exp = row["expected"]
        total = sum(li["quantity"] * li["unit_price"] for li in exp["line_items"])
        assert round(total, 2) == exp["total"]
        assert exp["invoice_number"] in row["text"]


def test_canary_prompts_do_not_hint_at_the_pattern() -> None:
    t = task("tasks/canary/code.yaml")
    spec = t.spec
    assert isinstance(spec, RegexTaskSpec) and spec.canary
    for row in t.rows:
        prompt = render(spec.prompt, row) + (spec.system or "")
        assert not re.search(spec.regex, prompt)
        assert "code" not in prompt.lower()


def test_regex_task_answers_match_and_are_dates() -> None:
    t = task("tasks/regex/iso_date.yaml")
    assert isinstance(t.spec, RegexTaskSpec) and t.spec.reference is not None
    for row in t.rows:
        answer = render(t.spec.reference, row)
        assert re.fullmatch(t.spec.regex, answer)
        datetime.date.fromisoformat(answer)


def test_choice_labels_are_choices() -> None:
    t = task("tasks/choice/sentiment.yaml")
    assert isinstance(t.spec, ChoiceTaskSpec) and t.spec.reference is not None
    labels = [render(t.spec.reference, row) for row in t.rows]
    assert set(labels) == set(t.spec.choices)


def _grammar_matchers() -> tuple[Any, dict[str, str]]:
    llguidance = pytest.importorskip("llguidance")

    class ByteTokenizer:
        """One token per byte: acceptance then depends on the grammar only."""

        eos_token_id = 256
        bos_token_id = None
        tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]

        def __call__(self, s: bytes) -> list[int]:
            return list(s)

    tok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(ByteTokenizer()))
    t = task("tasks/grammar/settings.yaml")
    return tok, {s: llguidance.grammar_from(s, text) for s, text in t.grammars}


def test_lark_and_gbnf_accept_the_same_language() -> None:
    import llguidance

    tok, grammars = _grammar_matchers()
    t = task("tasks/grammar/settings.yaml")
    spec = t.spec
    assert isinstance(spec, GrammarTaskSpec) and spec.match_regex and spec.reference
    samples = [render(spec.reference, row) for row in t.rows]
    samples += [
        "a=b",
        "a=",
        "=b",
        "a=b;",
        "Key=1",
        "a_b=x.y-z",
        "a=b c",
        "a" * 20 + "=1",
        "a" * 21 + "=1",
        "k=" + "v" * 20,
        "k=" + "v" * 21,
        "a=b;;c=d",
        "a=b;c=d;e=f",
        "a==b",
        "",
        "1a=b",
        "x=é",
    ]
    for s in samples:
        verdicts = {}
        for syntax, grammar in grammars.items():
            m = llguidance.LLMatcher(tok, grammar, log_level=0)
            assert not m.is_error(), m.get_error()
            verdicts[syntax] = bool(m.consume_tokens(list(s.encode()))) and m.is_accepting()
        verdicts["regex"] = re.fullmatch(spec.match_regex, s) is not None
        assert len(set(verdicts.values())) == 1, (s, verdicts)
    for s in samples[: len(t.rows)]:
        assert re.fullmatch(spec.match_regex, s), s
