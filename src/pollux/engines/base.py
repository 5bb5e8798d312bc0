"""The engine interface, declared capabilities, and the registry (entry-point group `pollux.engines`).

An engine is constructed with its catalog entry and the settings, loads lazily, and turns an
engine-neutral `Prompt` into a stream of `Delta`s. It is called from a worker thread; `cancel`
is set when the client goes away and must stop generation promptly.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from pollux.engines import options as engine_options
from pollux.errors import InvalidArgument
from pollux.prompt_types import FunctionCall, Prompt

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.engines.services import Services
    from pollux.settings import Settings


@dataclass(frozen=True)
class Capabilities:
    mime_types: frozenset[str] = frozenset({"image/*"})  # exact types or "image/*" patterns
    video: bool = False  # takes timestamped frames
    audio: bool = False  # takes raw audio (others get the transcript)
    boxes: bool = False  # native grounding; others are served by a grounding model
    json_schema: bool = False  # constrained decoding for responseSchema
    streaming: bool = True  # yields deltas as tokens are produced
    max_images: int | None = None
    tools: bool = False  # function declarations, functionCall / functionResponse parts

    def accepts(self, mime: str) -> bool:
        from pollux.media.mime import normalize  # a File keeps the type its client named (audio/mpeg)

        mime = normalize(mime)
        major = mime.split("/", 1)[0]
        return mime in self.mime_types or f"{major}/*" in self.mime_types


@dataclass
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] = field(default_factory=list)
    seed: int | None = None
    candidate_count: int = 1
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str = "text/plain"
    response_schema: dict[str, Any] | None = None  # always plain JSON Schema (converted at the edge)
    response_logprobs: bool = False
    logprobs: int | None = None  # top candidates per token
    tools: list[dict[str, Any]] | None = None  # [{name, description, parameters (JSON Schema)}]
    tool_config: dict[str, Any] | None = None  # {mode: AUTO|ANY|NONE|VALIDATED, allowed_function_names}


@dataclass
class TokenLogprob:
    """One generated token's log probability, and the most likely alternatives at its position."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Delta:
    """New text for one candidate; the last delta of a candidate carries `finish_reason`."""

    text: str = ""
    candidate: int = 0
    finish_reason: str | None = None  # STOP | MAX_TOKENS | OTHER
    output_tokens: int | None = None  # native tokens generated so far for this candidate
    function_calls: list[FunctionCall] | None = None  # on the last delta of a candidate that called tools
    reused_tokens: int | None = None  # on a candidate's first delta: prompt positions a KV prefix served
    logprobs: list[TokenLogprob] | None = None  # the tokens of this delta (responseLogprobs)
    prompt_tokens: int | None = None  # on a candidate's last delta: the server's own count of the prompt (remote)


class Engine(ABC):
    name: str = "engine"
    capabilities: Capabilities = Capabilities()
    # False for engines that run elsewhere (remote servers): the hub never serialises their requests.
    serialised: bool = True
    # What `count_tokens` is: "model" (the local tokenizer), "server" (the server's tokenizer), "estimate".
    native_count_source: str = "model"
    # The catalog entry's `options`, typed (pydantic, extra="forbid" for the built-ins); checked when the
    # catalog loads, so a misspelled key is a start-up error.
    Options: type[BaseModel] = engine_options.EngineOptions
    # Computes reusable state (vision features, a KV prefix) worth doing ahead of requests: the upload
    # warm-up targets only these (see `precompute`).
    precomputes: bool = False
    # Loaded, a request of text and prepared images costs it no tokenizer, model or I/O to prepare (with
    # `quick_count`): such requests are prepared on the event loop (generation.GenerationService._light).
    prepares_on_loop: bool = False

    def __init__(self, entry: "ModelEntry", settings: "Settings"):
        self.entry = entry
        self.settings = settings
        self.options: Any = engine_options.validate(entry, type(self).Options)
        self._services: "Services | None" = None

    @property
    def services(self) -> "Services":
        """The helper models (speech, grounding) the hub shares; an engine built alone gets its own."""
        if self._services is None:
            from pollux.engines.services import Services

            self._services = Services(self.settings)
        return self._services

    @services.setter
    def services(self, services: "Services") -> None:
        self._services = services

    def load(self) -> None:
        """Load weights; raise `ModelUnavailable` (naming `pollux pull`) if they are absent."""

    def unload(self) -> None:
        """Free memory; the next request loads again."""

    @abstractmethod
    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens the local model really consumes for this prompt (its native count)."""

    def quick_count(self, prompt: Prompt) -> tuple[int, str] | None:
        """For a generation (not countTokens): (native count, its `native_count_source`) when it is plain
        arithmetic, no tokenizer or I/O; None when `count_tokens` must do it."""
        return None

    @abstractmethod
    def generate(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> Iterator[Delta]:
        """Yield deltas; each candidate ends with a delta that has `finish_reason` set."""

    def info(self) -> dict[str, Any]:
        """Runtime facts for models.get / metrics (loaded, memory)."""
        return {}

    def is_loaded(self) -> bool:
        """Holds a loaded model now (the warm-up also targets every loaded engine)."""
        return bool(self.info().get("loaded"))

    def count_text(self, text: str) -> int:
        """Tokens of a text in Gemini's accounting; an engine with a tokenizer counts with it."""
        from pollux.media.tokens import count_text_estimate

        return count_text_estimate(text)

    def precompute(self, load_prompt: Callable[[], Prompt], warm_prefix: bool = True,
                   done: threading.Event | None = None, then: Callable[[], None] | None = None) -> None:
        """Compute, in the background, what the prompt `load_prompt()` will need (an uploaded file's
        features, its prefix); returns at once and sets `done` once finished, then runs `then` (more
        background work, behind this). Engines that keep nothing (`precomputes = False`) just set `done`."""
        if done is not None:
            done.set()

    async def astream(self, prompt: Prompt, params: GenerationParams) -> AsyncIterator[Delta]:
        """Engines with `serialised = False` stream on the event loop instead; closing the iterator cancels."""
        raise NotImplementedError(f"{self.name} streams from a worker thread (generate)")
        yield  # pragma: no cover  (makes this an async generator)

    # An explicit cache (cachedContents) pins its prompt prefix. Engines that compute reusable state
    # (vision features, a KV prefix) keep it while the cache lives, inside `settings.cache_memory_bytes`,
    # warming it in the background; the others (the emulator, a remote engine, which is sent the same
    # prefix bytes every time) need do nothing.

    def pin(self, handle: str, prompt: Prompt) -> None:
        """Keep `prompt`'s computed state under `handle` until `unpin(handle)`; returns at once."""

    def unpin(self, handle: str) -> None:
        """Release what `pin(handle, ...)` kept (the cache was deleted or expired)."""


@lru_cache(maxsize=None)
def engine_classes() -> dict[str, "_lazy | EntryPoint"]:
    """Engines registered under the `pollux.engines` entry-point group, plus the built-ins."""
    classes: dict[str, _lazy | EntryPoint] = {}
    for name, path in BUILTIN_ENGINES.items():
        classes[name] = _lazy(path)
    for ep in entry_points(group="pollux.engines"):
        classes.setdefault(ep.name, ep)
    return classes


BUILTIN_ENGINES = {
    "emulator": "pollux.engines.emulator:EmulatorEngine",
    "transformers": "pollux.engines.transformers:TransformersEngine",
    "openvino": "pollux.engines.openvino:OpenVINOEngine",
    "openai": "pollux.engines.remote:RemoteEngine",
}


class _lazy:
    """Import an engine class only when it is first used (torch is heavy)."""

    def __init__(self, path: str):
        self.path = path

    def load(self) -> type[Engine]:
        module, _, attr = self.path.partition(":")
        return getattr(__import__(module, fromlist=[attr]), attr)


def engine_class(name: str) -> type[Engine]:
    """A registered engine by name, or any importable "module:Class" (no packaging needed)."""
    if ":" in name:
        return _lazy(name).load()
    found = engine_classes().get(name)
    if found is None:
        raise InvalidArgument(f"Unknown engine {name!r}; known: {sorted(engine_classes())}")
    return found.load()  # both entry points and _lazy expose .load()
