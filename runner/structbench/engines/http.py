"""Shared client for OpenAI-compatible servers: connection pools and SSE streaming.

:class:`OpenAIClient` holds an engine's connections and streams one request at a time
through :meth:`OpenAIClient.stream`, which only takes timestamps and keeps the chunks it
needs; every failure (HTTP status, error object in the stream, broken stream, timeout,
refused connection) comes back as ``StreamResult.error``, never as an exception. Turning
work items into requests and records is :mod:`structbench.engines.http_program`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from structbench.engines.base import Clock
from structbench.errors import UserError

JsonBody = dict[str, object]


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Connection settings of one engine's HTTP client.

    ``request_timeout_s`` bounds connecting and every wait for the next chunk, so a stalled
    stream fails after that long without limiting a long, healthy generation.
    """

    name: str
    base_url: str
    request_timeout_s: float = 600.0
    api_key_env: str | None = None
    #: Connection limit per shard.
    max_connections: int = 4096
    #: Number of httpx clients the streams are spread over (see :class:`OpenAIClient`).
    shards: int = 16


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What /version and /v1/models say about a server."""

    model: str
    version: str = ""
    root: str = ""
    max_model_len: int | None = None


@dataclass(frozen=True, slots=True)
class StreamResult:
    """Timestamps and usage of one streamed request (clock of the caller)."""

    t_sent: float
    t_done: float
    t_first_token: float | None = None
    token_times: tuple[float, ...] = ()
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None


@dataclass(slots=True)
class _Acc:
    """Mutable accumulator for one stream (never leaves :meth:`OpenAIClient.stream`)."""

    parts: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    usage: Mapping[str, Any] | None = None
    finish_reason: str | None = None
    error: str | None = None
    done: bool = False

    def feed(self, obj: Any, t: float) -> None:
        if not isinstance(obj, dict):
            return
        if "error" in obj and not obj.get("choices"):
            err = obj["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            self.error = f"stream error: {msg}"
            return
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or choice  # completions chunks carry "text" on the choice
            piece = delta.get("content") or delta.get("text")
            # Reasoning tokens are tokens too: they count for TTFT/ITL, not for the answer text.
            if piece or delta.get("reasoning_content") or delta.get("reasoning"):
                self.times.append(t)
                if piece:
                    self.parts.append(piece)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def result(self, t_sent: float, t_done: float) -> StreamResult:
        usage = self.usage or {}
        details = usage.get("prompt_tokens_details") or {}
        error = self.error
        if error is None and not self.done and self.finish_reason is None:
            error = "stream ended early (no finish_reason, no [DONE])"
        return StreamResult(
            t_sent=t_sent,
            t_done=t_done,
            t_first_token=self.times[0] if self.times else None,
            token_times=tuple(self.times[1:]),
            text="".join(self.parts),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            cached_tokens=details.get("cached_tokens") if isinstance(details, dict) else None,
            finish_reason=self.finish_reason,
            error=error,
        )


def _skip_sniffio_probe() -> None:
    """Make httpcore's per-request ``import sniffio`` fail fast when sniffio is absent.

    httpcore tries ``import sniffio`` on every lock and event it creates (~15 times a
    request); anyio >= 4.12 no longer installs sniffio, and a failed import is not cached,
    so each try walks sys.path: about a quarter of the client's CPU time per request. A None
    entry in sys.modules gives the same ImportError at once. Changes nothing when sniffio
    is installed.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def _snippet(raw: bytes, n: int = 300) -> str:
    return " ".join(raw.decode("utf-8", errors="replace").split())[:n]


class OpenAIClient:
    """One engine's connections to an OpenAI-compatible server.

    Streams are spread round-robin over ``cfg.shards`` httpx clients. httpcore's pool
    rescans every connection for every queued request, which is quadratic in the number
    of streams in flight; small pools keep the client's CPU per request flat as the
    concurrency grows.
    """

    def __init__(self, cfg: ClientConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self._transport = transport
        self._pools: list[httpx.AsyncClient] = []
        self._next = 0

    @property
    def http(self) -> httpx.AsyncClient:
        """An open ``httpx.AsyncClient`` for control requests (after :meth:`open`)."""
        if not self._pools:
            raise RuntimeError(f"{self.cfg.name}: client used before start()")
        return self._pools[0]

    def open(self) -> None:
        """Create the pools; the API key is read from its env var only here."""
        if self._pools:
            return
        _skip_sniffio_probe()
        headers = {}
        if self.cfg.api_key_env:
            key = os.environ.get(self.cfg.api_key_env)
            if not key:
                raise UserError(f"{self.cfg.name}: environment variable {self.cfg.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        n = self.cfg.max_connections
        ssl_ctx = ssl.create_default_context()  # loading CA certs is slow: once, not per shard
        self._pools = [
            httpx.AsyncClient(
                base_url=self.cfg.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.cfg.request_timeout_s, pool=None),
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                transport=self._transport,
                verify=ssl_ctx,
            )
            for _ in range(max(1, self.cfg.shards))
        ]

    async def close(self) -> None:
        """Close the pools."""
        pools, self._pools = self._pools, []
        for pool in pools:
            await pool.aclose()

    async def discover(self, model: str | None) -> ServerFacts:
        """Read the version and the served model (the first one when ``model`` is None)."""
        try:
            resp = await self.http.get("/v1/models")
            resp.raise_for_status()
            entries = [e for e in resp.json().get("data", ()) if isinstance(e, dict)]
        except (httpx.HTTPError, ValueError, AttributeError) as e:
            raise UserError(
                f"{self.cfg.name}: cannot list models at {self.cfg.base_url}/v1/models: {e}"
            ) from e
        ids = [str(e.get("id")) for e in entries]
        if model is None and not ids:
            raise UserError(f"{self.cfg.name}: the server lists no models; set 'model' in the engine spec")
        if model is not None and ids and model not in ids:
            raise UserError(f"{self.cfg.name}: model '{model}' is not served (served: {', '.join(ids)})")
        chosen = model if model is not None else ids[0]
        entry = next((e for e in entries if e.get("id") == chosen), {})
        mml = entry.get("max_model_len")
        return ServerFacts(
            model=chosen,
            version=await self._version(),
            root=str(entry.get("root") or ""),
            max_model_len=mml if isinstance(mml, int) else None,
        )

    async def _version(self) -> str:
        try:
            resp = await self.http.get("/version")
            return str(resp.json().get("version", "")) if resp.status_code == 200 else ""
        except (httpx.HTTPError, ValueError, AttributeError):
            return ""  # not every OpenAI-compatible server has /version

    async def stream(self, path: str, body: JsonBody, clock: Clock) -> StreamResult:
        """POST a streaming request and collect its timestamps; never raises for failures."""
        self._next += 1
        pool = self._pools[self._next % len(self._pools)] if self._pools else self.http
        acc = _Acc()
        t_sent = clock()
        try:
            async with pool.stream("POST", path, json=body) as resp:
                if resp.status_code != 200:
                    raw = await resp.aread()
                    acc.error = f"http {resp.status_code}: {_snippet(raw)}"
                    return acc.result(t_sent, clock())
                async for line in resp.aiter_lines():
                    t = clock()
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, event: lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        # No break: reading to the end of the body returns the connection
                        # to the pool; leaving early would close it (a new TCP connect per request).
                        acc.done = True
                        continue
                    acc.feed(json.loads(data), t)
                    if acc.error is not None:
                        break
        except httpx.TimeoutException as e:
            acc.error = f"timeout: {type(e).__name__} after {self.cfg.request_timeout_s:g} s"
        except httpx.HTTPError as e:
            acc.error = f"{type(e).__name__}: {e}"
        except ValueError as e:  # a chunk that is not JSON
            acc.error = f"bad stream chunk: {e}"
        return acc.result(t_sent, clock())
