"""One lock per upload session: a chunk and a finalize of the same session never overlap, on any node.

Waiters queue (a second chunk at the same offset then sees the first one's result and gets a clean
offset error; a repeated finalize returns the committed file); a waiter that cannot get the lock in
time gets ABORTED. Two layers: an asyncio lock in this process, so a node's own waiters queue without
touching the database; then, on a shared database, the session's cluster lock (`MetadataStore.try_lock`,
a PostgreSQL advisory lock the server drops when the holding node dies), so two nodes never write one
session at once. Start-up recovery takes the same cluster lock (`claim`) before it settles a session,
so it never rolls back a commit a live node is still making.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from pollux.errors import PolluxError

if TYPE_CHECKING:
    from pollux.files.store import MetadataStore


class SessionBusy(PolluxError):
    """409 ABORTED: another request is writing this upload session."""

    status = "ABORTED"


def lock_name(session_id: str) -> str:
    return "upload:" + session_id


@contextlib.contextmanager
def claim(store: "MetadataStore", session_id: str) -> Iterator[bool]:
    """Hold the session's cluster lock for the block if nobody does (yields whether it was free)."""
    with store.cluster_lock(lock_name(session_id)) as free:
        yield free


class SessionLocks:
    def __init__(self, wait_seconds: float = 60.0, cluster: "MetadataStore | None" = None):
        self.wait_seconds = wait_seconds
        self.cluster = cluster if cluster is not None and cluster.is_postgres else None
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # id → (lock, [holders + waiters])

    @contextlib.asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(session_id, (asyncio.Lock(), [0]))
        users[0] += 1
        deadline = time.monotonic() + self.wait_seconds
        try:
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await lock.acquire()
            except TimeoutError:
                raise _busy() from None
            try:
                held = await self._hold_cluster(session_id, deadline)
                try:
                    yield
                finally:
                    if held is not None:
                        await asyncio.to_thread(held.release)
            finally:
                lock.release()
        finally:
            users[0] -= 1
            if not users[0]:
                self._locks.pop(session_id, None)

    async def _hold_cluster(self, session_id: str, deadline: float):
        """The session's cluster lock, polled until `deadline` (another node's chunk may take a while)."""
        if self.cluster is None:
            return None
        delay = 0.02
        while (held := await self._try(session_id)) is None:
            if time.monotonic() + delay > deadline:
                raise _busy()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        return held

    async def _try(self, session_id: str):
        attempt = asyncio.ensure_future(asyncio.to_thread(self.cluster.try_lock, lock_name(session_id)))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:  # the thread still finishes: a lock it took must not stay held
            attempt.add_done_callback(_release_late)
            raise


def _release_late(attempt: asyncio.Future) -> None:
    if not attempt.cancelled() and attempt.exception() is None and attempt.result() is not None:
        attempt.result().release()


def _busy() -> SessionBusy:
    return SessionBusy("Another request is still writing this upload session; query it and resume "
                       "when that request has finished.")
