"""One engine instance per catalog model, loaded on first use and unloaded when idle, and the helper
model services (speech, grounding) its engines share, under the same lifecycle."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from pollux.engines.base import Engine, engine_class
from pollux.engines.services import Services
from pollux.errors import ModelUnavailable, PolluxError

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines")


class EngineHub:
    def __init__(self, settings: "Settings"):
        self.settings = settings
        self._engines: dict[str, Engine] = {}
        self._busy: dict[str, int] = {}  # leases held per model id
        self._last_used: dict[str, float] = {}
        self._guard = threading.Lock()
        self.services = Services(settings)

    def engine_name(self, entry: "ModelEntry") -> str:
        return "emulator" if self.settings.emulator else entry.engine

    def get(self, entry: "ModelEntry") -> Engine:
        """The engine instance for `entry`, created (not yet loaded) on first use."""
        with self._guard:
            engine = self._engines.get(entry.id)
            if engine is None:
                name = self.engine_name(entry)
                try:
                    cls = engine_class(name)
                except ImportError as e:  # a runtime missing is the engine's to handle (it reports its fallback)
                    raise ModelUnavailable(f"The {name!r} engine for model {entry.id} cannot be loaded here: {e}"
                                           ) from None
                engine = cls(entry, self.settings)
                engine.services = self.services
                self._engines[entry.id] = engine
            return engine

    def loaded(self) -> list[Engine]:
        """The engines holding a loaded model now."""
        with self._guard:
            engines = list(self._engines.values())
        return [engine for engine in engines if engine.is_loaded()]

    @contextmanager
    def lease(self, entry: "ModelEntry") -> Iterator[Engine]:
        """A loaded engine, kept loaded while the lease is held (the idle sweep skips it).

        No lock is held here: a serialised engine queues its generations itself (cancellable, and visible to
        its priorities), so loading, counting tokens and waiting never queue behind a running generation."""
        engine = self.get(entry)
        with self._guard:  # an idle unload in progress finishes before the lease; none starts while it is held
            self._busy[entry.id] = self._busy.get(entry.id, 0) + 1
        try:
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
        finally:
            with self._guard:
                self._busy[entry.id] -= 1
                self._last_used[entry.id] = time.monotonic()

    def waiting(self, entry: "ModelEntry") -> int:
        """Leases held on the model: running plus queued requests (and loads)."""
        with self._guard:
            return self._busy.get(entry.id, 0)

    def unload_idle(self) -> None:
        limit = self.settings.idle_unload_seconds
        if limit <= 0:
            return
        now = time.monotonic()
        with self._guard:
            for model_id, engine in list(self._engines.items()):
                if not self._busy.get(model_id) and now - self._last_used.get(model_id, now) > limit:
                    engine.unload()
        self.services.unload_idle()

    def info(self, entry: "ModelEntry") -> dict:
        engine = self._engines.get(entry.id)
        if engine is None and self.engine_name(entry) == "openai":  # cheap to build: shows replica health at once
            engine = self.get(entry)
        out: dict[str, Any] = {"model": entry.id, "engine": self.engine_name(entry), "source": entry.source}
        if engine is not None:
            out.update(engine.info())
        out["services"] = self.services.info()  # speech and grounding models: loaded, idle for how long
        return out

    def close(self) -> None:
        for engine in self._engines.values():
            try:
                engine.unload()
            except Exception:  # shutting down: best effort
                log.exception("unloading failed")
        self.services.close()
