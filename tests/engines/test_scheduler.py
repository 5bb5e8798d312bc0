"""A model's generation queue: requests wait their turn cancellably and visibly; background work only
takes the model when nothing runs or waits, and can tell when a request arrives."""

from __future__ import annotations

import threading

import pytest

from pollux.engines.scheduler import GenerationQueue
from pollux.errors import Cancelled


def test_a_waiting_request_is_counted_and_can_be_cancelled():
    queue = GenerationQueue()
    cancel, waiting = threading.Event(), threading.Event()
    outcome = []

    def second():
        try:
            with queue.turn(cancel):
                outcome.append("ran")
        except Cancelled:
            outcome.append("cancelled")

    with queue.turn(None):
        worker = threading.Thread(target=second)
        worker.start()
        while queue.waiting == 0:
            waiting.wait(0.01)
        assert queue.waiting == 1 and queue.requests_waiting()
        cancel.set()
        worker.join(5)
    assert outcome == ["cancelled"] and queue.waiting == 0
    with queue.turn(threading.Event()):  # the model is free again
        pass


def test_background_work_gives_way_to_requests():
    queue = GenerationQueue()
    with queue.background_turn() as mine:
        assert mine  # idle: background work may run
        started = threading.Event()

        def request():
            started.set()
            with queue.turn(None):
                pass

        worker = threading.Thread(target=request)
        worker.start()
        started.wait(5)
        while not queue.requests_waiting():
            started.wait(0.01)
        assert queue.requests_waiting()  # what a background prefill polls to stop early
    worker.join(5)
    with queue.turn(None):
        with queue.background_turn() as mine:
            assert not mine  # a request runs: background work does not wait for it, it is retried later


def test_a_cancelled_wait_raises_before_the_turn():
    queue = GenerationQueue()
    cancel = threading.Event()
    cancel.set()
    with queue.turn(None):
        with pytest.raises(Cancelled):
            with queue.turn(cancel):
                pass
