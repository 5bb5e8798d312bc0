"""Operations on the wire: the per-request middleware, `/readyz` and `/metrics` (pollux.observability)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pollux.api.context import ctx
from pollux.api.errors import status_body
from pollux.observability import Ops, readiness, request_id, route_label
from pollux.request_timing import RequestTiming
from pollux.request_timing import current as current_timing

OPS_PATHS = ("/healthz", "/readyz", "/metrics")  # never refused while draining, not counted as work
UPLOAD_PREFIXES = ("/upload/", "/resumable/upload/")
_GOOD_ID = re.compile(r"^[\w.:/+=-]{1,128}$")  # an id we echo back: bounded, no header injection
DRAINING = "This server is shutting down; retry the request (another node will answer it)."


class Observe:
    """Request id in and out, metrics by route template and code, upload bytes, 503 while draining."""

    def __init__(self, app: ASGIApp, ops: Ops):
        self.app, self.ops = app, ops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timing = RequestTiming(time.perf_counter())
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        timing_token = current_timing.set(timing)
        ops_route = scope["path"] in OPS_PATHS
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = [(b"x-request-id", rid.encode())]
                if not ops_route:
                    extra.append((b"server-timing", timing.server_timing(time.perf_counter()).encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif not message.get("more_body") and timing.finished is None:
                timing.finished = time.perf_counter()  # the last body message is being written
            await send(message)

        if scope["path"].startswith(UPLOAD_PREFIXES):
            receive = self._counting(receive)
        try:
            if ops_route:
                await self.app(scope, receive, send_with_id)
            elif self.ops.draining:
                await _unavailable(send_with_id)
            else:
                self.ops.enter()
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    self.ops.leave()
        finally:
            route = route_label(scope)
            self.ops.requests.labels(scope["method"], route, str(status["code"])).inc()
            if not ops_route:
                self.ops.latency.labels(scope["method"], route).observe(time.perf_counter() - timing.arrived)
                if timing.remote and timing.finished is not None:
                    self.ops.observe_remote(timing)
            current_timing.reset(timing_token)
            request_id.reset(token)

    def _counting(self, receive: Receive) -> Receive:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.ops.upload_bytes.inc(len(message.get("body", b"")))
            return message

        return counted


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _GOOD_ID.match(text) else None
    return None


async def _unavailable(send: Send) -> None:
    body = json.dumps(status_body(503, "UNAVAILABLE", DRAINING)).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body})


async def readyz(request: Request) -> JSONResponse:
    """200 when the database, the blob store and the engines answer; 503 naming what does not (or draining)."""
    ops: Ops = request.app.state.ops
    checks = await asyncio.to_thread(readiness, ctx(request))
    if ops.draining:
        checks["draining"] = "the node is shutting down"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    registry = request.app.state.ops.registry
    return Response(await asyncio.to_thread(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)
