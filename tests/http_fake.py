"""A real local HTTP server for client tests, scripted with httpx Request/Response objects.

The OpenAI client speaks aiohttp, which has no mock transport, so tests run it against a
real aiohttp server on 127.0.0.1 in the test's own event loop. Handlers keep the
convenient httpx vocabulary: they take an ``httpx.Request`` and return (or await) an
``httpx.Response``. A response body given as an async iterator is sent chunk by chunk
(chunked encoding, like a streaming server); if the iterator raises, the connection is
cut mid-body, as when a server dies.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from aiohttp import web
from aiohttp.test_utils import RawTestServer

Handler = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def _adapt(handler: Handler) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        req = httpx.Request(
            request.method,
            f"http://fake{request.path_qs}",
            headers=list(request.headers.items()),
            content=await request.read(),
        )
        out = handler(req)
        if inspect.isawaitable(out):
            out = await out
        headers = {k: v for k, v in out.headers.items() if k.lower() not in _HOP_HEADERS}
        resp = web.StreamResponse(status=out.status_code, headers=headers)
        await resp.prepare(request)
        stream = out.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        try:
            async for chunk in stream:
                await resp.write(chunk)
        except Exception:
            if request.transport is not None:
                request.transport.close()  # no terminating chunk: the body breaks off
            return resp
        await resp.write_eof()
        return resp

    return handle


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1; yields the base URL (no trailing slash)."""
    server = RawTestServer(_adapt(handler), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
