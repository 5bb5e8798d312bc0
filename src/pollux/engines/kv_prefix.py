"""Prompt-prefix reuse for a stateful OpenVINO language model.

The model keeps its KV cache inside the infer request ("state"). `PrefixCache` remembers which
positions that live state holds (one identity per position: a token id, or an image feature slot)
and keeps a few saved copies ("snapshots") of earlier states in a byte-bounded LRU. Before a
prompt is prefilled, the state is set to the longest known prefix of it: the live state trimmed,
or a snapshot restored, so only the new tail is computed. A long live state about to be thrown
away is saved first, so asking about file A, then B, then A again still finds A's prefix.

An explicit cache (cachedContents) pins a snapshot of its prefix (`pin`): outside the LRU, bounded
by the engine's `PinBudget`, restored like any other snapshot until the cache is gone (`unpin`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MIN_SNAPSHOT_TOKENS = 256  # shorter prefixes are cheap to recompute: not worth the memory
MIN_RESTORE_GAIN = 64  # restore a snapshot only when it saves at least this many positions
# OpenVINO's CPU attention is several times slower per token for a chunk that follows cached positions
# than for a fresh prompt (AVX2), so a cached prefix is only used when what follows it is short: a few
# shared tokens ahead of a long new prompt would make it slower, not faster.
SHORT_TAIL = 64
TAIL_PER_REUSED = 0.25  # ... or at most this many new positions per reused one


def common_prefix(a: list, b: list) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def worth_reusing(cached: int, total: int) -> bool:
    tail = total - cached
    return cached > 0 and (tail <= SHORT_TAIL or tail <= cached * TAIL_PER_REUSED)


@dataclass
class Snapshot:
    keys: tuple
    arrays: dict[str, Any]  # state variable name → numpy array [batch, heads, seq, dim]

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())


class PrefixCache:
    def __init__(self, max_bytes: int, store_dtype: str = "float16"):
        self.max_bytes = max_bytes
        self.store_dtype = store_dtype  # float16 halves memory; float32 when the model's KV cache is f32
        self.live: list = []  # identities of the positions the live state holds
        self._snapshots: OrderedDict[tuple, Snapshot] = OrderedDict()
        self._pinned: dict[str, Snapshot] = {}  # cache handle → its prefix's state
        self._lock = threading.Lock()
        self.bytes = 0
        self.restored = 0

    # ------------------------------------------------------------------------------ reuse

    def prepare(self, request: Any, keys: list) -> int:
        """Set the state to the longest cached prefix of `keys` (never all of it: the last position
        must run to give logits); returns how many positions are already in the state."""
        best, best_len, live = self._best(keys)
        if best is not None:
            with self._lock:
                if best.keys in self._snapshots:
                    self._snapshots.move_to_end(best.keys)
        if not worth_reusing(best_len, len(keys)):
            best, best_len, live = None, 0, 0
        if len(self.live) - live >= MIN_SNAPSHOT_TOKENS:
            self.save(request)  # about to be overwritten: keep it for a later question
        if best is not None:
            _restore(request, best, best_len)
            self.live = list(best.keys[:best_len])
            self.restored += 1
        elif live == 0:
            request.reset_state()
            self.live = []
        elif live < len(self.live):
            _trim(request, live)
            self.live = self.live[:live]
        return len(self.live)

    def reusable(self, keys: list) -> int:
        """How many positions of `keys` `prepare` would take from the state or a snapshot (state untouched)."""
        _, best_len, _ = self._best(keys)
        return best_len if worth_reusing(best_len, len(keys)) else 0

    def _best(self, keys: list) -> tuple["Snapshot | None", int, int]:
        """The snapshot to restore (None: the live state) and its length, and the live state's match."""
        limit = max(0, len(keys) - 1)
        live = min(common_prefix(self.live, keys), limit)
        best, best_len = None, live
        with self._lock:
            for snap in [*self._pinned.values(), *self._snapshots.values()]:
                n = min(common_prefix(list(snap.keys[:limit + 1]), keys), limit)
                if n >= best_len + MIN_RESTORE_GAIN:
                    best, best_len = snap, n
        return best, best_len, live

    def invalidate(self, request: Any | None = None) -> None:
        """The state is unknown (an inference failed midway): start from nothing next time."""
        self.live = []
        if request is not None:
            request.reset_state()

    # ------------------------------------------------------------------------------ snapshots

    def save(self, request: Any) -> None:
        """Keep a copy of the live state (if long enough, new, and within the budget)."""
        keys = tuple(self.live)
        if len(keys) < MIN_SNAPSHOT_TOKENS:
            return
        with self._lock:
            if any(s.keys[:len(keys)] == keys for s in [*self._snapshots.values(), *self._pinned.values()]):
                return  # already covered by an equal or longer snapshot
        snap = self._copy(request, keys)
        if snap.nbytes > self.max_bytes:
            return
        with self._lock:
            for other in [k for k in self._snapshots if keys[:len(k)] == k]:  # shorter ones it extends
                self.bytes -= self._snapshots.pop(other).nbytes
            self._snapshots[keys] = snap
            self.bytes += snap.nbytes
            while self.bytes > self.max_bytes and self._snapshots:
                _, dropped = self._snapshots.popitem(last=False)
                self.bytes -= dropped.nbytes

    def _copy(self, request: Any, keys: tuple) -> Snapshot:
        import numpy as np

        return Snapshot(keys, {s.name: np.array(s.state.data, dtype=self.store_dtype, copy=True)
                               for s in request.query_state()})

    # ------------------------------------------------------------------------------ pinned (explicit caches)

    def pin(self, handle: str, request: Any, budget: Any) -> bool:
        """Keep the live state (a cache's prefix, just prefilled) for `handle`; False when over budget."""
        keys = tuple(self.live)
        if not keys:
            return False
        snap = self._copy(request, keys)
        if not budget.take(snap.nbytes):
            return False
        with self._lock:
            old = self._pinned.pop(handle, None)
            self._pinned[handle] = snap
        if old is not None:
            budget.give(old.nbytes)
        return True

    def unpin(self, handle: str, budget: Any) -> None:
        with self._lock:
            snap = self._pinned.pop(handle, None)
        if snap is not None:
            budget.give(snap.nbytes)

    def pinned(self, handle: str) -> int:
        """How many positions are pinned for `handle` (0: none)."""
        with self._lock:
            snap = self._pinned.get(handle)
            return len(snap.keys) if snap is not None else 0

    def clear(self, pinned: bool = False) -> None:
        """Drop the LRU's snapshots and forget the live state; with `pinned`, the caches' too (an unload)."""
        with self._lock:
            self._snapshots.clear()
            self.bytes = 0
            if pinned:
                self._pinned.clear()
        self.live = []

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"liveTokens": len(self.live), "snapshots": len(self._snapshots), "snapshotBytes": self.bytes,
                    "restored": self.restored, "pinned": len(self._pinned),
                    "pinnedBytes": sum(s.nbytes for s in self._pinned.values())}


def _trim(request: Any, length: int) -> None:
    """Keep the first `length` positions of every state variable ([batch, heads, seq, dim])."""
    import numpy as np
    import openvino as ov

    for state in request.query_state():
        state.state = ov.Tensor(np.ascontiguousarray(state.state.data[:, :, :length, :]))


def _restore(request: Any, snap: Snapshot, length: int) -> None:
    import numpy as np
    import openvino as ov

    for state in request.query_state():
        array = snap.arrays[state.name]
        state.state = ov.Tensor(np.ascontiguousarray(array[:, :, :length, :], dtype=np.float32))
