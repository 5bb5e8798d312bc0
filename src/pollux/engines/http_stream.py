"""The streamed chat-completions POST over pooled HTTP/1.1 connections: asyncio streams and httptools' C parser.

Why not httpx here: a server streams one SSE event per token, and httpx/httpcore/h11 spend ~0.1 ms of Python per
event (seven async-generator layers, a cancel scope per read, h11's pure-Python chunk parser) and ~1 ms per
request — measured as over half of Pollux's CPU per remote request (benchmarks/remote.py, profiled with yappi).
On a GPU box that CPU is what limits how many streams one Pollux can relay. This client does only what that one
request needs: keep-alive reuse (a stale pooled connection is retried once on a fresh one), connect and read
timeouts, TLS, no compression (`Accept-Encoding: identity`), and the same httpx exception types the engine
already maps (ConnectError, ConnectTimeout, ReadTimeout, ReadError, WriteError, RemoteProtocolError), so the
fault handling is one. Closing an unfinished response closes its connection, which cancels the request at the
server. Where httptools is missing or a proxy is configured, remote.py keeps using httpx.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator

import httpx

try:
    import httptools
except ImportError:  # pragma: no cover - uvicorn[standard] brings it; remote.py falls back to httpx
    httptools = None  # type: ignore[assignment]

READ_SIZE = 256 * 1024
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def usable() -> bool:
    """httptools is there and no proxy variable is set (httpx honours those; this client does not)."""
    return httptools is not None and not any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARIABLES)


class _Closed(Exception):
    """A pooled connection the server had already closed (before any byte of the answer)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


class StreamResponse:
    """The answer's status and headers; its body as it arrives (`aiter_bytes`), or whole (`aread`)."""

    def __init__(self, client: "StreamClient", origin: tuple, conn: _Connection, read_timeout: float | None):
        self._client, self._origin, self._conn, self._timeout = client, origin, conn, read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._raw_headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._head_done = self._complete = False
        self._got_bytes = False
        self._deadline = 0.0  # the read in progress times out at this loop time
        self._timer: asyncio.TimerHandle | None = None
        self._reader_task: asyncio.Task | None = None  # the task blocked in a read, while it is
        self._timed_out = False
        self._reusable = True
        self.status_code = 0
        self.headers: httpx.Headers = httpx.Headers()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._head_done = True
        self.status_code = self._parser.get_status_code()
        self.headers = httpx.Headers(self._raw_headers)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete = True
        self._reusable = self._reusable and self._parser.should_keep_alive()  # read now: the parser resets after

    async def _feed(self) -> None:
        try:
            data = await (self._conn.reader.read(READ_SIZE) if self._timeout is None else self._read_in_time())
        except OSError as e:
            if not self._got_bytes:
                raise _Closed() from None
            raise httpx.ReadError(str(e) or type(e).__name__) from None
        if not data:
            if not self._got_bytes:
                raise _Closed()
            if self._head_done and not self._complete and self._until_close():
                self._complete, self._reusable = True, False  # a body delimited by the connection's end
            if not self._complete:
                raise httpx.RemoteProtocolError("the server closed the connection mid-answer")
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            raise httpx.RemoteProtocolError(f"malformed HTTP answer: {e}") from None

    async def _read_in_time(self) -> bytes:
        """A read under the read timeout, with one timer per response re-armed only when it fires: a timer per
        read (asyncio.timeout's) costs more than the read itself when the server sends one read per token."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._timeout  # type: ignore[operator]  # not None here
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check_deadline)
        self._reader_task = asyncio.current_task()
        try:
            return await self._conn.reader.read(READ_SIZE)
        except asyncio.CancelledError:
            if self._timed_out and self._reader_task is not None and self._reader_task.uncancel() == 0:
                raise httpx.ReadTimeout("the server sent nothing within the read timeout") from None
            raise
        finally:
            self._reader_task = None

    def _check_deadline(self) -> None:
        self._timer = None
        task = self._reader_task
        if task is None:  # between reads: the next one arms the timer again
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:  # a read after the one this timer was armed for
            self._timer = loop.call_at(self._deadline, self._check_deadline)
            return
        self._timed_out = True
        task.cancel()

    def _until_close(self) -> bool:
        """The body has neither a length nor chunks: it ends where the connection does (HTTP/1.0 style)."""
        return "content-length" not in self.headers and "chunked" not in self.headers.get("transfer-encoding", "")

    async def _read_head(self) -> None:
        while not self._head_done:
            await self._feed()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while True:
            if self._body:
                data = b"".join(self._body)
                self._body.clear()
                yield data
            if self._complete:
                return
            try:
                await self._feed()
            except _Closed:
                raise httpx.RemoteProtocolError("the server closed the connection") from None

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        if self._complete and self._reusable and not self._body:
            self._client._release(self._origin, conn)
        else:  # unfinished: closing the connection is what cancels the request at the server
            conn.close()


class StreamClient:
    """POSTs whose answers stream, over keep-alive connections kept per (scheme, host, port)."""

    def __init__(self, timeout: httpx.Timeout, headers: dict[str, str], max_idle: int = 64):
        self._timeout, self._max_idle = timeout, max_idle
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: dict[tuple, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: httpx.URL, body: bytes, content_type: str = "application/json") -> StreamResponse:
        port = url.port or (443 if url.scheme == "https" else 80)
        origin = (url.scheme, url.host, port)
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        head = (f"POST {url.raw_path.decode('ascii')} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
                f"Accept-Encoding: identity\r\nConnection: keep-alive\r\nUser-Agent: pollux\r\n{self._headers}"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
        while True:
            conn, pooled = await self._acquire(origin)
            resp = StreamResponse(self, origin, conn, self._timeout.read)
            try:
                try:
                    conn.writer.write(head + body if len(body) < 65536 else head)
                    if len(body) >= 65536:
                        conn.writer.write(body)
                    await self._drain(conn)
                except OSError as e:
                    raise _Closed() if pooled else httpx.WriteError(str(e) or type(e).__name__) from None
                await resp._read_head()
                return resp
            except _Closed:
                conn.close()
                if pooled:
                    continue  # the server had closed this idle connection: a fresh one
                raise httpx.RemoteProtocolError("the server closed the connection without answering") from None
            except BaseException:
                conn.close()
                raise

    async def _drain(self, conn: _Connection) -> None:
        if self._timeout.write is None:
            await conn.writer.drain()
            return
        try:
            async with asyncio.timeout(self._timeout.write):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("the server did not take the request within the write timeout") from None

    async def _acquire(self, origin: tuple) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn, True
            conn.close()
        scheme, host, port = origin
        context = None
        if scheme == "https":
            context = self._ssl = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout(self._timeout.connect):
                reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=READ_SIZE)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within the connect timeout") from None
        except OSError as e:
            raise httpx.ConnectError(str(e) or type(e).__name__) from None
        return _Connection(reader, writer), False

    def _release(self, origin: tuple, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle:
            conn.close()
        else:
            idle.append(conn)

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
