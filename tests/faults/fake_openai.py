"""A misbehaving OpenAI-compatible server for fault tests (aiohttp.web on 127.0.0.1).

It serves ``/health``, ``/version``, ``/v1/models`` and streaming ``/v1/chat/completions``,
and can be told how to fail: ``ok`` (a short valid stream), ``500``, ``429``, ``break`` (cut
the connection mid-stream), ``error_event`` (an error object inside a 200 stream) and
``hang`` (accept the request, never answer), and, run as a process, ``exit`` (the server
process dies mid-stream). ``ok_first`` requests are answered normally
before the mode applies; ``delay_s`` spaces the chunks of an ``ok`` stream.

Two ways to run it:

- :class:`FakeServer` runs it in a background thread with its own event loop, so tests can
  call ``run_suite`` (which runs its own ``asyncio.run``) in the main thread;
- ``python fake_openai.py [--port P] [--port-file F] [--pid-file F] [--mode M] [--delay S]``
  runs it as a process, for tests that kill the server or launch it as a ``vllm`` server
  (see ``fault_suites.fake_vllm_python``). It writes its port to the port file once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

BEHAVIOUR: web.AppKey[Behaviour] = web.AppKey("behaviour")
MODEL = "fake-model"
#: What an ``ok`` stream says: valid for a choice task with the label ``positive``.
ANSWER_CHUNKS = ("pos", "iti", "ve")


@dataclass
class Behaviour:
    """How the server answers chat completions (mutable: tests change it between cells)."""

    mode: str = "ok"
    ok_first: int = 0
    delay_s: float = 0.0
    #: Requests received so far, and the Authorization headers seen (for the secret test).
    requests: int = 0
    auth_headers: list[str] = field(default_factory=list)


def _chunk(obj: object) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _delta(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    return _chunk({"id": "c1", "object": "chat.completion.chunk", "model": MODEL, "choices": [choice]})


async def _ok(request: web.Request, b: Behaviour) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for piece in ANSWER_CHUNKS:
        await resp.write(_delta(piece))
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
    await resp.write(_delta("", "stop"))
    usage = {"prompt_tokens": 10, "completion_tokens": len(ANSWER_CHUNKS), "total_tokens": 13}
    await resp.write(_chunk({"id": "c1", "choices": [], "usage": usage}))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _chat(request: web.Request) -> web.StreamResponse:
    b: Behaviour = request.app[BEHAVIOUR]
    await request.read()
    b.requests += 1
    b.auth_headers.append(request.headers.get("Authorization", ""))
    mode = "ok" if b.requests <= b.ok_first else b.mode
    if mode == "ok":
        return await _ok(request, b)
    if mode in ("500", "429"):
        return web.json_response({"error": {"message": f"fake {mode}"}}, status=int(mode))
    if mode == "hang":
        await asyncio.sleep(3600)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(_delta(ANSWER_CHUNKS[0]))
    if mode == "exit":  # the whole server process dies mid-stream (kill -9 alike)
        os._exit(1)
    if mode == "error_event":
        await resp.write(_chunk({"error": {"message": "fake overload in stream", "code": 503}}))
        await resp.write_eof()
        return resp
    # "break": the server dies mid-stream (no terminating chunk).
    if request.transport is not None:
        request.transport.close()
    return resp


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _version(request: web.Request) -> web.Response:
    return web.json_response({"version": "0.0-fake"})


def make_app(b: Behaviour) -> web.Application:
    """The aiohttp application driven by ``b``."""
    app = web.Application()
    app[BEHAVIOUR] = b
    app.router.add_get("/health", _health)
    app.router.add_get("/version", _version)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat)
    return app


async def _start(b: Behaviour, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(make_app(b), handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server  # the bound port is only on the asyncio server
    assert server is not None
    return runner, int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


async def _cancel_others() -> None:
    """Cancel handlers still running (a ``hang`` request) so the loop closes quietly."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in others:
        t.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class FakeServer:
    """The fake server in a daemon thread; a context manager yielding itself."""

    def __init__(self, mode: str = "ok", ok_first: int = 0, delay_s: float = 0.0) -> None:
        self.behaviour = Behaviour(mode, ok_first, delay_s)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(_start(self.behaviour), self._loop)
        self._runner, self.port = fut.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _serve_forever(b: Behaviour, port: int, port_file: Path | None) -> None:
    _, port = await _start(b, port)
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(port_file)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Run as a process until killed (unknown flags, such as vLLM's, are ignored)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--pid-file", type=Path)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--ok-first", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    args, _ = ap.parse_known_args(argv)
    # Like vLLM, which logs its non-default args at startup: secrets end up in the log.
    print(f"fake server argv={argv} HF_TOKEN={os.environ.get('HF_TOKEN')}", flush=True)
    # What the executor's environment gives the server (Ray sets OMP_NUM_THREADS in its tasks).
    print(f"fake server OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '<unset>')}", flush=True)
    if args.pid_file is not None:
        args.pid_file.write_text(str(os.getpid()))
    b = Behaviour(args.mode, args.ok_first, args.delay)
    asyncio.run(_serve_forever(b, args.port, args.port_file))


if __name__ == "__main__":
    main()
