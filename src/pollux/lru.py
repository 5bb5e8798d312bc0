"""A thread-safe LRU bounded by the bytes of what it holds (prepared images, encoded data URLs)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BytesLRU(Generic[V]):
    def __init__(self, max_bytes: int, size_of: Callable[[V], int]):
        self.max_bytes = max_bytes
        self.size = 0
        self._size_of = size_of
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0  # read by /metrics (pollux.observability)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Keep `value` (a first writer wins); one larger than the whole budget is not kept."""
        size = self._size_of(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.size += size
            while self.size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.size -= self._size_of(old)
