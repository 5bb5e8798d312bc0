"""One process-wide budget for image decodes: how many run at once and how many pixels they hold.

A 164 KB PNG may declare 13000x13000 (169 M pixels, 507 MB as RGB) and six of them decoded at once
took 5.9 GB. Every decode (uploads, inline images, the warm-up) reserves its pixel count here before
Pillow allocates anything. Over the budget it queues, first come first served, so one big image is not
starved by a stream of small ones; a request that waited longer than `decode_wait_seconds` gets 503
UNAVAILABLE (every Gemini SDK retries it) instead of the server's memory. An image larger than the
whole budget still runs, alone (`max_image_pixels` is what refuses images outright).

Background jobs (processing, warm-up) have no client to retry, so they wait as long as it takes:
their threads start with `make_thread_patient()` (or run inside `patient()`).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pollux.errors import Unavailable

if TYPE_CHECKING:
    from pollux.settings import Settings

_patient: contextvars.ContextVar[bool] = contextvars.ContextVar("pollux_decode_patient", default=False)


class DecodeBudget:
    def __init__(self, max_decodes: int, max_pixels: int):
        self.max_decodes, self.max_pixels = max(1, max_decodes), max(1, max_pixels)
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self.active = 0
        self.pixels = 0

    def _fits(self, pixels: int) -> bool:
        if self.active == 0:
            return True  # alone, anything under max_image_pixels runs
        return self.active < self.max_decodes and self.pixels + pixels <= self.max_pixels

    @contextlib.contextmanager
    def reserve(self, pixels: int, wait_seconds: float | None) -> Iterator[None]:
        """Hold `pixels` of the budget for the block; Unavailable after `wait_seconds` in the queue."""
        ticket = object()
        timeout = None if _patient.get() else wait_seconds
        with self._cond:
            self._queue.append(ticket)
            try:
                ok = self._cond.wait_for(lambda: self._queue[0] is ticket and self._fits(pixels), timeout)
            finally:
                if self._queue and self._queue[0] is ticket:
                    self._queue.popleft()
                elif ticket in self._queue:
                    self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now (or we left the head)
            if not ok:
                raise Unavailable(f"The server is busy decoding other images (waited {timeout:g} s for "
                                  "memory to decode this one). Please retry shortly.")
            self.active += 1
            self.pixels += pixels
        try:
            yield
        finally:
            with self._cond:
                self.active -= 1
                self.pixels -= pixels
                self._cond.notify_all()


_budgets: dict[tuple[int, int], DecodeBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(settings: Settings) -> DecodeBudget:
    """The budget shared by every decode under these limits (one per process in practice)."""
    key = (settings.max_concurrent_decodes, settings.max_decode_pixels)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = DecodeBudget(*key)
        return budget


def make_thread_patient() -> None:
    """Every later decode on this thread waits without a time limit (a background worker's initializer)."""
    _patient.set(True)


@contextlib.contextmanager
def patient() -> Iterator[None]:
    """Decodes in this block queue without a time limit (background jobs: nobody would retry a 503)."""
    token = _patient.set(True)
    try:
        yield
    finally:
        _patient.reset(token)
