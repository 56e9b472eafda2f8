"""A fake SGLang server, for running the cross-check's SGLang arms on CPU.

It answers what structbench's ``SglangEngine`` and ``crosscheck.py`` ask of a real one:
``/model_info`` and ``/get_model_info``, ``/server_info``, ``/health``, ``/metrics``,
``POST /flush_cache``, and a streamed native ``/generate`` the way SGLang 0.5.17 streams it (each
``data:`` event carries the cumulative text and ``meta_info`` so far, then ``data: [DONE]``). The
chat path is ``fake_openai_server.py``'s. Like the real server, it honours ``ignore_eos`` and ends a
generation early on a ``stop`` string (``STOP_AFTER`` tokens), so a client that sends a stop
string gets short outputs, which the cross-check's ``output_len_exact`` check must catch.

Usage::

    python benchmarks/gpu/fake_sglang_server.py --port 8134 --itl-ms 5 --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_openai_server import TOKENS, FakeServer

#: Tokens generated before a stop string "matches" (the model would have ended its answer).
STOP_AFTER = 8


class FakeSglang:
    """The SGLang-only routes; ``itl_s`` is the pause before each token."""

    def __init__(self, model: str, itl_s: float) -> None:
        self.model, self.itl_s = model, itl_s
        self.prompt_tokens = 0
        self.bodies: list[dict[str, object]] = []

    async def model_info(self, _: web.Request) -> web.Response:
        """GET /model_info and /get_model_info."""
        return web.json_response(
            {"model_path": self.model, "tokenizer_path": self.model, "is_generation": True}
        )

    async def server_info(self, _: web.Request) -> web.Response:
        """GET /server_info: a few of the real keys."""
        info = {"version": "fake", "model_path": self.model, "page_size": 1, "attention_backend": "fake"}
        return web.json_response(info)

    async def metrics(self, _: web.Request) -> web.Response:
        """GET /metrics: the counters the cross-check reads (nothing is ever cached)."""
        return web.Response(
            text=f"sglang:cached_tokens_total 0\nsglang:prompt_tokens_total {self.prompt_tokens}\n"
        )

    async def flush(self, _: web.Request) -> web.Response:
        """POST /flush_cache."""
        return web.Response(text="Cache flushed.\n")

    async def generate(self, request: web.Request) -> web.StreamResponse:
        """POST /generate with ``stream``: cumulative text events, then [DONE]."""
        body = await request.json()
        sp = body.get("sampling_params") or {}
        n = int(sp.get("max_new_tokens") or 16)
        if sp.get("stop"):
            n = min(n, STOP_AFTER)
        elif not sp.get("ignore_eos"):
            n = min(n, 2 * STOP_AFTER)
        prompt_tokens = len(str(body.get("text", "")).split())
        self.prompt_tokens += prompt_tokens
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        text = ""
        for i in range(n):
            await asyncio.sleep(self.itl_s)
            text += TOKENS[i % len(TOKENS)]
            meta = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": i + 1,
                "cached_tokens": 0,
                "finish_reason": {"type": "length", "length": n} if i == n - 1 else None,
            }
            await resp.write(b"data: " + json.dumps({"text": text, "meta_info": meta}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def make_app(model: str, itl_s: float) -> web.Application:
    """The aiohttp application: SGLang's routes plus the OpenAI-compatible ones."""
    sgl, oai = FakeSglang(model, itl_s), FakeServer(model, itl_s)
    app = web.Application()
    for path in ("/model_info", "/get_model_info"):
        app.router.add_get(path, sgl.model_info)
    for path in ("/server_info", "/get_server_info"):
        app.router.add_get(path, sgl.server_info)
    app.router.add_get("/metrics", sgl.metrics)
    app.router.add_post("/flush_cache", sgl.flush)
    app.router.add_post("/generate", sgl.generate)
    app.router.add_get("/health", oai.plain)
    app.router.add_get("/v1/models", oai.models)
    app.router.add_post("/v1/chat/completions", oai.complete)
    return app


def main() -> None:
    """Serve until killed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8134)
    p.add_argument("--model", default="fake-model")
    p.add_argument("--itl-ms", type=float, default=5.0, help="pause before each token")
    args = p.parse_args()
    web.run_app(make_app(args.model, args.itl_ms / 1000), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
