"""The vision-feature cache, the background worker and the KV prefix bookkeeping (no model needed)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pollux.engines.features import Background, Features, FeatureStore, coarse_to_fine
from pollux.engines.kv_prefix import common_prefix


def feats(n: int = 4) -> Features:
    return Features(np.zeros((1, n, 4), dtype=np.float32), 0, 0)


def test_store_computes_once_and_evicts_by_bytes():
    store = FeatureStore(max_bytes=feats().nbytes * 2)
    calls = []

    def compute(tag):
        def run():
            calls.append(tag)
            return feats()
        return run

    a = store.get_or_compute("a", compute("a"))
    assert store.get_or_compute("a", compute("a2")) is a and calls == ["a"]
    store.get_or_compute("b", compute("b"))
    store.get("a")  # a is now the most recent
    store.get_or_compute("c", compute("c"))
    assert "a" in store and "c" in store and "b" not in store
    assert store.bytes == 2 * feats().nbytes
    assert store.info()["computed"] == 3 and store.info()["hits"] == 1
    store.get_or_compute(None, compute("anon"))  # no identity: computed, never stored
    assert store.info()["entries"] == 2


def test_concurrent_requests_for_one_key_compute_it_once():
    store = FeatureStore(max_bytes=1 << 20)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append(1)
        started.set()
        release.wait(10)
        return feats()

    results = []
    first = threading.Thread(target=lambda: results.append(store.get_or_compute("k", slow)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: results.append(store.get_or_compute("k", slow)))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first computation
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1 and results[0] is results[1]


def test_a_failed_computation_lets_the_waiter_compute():
    store = FeatureStore(max_bytes=1 << 20)

    def boom():
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        store.get_or_compute("k", boom)
    assert store.get_or_compute("k", feats).nbytes == feats().nbytes


def test_background_runs_in_order_dedupes_and_pauses():
    bg = Background("test")
    done = []
    with bg.paused():
        bg.submit("a", lambda: done.append("a"))
        bg.submit("a", lambda: done.append("a-again"))  # already queued
        bg.submit("b", lambda: done.append("b"))
        bg.submit("first", lambda: done.append("first"), first=True)
        time.sleep(0.2)
        assert done == []  # nothing runs while a request generates
    assert bg.wait_idle(10)
    assert done == ["first", "a", "b"]
    bg.submit("err", lambda: 1 / 0)  # a failing job does not kill the worker
    bg.submit("c", lambda: done.append("c"))
    assert bg.wait_idle(10) and done[-1] == "c"
    bg.stop()


def test_a_dropped_job_tells_its_waiter():
    bg = Background("test")
    told = []
    with bg.paused():
        bg.submit("a", lambda: told.append("ran"), on_drop=lambda: told.append("dropped a"))
        bg.submit("b", lambda: told.append("ran"))
        bg.cancel_all()  # e.g. the model is unloaded
    assert told == ["dropped a"]
    bg.stop()
    bg.submit("late", lambda: told.append("ran"), on_drop=lambda: told.append("dropped late"))
    assert told == ["dropped a", "dropped late"]


def test_coarse_to_fine_covers_every_frame_ends_first():
    for total in (1, 2, 5, 90):
        order = coarse_to_fine(total)
        assert sorted(order) == list(range(total))
    order = coarse_to_fine(90)
    assert order[:3] == [0, 89, 44] or order[:3] == [0, 89, 45]
    # any even thinning to n frames is computed within the first ~2n jobs
    for n in (3, 9, 17):
        picks = {round(i * 89 / (n - 1)) for i in range(n)}
        assert picks <= set(order[:2 * n + 1])


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, ("k", 0)], [1, ("k", 0), 5]) == 2
    sentinel = object()
    assert common_prefix([(sentinel, 0)], [(object(), 0)]) == 0


def test_a_cached_prefix_is_used_only_when_what_follows_is_short():
    from pollux.engines.kv_prefix import worth_reusing

    assert worth_reusing(1131, 1150)  # the question after an uploaded image
    assert worth_reusing(6780, 6800)  # the second question on a video
    assert not worth_reusing(3, 6800)  # a new video after a chat: start fresh (faster on OpenVINO CPU)
    assert not worth_reusing(1000, 3000) and worth_reusing(1000, 1250)
    assert not worth_reusing(0, 10)
