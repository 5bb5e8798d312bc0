"""A plain (non-streamed) answer's work, cancelled when its client hangs up.

Starlette cancels a streaming response when the client goes away, but a handler that builds a whole
JSON answer runs to the end: for a remote engine that is a full generation the server keeps batching
for nobody. Once the body is read, the next ASGI message is `http.disconnect`; waiting for it beside
the work lets us cancel the work, which closes the upstream request (the server aborts it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from pollux.errors import Cancelled

T = TypeVar("T")


async def _hung_up(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`await work`, or cancel it and raise `Cancelled` once the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_hung_up(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise Cancelled("The client disconnected; the request was cancelled.")
    return task.result()
