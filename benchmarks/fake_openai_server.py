"""A fake server that streams canned tokens, for measuring client overhead.

It answers ``/health``, ``/version``, ``/v1/models`` and ``/metrics``, and streams chat
and text completions the way vLLM does: one chunk per token (vLLM-sized JSON, each
written on its own after ``--itl-ms``; a chat's first one preceded by the role chunk), a
finish chunk, a usage chunk when ``stream_options.include_usage`` is set, then
``data: [DONE]``. The number of tokens is the request's ``max_tokens`` (or
``max_completion_tokens``). No model runs, so the clients' CPU time per request is what
is left to compare.

``benchmarks/gpu/fake_sglang_server.py`` adds SGLang's native routes to these, for runs that
compare both engines' client paths on one server.

Usage::

    python benchmarks/fake_openai_server.py --port 8123 --itl-ms 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web

TOKENS = ("apple", " river", " stone", " cloud", " green", " quick", " table", " window")


def _chunk(rid: str, model: str, chat: bool, choice: dict[str, object]) -> bytes:
    obj = {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": None, **choice}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class FakeServer:
    """Request handlers; ``itl_s`` is the pause before each token."""

    def __init__(self, model: str, itl_s: float) -> None:
        self.model, self.itl_s = model, itl_s
        self.n = 0

    async def models(self, _: web.Request) -> web.Response:
        """GET /v1/models."""
        return web.json_response({"data": [{"id": self.model, "root": self.model, "max_model_len": 4096}]})

    async def version(self, _: web.Request) -> web.Response:
        """GET /version."""
        return web.json_response({"version": "fake"})

    async def plain(self, _: web.Request) -> web.Response:
        """GET /health and /metrics."""
        return web.Response(text="")

    async def complete(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chat/completions and /v1/completions: stream ``max_tokens`` tokens."""
        body = await request.json()
        chat = request.path.endswith("/chat/completions")
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        self.n += 1
        rid, model = f"cmpl-{self.n}", str(body.get("model", self.model))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(n):
            await asyncio.sleep(self.itl_s)
            if chat and i == 0:  # like vLLM: the role chunk goes out with the first token
                await resp.write(_chunk(rid, model, chat, {"delta": {"role": "assistant", "content": ""}}))
            piece = TOKENS[i % len(TOKENS)]
            await resp.write(
                _chunk(rid, model, chat, {"delta": {"content": piece}} if chat else {"text": piece})
            )
        await resp.write(_chunk(rid, model, chat, {"delta": {}, "finish_reason": "length"}))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 100, "completion_tokens": n, "total_tokens": 100 + n}
            obj = {
                "id": rid,
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def make_app(model: str, itl_s: float) -> web.Application:
    """The aiohttp application."""
    fake = FakeServer(model, itl_s)
    app = web.Application()
    app.router.add_get("/v1/models", fake.models)
    app.router.add_get("/version", fake.version)
    app.router.add_get("/health", fake.plain)
    app.router.add_get("/metrics", fake.plain)
    app.router.add_post("/v1/chat/completions", fake.complete)
    app.router.add_post("/v1/completions", fake.complete)
    return app


def main() -> None:
    """Serve until killed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--model", default="fake-model")
    p.add_argument("--itl-ms", type=float, default=10.0, help="pause before each token")
    args = p.parse_args()
    web.run_app(make_app(args.model, args.itl_ms / 1000), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
