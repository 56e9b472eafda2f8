"""The embedded engine on the real SmolLM2-135M: constraints hold, batches form, records are right."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from concurrent.futures import Future

import jsonschema
import pytest

from structbench.engines.base import ExecContext
from structbench.engines.embedded.api import GenRequest, GenResult, Runtime
from structbench.engines.embedded.engine import EmbeddedEngine
from structbench.engines.embedded.runtime import EmbeddedRuntime
from structbench.ir import (
    Branch,
    Choice,
    Constraint,
    Gen,
    Grammar,
    JsonSchema,
    Message,
    NoConstraint,
    Regex,
    Turn,
    WorkItem,
)
from structbench.program import compile_item, run_item
from structbench.records import CallRecord

pytestmark = pytest.mark.embedded

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 16}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
JSON = JsonSchema(json.dumps(SCHEMA, sort_keys=True))
YEAR = Regex(r"(19|20)[0-9]{2}")
COLORS = ("red", "green", "blue")
CHOICE = Choice(COLORS)
LARK = Grammar((("lark", 'start: "hello " NAME\nNAME: /[a-z]{2,8}/'),))


def _ask(rt: EmbeddedRuntime, user: str, c: Constraint, max_tokens: int, **kw: object) -> Future[GenResult]:
    prompt = rt.chat_prompt([("user", user)])
    return rt.submit(GenRequest(prompt, c, max_tokens, **kw))  # type: ignore[arg-type]


def _run(engine: EmbeddedEngine, item: WorkItem, clock: object = time.perf_counter) -> list[CallRecord]:
    ctx = ExecContext("cell-1", clock, t_scheduled=0.0)  # type: ignore[arg-type]
    return asyncio.run(run_item(engine, item, ctx))


def _item(item_id: str, *branches: tuple[Turn, ...], prefix: tuple[Message, ...] = ()) -> WorkItem:
    return WorkItem(item_id, "test", "mixed", prefix, tuple(Branch(b) for b in branches))


def test_json_outputs_validate_and_batch(embedded_runtime: EmbeddedRuntime) -> None:
    people = ["Ann, 31 years old", "Bob, aged 45", "Carla who is 27"]
    futs = [_ask(embedded_runtime, f"Describe {p} as JSON with name and age.", JSON, 64) for p in people]
    results = [f.result(timeout=600) for f in futs]
    for r in results:
        assert r.error is None, r.error
        assert r.finish_reason == "stop" and r.strategy == "outlines.json_schema"
        jsonschema.validate(json.loads(r.text), SCHEMA)
    assert max(r.batch_size for r in results) > 1


def test_four_requests_submitted_together_form_one_batch(embedded_runtime: EmbeddedRuntime) -> None:
    futs = [_ask(embedded_runtime, f"Count to {n}.", NoConstraint(), 6) for n in (3, 4, 5, 6)]
    results = [f.result(timeout=600) for f in futs]
    assert all(r.error is None for r in results)
    assert all(r.batch_size > 1 for r in results), [r.batch_size for r in results]


def test_prompt_is_templated_once_and_stop_strings_cut(embedded_runtime: EmbeddedRuntime) -> None:
    rt = embedded_runtime
    prompt = rt.chat_prompt([("user", "Tell me about cats in one sentence.")])
    assert prompt.count("<|im_start|>user") == 1
    res = rt.submit(GenRequest(prompt, NoConstraint(), 12, stop=(" ",))).result(timeout=600)
    assert res.error is None and res.prompt_tokens == rt.count_tokens(prompt)
    assert res.finish_reason == "stop" and " " not in res.text and res.text


def test_fork_branches_run_concurrently_with_their_constraints(embedded_engine: EmbeddedEngine) -> None:
    item = _item(
        "fork/0",
        (Turn("In which year did World War II end? Answer with the year.", Gen("year", YEAR, 8)),),
        (Turn("Pick a color for the sky.", Gen("color", CHOICE, 8)),),
        (Turn("Pick a color for grass.", Gen("pick", CHOICE, 8, 0.0, "select")),),
        (Turn("Greet someone.", Gen("greet", LARK, 10)),),
        prefix=(Message("system", "You answer briefly."),),
    )
    recs = _run(embedded_engine, item)
    assert [r.branch for r in recs] == [0, 1, 2, 3]
    assert all(r.error is None for r in recs), [r.error for r in recs]
    year, color, pick, greet = recs
    assert re.fullmatch(r"(19|20)[0-9]{2}", year.text)
    assert color.text in COLORS and color.strategy == "outlines.choice"
    assert pick.text in COLORS and pick.strategy == "logprob.select"
    assert re.fullmatch(r"hello [a-z]{2,8}", greet.text) and greet.strategy == "outlines.cfg"
    sent = [r.t_sent for r in recs]
    done = [r.t_done for r in recs]
    assert all(s is not None for s in sent) and all(d is not None for d in done)
    assert max(s for s in sent if s is not None) < min(d for d in done if d is not None)  # all in flight


def test_multi_turn_carries_the_previous_answer(embedded_engine: EmbeddedEngine) -> None:
    fruit = Gen("fruit", Regex(r"[A-Z][a-z]{2,9}"), 6)
    color = Gen("color", max_tokens=6)
    item = _item("chat/0", (Turn("Name one fruit.", fruit), Turn("What color is it?", color)))
    first, second = _run(embedded_engine, item)
    assert first.error is None and second.error is None
    assert second.prompt == (
        Message("user", "Name one fruit."),
        Message("assistant", first.text),
        Message("user", "What color is it?"),
    )
    assert first.t_done is not None and second.t_sent is not None and second.t_sent >= first.t_done


def test_record_timestamps_tokens_and_driver_clock(embedded_engine: EmbeddedEngine) -> None:
    gen = Gen("free", max_tokens=6, reference="ref")
    item = _item("free/0", (Turn("Write a long story about a dragon.", gen),))
    (rec,) = _run(embedded_engine, item)
    assert rec.error is None and rec.finish_reason == "length" and rec.completion_tokens == 6
    assert rec.reference == "ref" and rec.cell_id == "cell-1" and rec.strategy == "none"
    assert len(rec.token_times) == 5
    times = [rec.t_sent, rec.t_first_token, *rec.token_times, rec.t_done]
    assert all(t is not None for t in times) and times == sorted(times)  # type: ignore[type-var]

    (shifted,) = _run(embedded_engine, item, clock=lambda: 1000.0 + time.perf_counter())
    assert shifted.t_sent is not None and shifted.t_done is not None
    assert 1000.0 < shifted.t_sent < shifted.t_done < 1000.0 + time.perf_counter()


def test_impossible_requests_become_error_records(embedded_engine: EmbeddedEngine) -> None:
    item = _item(
        "bad/0",
        (Turn("hi", Gen("zero", max_tokens=0)), Turn("then?", Gen("after", max_tokens=4))),
        (Turn("hi", Gen("badre", Regex("(unclosed"), 4)),),
        (Turn("hi", Gen("gbnf", Grammar((("gbnf", 'root ::= "a"'),)), 4)),),
    )
    zero, after, badre, gbnf = _run(embedded_engine, item)
    assert zero.error is not None and "max_tokens" in zero.error
    assert after.error is not None and after.error.startswith("skipped:")
    assert badre.error is not None and "cannot compile regex" in badre.error
    assert gbnf.unsupported


def test_score_choices(embedded_runtime: EmbeddedRuntime) -> None:
    protocol: Runtime = embedded_runtime  # mypy checks that the runtime satisfies the shared protocol
    assert protocol.model_id.endswith("smollm2-135m-instruct-hf")
    prompt = embedded_runtime.chat_prompt([("user", "Is the sky blue? Answer yes or no.")])
    scores = embedded_runtime.score_choices(prompt, ["yes", "no", "purple elephants dancing"])
    assert len(scores) == 3 and all(math.isfinite(s) and s < 0 for s in scores)
    assert scores[2] < min(scores[:2])  # nonsense is less likely than either real answer


def test_compile_shows_prompt_and_constraint(embedded_engine: EmbeddedEngine) -> None:
    item = _item("c/0", (Turn("Give JSON.", Gen("j", JSON, 32)), Turn("Again.", Gen("k", YEAR, 8))))
    compiled = compile_item(embedded_engine, item)
    assert compiled.strategies == ("outlines.json_schema", "outlines.regex")
    assert "outlines.json_schema(" in compiled.source and "whitespace_pattern='[ ]?'" in compiled.source
    assert "<|im_start|>user\n    Give JSON." in compiled.source.replace("\n    \n", "\n")
    assert "<<answer of gen 'j'>>" in compiled.source
