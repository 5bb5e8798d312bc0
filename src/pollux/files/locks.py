"""One lock per upload session: a chunk and a finalize of the same session never overlap.

Waiters queue (a second chunk at the same offset then sees the first one's result and gets a clean
offset error; a repeated finalize returns the committed file); a waiter that cannot get the lock in
time gets ABORTED. The locks live in this process: the single-process embedded server. A deployment
with several API processes needs the same idea as a lease on the session row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pollux.errors import PolluxError


class SessionBusy(PolluxError):
    """409 ABORTED: another request is writing this upload session."""

    status = "ABORTED"


class SessionLocks:
    def __init__(self, wait_seconds: float = 60.0):
        self.wait_seconds = wait_seconds
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # id → (lock, [holders + waiters])

    @contextlib.asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(session_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await lock.acquire()
            except TimeoutError:
                raise SessionBusy("Another request is still writing this upload session; query it and resume "
                                  "when that request has finished.") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            users[0] -= 1
            if not users[0]:
                self._locks.pop(session_id, None)
