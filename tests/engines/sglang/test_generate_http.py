"""Generate mode over SGLang's native streaming /generate API, through the shared aiohttp client."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sgl_fakes import GRAMMAR_C, JSON_C, REGEX_C, SCHEMA, one_gen

from http_fake import serve
from structbench.engines.launch import free_port
from structbench.engines.sglang.generate import generate_body, http_generate, sampling_params
from structbench.engines.sglang.outcome import GenerateReader
from structbench.engines.sglang.plan import plan_item
from structbench.engines.stream import ClientConfig, HttpClient

STOPS = ("<|im_end|>",)


def _meta(n: int, finish: Any = None) -> dict[str, Any]:
    return {"prompt_tokens": 40, "completion_tokens": n, "cached_tokens": 32, "finish_reason": finish}


async def _paced(events: list[dict[str, Any]], done: bool = True) -> AsyncIterator[bytes]:
    for e in events:
        yield f"data: {json.dumps(e)}\n\n".encode()
        await asyncio.sleep(0.005)
    if done:
        yield b"data: [DONE]\n\n"


def _feed(events: list[tuple[float, dict[str, Any]]], done: bool = True) -> GenerateReader:
    r = GenerateReader()
    for t, e in events:
        r.feed(e, t)
    r.done = done
    return r


def test_sampling_params_per_constraint() -> None:
    (j,) = plan_item(one_gen(JSON_C, max_tokens=33), "generate").calls()
    assert sampling_params(j, STOPS) == {
        "max_new_tokens": 33,
        "temperature": 0.0,
        "stop": list(STOPS),
        "json_schema": SCHEMA,
    }
    (r,) = plan_item(one_gen(REGEX_C), "generate").calls()
    assert sampling_params(r, ())["regex"] == REGEX_C.regex
    (g,) = plan_item(one_gen(GRAMMAR_C), "generate").calls()
    assert sampling_params(g, ())["ebnf"] == 'root ::= "yes" | "no"'
    # Benchmark extras (ignore_eos) go into sampling_params, where /generate reads them.
    assert sampling_params(g, (), {"ignore_eos": True})["ignore_eos"] is True


def test_reader_times_and_meta() -> None:
    r = _feed(
        [
            (1.0, {"text": "a", "meta_info": {"completion_tokens": 1}}),
            (2.0, {"text": "ab", "meta_info": {"completion_tokens": 2}}),
            (3.0, {"text": "abc", "meta_info": {**_meta(3, {"type": "length", "length": 3})}}),
        ]
    )
    m = r.finish(0.5, 4.0)
    assert m.error is None and m.text == "abc"
    assert (m.t_sent, m.t_first_token, m.token_times, m.t_done) == (0.5, 1.0, (2.0, 3.0), 4.0)
    assert (m.prompt_tokens, m.completion_tokens, m.cached_tokens, m.finish_reason) == (40, 3, 32, "length")


def test_reader_splits_a_k_token_chunk_into_k_gaps_like_sglang_bench() -> None:
    r = _feed(
        [
            (1.0, {"text": "", "meta_info": {"completion_tokens": 1}}),  # partial UTF-8: no text yet
            (2.0, {"text": "\u00e9", "meta_info": {"completion_tokens": 2}}),
            (5.0, {"text": "\u00e9abc", "meta_info": {"completion_tokens": 5}}),  # 3 tokens at once
            (6.0, {"text": "\u00e9abc", "meta_info": {"completion_tokens": 5, "finish_reason": "stop"}}),
        ]
    )
    m = r.finish(0.0, 7.0)
    assert (m.text, m.t_first_token, m.finish_reason) == ("\u00e9abc", 2.0, "stop")
    # 3 new tokens over 3 s: three 1 s gaps; the closing event brings none.
    assert m.token_times == (3.0, 4.0, 5.0)


def test_reader_errors() -> None:
    r = _feed([(1.0, {"error": {"message": "grammar failed"}})])
    assert r.finish(0.0, 2.0).error == "stream error: grammar failed"
    cut = _feed([(1.0, {"text": "a", "meta_info": {"completion_tokens": 1}})], done=False)
    assert cut.finish(0.0, 2.0).error == "stream ended early (no finish_reason, no [DONE])"


def _run(handler: Any, body: dict[str, Any]) -> Any:
    async def go() -> Any:
        async with serve(handler) as url:
            client = HttpClient(ClientConfig("sgl", url, 5.0))
            client.open()
            try:
                ticks = itertools.count(100)
                return await http_generate(client, body, lambda: float(next(ticks)))
            finally:
                await client.close()

    return asyncio.run(go())


def test_http_generate_streams_cumulative_text() -> None:
    bodies: list[dict[str, Any]] = []
    text = json.dumps({"name": "Ada", "age": 36})

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/generate"
        bodies.append(json.loads(req.content))
        a, b = len(text) // 3, 2 * len(text) // 3
        events = [
            {"text": text[:a], "meta_info": _meta(1)},
            {"text": text[:b], "meta_info": _meta(2)},
            {"text": text, "meta_info": _meta(3, {"type": "stop", "matched": 2})},
        ]
        return httpx.Response(200, content=_paced(events), headers={"content-type": "text/event-stream"})

    (call,) = plan_item(one_gen(JSON_C), "generate").calls()
    m = _run(handler, generate_body("<prompt>", call, STOPS))
    assert bodies[0]["text"] == "<prompt>" and bodies[0]["stream"] is True
    assert bodies[0]["sampling_params"]["json_schema"] == SCHEMA
    assert m.error is None and m.text == text and m.finish_reason == "stop"
    assert m.t_sent < m.t_first_token < m.t_done and len(m.token_times) == 2
    assert (m.cached_tokens, m.completion_tokens) == (32, 3)


def test_http_error_status_is_a_measure() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "bad schema"}})

    (call,) = plan_item(one_gen(JSON_C), "generate").calls()
    m = _run(handler, generate_body("p", call, ()))
    assert m.error is not None and m.error.startswith("http 400") and "bad schema" in m.error


def test_connection_refused_is_a_measure() -> None:
    async def go() -> Any:
        client = HttpClient(ClientConfig("sgl", f"http://127.0.0.1:{free_port()}", 5.0))
        client.open()
        try:
            (call,) = plan_item(one_gen(JSON_C), "generate").calls()
            return await http_generate(client, generate_body("p", call, ()), lambda: 0.0)
        finally:
            await client.close()

    m = asyncio.run(go())
    assert m.error is not None and m.error.startswith("ClientConnectorError")
