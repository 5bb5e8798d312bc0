"""One model's generations in line: requests wait their turn cancellably, and background work (warm-ups,
explicit caches' prefills) runs only when no request waits, giving way as soon as one arrives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pollux.errors import Cancelled

POLL_SECONDS = 0.05  # how often a waiting request looks at its cancel event


class GenerationQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # held by the one generation (or background prefill) running
        self._count = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn (not the one running)."""
        return self._waiting

    def requests_waiting(self) -> bool:
        """For background work: stop now, a request wants the model."""
        return self._waiting > 0

    @contextmanager
    def turn(self, cancel: threading.Event | None) -> Iterator[None]:
        """A request's turn on the model, after the one running; a set `cancel` ends the wait."""
        with self._count:
            self._waiting += 1
        try:
            while not self._lock.acquire(timeout=POLL_SECONDS):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("The request was cancelled while waiting for the model.")
        finally:
            with self._count:
                self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def background_turn(self) -> Iterator[bool]:
        """True when background work may use the model now (nothing runs or waits); never blocks."""
        got = not self._waiting and self._lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Until the running generation ends (an unload); blocks."""
        with self._lock:
            yield
