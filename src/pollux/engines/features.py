"""Vision features computed once and reused: the encoder is compute-bound, so a file asked about again
must not pay for it again.

`FeatureStore` is a byte-bounded LRU keyed by (model, preprocessing, file content); a key being
computed is computed once, and whoever else needs it meanwhile waits for that result. `Background`
is one low-priority thread that computes features ahead of the questions (as files arrive), pausing
while the model generates. What to precompute as files arrive is decided above the engines
(`pollux.warmup`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("pollux.engines.features")

@dataclass
class Features:
    """One image's encoder output, already in the language model's embedding space."""

    array: "np.ndarray"  # [tiles, tokens per tile, hidden]
    rows: int  # the tiling the processor chose (expands the <image> placeholder in the text)
    cols: int

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


class PinBudget:
    """Bytes an engine may keep pinned for explicit caches (`cache_memory_bytes`); what does not fit is
    not pinned (it stays in the ordinary LRUs, recomputed when evicted), so pinning never grows memory
    past the budget."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.used + nbytes > self.max_bytes:
                return False
            self.used += nbytes
            return True

    def give(self, nbytes: int) -> None:
        with self._lock:
            self.used = max(0, self.used - nbytes)


class FeatureStore:
    """An LRU of `Features` bounded in bytes; each key is computed at most once at a time. Features
    pinned for a live cache (`pin`) sit outside the LRU until the last cache holding them lets go."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Features] = OrderedDict()
        self._pinned: dict[str, Features] = {}
        self._owners: dict[str, set[str]] = {}  # pinned key → the cache handles holding it
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.computed = 0

    def get(self, key: str) -> Features | None:
        with self._lock:
            return self._lookup(key)

    def _lookup(self, key: str) -> Features | None:
        found = self._pinned.get(key)
        if found is None:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
        return found

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items or key in self._pinned

    def pin(self, handle: str, key: str, budget: PinBudget) -> bool:
        """Keep `key`'s features (already computed) for cache `handle`; False when absent or over budget."""
        with self._lock:
            if key in self._pinned:
                self._owners[key].add(handle)
                return True
            found = self._items.get(key)
            if found is None or not budget.take(found.nbytes):
                return False
            del self._items[key]
            self.bytes -= found.nbytes
            self._pinned[key] = found
            self._owners[key] = {handle}
            return True

    def unpin(self, handle: str, budget: PinBudget) -> None:
        """Cache `handle` is gone: what only it held goes back to the LRU (evicted as usual)."""
        with self._lock:
            keys = [k for k, owners in self._owners.items() if owners == {handle}]
            for owners in self._owners.values():
                owners.discard(handle)
            released = []
            for key in keys:
                del self._owners[key]
                released.append((key, self._pinned.pop(key)))
                budget.give(released[-1][1].nbytes)
        for key, value in released:
            self._put(key, value, counted=False)


    def get_or_compute(self, key: str | None, compute: Callable[[], Features]) -> Features:
        """The cached features, or those another thread is computing now, or computed here."""
        if key is None:  # no stable identity (nothing to share)
            return compute()
        while True:
            with self._lock:
                found = self._lookup(key)
                if found is not None:
                    self.hits += 1
                    return found
                pending = self._pending.get(key)
                owner = pending is None
                event = self._pending[key] = threading.Event() if pending is None else pending
            if not owner:
                event.wait()  # computed elsewhere; if that failed, the loop computes it here
                continue
            try:
                value = compute()
                self._put(key, value)
                return value
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                event.set()

    def _put(self, key: str, value: Features, counted: bool = True) -> None:
        with self._lock:
            self.computed += counted
            if value.nbytes > self.max_bytes:
                return
            old = self._items.pop(key, None)
            self.bytes -= old.nbytes if old is not None else 0
            self._items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= dropped.nbytes

    def clear(self, pinned: bool = False) -> None:
        """Empty the LRU; with `pinned`, what caches pinned too (the model is unloaded)."""
        with self._lock:
            self._items.clear()
            self.bytes = 0
            if pinned:
                self._pinned.clear()
                self._owners.clear()

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._items), "bytes": self.bytes, "hits": self.hits, "computed": self.computed,
                    "pinned": len(self._pinned), "pinnedBytes": sum(f.nbytes for f in self._pinned.values())}


class Background:
    """One daemon thread running queued jobs in order, paused while any generation runs."""

    def __init__(self, name: str):
        self.name = name
        self._jobs: deque[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = deque()
        self._queued: set[str] = set()
        self._cv = threading.Condition()
        self._generating = 0
        self._running = False
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, key: str, job: Callable[[], Any], first: bool = False,
               on_drop: Callable[[], Any] | None = None) -> None:
        """Queue `job` unless `key` is queued already. `on_drop` runs instead of a job that never will
        (cancelled, stopped): someone may be waiting for it."""
        with self._cv:
            if self._stopped:
                dropped = True
            elif key in self._queued:
                return
            else:
                dropped = False
                self._queued.add(key)
                (self._jobs.appendleft if first else self._jobs.append)((key, job, on_drop))
            if not dropped and self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"pollux-{self.name}", daemon=True)
                self._thread.start()
            self._cv.notify_all()
        if dropped and on_drop is not None:
            on_drop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """While a request generates: the next background job waits (the current one finishes)."""
        with self._cv:
            self._generating += 1
        try:
            yield
        finally:
            with self._cv:
                self._generating -= 1
                self._cv.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once no job is queued or running (tests, benchmarks, shutdown)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._jobs and not self._running, timeout)

    def cancel_all(self) -> None:
        self._drop_all(stop=False)

    def stop(self) -> None:
        self._drop_all(stop=True)

    def _drop_all(self, stop: bool) -> None:
        with self._cv:
            self._stopped = self._stopped or stop
            dropped = [on_drop for _, _, on_drop in self._jobs if on_drop is not None]
            self._jobs.clear()
            self._queued.clear()
            self._cv.notify_all()
        for on_drop in dropped:
            on_drop()

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stopped or (self._jobs and not self._generating))
                if self._stopped:
                    return
                key, job, _ = self._jobs.popleft()
                self._queued.discard(key)
                self._running = True
            try:
                job()
            except Exception:  # a deleted file, an unloaded model: the request path computes on demand
                log.debug("background job %s failed", key, exc_info=True)
            finally:
                with self._cv:
                    self._running = False
                    self._cv.notify_all()


def coarse_to_fine(total: int) -> list[int]:
    """Indices 0..total-1, those an evenly thinned selection keeps first (ends, middle, quarters, ...)."""
    order: list[int] = []
    seen: set[int] = set()
    n = 1
    while len(order) < total:
        n = min(total, n)
        picks = [0] if n == 1 else sorted({round(i * (total - 1) / (n - 1)) for i in range(n)})
        for index in picks:
            if index not in seen:
                seen.add(index)
                order.append(index)
        if n == total:
            break
        n = 2 if n == 1 else 2 * n - 1
    return order
