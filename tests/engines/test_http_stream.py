"""The lean streamed-POST client (engines/http_stream.py) against a real socket server on loopback: the bytes
it sends, keep-alive reuse and a stale pooled connection retried, closing an unfinished answer closes the
connection (what cancels the request at a server), and the httpx exception types the engine maps."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pollux.engines import http_stream
from tests.fixtures.server import free_port

EVENTS = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"]


class RawServer:
    """Reads one HTTP/1.1 request at a time per connection and answers it chunked (SSE), keeping the connection
    open unless told otherwise; records every request's head and body."""

    def __init__(self, *, hang: bool = False, pause: float = 0.0):
        self.hang, self.pause = hang, pause
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.closed_by_client = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if self.hang:
                    await reader.read()  # never answers; returns once the client gives up
                    self.closed_by_client.set()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for event in EVENTS:
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    if self.pause:
                        await asyncio.sleep(self.pause)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client.set()
        finally:
            writer.close()

    def close_idle(self) -> None:
        for w in self.writers:
            w.close()


async def _with_server(server: RawServer, body):
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        return await body(httpx.URL(f"http://127.0.0.1:{port}/v1/chat/completions"))
    finally:
        srv.close()


def _client(read: float = 5.0) -> http_stream.StreamClient:
    return http_stream.StreamClient(httpx.Timeout(read, connect=2.0), {"Authorization": "Bearer k"})


def test_sends_the_payload_as_is_and_reuses_the_connection():
    server = RawServer()
    payload = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 200_000 + b'"}]}'

    async def body(url):
        client = _client()
        answers = []
        for _ in range(2):
            resp = await client.post(url, payload)
            assert resp.status_code == 200 and resp.headers["content-type"] == "text/event-stream"
            answers.append(await resp.aread())
            await resp.aclose()
        server.close_idle()  # the server drops the idle keep-alive connection
        await asyncio.sleep(0.05)
        resp = await client.post(url, payload)  # a fresh connection, not an error
        answers.append(await resp.aread())
        await resp.aclose()
        await client.aclose()
        return answers

    answers = asyncio.run(_with_server(server, body))
    assert answers == [b"".join(EVENTS)] * 3
    assert server.connections == 2
    head, sent = server.requests[0]
    assert sent == payload  # the body upstream is exactly the bytes built, no re-encoding
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert f"Content-Length: {len(payload)}" in lines and "Authorization: Bearer k" in lines
    assert "Accept-Encoding: identity" in lines and any(line.startswith("Host: 127.0.0.1:") for line in lines)


def test_closing_an_unfinished_answer_closes_the_connection():
    server = RawServer(pause=0.5)

    async def body(url):
        client = _client()
        resp = await client.post(url, b"{}")
        chunks = resp.aiter_bytes()
        first = await chunks.__anext__()
        await chunks.aclose()
        await resp.aclose()
        await asyncio.wait_for(server.closed_by_client.wait(), 5)
        return first

    assert asyncio.run(_with_server(server, body)).startswith(b"data: ")


def test_timeouts_and_refused_connections_raise_httpx_types():
    server = RawServer(hang=True)

    async def body(url):
        with pytest.raises(httpx.ReadTimeout):
            await _client(read=0.2).post(url, b"{}")

    asyncio.run(_with_server(server, body))

    async def refused():
        await _client().post(httpx.URL(f"http://127.0.0.1:{free_port()}/v1/chat/completions"), b"{}")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(refused())


def test_proxy_settings_leave_it_to_httpx(monkeypatch):
    for name in http_stream.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert http_stream.usable() is (http_stream.httptools is not None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert not http_stream.usable()
