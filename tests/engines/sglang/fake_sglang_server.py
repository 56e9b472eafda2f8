"""A scripted stand-in for ``python -m sglang.launch_server`` (stdlib only).

It speaks the parts of SGLang's HTTP API that structbench and SGLang's own
``RuntimeEndpoint`` use: /health, /model_info (+ /get_model_info), /server_info
(+ /get_server_info), /flush_cache, /metrics and /generate (plain, streaming, batched,
``max_new_tokens: 0`` prefix caching and ``return_logprob`` scoring for ``select``).
Answers are canned but constraint-valid; ``cached_tokens`` counts characters shared with
earlier prompts (/4), like a radix cache would, unless ``--disable-radix-cache``.
Every request body is appended as a JSON line to ``$FAKE_SGL_LOG``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFERRED = "green"  # what select should pick
ARGS = argparse.Namespace()
FAKE_MODEL_LEN = 2048
SEEN: list[str] = []
LOCK = threading.Lock()
CACHED_TOTAL = [0]


def log(entry: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_SGL_LOG")
    if path:
        with LOCK, open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def answer(sp: dict[str, Any]) -> str:
    if sp.get("json_schema"):
        return json.dumps({"name": "Ada", "age": 36})
    if sp.get("regex"):
        m = re.fullmatch(r"\((.*?)\|.*\)", sp["regex"])
        return re.sub(r"\\(.)", r"\1", m.group(1)) if m else "555-0100"
    if sp.get("ebnf"):
        return "yes"
    return "free text"


def cached(text: str) -> int:
    with LOCK:
        best = 0
        if not ARGS.disable_radix_cache:
            for s in SEEN:
                n = next(
                    (i for i, (a, b) in enumerate(zip(s, text, strict=False)) if a != b),
                    min(len(s), len(text)),
                )
                best = max(best, n)
        SEEN.append(text)
        CACHED_TOTAL[0] += best // 4
    return best // 4


def one(text: str, body: dict[str, Any]) -> dict[str, Any]:
    sp = body.get("sampling_params") or {}
    meta: dict[str, Any] = {
        "prompt_tokens": len(text) // 4,
        "cached_tokens": cached(text),
        "e2e_latency": 0.01,
    }
    if sp.get("max_new_tokens") == 0:
        meta.update(completion_tokens=0, finish_reason={"type": "length", "length": 0})
        if body.get("return_logprob"):
            start = int(body.get("logprob_start_len") or 0)
            choice = next((c for c in ("red", "green", "b.lue") if text.endswith(c)), "")
            cut = len(text) - len(choice)
            meta["input_token_logprobs"] = [
                [(-0.1 if choice == PREFERRED else -3.0) if i >= cut else -0.5, ord(ch), ch]
                for i, ch in enumerate(text)
                if i >= start
            ]
            meta["output_token_logprobs"] = []
        return {"text": "", "meta_info": meta}
    out = answer(sp)
    meta.update(completion_tokens=len(out) // 2 + 1, finish_reason={"type": "stop", "matched": 2})
    return {"text": out, "meta_info": meta}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, obj: Any, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/health":
            self._json({})
        elif path in ("/model_info", "/get_model_info"):
            self._json({"model_path": ARGS.model_path, "is_generation": True})
        elif path in ("/server_info", "/get_server_info"):
            self._json(
                {
                    "version": "0.5.17-fake",
                    "model_path": ARGS.model_path,
                    "context_length": ARGS.context_length,  # as SGLang: null unless given
                    "internal_states": [{"x": 1}],
                }
            )
        elif path == "/v1/models":  # SGLang's model card carries the length it derived
            self._json({"data": [{"id": ARGS.model_path, "max_model_len": FAKE_MODEL_LEN}]})
        elif path == "/metrics":
            data = f"sglang:cached_tokens_total {CACHED_TOTAL[0]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        path = self.path.split("?")[0]
        log({"path": path, "body": body})
        if path == "/flush_cache":
            self._json({})
            return
        if path != "/generate":
            self._json({"error": "not found"}, 404)
            return
        if isinstance(body.get("text"), list):
            self._json([one(t, body) for t in body["text"]])
        elif body.get("stream"):
            self._stream(one(body["text"], body))
        else:
            self._json(one(body["text"], body))

    def _stream(self, res: dict[str, Any]) -> None:
        text = res["text"]
        cuts = sorted({len(text) // 3, 2 * len(text) // 3, len(text)})
        events = [
            {"text": text[:c], "meta_info": {**res["meta_info"], "completion_tokens": i + 1}}
            for i, c in enumerate(cuts)
        ]
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        raw = data.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-path", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--disable-radix-cache", action="store_true")
    p.add_argument("--context-length", type=int, default=None)
    known, _ = p.parse_known_args(argv)
    ARGS.__dict__.update(vars(known))
    log({"argv": argv})
    ThreadingHTTPServer((known.host, known.port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
