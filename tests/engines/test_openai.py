"""OpenAIEngine: declared constraints only; the rest are recorded unsupported, never sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from http_fake import serve
from structbench.engines.base import ExecContext
from structbench.engines.openai import OpenAIEngine
from structbench.engines.registry import EngineEnv
from structbench.ir import Branch, Constraint, Gen, Grammar, JsonSchema, Regex, Turn, WorkItem
from structbench.program import run_item
from structbench.spec.engines import OpenAIEngineSpec


class FakeServer:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "llama"}]})
        if req.url.path == "/version":
            return httpx.Response(404)
        self.bodies.append(json.loads(req.content))
        body = 'data: {"choices":[{"delta":{"content":"{}"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
        return httpx.Response(200, content=body.encode())


def _branches(*cs: Constraint) -> WorkItem:
    # One branch per constraint, so an unsupported one does not skip the others.
    return WorkItem("t/0", "t", "json", (), tuple(Branch((Turn("q", Gen("g", c)),)) for c in cs))


def _run(spec: OpenAIEngineSpec, fake: FakeServer, wi: WorkItem, tmp: Path) -> tuple[Any, list[Any], Any]:
    async def go() -> tuple[Any, list[Any], Any]:
        async with serve(fake) as url:
            slash = "/" if spec.url.endswith("/") else ""  # keep what the test spec says
            eng = OpenAIEngine(spec.model_copy(update={"url": url + slash}), EngineEnv(tmp))
            info = await eng.start()
            recs = await run_item(eng, wi, ExecContext("c", lambda: 0.0, 0.0))
            snap = await eng.metrics_snapshot()
            await eng.close()
            return info, recs, snap

    return asyncio.run(go())


def test_declared_constraints_only(tmp_path: Path) -> None:
    fake = FakeServer()
    schema = JsonSchema('{"type": "object"}')
    regex = Regex("a+")
    info, recs, snap = _run(OpenAIEngineSpec(url="http://x/"), fake, _branches(schema, regex), tmp_path)
    assert info.model == "llama" and info.version == "" and snap is None
    assert recs[0].ok and recs[0].strategy == "response_format.json_schema"
    assert recs[1].unsupported and recs[1].t_sent is None
    assert len(fake.bodies) == 1 and "response_format" in fake.bodies[0]


def test_declared_regex_and_grammar_use_structured_outputs(tmp_path: Path) -> None:
    fake = FakeServer()
    spec = OpenAIEngineSpec(url="http://x", constraints=("regex", "grammar"))
    grammar = Grammar((("gbnf", "root ::= x"),))
    _, recs, _ = _run(
        spec,
        fake,
        _branches(Regex("a+"), grammar, JsonSchema("{}")),
        tmp_path,
    )
    assert [r.ok for r in recs] == [True, True, False]
    assert [b["structured_outputs"] for b in fake.bodies] == [{"regex": "a+"}, {"grammar": "root ::= x"}]
