"""A lean HTTP/1.1 client for streamed POSTs: the SSE body is split and stamped in the protocol.

Why not aiohttp for the body: its response body goes through a ``StreamReader``, so every
network chunk costs a future, a task wake-up, an async-iterator step and a re-armed
``sock_read`` timer before the client even looks at the bytes. A token stream is one
network chunk per token, so that machinery was most of the client's CPU per request
(``benchmarks/client_overhead.py`` measures it). Here a connection is an
:class:`asyncio.Protocol` whose ``data_received`` stamps the chunk, undoes the chunked
transfer coding and hands each SSE ``data:`` line to the request's
:class:`~structbench.engines.stream.StreamReader` right away; the awaiting task wakes up
once per request, when the body ends.

What it covers is what a streaming benchmark needs: plain or TLS TCP to one host,
keep-alive connections reused last-in first-out, ``Content-Length``, chunked and
read-until-close bodies, a connect timeout and a stall timeout (one timer per request,
re-armed only when it fires, not per chunk). It raises aiohttp's exception types, so an
error record reads the same whichever path sent it; :class:`~structbench.engines.stream.HttpClient`
keeps aiohttp for control requests and for proxied servers.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from time import monotonic
from typing import Any, Protocol, cast

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

#: Largest response head accepted (status line and headers).
MAX_HEAD = 64 * 1024
#: How much of a non-200 body is kept for the error record.
MAX_ERROR_BODY = 8 * 1024
Clock = Callable[[], float]


class Reader(Protocol):
    """The part of a StreamReader this module drives (see ``engines/stream.py``)."""

    error: str | None
    done: bool

    def feed(self, obj: Any, t: float) -> None:
        """Take one parsed ``data:`` event that arrived at ``t``."""
        ...


Loads = Callable[[bytes], Any]


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one response in flight."""

    def __init__(self, pool: H1Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._fut: asyncio.Future[tuple[int, bytes]] | None = None
        self._reader: Reader | None = None
        self._clock: Clock = monotonic
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._reset()

    def _reset(self) -> None:
        self._head: bytes | None = b""  # None once the head is parsed
        self._status = 0
        self._keep = True
        self._mode = ""  # "chunked", "length" or "eof"
        self._left = 0  # chunked: bytes left in a chunk (>0), 0 size line, -2 CRLF, -1 trailers
        self._buf = b""  # chunked: an incomplete size line or CRLF
        self._tail = b""  # SSE: an incomplete line
        self._error_body = bytearray()

    # ---- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCPTransport (the loop Ray gives its workers when uvloop
        # is installed, as it is beside vLLM and SGLang) has Transport's methods but not its class.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # one write per request: don't let Nagle hold it back
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._fut is None:
            return
        if self._head is None and self._mode == "eof":
            self._body_end(keep=False)
        elif self._head is None:
            self._fail(aiohttp.ClientPayloadError("Response payload is not completed"))
        else:
            self._fail(aiohttp.ServerDisconnectedError())

    def data_received(self, data: bytes) -> None:
        if self._fut is None:  # bytes nobody asked for: the connection can't be trusted
            self.close()
            return
        t = self._clock()
        self._last = monotonic()
        try:
            if self._head is not None:
                rest = self._read_head(data)
                if rest is None or not rest:
                    return
                data = rest
            if self._mode == "chunked":
                self._chunks(data, t)
            elif self._mode == "length":
                self._length(data, t)
            else:
                self._body(data, t)
        except Exception as e:  # a bad chunk fails the request, not the event loop
            self._fail(e)

    # ---- one request -------------------------------------------------------------------------

    def begin(self, reader: Reader, clock: Clock, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send ``request`` and return the future of (status, error body)."""
        assert self.transport is not None
        loop = self.pool.loop
        self._fut = fut = loop.create_future()
        self._reader, self._clock = reader, clock
        self._last = monotonic()
        self._timer = loop.call_later(self.pool.read_timeout_s, self._check)
        self.transport.write(request)
        return fut

    def abort(self) -> None:
        """Drop an unfinished response (the request was cancelled): the connection goes."""
        self._finish()
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _check(self) -> None:
        # Fires once per read timeout, not per chunk: a stream that moved since re-arms it.
        idle = monotonic() - self._last
        if idle >= self.pool.read_timeout_s:
            self._fail(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
        else:
            self._timer = self.pool.loop.call_later(self.pool.read_timeout_s - idle, self._check)

    def _finish(self) -> asyncio.Future[tuple[int, bytes]] | None:
        fut, self._fut, self._reader = self._fut, None, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return fut

    def _body_end(self, keep: bool) -> None:
        """The body is over: a last line without a newline still counts."""
        if self._tail and self._status == 200:
            tail, self._tail = self._tail, b""
            self._body(tail + b"\n", self._clock())
            if self._fut is None:  # that line was an error event
                return
        self._complete(keep)

    def _complete(self, keep: bool) -> None:
        status, body = self._status, bytes(self._error_body)
        keep = keep and self._keep and not self.closed
        fut = self._finish()
        self._reset()
        if fut is not None and not fut.done():
            fut.set_result((status, body))
        if keep:
            self.pool.release(self)
        else:
            self.close()

    def _fail(self, exc: BaseException) -> None:
        fut = self._finish()
        self.close()
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    # ---- parsing -------------------------------------------------------------------------

    def _read_head(self, data: bytes) -> bytes | None:
        """Parse the status line and headers; returns the body bytes after them, or None."""
        buf = self._head + data if self._head else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ValueError(f"response head over {MAX_HEAD} bytes")
            self._head = buf
            return None
        lines = buf[:end].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        status = int(rest[:3])
        rest_body = buf[end + 4 :]
        if 100 <= status < 200:  # an interim response (100 Continue): the real one follows
            self._head = b""
            return self._read_head(rest_body) if rest_body else None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        self._head, self._status = None, status
        conn = headers.get(b"connection", b"")
        self._keep = conn != b"close" and (version != b"HTTP/1.0" or conn == b"keep-alive")
        if headers.get(b"content-encoding", b"identity") != b"identity":
            raise ValueError(f"unsupported content-encoding {headers[b'content-encoding'].decode()!r}")
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            self._mode = "chunked"
        elif b"content-length" in headers:
            self._mode, self._left = "length", int(headers[b"content-length"])
            if self._left == 0:
                self._complete(keep=True)
                return None
        else:
            self._mode = "eof"
        return rest_body

    def _length(self, data: bytes, t: float) -> None:
        piece = data[: self._left]
        self._left -= len(piece)
        self._body(piece, t)
        if self._left == 0 and self._fut is not None:
            self._body_end(keep=len(piece) == len(data))

    def _chunks(self, data: bytes, t: float) -> None:
        """Undo the chunked transfer coding; the body ends at the zero chunk and its trailers."""
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        while pos < end:
            left = self._left
            if left > 0:
                piece = buf[pos : pos + left]
                pos += len(piece)
                self._left = left - len(piece) or -2
                self._body(piece, t)
                if self._fut is None:  # the reader stopped (an error event)
                    return
            elif left == -2:  # the CRLF after a chunk's data
                if end - pos < 2:
                    break
                pos, self._left = pos + 2, 0
            else:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                if left == 0:
                    size = int(buf[pos:nl].split(b";", 1)[0], 16)
                    self._left = size if size else -1
                elif nl == pos:  # the empty line after the trailers: the body is over
                    self._body_end(keep=nl + 2 == end)
                    return
                pos = nl + 2
        self._buf = buf[pos:]

    def _body(self, data: bytes, t: float) -> None:
        """Body bytes: SSE lines of a 200, else kept for the error message."""
        if self._status != 200:
            if len(self._error_body) < MAX_ERROR_BODY:
                self._error_body += data[: MAX_ERROR_BODY - len(self._error_body)]
            return
        reader = self._reader
        assert reader is not None
        lines = (self._tail + data if self._tail else data).split(b"\n")
        self._tail = lines.pop()  # an incomplete line waits for the next chunk
        loads = self.pool.loads
        for line in lines:
            # Only data: lines matter (not blanks, comments or event: lines).
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    reader.done = True
                elif payload:
                    reader.feed(loads(payload), t)
                    if reader.error is not None:
                        self._complete(keep=False)  # the rest of the body is not read
                        return


class H1Pool:
    """Keep-alive connections to one ``http(s)://host:port`` and streamed POSTs over them.

    Args:
        base: The server's base URL (scheme, host and port are used).
        headers: Extra request header lines, each ``Name: value``.
        read_timeout_s: Bound on connecting and on every wait for the next chunk.
        keepalive_s: An idle connection older than this is closed instead of reused.
        loads: JSON decoder of one ``data:`` payload.
    """

    def __init__(
        self, base: URL, headers: tuple[str, ...], read_timeout_s: float, keepalive_s: float, loads: Loads
    ) -> None:
        self.loop = asyncio.get_running_loop()
        if base.host is None:
            raise ValueError(f"no host in {base}")
        self.host, self.port, self.ssl = base.host, base.port or 80, base.scheme == "https"
        self.read_timeout_s, self.keepalive_s, self.loads = read_timeout_s, keepalive_s, loads
        host = base.host if base.is_default_port() else f"{base.host}:{self.port}"
        self._headers = "".join(f"{h}\r\n" for h in (f"Host: {host}", *headers))
        self._idle: list[_Conn] = []

    def release(self, conn: _Conn) -> None:
        """Take back a connection whose response is complete."""
        conn.idle_since = monotonic()
        self._idle.append(conn)

    async def _acquire(self) -> _Conn:
        now = monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used one: the least likely to be dropped
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        connect = self.loop.create_connection(lambda: _Conn(self), self.host, self.port, ssl=self.ssl or None)
        try:
            _, proto = await asyncio.wait_for(connect, self.read_timeout_s)
        except TimeoutError as e:
            raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {self.host}:{self.port}") from e
        except OSError as e:
            key = ConnectionKey(self.host, self.port, self.ssl, self.ssl, None, None, None)
            raise aiohttp.ClientConnectorError(key, e) from e
        return proto

    async def post(self, target: str, body: bytes, reader: Reader, clock: Clock) -> tuple[int, bytes]:
        """POST ``body`` to ``target`` (path and query) and feed the SSE response to ``reader``.

        Returns:
            The status, and for a status other than 200 the start of its body.

        Raises:
            aiohttp.ClientError, TimeoutError, ValueError: as the aiohttp path would.
        """
        conn = await self._acquire()
        head = f"POST {target} HTTP/1.1\r\n{self._headers}Content-Length: {len(body)}\r\n\r\n"
        fut = conn.begin(reader, clock, head.encode() + body)
        try:
            return await fut
        finally:
            if not fut.done():  # cancelled (cell timeout, Ctrl-C) mid-response
                conn.abort()

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()
