"""Generate mode over SGLang's native streaming /generate API (scripted with httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
from sgl_fakes import GRAMMAR_C, JSON_C, REGEX_C, SCHEMA, fanout, multi_turn, one_gen

from structbench.engines.sglang.generate import (
    HttpGenerate,
    Route,
    parse_stream,
    run_generate,
    sampling_params,
)
from structbench.engines.sglang.outcome import CallOutcome
from structbench.engines.sglang.plan import plan_item
from structbench.engines.sglang.templates import SMOLLM2_TEMPLATE, render
from structbench.ir import Message


def _sse(*events: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def _meta(n: int, finish: Any = None) -> dict[str, Any]:
    return {"prompt_tokens": 40, "completion_tokens": n, "cached_tokens": 32, "finish_reason": finish}


class FakeServer:
    """Streams cumulative text in three chunks, like SGLang without --incremental-streaming-output."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status

    def __call__(self, req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/generate"
        body = json.loads(req.content)
        self.bodies.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "bad schema"}})
        sp = body["sampling_params"]
        text = (
            "555-0100"
            if "regex" in sp
            else json.dumps({"name": "Ada", "age": 36})
            if "json_schema" in sp
            else "yes"
        )
        a, b = len(text) // 3, 2 * len(text) // 3
        events = [
            {"text": text[:a], "meta_info": _meta(1)},
            {"text": text[:b], "meta_info": _meta(2)},
            {"text": text, "meta_info": _meta(3, {"type": "stop", "matched": 2})},
        ]
        return httpx.Response(200, text=_sse(*events), headers={"content-type": "text/event-stream"})


def _clock() -> Any:
    ticks = itertools.count(100)
    return lambda: float(next(ticks))


def _run(server: FakeServer, item: Any) -> list[CallOutcome]:
    async def go() -> list[CallOutcome]:
        clock = _clock()
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            caller = Route(HttpGenerate(client, "http://sgl", ("<|im_end|>",), clock), select=None)
            return await run_generate(plan_item(item, "generate"), SMOLLM2_TEMPLATE, caller, clock)

    return asyncio.run(go())


def test_sampling_params_per_constraint() -> None:
    (j,) = plan_item(one_gen(JSON_C, max_tokens=33), "generate").calls()
    assert sampling_params(j, ("<|im_end|>",)) == {
        "max_new_tokens": 33,
        "temperature": 0.0,
        "stop": ["<|im_end|>"],
        "json_schema": SCHEMA,
    }
    (r,) = plan_item(one_gen(REGEX_C), "generate").calls()
    assert sampling_params(r, ())["regex"] == REGEX_C.regex
    (g,) = plan_item(one_gen(GRAMMAR_C), "generate").calls()
    assert sampling_params(g, ())["ebnf"] == 'root ::= "yes" | "no"'


def test_parse_stream_times_and_meta() -> None:
    lines = [
        (1.0, 'data: {"text": "a", "meta_info": {"completion_tokens": 1}}'),
        (1.0, ""),
        (2.0, 'data: {"text": "ab", "meta_info": {"completion_tokens": 2}}'),
        (3.0, 'data: {"text": "abc", "meta_info": {"completion_tokens": 3, "prompt_tokens": 9, '
         '"cached_tokens": 4, "finish_reason": {"type": "length", "length": 3}}}'),
        (3.5, "data: [DONE]"),
    ]  # fmt: skip
    o = parse_stream(lines, 0.5, 4.0)
    assert o.error is None and o.text == "abc"
    assert (o.t_sent, o.t_first_token, o.token_times, o.t_done) == (0.5, 1.0, (2.0, 3.0), 4.0)
    assert (o.prompt_tokens, o.completion_tokens, o.cached_tokens, o.finish_reason) == (9, 3, 4, "length")


def test_parse_stream_counts_chunks_like_sglang_bench() -> None:
    lines = [
        (1.0, 'data: {"text": "", "meta_info": {"completion_tokens": 1}}'),  # partial UTF-8: no text yet
        (2.0, 'data: {"text": "\u00e9", "meta_info": {"completion_tokens": 2}}'),
        (3.0, 'data: {"text": "\u00e9ab", "meta_info": {"completion_tokens": 4}}'),
        (4.0, 'data: {"text": "\u00e9ab", "meta_info": {"completion_tokens": 4, "finish_reason": "stop"}}'),
    ]
    o = parse_stream(lines, 0.0, 5.0)
    assert (o.text, o.t_first_token, o.token_times, o.finish_reason) == ("\u00e9ab", 2.0, (3.0,), "stop")


def test_parse_stream_errors() -> None:
    err = parse_stream(
        [(1.0, 'data: {"error": {"message": "grammar failed"}}'), (1.1, "data: [DONE]")], 0.0, 2.0
    )
    assert err.error == "server error: grammar failed"
    assert parse_stream([(1.0, "data: [DONE]")], 0.0, 2.0).error == "empty stream"


def test_multi_turn_and_fork_over_http() -> None:
    server = FakeServer()
    chat = _run(server, multi_turn())
    assert [o.text for o in chat] == [json.dumps({"name": "Ada", "age": 36}), "555-0100"]
    first, second = server.bodies
    msgs = [Message("system", "Be brief."), Message("user", "First question?")]
    assert first["text"] == render(SMOLLM2_TEMPLATE, msgs) and first["stream"] is True
    msgs += [Message("assistant", chat[0].text), Message("user", "Second?")]
    assert second["text"] == render(SMOLLM2_TEMPLATE, msgs)
    o = chat[0]
    assert o.t_sent is not None and o.t_first_token is not None and o.t_done is not None
    assert o.t_sent < o.t_first_token < o.t_done and len(o.token_times) == 2
    assert (o.cached_tokens, o.completion_tokens, o.finish_reason) == (32, 3, "stop")

    server2 = FakeServer()
    fan = _run(server2, fanout(3))
    assert [o.text for o in fan] == ["555-0100"] * 3
    assert len({b["text"][:60] for b in server2.bodies}) == 1  # shared prefix


def test_http_error_is_an_outcome_and_skips_the_rest_of_the_branch() -> None:
    out = _run(FakeServer(status=400), multi_turn())
    assert out[0].error is not None and out[0].error.startswith("HTTP 400")
    assert out[1].error is not None and out[1].error.startswith("skipped:")


def test_connection_error_is_an_outcome() -> None:
    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    async def go() -> list[CallOutcome]:
        clock = _clock()
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            caller = Route(HttpGenerate(client, "http://sgl", (), clock), select=None)
            return await run_generate(plan_item(one_gen(JSON_C), "generate"), SMOLLM2_TEMPLATE, caller, clock)

    (o,) = asyncio.run(go())
    assert o.error == "ConnectError: refused"
