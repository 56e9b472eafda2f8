"""The one streaming client of every HTTP engine: one aiohttp session and lean SSE reading.

:class:`HttpClient` holds an engine's connections and streams one request at a time
through :meth:`HttpClient.stream`, which only takes timestamps and keeps the chunks it
needs; every failure (HTTP status, error object in the stream, broken stream, timeout,
refused connection) comes back as ``CallMeasure.error``, never as an exception. vLLM,
SGLang (native ``/generate`` and its OpenAI API) and any other OpenAI-compatible server are
all timed here, at the same points, so two engines are never compared through two
clients. What differs per protocol is only how a parsed chunk is read: a
:class:`StreamReader` (:class:`OpenAIReader` here, SGLang's in its engine package).

Timestamps: ``t_sent`` is taken after the body is encoded, just before the request is
written; each network chunk is stamped when it arrives, and every SSE event in it gets
that stamp; ``t_done`` is taken after the body was read to its end.

The client's CPU time per request is part of what a benchmark measures (a busy client
delays its own timestamps), so the hot path costs less than the load generators it is
compared with: bodies encoded once, SSE split into lines by hand, only the ``data:``
payloads parsed (with orjson when it is installed), and the streamed POSTs sent over
:mod:`structbench.engines.h1`, whose protocol callback reads each network chunk without
a task wake-up (aiohttp's body reader costs one per chunk; ``vllm bench serve`` pays it).
aiohttp's session keeps the control requests, and the streams too when a proxy or a
connection cap is configured (it implements both).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from yarl import URL

from structbench.engines.base import CallMeasure, Clock
from structbench.engines.h1 import H1Pool
from structbench.errors import UserError

JsonBody = dict[str, object]

#: Below uvicorn's default 5 s keep-alive, so that an idle pooled connection is dropped by
#: the client before the server closes it under a new request (a spurious disconnect).
KEEPALIVE_S = 4.0


def _json_codec() -> tuple[Callable[[bytes], Any], Callable[[object], bytes]]:
    """orjson's loads/dumps when installed (several times faster), else the json module."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with the sglang extra
        return json.loads, _std_dumps
    return orjson.loads, orjson.dumps


def _std_dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


_loads, _dumps = _json_codec()


def encode_body(body: JsonBody) -> bytes:
    """The request body as JSON bytes.

    orjson refuses what the json module accepts in a few corners (integers beyond 64 bits
    in a user's schema, say), so those bodies fall back to the json module.
    """
    try:
        return _dumps(body)
    except TypeError:
        return _std_dumps(body)


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
    #: Most connections open at once; 0 means no limit (the load driver bounds how many
    #: requests are in flight, and a limit here would queue requests after ``t_sent``).
    max_connections: int = 0


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What /version and /v1/models say about a server."""

    model: str
    version: str = ""
    root: str = ""
    max_model_len: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """Status and body text of a control request (see :meth:`OpenAIClient.fetch`)."""

    status: int
    text: str


class StreamReader(Protocol):
    """Reads one response's parsed SSE events (one reader per request).

    ``error`` set by :meth:`feed` stops the reading; ``done`` is set on ``[DONE]``.
    """

    error: str | None
    done: bool

    def feed(self, obj: Any, t: float) -> None:
        """Take one parsed ``data:`` event that arrived at ``t``."""
        ...

    def finish(self, t_sent: float, t_done: float) -> CallMeasure:
        """The call's measure, once the body has been read (or the request failed)."""
        ...


def stream_error(obj: dict[str, Any]) -> str | None:
    """The message of an ``{"error": ...}`` event, else None."""
    if "error" not in obj:
        return None
    err = obj["error"]
    msg = err.get("message", err) if isinstance(err, dict) else err
    return f"stream error: {msg}"


@dataclass(slots=True)
class OpenAIReader:
    """Reads OpenAI-compatible chat/completions chunks (never leaves one request)."""

    parts: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    usage: Mapping[str, Any] | None = None
    finish_reason: str | None = None
    error: str | None = None
    done: bool = False

    def feed(self, obj: Any, t: float) -> None:
        """Take one parsed chunk that arrived at ``t``."""
        if not isinstance(obj, dict):
            return
        choices = obj.get("choices")
        usage = obj.get("usage")
        if usage:  # the final usage chunk; servers with continuous usage put it on token chunks too
            self.usage = usage
        if not choices:
            self.error = stream_error(obj)
            return
        for choice in choices:
            delta = choice.get("delta") or choice  # completions chunks carry "text" on the choice
            piece = delta.get("content") or delta.get("text")
            if piece:
                self.times.append(t)
                self.parts.append(piece)
            elif delta.get("reasoning_content") or delta.get("reasoning"):
                # Reasoning tokens are tokens too: they count for TTFT/ITL, not for the answer text.
                self.times.append(t)
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = reason

    def finish(self, t_sent: float, t_done: float) -> CallMeasure:
        """The measure; a stream that just stops is an error."""
        usage = self.usage or {}
        details = usage.get("prompt_tokens_details") or {}
        error = self.error
        if error is None and not self.done and self.finish_reason is None:
            error = "stream ended early (no finish_reason, no [DONE])"
        return CallMeasure(
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


def _line(reader: StreamReader, line: bytes, t: float) -> None:
    """Take one SSE line; only ``data:`` lines matter (not blanks, comments, ``event:``)."""
    if not line.startswith(b"data:"):
        return
    data = line[5:].strip()
    if data == b"[DONE]":
        reader.done = True
    elif data:
        reader.feed(_loads(data), t)


async def _read_sse(resp: aiohttp.ClientResponse, acc: StreamReader, clock: Clock) -> None:
    """Feed the SSE lines of ``resp`` to ``acc``, each stamped with its network chunk's arrival.

    Reads to the end of the body even after ``[DONE]``: a response read to its end returns
    its connection to the pool, while leaving early closes it (a new TCP connect per request).
    """
    tail = b""
    async for chunk in resp.content.iter_any():
        t = clock()
        lines = (tail + chunk if tail else chunk).split(b"\n")
        tail = lines.pop()  # an incomplete line waits for the next chunk
        for line in lines:
            _line(acc, line, t)
            if acc.error is not None:
                return
    if tail:
        _line(acc, tail, clock())


def env_proxy(url: URL) -> str | None:
    """The ``HTTP(S)_PROXY`` for ``url`` from the environment, unless ``NO_PROXY`` exempts it.

    Looked up once per client: aiohttp's ``trust_env`` would look it up (and ``.netrc``)
    in a worker thread on every request, a large share of a request's client CPU time.
    """
    if url.host is None or urllib.request.proxy_bypass(url.host):
        return None
    return urllib.request.getproxies().get(url.scheme)


def _snippet(raw: bytes, n: int = 300) -> str:
    return " ".join(raw.decode("utf-8", errors="replace").split())[:n]


class HttpClient:
    """One engine's connections to its HTTP server.

    One ``aiohttp.ClientSession`` serves every request: its connector keeps idle
    connections in a deque per host, so taking one is O(1) however many streams are in
    flight. Nothing is created per request but the request itself.
    """

    def __init__(self, cfg: ClientConfig) -> None:
        self.cfg = cfg
        self._base = URL(cfg.base_url.rstrip("/"))
        self._urls: dict[str, URL] = {}
        self._session: aiohttp.ClientSession | None = None
        # The streamed POSTs' own connections (see engines/h1.py); None: they go through aiohttp.
        self._h1: H1Pool | None = None
        self._headers: tuple[str, ...] = ()

    @property
    def api_key(self) -> str | None:
        """The API key from the configured environment variable, if any."""
        return os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None

    def open(self) -> None:
        """Create the session; the API key is read from its env var only here.

        Call it inside the event loop that will use the client.
        """
        if self._session is not None:
            return
        headers = {"Content-Type": "application/json"}
        if self.cfg.api_key_env:
            key = os.environ.get(self.cfg.api_key_env)
            if not key:
                raise UserError(f"{self.cfg.name}: environment variable {self.cfg.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self._headers = tuple(f"{k}: {v}" for k, v in headers.items())
        t = self.cfg.request_timeout_s
        proxy = env_proxy(self._base)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.cfg.max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
            ),
            # No total and no pool wait: only connecting and each read are bounded.
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=t, sock_read=t),
            headers=headers,
            # Servers set no cookies worth keeping; the default jar filters them per request.
            cookie_jar=aiohttp.DummyCookieJar(),
            proxy=proxy,
        )
        # A proxy or a connection cap keeps the streams on aiohttp, which does both.
        if proxy is None and self.cfg.max_connections == 0:
            self._h1 = H1Pool(self._base, self._headers, t, KEEPALIVE_S, _loads)

    async def close(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        h1, self._h1 = self._h1, None
        if h1 is not None:
            h1.close()
        if session is not None:
            await session.close()

    def _url(self, path: str) -> URL:
        # yarl parses and quotes a string URL on every request; a built URL object it reuses.
        url = self._urls.get(path)
        if url is None:
            # A query must not be quoted into the path (``/server_info?config_format=json``).
            route, _, query = path.partition("?")
            url = self._base.with_path(self._base.path.rstrip("/") + route)
            url = self._urls[path] = url.with_query(query) if query else url
        return url

    def _require(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"{self.cfg.name}: client used before start()")
        return self._session

    async def get_json(self, path: str) -> dict[str, Any] | None:
        """``GET path`` as a JSON object, or None when unreachable, not 200, or not an object."""
        reply = await self.fetch("GET", path)
        if reply is None or reply.status != 200:
            return None
        try:
            data = json.loads(reply.text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def fetch(self, method: str, path: str) -> Reply | None:
        """A small control request (``GET /metrics``, ``POST /reset_prefix_cache``, ...).

        Returns:
            The status and body, or None when the server can't be reached or times out.
        """
        session = self._require()
        try:
            async with session.request(method, self._url(path)) as resp:
                return Reply(resp.status, await resp.text(errors="replace"))
        except (aiohttp.ClientError, OSError):  # TimeoutError is an OSError
            return None

    async def discover(self, model: str | None) -> ServerFacts:
        """Read the version and the served model (the first one when ``model`` is None)."""
        reply = await self.fetch("GET", "/v1/models")
        try:
            if reply is None or reply.status != 200:
                raise ValueError("unreachable" if reply is None else f"http {reply.status}")
            entries = [e for e in json.loads(reply.text).get("data", ()) if isinstance(e, dict)]
        except (ValueError, AttributeError) as e:
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
        reply = await self.fetch("GET", "/version")
        if reply is None or reply.status != 200:
            return ""  # not every OpenAI-compatible server has /version
        try:
            return str(json.loads(reply.text).get("version", ""))
        except (ValueError, AttributeError):
            return ""

    async def stream(self, path: str, body: JsonBody, clock: Clock, acc: StreamReader) -> CallMeasure:
        """POST a streaming request, read it with ``acc`` and time it; never raises for failures."""
        session = self._require()
        data = encode_body(body)  # before t_sent: encoding is the client's time, not the server's
        t_sent = clock()
        try:
            if self._h1 is not None:
                status, raw = await self._h1.post(self._url(path).raw_path_qs, data, acc, clock)
                if status != 200:
                    acc.error = f"http {status}: {_snippet(raw)}"
            else:
                async with session.post(self._url(path), data=data) as resp:
                    if resp.status != 200:
                        acc.error = f"http {resp.status}: {_snippet(await resp.read())}"
                    else:
                        await _read_sse(resp, acc, clock)
        except TimeoutError as e:  # before OSError, of which it is a subclass
            acc.error = f"timeout: {type(e).__name__} after {self.cfg.request_timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as e:
            acc.error = f"{type(e).__name__}: {e}"
        except ValueError as e:  # a chunk that is not JSON
            acc.error = f"bad stream chunk: {e}"
        return acc.finish(t_sent, clock())
