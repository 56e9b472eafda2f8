"""The shared streaming client and the OpenAI wire form: SSE parsing, errors, multi-turn, fan-out."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from yarl import URL

import structbench.engines.stream as http_mod
from http_fake import Handler, serve
from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, ExecContext, Plan
from structbench.engines.launch import free_port
from structbench.engines.openai_wire import ConstraintPlan, OpenAIWire, completion_prompt
from structbench.engines.stream import ClientConfig, HttpClient, OpenAIReader, encode_body
from structbench.errors import UserError
from structbench.ir import Branch, Gen, Message, Turn, WorkItem
from structbench.program import run_item


def sse(*chunks: object, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def chat_chunks(pieces: list[str], prompt: int = 10, cached: int = 0) -> list[object]:
    out: list[object] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    out += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": len(pieces),
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    out.append({"choices": [], "usage": usage})
    return out


async def paced(*chunks: object, done: bool = True, gap_s: float = 0.005) -> AsyncIterator[bytes]:
    """One SSE event per network write, with a pause, like a server streaming tokens."""
    for c in chunks:
        yield sse(c, done=False)
        await asyncio.sleep(gap_s)
    if done:
        yield b"data: [DONE]\n\n"


def ok_stream(pieces: list[str], **kw: int) -> httpx.Response:
    return httpx.Response(
        200, content=paced(*chat_chunks(pieces, **kw)), headers={"content-type": "text/event-stream"}
    )


def counting_clock() -> Callable[[], float]:
    it = itertools.count()
    return lambda: float(next(it))


def ctx(clock: Callable[[], float] | None = None) -> ExecContext:
    return ExecContext("cell", clock or counting_clock(), t_scheduled=-1.0)


def item(*users: str, branches: int = 1, prefix: tuple[Message, ...] = ()) -> WorkItem:
    turns = tuple(Turn(u, Gen(f"g{i}", max_tokens=8)) for i, u in enumerate(users))
    return WorkItem("t/0", "t", "chat", prefix, tuple(Branch(turns) for _ in range(branches)))


def none_plan(gen: Gen) -> ConstraintPlan:
    return ConstraintPlan("none")


class WireEngine:
    """The smallest engine over the shared client and the OpenAI wire form (run by the walker)."""

    name = "e"
    capabilities = Capabilities(frozenset({"none"}))
    max_concurrency: int | None = None

    def __init__(self, client: HttpClient, api: str = "chat") -> None:
        self.client = client
        self.wire = OpenAIWire(api, none_plan)  # type: ignore[arg-type]

    def plan(self, gen: Gen) -> Plan:
        return self.wire.plan(gen)

    def render(self, call: Call) -> str:
        return self.wire.render("m", call)

    async def start(self) -> EngineInfo:
        return EngineInfo(self.name, "test", "m")

    async def close(self) -> None:
        return None

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        return await self.wire.generate(self.client, "m", call, clock)


async def _run(
    handler: Handler,
    wi: WorkItem,
    api: str = "chat",
    clock: Callable[[], float] | None = None,
    timeout_s: float = 5.0,
) -> list[Any]:
    async with serve(handler) as url:
        client = HttpClient(ClientConfig("e", url, timeout_s))
        client.open()
        try:
            return await run_item(WireEngine(client, api), wi, ctx(clock))
        finally:
            await client.close()


def run(handler: Handler, wi: WorkItem, **kw: Any) -> list[Any]:
    return asyncio.run(_run(handler, wi, **kw))


def test_stream_timestamps_text_and_usage() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.headers["content-type"] == "application/json"  # FastAPI servers need it
        bodies.append(json.loads(req.content))
        return ok_stream(["a", "b", "c"], prompt=12, cached=8)

    [rec] = run(handler, item("hi"))
    assert rec.ok and rec.text == "abc" and rec.finish_reason == "stop"
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens) == (12, 3, 8)
    assert rec.t_scheduled == -1.0
    assert rec.t_sent < rec.t_first_token < rec.token_times[0] < rec.token_times[1] < rec.t_done
    assert len(rec.token_times) == 2  # first content chunk is TTFT, the role-only chunk is not
    body = bodies[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 8 and body["temperature"] == 0.0 and isinstance(body["seed"], int)
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert rec.prompt == (Message("user", "hi"),)


def test_reasoning_counts_for_timing_not_text() -> None:
    chunks = [
        {"choices": [{"delta": {"reasoning_content": "hmm"}}]},
        {"choices": [{"delta": {"reasoning": "so"}}]},
        {"choices": [{"delta": {"content": "X"}, "finish_reason": "stop"}]},
    ]
    [rec] = run(lambda r: httpx.Response(200, content=sse(*chunks)), item("q"))
    assert rec.text == "X" and len(rec.token_times) == 2 and rec.t_first_token is not None


def test_http_error_status() -> None:
    [rec] = run(lambda r: httpx.Response(500, text='{"error": "engine   dead"}'), item("q"))
    assert rec.error == 'http 500: {"error": "engine dead"}'
    assert rec.t_sent is not None and rec.t_done is not None and rec.t_first_token is None


def test_error_object_inside_stream() -> None:
    chunks = [
        {"choices": [{"delta": {"content": "a"}}]},
        {"object": "error", "error": {"message": "grammar failed"}},
    ]
    [rec] = run(lambda r: httpx.Response(200, content=sse(*chunks, done=False)), item("q"))
    assert rec.error == "stream error: grammar failed" and rec.text == "a"


def test_broken_off_stream() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield sse({"choices": [{"delta": {"content": "par"}}]}, done=False)
        await asyncio.sleep(0.01)
        raise RuntimeError("server died")  # the fake server cuts the connection mid-body

    [rec] = run(lambda r: httpx.Response(200, content=body()), item("q"))
    assert rec.error is not None and rec.error.startswith("ClientPayloadError") and rec.text == "par"

    cut = sse({"choices": [{"delta": {"content": "x"}}]}, done=False)
    [rec] = run(lambda r: httpx.Response(200, content=cut), item("q"))
    assert rec.error is not None and rec.error.startswith("stream ended early")


def test_timeout_and_bad_json() -> None:
    async def slow_headers(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.5)
        return ok_stream(["late"])

    [rec] = run(slow_headers, item("q"), timeout_s=0.1)
    assert rec.error is not None and rec.error.startswith("timeout: SocketTimeoutError after 0.1 s")

    async def stall() -> AsyncIterator[bytes]:
        yield sse({"choices": [{"delta": {"content": "a"}}]}, done=False)
        await asyncio.sleep(0.5)  # a stream that stalls mid-way
        yield sse(done=True)

    [rec] = run(lambda r: httpx.Response(200, content=stall()), item("q"), timeout_s=0.1)
    assert rec.error is not None and rec.error.startswith("timeout:") and rec.text == "a"
    [rec] = run(lambda r: httpx.Response(200, content=b"data: {not json\n\n"), item("q"))
    assert rec.error is not None and rec.error.startswith("bad stream chunk")


def test_connection_refused_is_a_record() -> None:
    async def go() -> list[Any]:
        client = HttpClient(ClientConfig("e", f"http://127.0.0.1:{free_port()}", 5.0))
        client.open()
        try:
            return await run_item(WireEngine(client), item("q", "r"), ctx())
        finally:
            await client.close()

    first, second = asyncio.run(go())
    assert first.error is not None and first.error.startswith("ClientConnectorError")
    assert second.status == "skipped" and second.t_sent is None
    assert second.error is not None and second.error.startswith("skipped: turn 0 of branch 0")


def test_multi_turn_carries_real_answers() -> None:
    bodies: list[dict[str, Any]] = []
    answers = iter([["Par", "is"], ["Ber", "lin"]])

    def handler(req: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(req.content))
        return ok_stream(next(answers))

    sys_msg = (Message("system", "be brief"),)
    r1, r2 = run(handler, item("capital of France?", "and Germany?", prefix=sys_msg))
    assert (r1.turn, r2.turn) == (0, 1) and r1.text == "Paris" and r2.text == "Berlin"
    assert bodies[1]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "and Germany?"},
    ]
    assert r2.prompt[-2] == Message("assistant", "Paris")
    assert bodies[0]["seed"] != bodies[1]["seed"]


def test_fan_out_runs_branches_concurrently() -> None:
    n = 3
    arrived: list[dict[str, Any]] = []
    all_in = asyncio.Event()

    async def handler(req: httpx.Request) -> httpx.Response:
        arrived.append(json.loads(req.content))
        if len(arrived) == n:
            all_in.set()
        # Sequential branches would wait here forever (and hit the timeout below).
        await asyncio.wait_for(all_in.wait(), timeout=5)
        return ok_stream([f"b{len(arrived)}"])

    prefix = (Message("system", "shared " * 50),)
    recs = run(handler, item("go", branches=n, prefix=prefix))
    assert [r.branch for r in recs] == [0, 1, 2] and all(r.ok for r in recs)
    assert all(b["messages"][0] == {"role": "system", "content": "shared " * 50} for b in arrived)
    assert len({b["seed"] for b in arrived}) == n


def test_completions_api() -> None:
    paths: list[str] = []
    bodies: list[dict[str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        paths.append(req.url.path)
        bodies.append(json.loads(req.content))
        chunks = [{"choices": [{"text": "4"}]}, {"choices": [{"text": "2", "finish_reason": "length"}]}]
        return httpx.Response(200, content=sse(*chunks))

    [rec] = run(handler, item("6*7?", prefix=(Message("system", "math"),)), api="completions")
    assert paths == ["/v1/completions"] and rec.text == "42" and rec.finish_reason == "length"
    assert "messages" not in bodies[0]
    assert bodies[0]["prompt"] == completion_prompt([Message("system", "math"), Message("user", "6*7?")])
    assert bodies[0]["prompt"].endswith("assistant:")


def test_api_key_from_env_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("authorization"))
        return ok_stream(["x"])

    cfg = ClientConfig("e", "http://127.0.0.1:1", 5.0, api_key_env="SB_TEST_KEY")
    monkeypatch.delenv("SB_TEST_KEY", raising=False)
    with pytest.raises(UserError, match="SB_TEST_KEY is not set"):
        HttpClient(cfg).open()

    monkeypatch.setenv("SB_TEST_KEY", "sk-secret")

    async def go() -> list[Any]:
        async with serve(handler) as url:
            client = HttpClient(ClientConfig("e", url, 5.0, api_key_env="SB_TEST_KEY"))
            client.open()
            try:
                return await run_item(WireEngine(client), item("q"), ctx())
            finally:
                await client.close()

    [rec] = asyncio.run(go())
    assert seen == ["Bearer sk-secret"]
    assert "sk-secret" not in repr(cfg) and "sk-secret" not in repr(rec)


def test_connections_are_reused_after_done() -> None:
    """Reading past [DONE] to the end of the body keeps the connection in the pool."""
    connections: list[int] = []
    body = sse(*chat_chunks(["hi"]))
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            length = next(
                int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            writer.write(chunked)
            await writer.drain()
        writer.close()

    async def go() -> list[Any]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HttpClient(ClientConfig("e", f"http://127.0.0.1:{port}", 5.0))
        client.open()
        try:
            eng = WireEngine(client)
            return [r for _ in range(4) for r in await run_item(eng, item("q"), ctx())]
        finally:
            await client.close()
            server.close()

    recs = asyncio.run(go())
    assert all(r.ok and r.text == "hi" for r in recs)
    assert len(connections) == 1


def test_lines_split_across_network_chunks() -> None:
    """Events cut at arbitrary bytes (even inside a UTF-8 character), CRLF, comments, no final newline."""
    raw = (
        ": keep-alive\r\n\r\nevent: message\r\n"
        + sse(*chat_chunks(["héllo", " wörld"], prompt=3), done=False).decode().replace("\n", "\r\n")
        + "data: [DONE]"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]
            await asyncio.sleep(0.001)

    [rec] = run(lambda r: httpx.Response(200, content=body()), item("q"))
    assert rec.ok and rec.text == "héllo wörld" and rec.prompt_tokens == 3 and rec.finish_reason == "stop"
    assert len(rec.token_times) == 1


def test_events_of_one_network_read_share_its_arrival_time() -> None:
    body = sse(*chat_chunks(["a", "b", "c"]))  # one write: the client reads it at once
    [rec] = run(lambda r: httpx.Response(200, content=body), item("q"))
    assert rec.ok and rec.text == "abc"
    assert rec.token_times == (rec.t_first_token, rec.t_first_token)
    assert rec.t_sent < rec.t_first_token < rec.t_done


def test_base_url_with_path_prefix_and_fetch() -> None:
    paths: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        paths.append(req.url.path)
        return ok_stream(["x"]) if req.method == "POST" else httpx.Response(418, text="teapot")

    async def go() -> tuple[Any, Any, Any]:
        async with serve(handler) as url:
            client = HttpClient(ClientConfig("e", url + "/proxy/", 5.0))
            client.open()
            try:
                reply = await client.fetch("GET", "/metrics")
                res = await client.stream(
                    "/v1/chat/completions", {"model": "m"}, counting_clock(), OpenAIReader()
                )
            finally:
                await client.close()
        refused = HttpClient(ClientConfig("e", f"http://127.0.0.1:{free_port()}", 5.0))
        refused.open()
        try:
            return reply, res, await refused.fetch("GET", "/metrics")
        finally:
            await refused.close()

    reply, res, gone = asyncio.run(go())
    assert (reply.status, reply.text) == (418, "teapot") and res.text == "x" and gone is None
    assert paths == ["/proxy/metrics", "/proxy/v1/chat/completions"]


def test_encode_body_and_json_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    body: dict[str, object] = {"messages": [{"role": "user", "content": "é"}], "max_tokens": 8}
    assert json.loads(encode_body(body)) == body
    huge: dict[str, object] = {"schema": {"maximum": 2**70}}  # beyond orjson's 64-bit integers
    assert json.loads(encode_body(huge)) == huge
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if orjson were not installed
    loads, dumps = http_mod._json_codec()
    assert loads is json.loads and loads(dumps(body)) == body


def test_client_used_before_open() -> None:
    client = HttpClient(ClientConfig("e", "http://127.0.0.1:1", 5.0))
    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(client.stream("/v1/completions", {}, counting_clock(), OpenAIReader()))


def test_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert http_mod.env_proxy(URL("http://gpu-box:8000")) is None
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    monkeypatch.setenv("no_proxy", "localhost,10.0.0.5")
    assert http_mod.env_proxy(URL("http://gpu-box:8000")) == "http://proxy:3128"
    assert http_mod.env_proxy(URL("https://gpu-box")) is None
    assert http_mod.env_proxy(URL("http://10.0.0.5:8000")) is None


def test_a_control_path_keeps_its_query_string() -> None:
    # vLLM's /server_info takes ?config_format=json; quoted into the path it would be a 404.
    client = HttpClient(ClientConfig("e", "http://127.0.0.1:1/base/", 5.0))
    url = client._url("/server_info?config_format=json")
    assert (url.path, url.query_string) == ("/base/server_info", "config_format=json")
    assert str(client._url("/metrics")) == "http://127.0.0.1:1/base/metrics"
