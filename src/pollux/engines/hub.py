"""One loaded engine instance per catalog model, with requests queued on it."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Iterator

from pollux.engines.base import Engine, engine_class
from pollux.errors import ModelUnavailable, PolluxError

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines")


class EngineHub:
    def __init__(self, settings: "Settings"):
        self.settings = settings
        self._engines: dict[str, Engine] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._last_used: dict[str, float] = {}
        self._guard = threading.Lock()

    def engine_name(self, entry: "ModelEntry") -> str:
        return "emulator" if self.settings.emulator else entry.engine

    def get(self, entry: "ModelEntry") -> Engine:
        """The engine instance for `entry`, created (not yet loaded) on first use."""
        with self._guard:
            engine = self._engines.get(entry.id)
            if engine is None:
                cls = self._class_for(entry)
                engine = cls(entry, self.settings)
                self._engines[entry.id] = engine
                self._locks[entry.id] = threading.Lock()
            return engine

    def _class_for(self, entry: "ModelEntry") -> type[Engine]:
        name = self.engine_name(entry)
        try:
            return engine_class(name)
        except ImportError as e:
            if name == "openvino":  # the fast path is optional: fall back to the reference engine
                log.warning("openvino engine unavailable (%s); using transformers for %s", e, entry.id)
                return engine_class("transformers")
            raise ModelUnavailable(f"The {name!r} engine for model {entry.id} cannot be loaded here: {e}") from None

    @contextmanager
    def lease(self, entry: "ModelEntry") -> Iterator[Engine]:
        """Exclusive use of a loaded engine: one generation at a time per model, others wait in line.
        Engines that run elsewhere (`serialised = False`: remote servers batch themselves) are never locked."""
        engine = self.get(entry)
        lock = self._locks[entry.id] if engine.serialised else nullcontext()
        with lock:
            try:
                engine.load()
            except PolluxError:
                raise
            except Exception as e:
                log.exception("loading %s failed", entry.id)
                raise ModelUnavailable(f"Model {entry.id} could not be loaded: {e}. "
                                       f"Try `pollux pull {entry.id}`.") from None
            self._last_used[entry.id] = time.monotonic()
            yield engine
            self._last_used[entry.id] = time.monotonic()

    def unload_idle(self) -> None:
        limit = self.settings.idle_unload_seconds
        if limit <= 0:
            return
        now = time.monotonic()
        for model_id, engine in list(self._engines.items()):
            lock = self._locks[model_id]
            if now - self._last_used.get(model_id, now) > limit and lock.acquire(blocking=False):
                try:
                    engine.unload()
                finally:
                    lock.release()

    def info(self, entry: "ModelEntry") -> dict:
        engine = self._engines.get(entry.id)
        if engine is None and self.engine_name(entry) == "openai":  # cheap to build: shows replica health at once
            engine = self.get(entry)
        out = {"model": entry.id, "engine": self.engine_name(entry), "source": entry.source}
        if engine is not None:
            out.update(engine.info())
        return out

    def close(self) -> None:
        for engine in self._engines.values():
            try:
                engine.unload()
            except Exception:  # shutting down: best effort
                log.exception("unloading failed")
