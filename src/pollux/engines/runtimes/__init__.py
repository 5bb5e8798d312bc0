"""What runs a local model underneath the shared decoding: torch (transformers, the reference) or
OpenVINO (the fast CPU path). A runtime loads the weights, turns a prompt into model input (images
encoded), prefills it and steps one token at a time; everything else (sampling, constraints, stops,
boxes, the queue) is the engine's (`engines/local.py`, `engines/decoding.py`).

Which runtime serves a model is decided once, when it loads (`load_runtime`), and reported by
`Engine.info()` with the reason when it is not the one asked for.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pollux.errors import PolluxError

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.engines.chat import ChatFormat
    from pollux.engines.decoding import Session
    from pollux.engines.features import Background
    from pollux.engines.options import LocalOptions
    from pollux.engines.scheduler import GenerationQueue
    from pollux.prompt_types import Prompt
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines.runtimes")

TORCH = "transformers"  # the names `options.runtime` takes and `info()["runtime"]` reports
OPENVINO = "openvino"
Job = tuple[str, Callable[[], Any]]


class Prepared(Protocol):
    """A prompt as model input: its length in positions, and each image's size as the model saw it."""

    @property
    def length(self) -> int: ...

    @property
    def input_sizes(self) -> list[tuple[int, int]]: ...


class Runtime(ABC):
    name: str = ""
    keeps_state = False  # vision features / KV prefixes worth computing ahead (warm-up) and pinning (caches)

    def __init__(self, entry: "ModelEntry", settings: "Settings", options: "LocalOptions",
                 queue: "GenerationQueue", background: "Background"):
        self.entry, self.settings, self.options = entry, settings, options
        self.queue = queue  # the engine's: background work here gives way to requests
        self.background = background
        self.model: Any = None
        self.format: "ChatFormat | None" = None

    @abstractmethod
    def load(self, source: Path, format: "ChatFormat") -> Any:
        """Load the weights at `source`; returns the model (its `generation_config` is read)."""

    def unload(self) -> None:
        self.model = None

    @abstractmethod
    def prepare(self, prompt: "Prompt", cancel: threading.Event | None = None) -> Prepared:
        """Token ids and encoded images for `prompt`."""

    @abstractmethod
    def sessions(self, prepared: Any, count: int, cancel: threading.Event | None) -> Iterator["Session"]:
        """One prefilled session per candidate, each made when the previous candidate is done."""

    def generating(self) -> AbstractContextManager:
        """Held while a request generates."""
        return nullcontext()

    def info(self) -> dict[str, Any]:
        return {}

    # Optional, for runtimes that keep state (`keeps_state`).

    def warm_jobs(self, prompt: "Prompt", warm_prefix: bool) -> list[Job]:
        """Background jobs that compute what `prompt` will need (features, then its prefix)."""
        return []

    def pin(self, handle: str, prompt: "Prompt", wanted: Callable[[], bool], settled: Callable[[], None]) -> None:
        """Keep `prompt`'s state for an explicit cache while `wanted()`; `settled()` once done."""

    def unpin(self, handle: str) -> None:
        """Release what `pin(handle, ...)` kept."""


def openvino_unavailable(entry: "ModelEntry", settings: "Settings") -> str | None:
    """Why the OpenVINO runtime cannot serve `entry` here, or None when it can (before trying to load)."""
    from pollux.engines import ov_convert

    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("optimum.intel") is None:
        return "the OpenVINO runtime needs `openvino` and `optimum-intel`, which are not installed"
    if entry.family not in ov_convert.SUPPORTED_FAMILIES:
        return f"no OpenVINO path for model family {entry.family!r}"
    if str(settings.device).lower() not in ("cpu", "auto"):
        return f"device {settings.device!r} runs the transformers runtime"
    return None


def load_runtime(preference: str, entry: "ModelEntry", settings: "Settings", source: Path, format: "ChatFormat",
                 make: Callable[[type[Runtime]], Runtime]) -> tuple[Runtime, str | None]:
    """The runtime serving `entry`, loaded, and why it is not `preference` (None when it is).

    The one place a fallback is decided: OpenVINO missing, the family or device without a fast path,
    or a conversion the installed optimum-intel cannot do all serve the model with torch instead."""
    from pollux.engines.runtimes.torch import TorchRuntime

    reason = openvino_unavailable(entry, settings) if preference == OPENVINO else None
    if preference == OPENVINO and reason is None:
        from pollux.engines.runtimes.openvino import OpenVINORuntime

        runtime = make(OpenVINORuntime)
        try:
            runtime.load(source, format)
            return runtime, None
        except PolluxError:
            raise
        except Exception as e:  # an export the installed optimum-intel cannot do: stay correct, be slow
            log.warning("OpenVINO runtime for %s failed (%s); using transformers", entry.id, e)
            reason = f"OpenVINO conversion or load failed: {e}"
    runtime = make(TorchRuntime)
    runtime.load(source, format)
    return runtime, reason
