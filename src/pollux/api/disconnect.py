"""Work before an answer's first byte, cancelled when its client hangs up.

Starlette cancels a streaming response when the client goes away, but only once the response has
started: a handler that builds a whole JSON answer, or waits for a stream's first chunk, runs to the
end: for a remote engine that is a full generation the server keeps batching for nobody. Once the body
is read, the next ASGI message is `http.disconnect`; a watcher waiting for it beside the work cancels
the work, which closes the upstream request (the server aborts it).

The work stays in the handler's own task (only the watcher is a task of its own): handing it to another
task would put a pass of the event loop between the request and the upstream call, several ms when the
loop is busy with other streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request

from pollux.errors import Cancelled


async def _hung_up(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@asynccontextmanager
async def cancelled_on_disconnect(request: Request) -> AsyncIterator[None]:
    """Run the block; if the client disconnects first, cancel it and raise `Cancelled`."""
    task = asyncio.current_task()
    assert task is not None
    hung_up = False

    async def watch() -> None:
        nonlocal hung_up
        await _hung_up(request)
        hung_up = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        yield
    except asyncio.CancelledError:
        if hung_up:
            task.uncancel()
            raise Cancelled("The client disconnected; the request was cancelled.") from None
        raise
    finally:
        watcher.cancel()
