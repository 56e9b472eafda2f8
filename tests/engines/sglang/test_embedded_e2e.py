"""Real SmolLM2 through native SGLang programs on the embedded backend (CPU, no server)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("sglang")
pytest.importorskip("outlines")

import jsonschema

from structbench.engines.base import ExecContext
from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.engine import SglangEngine
from structbench.ir import Branch, Choice, Constraint, Gen, JsonSchema, Message, Regex, Turn, WorkItem
from structbench.program import run_item
from structbench.records import CallRecord
from structbench.spec.engines import EmbeddedEngineSpec, SglangEngineSpec

pytestmark = [pytest.mark.embedded, pytest.mark.sglang, pytest.mark.slow, pytest.mark.timeout(900)]

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "rank": {"type": "integer"}},
    "required": ["city", "rank"],
    "additionalProperties": False,
}
JSON_C = JsonSchema(json.dumps(SCHEMA, sort_keys=True))
PHONE = r"[0-9]{3}-[0-9]{4}"
PHONE_C = Regex(PHONE)
COLORS = ("red", "green", "blue")


def _item(
    item_id: str, c: Constraint, user: str, strategy: str = "constrained", max_tokens: int = 40
) -> WorkItem:
    gen = Gen("out", c, max_tokens=max_tokens, choice_strategy=strategy)  # type: ignore[arg-type]
    prefix = (Message("system", "You answer in the requested format."),)
    return WorkItem(item_id, "e2e", c.kind, prefix, (Branch((Turn(user, gen),)),))


def _chat() -> WorkItem:
    turns = (
        Turn("Give a city and its rank as JSON.", Gen("first", JSON_C, max_tokens=48)),
        Turn("Now give a phone number.", Gen("second", PHONE_C, max_tokens=12)),
    )
    return WorkItem("chat", "e2e", "chat", (Message("system", "Be brief."),), (Branch(turns),))


def _fork() -> WorkItem:
    prefix = (
        Message("user", "Our office phone numbers follow the pattern 555-0100."),
        Message("assistant", "Noted."),
    )
    branches = tuple(
        Branch((Turn(f"Give phone number {i}.", Gen("phone", PHONE_C, max_tokens=12)),)) for i in range(2)
    )
    return WorkItem("fork", "e2e", "fanout", prefix, branches)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SglangEngine]:
    spec = SglangEngineSpec(
        name="sgl-cpu", backend="embedded", mode="program", embedded=EmbeddedEngineSpec(max_batch=8)
    )
    eng = SglangEngine(spec, EngineEnv(workdir=tmp_path_factory.mktemp("sgl")))
    info = asyncio.run(eng.start())
    assert "derived from the runtime's chat template" in dict(info.extra)["chat_template"]
    yield eng
    asyncio.run(eng.close())


def _run(engine: SglangEngine, items: list[WorkItem]) -> list[list[CallRecord]]:
    async def go() -> list[list[CallRecord]]:
        ctx = ExecContext(cell_id="e2e", clock=time.perf_counter, t_scheduled=time.perf_counter())
        return list(await asyncio.gather(*(run_item(engine, i, ctx) for i in items)))

    return asyncio.run(go())


def test_native_programs_on_smollm2(engine: SglangEngine) -> None:
    items = [
        _item("json-a", JSON_C, "Give a city and its rank as JSON.", max_tokens=48),
        _item("json-b", JSON_C, "Name a large city and a rank number, as JSON.", max_tokens=48),
        _item("regex", PHONE_C, "Give a phone number.", max_tokens=12),
        _item("select", Choice(COLORS), "What color is grass?", strategy="select"),
        _item("choice", Choice(COLORS), "What color is the sky?"),
        _chat(),
        _fork(),
    ]
    ja, jb, rx, sel, ch, chat, fork = _run(engine, items)
    every = ja + jb + rx + sel + ch + chat + fork
    for r in every:  # shown with -s: what the model produced, and how long it took
        dt = (r.t_done or 0) - (r.t_sent or 0)
        print(f"{r.item_id:7} {r.strategy:22} {dt:6.2f}s {r.completion_tokens} tok  {r.text!r}")
    assert all(r.ok for r in every), [r.error for r in every]

    for r in ja + jb + chat[:1]:
        assert r.finish_reason == "stop", (r.text, r.completion_tokens)
        jsonschema.validate(json.loads(r.text), SCHEMA)  # 100 %: constrained decoding
        assert r.strategy == "sgl.gen.json_schema"
    for r in rx + chat[1:] + fork:
        assert re.fullmatch(PHONE, r.text), r.text
    assert sel[0].text in COLORS and sel[0].strategy == "sgl.select"
    assert ch[0].text in COLORS and ch[0].strategy == "sgl.gen.regex_choice"

    # Multi-turn: the second turn was asked with the real first answer in context.
    assert chat[1].prompt[-2] == Message("assistant", chat[0].text)
    assert [(r.branch, r.turn) for r in fork] == [(0, 0), (1, 0)]
    for r in every:
        assert r.t_sent is not None and r.t_done is not None and r.t_sent <= r.t_done
        assert r.prompt_tokens and r.prompt_tokens > 10
    r = ja[0]
    assert r.t_first_token is not None and r.t_sent <= r.t_first_token <= r.t_done  # type: ignore[operator]
    assert r.completion_tokens and r.completion_tokens > 3
