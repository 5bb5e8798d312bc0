"""The local vision-language engine (SmolVLM2, Qwen2.5-VL): one piece for everything but the runtime.

Here: loading the processor and chat format, token counts, the generation queue (cancellable,
requests before background work), candidates, the shared decoding (`decoding.py`), bounding-box
answers (native grounding or the grounding service), and the hooks for explicit caches and the
upload warm-up. Underneath, a runtime (`runtimes/`: torch or OpenVINO) encodes images, prefills and
steps; which one is decided once per load and reported by `info()`.

Each token leaves as a delta as soon as it is decoded, and a set `cancel` stops generation
between two tokens.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pollux.engines import boxes, chat, weights
from pollux.engines.base import Capabilities, Delta, Engine, GenerationParams
from pollux.engines.decoding import Decoder, eos_ids
from pollux.engines.features import Background
from pollux.engines.options import LocalOptions
from pollux.engines.runtimes import TORCH, Prepared, Runtime, load_runtime
from pollux.engines.scheduler import GenerationQueue
from pollux.errors import Cancelled, ModelUnavailable
from pollux.prompt_types import Image, Prompt, Text, Turn

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines.local")

NATIVE_GROUNDING = {"qwen2_5_vl", "qwen2_vl"}
_QWEN_GROUNDING_PROMPT = "Outline the position of each {names} and output all the coordinates in JSON format."


class LocalEngine(Engine):
    name = "local"
    Options = LocalOptions
    options: LocalOptions
    default_runtime = TORCH  # what `options.runtime` picks when it is not set

    def __init__(self, entry: "ModelEntry", settings: "Settings"):
        super().__init__(entry, settings)
        self.capabilities = Capabilities(
            mime_types=frozenset({"image/*", "video/*", "audio/*"}), video=True, audio=False,
            boxes=entry.family in NATIVE_GROUNDING, json_schema=True, streaming=True)
        self.grounding_model = self.options.grounding
        self.wanted_runtime = self.options.runtime or self.default_runtime
        self.runtime: Runtime | None = None
        self.fallback_reason: str | None = None  # why `runtime` is not the one wanted
        self.format: chat.ChatFormat | None = None
        self.decoder: Decoder | None = None
        self.queue = GenerationQueue()
        self.background = Background(f"features-{entry.id}")  # warm-ups and cache pins, behind requests
        self._pins: dict[str, Prompt | None] = {}  # live explicit caches' prompts (None once settled), by handle
        self._load_lock = threading.Lock()

    # ------------------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        with self._load_lock:
            if self.runtime is not None:
                return
            source = weights.resolve(self.entry, self.settings)  # ModelUnavailable naming `pollux pull`
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(source)
            processor.tokenizer.model_input_names = ["input_ids", "attention_mask"]
            if self.options.image_longest_edge:  # fewer tiles per image: SmolVLM2 upsizes to 2048 px by default
                processor.image_processor.size = {"longest_edge": self.options.image_longest_edge}
            format = chat.format_for(self.entry.family, processor, self.options)
            runtime, self.fallback_reason = load_runtime(
                self.wanted_runtime, self.entry, self.settings, source, format,
                lambda cls: cls(self.entry, self.settings, self.options, self.queue, self.background))
            self.decoder = Decoder(format, eos_ids(runtime.model, processor.tokenizer),
                                   runtime.model.generation_config, self.entry.output_token_limit)
            self.format, self.runtime = format, runtime

    def unload(self) -> None:
        self.background.cancel_all()
        with self._load_lock, self.queue.exclusive():
            if self.runtime is not None:
                self.runtime.unload()
            self.runtime = self.format = self.decoder = None

    def is_loaded(self) -> bool:
        return self.runtime is not None

    @property
    def precomputes(self) -> bool:  # type: ignore[override]
        """Keeps vision features worth computing ahead: known once loaded, else what the wanted runtime does."""
        runtime = self.runtime
        return runtime.keeps_state if runtime is not None else self.wanted_runtime != TORCH

    def info(self) -> dict[str, Any]:
        runtime = self.runtime
        if runtime is None:
            return {"loaded": False}
        extra = runtime.info()
        out: dict[str, Any] = {"loaded": True, "family": self.entry.family, "runtime": runtime.name}
        if self.fallback_reason:
            out["fallbackReason"] = self.fallback_reason
        out.update({k: v for k, v in extra.items() if k != "memory"})
        out["memory"] = {**_memory(), **extra.get("memory", {})}
        out["queue"] = {"waiting": self.queue.waiting}
        return out

    # ------------------------------------------------------------------------------ counting

    def count_tokens(self, prompt: Prompt) -> int:
        self.load()
        return self.format.count(self._as_seen(prompt, pixels=False))  # type: ignore[union-attr]

    def count_text(self, text: str) -> int:
        self.load()
        return self.format.count_text(text)  # type: ignore[union-attr]

    def prepare_prompt(self, prompt: Prompt, cancel: threading.Event | None = None) -> Prepared:
        """The prompt as the runtime's model input (images encoded)."""
        self.load()
        return self.runtime.prepare(self._as_seen(prompt), cancel)  # type: ignore[union-attr]

    def _as_seen(self, prompt: Prompt, pixels: bool = True) -> Prompt:
        """The prompt as the model takes it: frames packed into grids where the level asks for it."""
        return prompt if self.format is None else self.format.as_seen(prompt, pixels)

    # ------------------------------------------------------------------------------ generation

    def generate(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> Iterator[Delta]:
        self.load()
        prompt = self._as_seen(prompt)
        arrived = time.perf_counter()
        with self.queue.turn(cancel), self.runtime.generating():  # type: ignore[union-attr]
            if (waited := time.perf_counter() - arrived) > 0.5:  # read by benchmarks/video_e2e.py
                log.info("request waited %.2f s for the model", waited)
            answer = self._box_answer(prompt, params, cancel)
            if answer is not None:  # every candidate the same
                tokens = self.count_text(answer)
                for i in range(max(1, params.candidate_count)):
                    yield Delta(answer, candidate=i, finish_reason="STOP", output_tokens=tokens)
                return
            yield from self._candidates(self.runtime.prepare(prompt, cancel), params, cancel)  # type: ignore[union-attr]

    def _candidates(self, prepared: Any, params: GenerationParams, cancel: threading.Event | None) -> Iterator[Delta]:
        count = max(1, params.candidate_count)
        sessions = self.runtime.sessions(prepared, count, cancel)  # type: ignore[union-attr]
        for index in range(count):
            if cancel is not None and cancel.is_set():
                raise Cancelled("Generation was cancelled: the client went away.")
            yield from self.decoder.run(next(sessions), params, index, cancel)  # type: ignore[union-attr]

    # ------------------------------------------------------------------------------ boxes

    def _box_answer(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None) -> str | None:
        """A Gemini-convention box answer when the prompt carries a box request; None otherwise."""
        images = [im for im in prompt.images() if im.modality == "IMAGE"]
        if not images or prompt.boxes is None:
            return None
        names, many = list(prompt.boxes.phrases), prompt.boxes.many
        found: list[boxes.Detection] = []
        if self.entry.family in NATIVE_GROUNDING:
            for i, image in enumerate(images):
                found += self._native_boxes(image, names, many, i, cancel)
        if not found:
            grounding = self.services.grounding
            try:
                with grounding.use(self.grounding_model) as grounder:
                    for i, image in enumerate(images):
                        found += grounder.detect(image.image, names, many=many, image_index=i)
            except ModelUnavailable as e:
                if self.entry.family in NATIVE_GROUNDING:
                    return None  # the model's own answer is still better than an error
                raise ModelUnavailable(f"Bounding boxes for {self.entry.id} come from a grounding model. {e.message}",
                                       reason=e.reason, metadata=e.metadata) from None
        if prompt.boxes.json or params.response_mime_type == "application/json":
            return boxes.to_json_text(found, params.response_schema)
        return boxes.to_gemini_text(found, len(images))

    def _native_boxes(self, image: Image, names: list[str], many: bool, index: int,
                      cancel: threading.Event | None) -> list[boxes.Detection]:
        """Ask the model in its own grounding idiom, then convert its native boxes."""
        ask = Prompt([Turn("user", [image, Text(_QWEN_GROUNDING_PROMPT.format(names=", ".join(names)))])])
        prepared = self.runtime.prepare(ask, cancel)  # type: ignore[union-attr]
        params = GenerationParams(temperature=0.0, max_output_tokens=256)
        answer = "".join(d.text for d in self._candidates(prepared, params, cancel))
        found = boxes.native_detections(answer, self.entry.family, prepared.input_sizes[0], image=index)
        for d in found:
            d.label = d.label or names[0]
        if not many:
            firsts: dict[str, boxes.Detection] = {}
            for d in found:
                firsts.setdefault(d.label, d)
            found = list(firsts.values())
        return found

    # ------------------------------------------------------------------------------ ahead of requests

    def precompute(self, load_prompt: Callable[[], Prompt], warm_prefix: bool = True,
                   done: threading.Event | None = None, then: Callable[[], None] | None = None) -> None:
        """Compute a prompt's vision features (and, with `warm_prefix`, its KV prefix) in the background;
        returns at once. `load_prompt` (called in the background) gives the prompt a request about a file
        would start with. `done` is set once all of that has run, failed or been dropped (an unload)."""
        finish = done.set if done is not None else None

        def plan() -> None:
            jobs: list[tuple[str, Callable[[], Any]]] = []
            try:
                self.load()
                runtime = self.runtime
                if runtime is not None and runtime.keeps_state:
                    jobs = runtime.warm_jobs(self._as_seen(load_prompt()), warm_prefix)
            finally:
                if finish is not None:
                    jobs.append((f"done:{id(done)}", finish))
                if then is not None:
                    jobs.append((f"then:{id(then)}", then))
                # Someone waiting (an image held in PROCESSING) goes ahead of queued video frames.
                for key, job in (reversed(jobs) if done is not None else jobs):
                    self.background.submit(key, job, first=done is not None, on_drop=finish)

        self.background.submit(f"plan:{id(load_prompt)}", plan, first=True, on_drop=finish)

    def pin(self, handle: str, prompt: Prompt) -> None:
        """A cache's prefix, computed in the background (ahead of queued warm-ups) and kept while it lives."""
        self._pins[handle] = prompt
        self.background.submit(f"pin:{handle}", lambda: self._pin(handle, prompt), first=True)

    def _pin(self, handle: str, prompt: Prompt) -> None:
        if self._pins.get(handle) is not prompt:
            return  # unpinned meanwhile
        self.load()
        runtime = self.runtime
        if runtime is not None and runtime.keeps_state:
            runtime.pin(handle, self._as_seen(prompt), wanted=lambda: self._pins.get(handle) is prompt,
                        settled=lambda: self._pins.__setitem__(handle, None))

    def unpin(self, handle: str) -> None:
        self._pins.pop(handle, None)
        runtime = self.runtime
        if runtime is not None:
            runtime.unpin(handle)

    # ------------------------------------------------------------------------------ the runtime's kept state
    # (read by tests and benchmarks: the OpenVINO runtime's caches and counters)

    @property
    def model(self) -> Any:
        return self.runtime.model if self.runtime is not None else None

    @property
    def stats(self) -> dict[str, Any]:
        return getattr(self.runtime, "stats", {})

    @property
    def features(self) -> Any:
        return self._kept().features  # type: ignore[attr-defined]

    @property
    def prefix(self) -> Any:
        return self._kept().prefix  # type: ignore[attr-defined]

    @property
    def pin_budget(self) -> Any:
        return self._kept().pin_budget  # type: ignore[attr-defined]

    @property
    def converted(self) -> Any:
        return self._kept().converted  # type: ignore[attr-defined]

    def _kept(self) -> Runtime:
        if self.runtime is None or not self.runtime.keeps_state:
            raise AttributeError(f"{self.entry.id} runs on a runtime that keeps no state")
        return self.runtime


def _memory() -> dict[str, int]:
    try:
        import psutil

        return {"processRssBytes": int(psutil.Process(os.getpid()).memory_info().rss)}
    except Exception:  # psutil missing: memory is best effort
        return {}
