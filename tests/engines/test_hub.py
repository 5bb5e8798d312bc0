"""EngineHub: one warm engine per model, requests in line, idle engines unloaded after the configured time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pollux.catalog import ModelEntry
from pollux.engines.base import Engine
from pollux.engines.hub import EngineHub
from pollux.errors import ModelUnavailable
from pollux.settings import Settings


class CountingEngine(Engine):
    """Counts loads and unloads; nothing else."""

    name = "counting"

    def __init__(self, entry, settings):
        super().__init__(entry, settings)
        self.loads = self.unloads = 0
        self.loaded = False

    def load(self) -> None:
        if not self.loaded:
            self.loads += 1
            self.loaded = True

    def unload(self) -> None:
        if self.loaded:
            self.unloads += 1
            self.loaded = False

    def count_tokens(self, prompt) -> int:
        return 0

    def generate(self, prompt, params, cancel):
        return iter(())

    def info(self) -> dict:
        return {"loaded": self.loaded, "memory": {"processRssBytes": 1}}


class BrokenEngine(CountingEngine):
    def load(self) -> None:
        raise OSError("weights are corrupt")


def _entry(engine: str = f"{__name__}:CountingEngine") -> ModelEntry:
    return ModelEntry(id="m", display_name="m", description="", engine=engine, source="nowhere", family="smolvlm")


def _hub(tmp_path: Path, idle: float) -> EngineHub:
    return EngineHub(Settings(data_dir=tmp_path, idle_unload_seconds=idle, transcribe=False))


def test_engine_stays_loaded_between_requests(tmp_path):
    hub, entry = _hub(tmp_path, idle=0), _entry()
    for _ in range(3):
        with hub.lease(entry) as engine:
            assert engine.loaded
    assert engine.loads == 1
    hub.unload_idle()  # 0 disables idle unloading
    assert engine.loaded and engine.unloads == 0
    info = hub.info(entry)
    assert info["loaded"] and info["memory"]["processRssBytes"] == 1 and info["engine"].endswith("CountingEngine")


def test_idle_engine_is_unloaded_and_reloads_on_next_request(tmp_path):
    hub, entry = _hub(tmp_path, idle=0.2), _entry()
    with hub.lease(entry) as engine:
        pass
    hub.unload_idle()
    assert engine.loaded, "used just now"
    time.sleep(0.3)
    hub.unload_idle()
    assert not engine.loaded and engine.unloads == 1
    assert hub.info(entry)["loaded"] is False
    with hub.lease(entry) as again:
        assert again is engine and engine.loaded and engine.loads == 2


def test_busy_engine_is_never_unloaded(tmp_path):
    hub, entry = _hub(tmp_path, idle=0.05), _entry()
    inside, release = threading.Event(), threading.Event()

    def request():
        with hub.lease(entry):
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=request)
    worker.start()
    inside.wait(5)
    time.sleep(0.2)
    hub._last_used[entry.id] -= 10  # long past the limit, but a request holds it
    hub.unload_idle()
    assert hub.get(entry).loaded
    release.set()
    worker.join(5)


def test_load_failure_is_model_unavailable(tmp_path):
    hub = _hub(tmp_path, idle=0)
    with pytest.raises(ModelUnavailable, match="could not be loaded: weights are corrupt"):
        with hub.lease(_entry(f"{__name__}:BrokenEngine")):
            pass


def test_leases_do_not_serialise_and_a_held_lease_blocks_idle_unload(tmp_path):
    hub = _hub(tmp_path, idle=0.01)
    entry = _entry()
    with hub.lease(entry) as first:
        done = threading.Event()

        def second() -> None:
            with hub.lease(entry):
                done.set()

        t = threading.Thread(target=second)
        t.start()
        assert done.wait(10), "a second lease waited for the first"
        t.join()
        assert hub.waiting(entry) == 1
        time.sleep(0.05)
        hub.unload_idle()
        assert first.loaded and first.unloads == 0  # held: never unloaded
    time.sleep(0.05)
    hub.unload_idle()
    assert not first.loaded and first.unloads == 1
