"""Helper models with a model's lifecycle: speech recognition (`speech.py`) and grounding
(`grounding.py`) load on first use, unload after `idle_unload_seconds` without use, and show in
models.get (`polluxRuntime.services`). The hub owns one `Services` and hands it to its engines."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pollux.engines.grounding import GroundingService
    from pollux.engines.speech import SpeechService
    from pollux.settings import Settings

M = TypeVar("M")


class ModelService(ABC, Generic[M]):
    """Models by name, each loaded once on first use (concurrent users wait for that load) and kept
    while in use or used within `idle_unload_seconds`."""

    kind = "model"

    def __init__(self, settings: "Settings"):
        self.settings = settings
        self._models: dict[str, M] = {}
        self._busy: dict[str, int] = {}
        self._last_used: dict[str, float] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.loads = 0  # models loaded so far (an unloaded one loads again on next use)

    @abstractmethod
    def _load(self, name: str) -> M:
        """Load model `name`; raise `ModelUnavailable` (naming `pollux pull`) when it is absent."""

    @contextmanager
    def use(self, name: str) -> Iterator[M]:
        """Model `name`, loaded now if needed, and never unloaded while held."""
        with self._guard:
            self._busy[name] = self._busy.get(name, 0) + 1
            load_lock = self._loading.setdefault(name, threading.Lock())
        try:
            with load_lock:
                model = self._models.get(name)
                if model is None:
                    model = self._load(name)
                    with self._guard:
                        self._models[name] = model
                        self.loads += 1
            yield model
        finally:
            with self._guard:
                self._busy[name] -= 1
                self._last_used[name] = time.monotonic()

    def unload_idle(self) -> list[str]:
        """Unload models idle longer than `idle_unload_seconds` (0: never); returns their names."""
        limit = self.settings.idle_unload_seconds
        if limit <= 0:
            return []
        now = time.monotonic()
        with self._guard:
            idle = [n for n in self._models if not self._busy.get(n) and now - self._last_used.get(n, now) > limit]
            for name in idle:
                del self._models[name]
        return idle

    def unload(self) -> None:
        with self._guard:
            self._models.clear()

    def loaded(self) -> list[str]:
        with self._guard:
            return list(self._models)

    def info(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._guard:
            return {"loaded": [{"model": name, "inUse": self._busy.get(name, 0),
                                "idleSeconds": round(now - self._last_used.get(name, now), 1)}
                               for name in self._models]}


class Services:
    """The helper models every engine may use, with one lifecycle."""

    def __init__(self, settings: "Settings"):
        from pollux.engines.grounding import GroundingService
        from pollux.engines.speech import SpeechService

        self.speech: "SpeechService" = SpeechService(settings)
        self.grounding: "GroundingService" = GroundingService(settings)

    def all(self) -> list[ModelService]:
        return [self.speech, self.grounding]

    def unload_idle(self) -> None:
        for service in self.all():
            service.unload_idle()

    def close(self) -> None:
        for service in self.all():
            service.unload()

    def info(self) -> dict[str, Any]:
        return {service.kind: service.info() for service in self.all()}
