"""The lean HTTP/1.1 streaming client: response framing and SSE, fed byte by byte.

The parsing is driven through the protocol's callbacks with a recording transport, so every
split point of a response can be tried without a server; the tests at the end go through a
real socket for what only a socket shows (keep-alive reuse, a stall, a refused connect).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from yarl import URL

from structbench.engines.h1 import H1Pool, _Conn
from structbench.engines.launch import free_port
from structbench.engines.stream import OpenAIReader, _loads


def sse(*events: object, done: bool = True) -> bytes:
    out = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return (out + ("data: [DONE]\n\n" if done else "")).encode()


ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
FINISH = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "prompt_tokens_details": None}}


def token(piece: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}


def chunked(body: bytes, size: int = 11) -> bytes:
    """``body`` in the chunked transfer coding, ``size`` bytes a chunk, with a trailer."""
    parts = [f"{len(body[i : i + size]):x};ext=1\r\n".encode() + body[i : i + size] + b"\r\n"
             for i in range(0, len(body), size)]  # fmt: skip
    return b"".join(parts) + b"0\r\nx-trailer: 1\r\n\r\n"


def one_chunk(data: bytes) -> bytes:
    """One chunk of the chunked coding (no end of body)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
BODY = sse(ROLE, token("hé"), token("llo"), FINISH, USAGE)


class Transport(asyncio.Transport):
    """Records writes; ``close`` calls back ``connection_lost`` as a real transport does."""

    def __init__(self, proto: asyncio.Protocol) -> None:
        super().__init__()
        self.proto, self.written, self.is_closed = proto, b"", False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            self.proto.connection_lost(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def counting_clock() -> Callable[[], float]:
    it = itertools.count(1)
    return lambda: float(next(it))


async def feed(pieces: list[bytes], close: bool = False) -> tuple[OpenAIReader, Any, _Conn, H1Pool]:
    """One response delivered in ``pieces``; returns the reader, the outcome, the connection, the pool."""
    pool = H1Pool(URL("http://127.0.0.1:1"), (), 5.0, 4.0, _loads)
    conn = _Conn(pool)
    transport = Transport(conn)
    conn.connection_made(transport)
    reader = OpenAIReader()
    fut = conn.begin(reader, counting_clock(), b"POST / HTTP/1.1\r\n\r\n")
    for p in pieces:
        conn.data_received(p)
    if close:
        transport.close()
    outcome: Any = (
        fut.exception() if fut.done() and fut.exception() else (fut.result() if fut.done() else None)
    )
    return reader, outcome, conn, pool


def split_at(raw: bytes, *cuts: int) -> list[bytes]:
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def test_chunked_stream_split_at_every_byte() -> None:
    raw = HEAD_CHUNKED + chunked(BODY)
    for cut in range(1, len(raw)):
        reader, outcome, conn, pool = asyncio.run(feed(split_at(raw, cut)))
        m = reader.finish(0.0, 99.0)
        assert outcome == (200, b""), cut
        assert m.error is None and m.text == "héllo" and m.finish_reason == "stop", cut
        assert (m.prompt_tokens, m.completion_tokens, m.cached_tokens) == (7, 2, None)
        assert reader.done and len(m.token_times) == 1  # the empty role chunk is not a token
        assert pool._idle == [conn] and not conn.closed  # reusable once the zero chunk is read


def test_each_read_stamps_its_events_and_one_read_shares_a_stamp() -> None:
    events = [sse(e, done=False) for e in (ROLE, token("a"), token("b"), token("c"), FINISH)]
    pieces = [HEAD_CHUNKED, *(one_chunk(e) for e in events), b"0\r\n\r\n"]
    reader, _, _, _ = asyncio.run(feed(pieces))
    # The clock counts 1, 2, ...: the head is read 1, the role 2, then a 3, b 4, c 5.
    assert reader.times == [3.0, 4.0, 5.0]
    together = HEAD_CHUNKED + chunked(sse(token("a"), token("b"), FINISH), size=1000)
    reader, _, _, _ = asyncio.run(feed([together]))
    assert reader.times == [1.0, 1.0] and reader.parts == ["a", "b"]


def test_content_length_and_read_until_close_bodies() -> None:
    body = (
        sse(token("x"), FINISH, done=False).replace(b"\n", b"\r\n") + b": comment\n\nevent: e\ndata: [DONE]"
    )
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    reader, outcome, conn, pool = asyncio.run(feed(split_at(head + body, len(head) + 3, len(head) + 20)))
    assert outcome == (200, b"")
    assert reader.parts == ["x"] and reader.done and pool._idle == [conn]
    # HTTP/1.0 without a length: the body ends when the server closes; the last line has no newline.
    reader, outcome, conn, pool = asyncio.run(feed([b"HTTP/1.0 200 OK\r\n\r\n", body], close=True))
    assert outcome == (200, b"") and reader.parts == ["x"] and reader.done and pool._idle == []


def test_interim_response_and_error_status() -> None:
    err = b'{"error": "engine   dead"}'
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal\r\nContent-Length: 26\r\n\r\n" + err
    for cut in range(1, len(raw)):
        reader, outcome, conn, pool = asyncio.run(feed(split_at(raw, cut)))
        assert outcome == (500, err) and reader.parts == [] and pool._idle == [conn], cut
    raw = b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked(err)
    reader, outcome, conn, pool = asyncio.run(feed([raw]))
    assert outcome == (429, err) and conn.closed and pool._idle == []  # the server said close


def test_error_event_stops_reading_and_drops_the_connection() -> None:
    events = sse(token("a"), {"object": "error", "error": {"message": "grammar failed"}}, token("b"))
    reader, outcome, conn, pool = asyncio.run(feed([HEAD_CHUNKED + chunked(events)]))
    assert outcome == (200, b"") and reader.error == "stream error: grammar failed"
    assert reader.parts == ["a"] and conn.closed and pool._idle == []


def test_broken_bodies_raise_aiohttp_errors() -> None:
    part = HEAD_CHUNKED + one_chunk(sse(token("par"), done=False))  # no zero chunk
    reader, outcome, conn, _ = asyncio.run(feed([part], close=True))
    assert isinstance(outcome, aiohttp.ClientPayloadError) and reader.parts == ["par"]
    _, outcome, _, _ = asyncio.run(feed([b"HTTP/1.1 200"], close=True))  # closed inside the head
    assert isinstance(outcome, aiohttp.ServerDisconnectedError)
    _, outcome, conn, _ = asyncio.run(feed([HEAD_CHUNKED + chunked(b"data: {not json\n\n")]))
    assert isinstance(outcome, ValueError) and conn.closed
    _, outcome, _, _ = asyncio.run(feed([HEAD_CHUNKED + b"zz\r\n"]))  # not a chunk size
    assert isinstance(outcome, ValueError)
    gz = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\n"
    _, outcome, _, _ = asyncio.run(feed([gz]))
    assert isinstance(outcome, ValueError) and "content-encoding" in str(outcome)


def test_bytes_after_the_body_or_while_idle_close_the_connection() -> None:
    raw = HEAD_CHUNKED + chunked(BODY)
    _, outcome, conn, pool = asyncio.run(feed([raw + b"HTTP/1.1 200 OK\r\n"]))
    assert outcome == (200, b"") and conn.closed and pool._idle == []
    _, _, conn, pool = asyncio.run(feed([raw]))
    conn.data_received(b"surprise")
    assert conn.closed


# ---- through a socket ---------------------------------------------------------------------


async def _serve(script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]) -> asyncio.Server:
    return await asyncio.start_server(script, "127.0.0.1", 0)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def test_keep_alive_reuse_headers_and_stall_timeout() -> None:
    conns: list[int] = []
    heads: list[bytes] = []

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(1)
        while not r.at_eof():
            try:
                head = await r.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            heads.append(head)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = json.loads(await r.readexactly(length))
            w.write(HEAD_CHUNKED + one_chunk(sse(token("a"), done=False)))
            await w.drain()
            if body.get("stall"):
                await asyncio.sleep(0.5)
                break
            w.write(chunked(sse(FINISH), size=1000))
            await w.drain()
        w.close()

    async def go() -> list[Any]:
        server = await _serve(script)
        pool = H1Pool(
            URL(f"http://127.0.0.1:{_port(server)}"), ("Authorization: Bearer k",), 0.2, 4.0, _loads
        )
        out: list[Any] = []
        try:
            for body in (b"{}", b"{}", b'{"stall": true}'):
                reader = OpenAIReader()
                try:
                    out.append((await pool.post("/v1/x?q=1", body, reader, counting_clock()), reader))
                except aiohttp.ClientError as e:
                    out.append((e, reader))
        finally:
            pool.close()
            server.close()
        return out

    (ok1, r1), (ok2, r2), (stalled, r3) = asyncio.run(go())
    assert ok1 == ok2 == (200, b"") and r1.parts == r2.parts == ["a"] and r2.finish_reason == "stop"
    assert len(conns) == 1  # the second and third requests reused the first connection
    assert heads[0].startswith(b"POST /v1/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Authorization: Bearer k\r\n" in heads[0] and b"Content-Length: 2\r\n" in heads[0]
    assert isinstance(stalled, aiohttp.SocketTimeoutError) and r3.parts == ["a"]


def test_refused_connect_is_aiohttps_connector_error() -> None:
    async def go() -> None:
        pool = H1Pool(URL(f"http://127.0.0.1:{free_port()}"), (), 1.0, 4.0, _loads)
        await pool.post("/", b"{}", OpenAIReader(), counting_clock())

    with pytest.raises(aiohttp.ClientConnectorError):
        asyncio.run(go())


def test_stale_idle_connection_is_not_reused() -> None:
    async def go() -> bool:
        pool = H1Pool(URL("http://127.0.0.1:1"), (), 1.0, 4.0, _loads)
        conn = _Conn(pool)
        conn.connection_made(Transport(conn))
        pool.release(conn)
        conn.idle_since -= 10  # idle past the keep-alive: the server may be closing it
        with contextlib.suppress(aiohttp.ClientConnectorError):
            await pool.post("/", b"{}", OpenAIReader(), counting_clock())
        return conn.closed and pool._idle == []

    assert asyncio.run(go())


def test_streams_on_uvloop() -> None:
    """Ray runs its workers' event loops on uvloop whenever it is installed (as it is beside vLLM
    and SGLang); uvloop's transport is not an ``asyncio.Transport`` subclass. On the H200, the first
    ``--executor ray`` run failed every call with a bare AssertionError for that reason."""
    uvloop = pytest.importorskip("uvloop")

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        await r.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
        w.write(HEAD_CHUNKED + chunked(BODY))
        await w.drain()
        w.close()

    async def go() -> tuple[Any, OpenAIReader, str]:
        server = await _serve(script)
        pool = H1Pool(URL(f"http://127.0.0.1:{_port(server)}"), (), 5.0, 4.0, _loads)
        reader = OpenAIReader()
        try:
            out = await pool.post("/v1/chat/completions", b"{}", reader, counting_clock())
        finally:
            pool.close()
            server.close()
        return out, reader, type(asyncio.get_running_loop()).__module__

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        out, reader, loop_module = runner.run(go())
    assert loop_module.startswith("uvloop")
    assert out == (200, b"") and reader.parts == ["hé", "llo"] and reader.finish_reason == "stop"
