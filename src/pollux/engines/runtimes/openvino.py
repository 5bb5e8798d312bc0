"""The fast CPU runtime: OpenVINO through optimum-intel, int8 weights by default.

What it adds beneath the shared decoding:
* weights are converted once to OpenVINO IR (`ov_convert`, cached by source revision and setting);
* vision features are computed once per (file content, model, preprocessing) and cached
  (`features`), also ahead of time in the background after an upload (`warm_jobs`);
* the language model's KV cache is kept after a request, so the next prompt that starts the same
  way (the same file asked about again) only prefills what is new;
* logits are computed for the last position only (a Slice inserted before the LM head);
* a prompt whose prefill is long enough that torch runs it faster on this machine (measured once per
  machine and model: `prefill_choice`) is prefilled and decoded by a torch runtime of the same
  weights, loaded when the first such prompt arrives, fed this runtime's vision features.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollux.engines import ov_convert, ov_vision
from pollux.engines.decoding import Session
from pollux.engines.features import Features, FeatureStore, PinBudget, coarse_to_fine
from pollux.engines.kv_prefix import PrefixCache
from pollux.engines.runtimes import OPENVINO, Job, Runtime, prefill_choice
from pollux.errors import Cancelled
from pollux.prompt_types import Image, Prompt

if TYPE_CHECKING:
    import numpy as np
    import torch

    from pollux.engines.chat import ChatFormat
    from pollux.engines.runtimes.torch import TorchRuntime

log = logging.getLogger("pollux.engines.runtimes.openvino")

# Tokens per prefill step. OpenVINO's CPU attention is much slower for a chunk that follows cached
# positions than for a fresh prompt (AVX2), so a whole prompt (the input limit is 8192) goes at once,
# in the background too (a request arriving meanwhile waits for it: a 90 s video's prompt, ~1 min).
PREFILL_CHUNK = 8192
WARM_CHUNK = PREFILL_CHUNK
VISION_CHUNK = 2  # tiles per encoder call: a request waits at most this long behind background work
PIN_RETRIES = 100  # a cache's prefill waits behind requests; it is queued again at most this many times


@dataclass
class FastPrompt:
    """A prompt ready for the language model: ids, embeddings with vision features merged, identities."""

    ids: "torch.Tensor"  # [1, n] (the logits processors see the same ids the torch runtime would)
    embeds: "np.ndarray"  # [1, n, hidden]
    keys: list  # per position: the token id, or (feature key, index) for image positions
    input_sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.ids.shape[1])


class OpenVINORuntime(Runtime):
    name = OPENVINO
    keeps_state = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.converted: Path | None = None
        self.features = FeatureStore(self.options.feature_cache_mb * 1024 * 1024)
        self.prefix = PrefixCache(self.options.kv_snapshot_mb * 1024 * 1024)
        self.pin_budget = PinBudget(self.settings.cache_memory_bytes)
        self.stats = {"vision_calls": 0, "vision_tiles": 0, "vision_seconds": 0.0, "prefill_tokens": 0,
                      "reused_tokens": 0, "prefill_seconds": 0.0}
        self._vision_lock = threading.Lock()  # one encoder inference at a time (background or request)
        self._feature_prefix = ""
        self._reused: int | None = None  # positions the last prefill found in the KV state
        self.vision: dict[str, Any] = {}  # the vision encoder that runs (weights, precision) and why
        self.choice = prefill_choice.Choice(self.options.long_prompt_runtime, None, "not loaded")
        self.served = {prefill_choice.OPENVINO: 0, prefill_choice.TORCH: 0, "warmupsLeftToTransformers": 0}
        self._source: Path | None = None
        self._torch: "TorchRuntime | None" = None  # long prompts' runtime, loaded when the first arrives
        self._torch_lock = threading.Lock()

    # ------------------------------------------------------------------------------ lifecycle

    def load(self, source: Path, format: "ChatFormat") -> Any:
        from optimum.intel import OVModelForVisualCausalLM

        folder = ov_convert.ensure_converted(self.entry, self.settings, source)
        mode = ov_convert.weights_mode(self.entry)
        config: dict[str, str] = {"PERFORMANCE_HINT": "LATENCY"}
        if mode == "fp32":  # the reference setting: no reduced precision anywhere (same tokens as eager)
            config.update(INFERENCE_PRECISION_HINT="f32", KV_CACHE_PRECISION="f32")
        model = OVModelForVisualCausalLM.from_pretrained(str(folder), ov_config=config, compile=False)
        _logits_for_last_position(model.language_model.model)
        self.vision = ov_vision.apply(model, folder, ov_convert.vision_weights(self.entry), reference=mode == "fp32")
        model.compile()
        processor_settings = json.dumps(format.processor.image_processor.to_dict(), sort_keys=True, default=str)
        self._feature_prefix = f"{folder.name}:{hashlib.sha256(processor_settings.encode()).hexdigest()[:12]}"
        self.prefix = PrefixCache(self.prefix.max_bytes, "float32" if mode == "fp32" else "float16")
        self.converted, self.format, self.model, self._source = folder, format, model, source
        log.info("loaded %s with OpenVINO (%s weights) from %s", self.entry.id, mode, folder)
        self.choice = prefill_choice.decide(self.options, folder, self.entry.input_token_limit, self._machine_key,
                                            self._timers)
        return model

    def unload(self) -> None:
        with self._vision_lock, self._torch_lock:
            self.model = self._torch = None
            self.prefix.clear(pinned=True)
            self.features.clear(pinned=True)  # features belong to the loaded model's conversion
            self.pin_budget = PinBudget(self.settings.cache_memory_bytes)

    def info(self) -> dict[str, Any]:
        bins = sum(p.stat().st_size for p in self.converted.glob("*.bin")) if self.converted else 0
        long_runtime = self._torch
        memory = {"weightsBytes": bins, "featureCacheBytes": self.features.bytes, "kvSnapshotBytes": self.prefix.bytes,
                  "pinnedBytes": self.pin_budget.used, "pinBudgetBytes": self.pin_budget.max_bytes}
        if long_runtime is not None:
            memory["transformersWeightsBytes"] = sum(p.numel() * p.element_size()
                                                     for p in long_runtime.model.parameters())
        return {"weights": ov_convert.weights_mode(self.entry), "converted": str(self.converted),
                "vision": {k: v for k, v in self.vision.items() if k != "xml"},
                "prefill": {**self.choice.info(), "transformersLoaded": long_runtime is not None,
                            "served": dict(self.served)},
                "memory": memory,
                "featureCache": self.features.info(), "prefixCache": self.prefix.info(), "stats": dict(self.stats)}

    def generating(self) -> AbstractContextManager:
        return self.background.paused()

    # ------------------------------------------------------------------------------ prompt → input

    def prepare(self, prompt: Prompt, cancel: threading.Event | None = None) -> FastPrompt:
        """Token ids and input embeddings for `prompt`, vision features from the cache where possible."""
        import numpy as np

        images = prompt.images()
        found = [self.image_features(image, cancel) for image in images]
        ids = self.format.token_ids(prompt, [(f.rows, f.cols) for f in found])["input_ids"]  # type: ignore[union-attr]
        embeds = np.array(self.model.language_model.embed_tokens(ids), dtype=np.float32, copy=True)
        keys: list = ids[0].tolist()
        if images:
            mask = (ids[0] == self.model.config.image_token_id).numpy()
            vision = np.concatenate([f.array.reshape(-1, f.array.shape[-1]) for f in found])
            if int(mask.sum()) != vision.shape[0]:
                raise RuntimeError(f"{int(mask.sum())} image positions in the prompt but {vision.shape[0]} features")
            embeds[0, mask] = vision
            # An image without a stable identity gets a fresh object: it never matches a cached prefix.
            slots = iter([(self.feature_key(image) or object(), i) for image, f in zip(images, found)
                          for i in range(f.array.shape[0] * f.array.shape[1])])
            keys = [next(slots) if is_image else k for k, is_image in zip(keys, mask)]
        return FastPrompt(ids, embeds, keys, [im.image.size for im in images])

    def feature_key(self, image: Image) -> str | None:
        """An image's vision-feature identity: its content (the cache key), the processor's settings and
        the image's variant. A mediaResolution level that changes nothing in this image's processor
        arguments is left out (prompt.py appends it to the cache key): a SmolVLM2 video frame is one
        unsplit tile at every level, so the upload's warm-up (at the default level) serves LOW too."""
        if not image.cache_key:
            return None
        if image.resolution and self._level_changes_nothing(image):
            image = dataclasses.replace(image, resolution=None,
                                        cache_key=image.cache_key.removesuffix(f"/{image.resolution}"))
        return f"{self._feature_prefix}:{self.format.feature_variant(image)}:{image.cache_key}"  # type: ignore[union-attr]

    def _level_changes_nothing(self, image: Image) -> bool:
        arguments = getattr(self.format, "_image_kwargs", None)  # SmolVLMFormat: the processor's arguments
        return (arguments is not None and image.cache_key is not None
                and image.cache_key.endswith(f"/{image.resolution}")
                and arguments(image) == arguments(dataclasses.replace(image, resolution=None)))

    def image_features(self, image: Image, cancel: threading.Event | None = None) -> Features:
        """The vision features of one image: cached, being computed (then waited for), or computed now."""
        return self.features.get_or_compute(self.feature_key(image), lambda: self._encode_image(image, cancel))

    def _encode_image(self, image: Image, cancel: threading.Event | None) -> Features:
        import numpy as np

        inputs = self.format.image_inputs(image)  # type: ignore[union-attr]
        pixels, masks = inputs.pixel_values, inputs.pixel_attention_mask
        parts = []
        for start in range(0, pixels.shape[1], VISION_CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled("Generation was cancelled: the client went away.")
            with self._vision_lock:
                if self.model is None:
                    raise Cancelled("The model was unloaded.")
                began = time.perf_counter()
                part = self.model.get_vision_embeddings(pixels[:, start:start + VISION_CHUNK], input_ids=None,
                                                        pixel_attention_mask=masks[:, start:start + VISION_CHUNK])
                parts.append(np.array(part, dtype=np.float32, copy=True))
                self.stats["vision_seconds"] += time.perf_counter() - began
            self.stats["vision_calls"] += 1
            self.stats["vision_tiles"] += int(parts[-1].shape[0])
        return Features(np.concatenate(parts), inputs.rows, inputs.cols)

    # ------------------------------------------------------------------------------ language model

    def sessions(self, prepared: FastPrompt, count: int, cancel: threading.Event | None) -> Iterator[Session]:
        import torch

        def as_scores(array: "np.ndarray") -> "torch.Tensor":  # [vocab] → [1, vocab] float, as decoding takes
            return torch.from_numpy(array).reshape(1, -1).float()

        def advance(input_ids: "torch.Tensor") -> "torch.Tensor":
            return as_scores(self._step(int(input_ids[0, -1])))

        positions = prepared.length - self.prefix.reusable(prepared.keys)
        if self.choice.torch_for(positions):
            self.served[prefill_choice.TORCH] += 1
            log.info("%d positions to prefill: transformers runs this prompt (crossover %d)", positions,
                     self.choice.crossover)
            runtime = self._long_runtime()
            yield from runtime.sessions(self._as_torch_input(runtime, prepared), count, cancel)
            return
        self.served[prefill_choice.OPENVINO] += 1
        for _ in range(count):  # each candidate prefills again: all but the last position come from the KV state
            logits = self._prefill(prepared, cancel.is_set if cancel is not None else None)
            if logits is None:
                raise Cancelled("Generation was cancelled: the client went away.")
            yield Session(prepared.ids, as_scores(logits), advance, reused=self._reused)

    # ------------------------------------------------------------------------------ long prompts on torch

    def _long_runtime(self) -> "TorchRuntime":
        """The torch runtime of the same checkpoint, loaded on first use (its vision tower dropped: the
        features are this runtime's)."""
        with self._torch_lock:
            if self._torch is None:
                began = time.perf_counter()
                runtime = self._load_torch()
                runtime.drop_vision_tower()
                self._torch = runtime
                log.info("loaded the transformers runtime for long prompts in %.1f s", time.perf_counter() - began)
            return self._torch

    def _load_torch(self) -> "TorchRuntime":
        from pollux.engines.runtimes.torch import TorchRuntime

        runtime = TorchRuntime(self.entry, self.settings, self.options, self.queue, self.background)
        runtime.load(self._source, self.format)  # type: ignore[arg-type]
        return runtime

    def _as_torch_input(self, runtime: "TorchRuntime", fast: FastPrompt) -> Any:
        """The prompt as the torch runtime's input: the same ids, this runtime's vision features at the
        image positions (cached, warmed up), the torch model's own embeddings elsewhere."""
        mask = (fast.ids[0] == self.model.config.image_token_id).numpy()
        return runtime.embedded(fast.ids, mask, fast.embeds[0, mask])

    def _machine_key(self) -> dict:
        """What the prefill figures depend on (prefill_choice's stored key)."""
        import openvino as ov
        import torch

        core = ov.Core()
        compiled = self.model.language_model.request.get_compiled_model()
        return {"version": prefill_choice.VERSION, "lengths": list(prefill_choice.MEASURED),
                "cpu": {"openvino": sorted(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
                        "name": core.get_property("CPU", "FULL_DEVICE_NAME"), "flags": prefill_choice.cpu_flags(),
                        "cores": prefill_choice.usable_cores(), "torchThreads": torch.get_num_threads()},
                "versions": {p: ov_convert.package_version(p) for p in ("openvino", "optimum-intel", "torch",
                                                                          "transformers")},
                "precision": {"openvinoWeights": ov_convert.weights_mode(self.entry),
                              "openvinoInference": _property(compiled, "INFERENCE_PRECISION_HINT"),
                              "openvinoKvCache": _property(compiled, "KV_CACHE_PRECISION"),
                              "transformers": self.options.dtype}}

    def _timers(self) -> tuple[dict[str, "prefill_choice.Timer"], Callable[[], None]]:
        """Both runtimes' prefill timers for `prefill_choice.measure`, and what releases the torch one."""
        runtime = self._load_torch()

        def release() -> None:
            runtime.unload()
            self.prefix.invalidate(self.model.language_model.request)  # the timings left random state

        return {prefill_choice.OPENVINO: self._time_prefill, prefill_choice.TORCH: runtime.time_prefill}, release

    def _time_prefill(self, positions: int) -> float:
        import numpy as np

        hidden = self.model.config.text_config.hidden_size
        embeds = (np.random.default_rng(positions).standard_normal((1, positions, hidden)) * 0.02).astype(np.float32)
        self.model.language_model.request.reset_state()
        began = time.perf_counter()
        self._infer(embeds, 0)
        return time.perf_counter() - began

    # ------------------------------------------------------------------------------ prefill on OpenVINO

    def _prefill(self, fast: FastPrompt, stop: Callable[[], bool] | None = None,
                 chunk: int = PREFILL_CHUNK, whole: bool = False) -> "np.ndarray | None":
        """Run the prompt through the language model after the longest prefix already in the KV state.
        Returns the last position's logits, or None when `stop` ended it early (the state then holds
        a consistent, shorter prefix). `whole`: a prefix to keep, nothing to generate from (its last
        position need not run again when it is already in the state)."""
        import numpy as np

        request = self.model.language_model.request
        keep = self.prefix.prepare(request, fast.keys + ([None] if whole else []))
        logits = None
        began = time.perf_counter()
        try:
            for start in range(keep, fast.length, chunk):
                if stop is not None and stop():
                    return None
                end = min(fast.length, start + chunk)
                logits = self._infer(fast.embeds[:, start:end], start)
                self.prefix.live.extend(fast.keys[start:end])
                self.stats["prefill_tokens"] += end - start
        except BaseException:
            self.prefix.invalidate(request)
            raise
        self.stats["reused_tokens"] += keep
        self.stats["prefill_seconds"] += time.perf_counter() - began
        self._reused = keep
        if fast.length - keep > 256:  # a long prefill is worth a line (benchmarks/video_e2e.py reads it)
            log.info("prefilled %d positions after %d cached in %.2f s%s", fast.length - keep, keep,
                     time.perf_counter() - began, " (warm-up)" if whole else "")
        return np.asarray(logits) if logits is not None else np.empty(0, dtype=np.float32)

    def _step(self, token: int) -> "np.ndarray":
        import numpy as np

        embeds = self.model.language_model.embed_tokens(np.array([[token]], dtype=np.int64))
        try:
            logits = self._infer(embeds, len(self.prefix.live))
        except BaseException:
            self.prefix.invalidate(self.model.language_model.request)
            raise
        self.prefix.live.append(token)
        return logits

    def _infer(self, embeds: "np.ndarray", past: int) -> "np.ndarray":
        import numpy as np

        n = embeds.shape[1]
        request = self.model.language_model.request
        request.infer({"inputs_embeds": embeds,
                       "attention_mask": np.ones((1, past + n), dtype=np.int64),
                       "position_ids": np.arange(past, past + n, dtype=np.int64)[None],
                       "beam_idx": np.zeros(1, dtype=np.int32)})
        return request.get_tensor("logits").data[0, -1].copy()

    # ------------------------------------------------------------------------------ ahead of requests

    def warm_jobs(self, prompt: Prompt, warm_prefix: bool) -> list[Job]:
        """Its images first (video frames coarse-to-fine, so the frames a thinned prompt keeps come first),
        then, with `warm_prefix`, the prompt itself prefilled so a question after it prefills only its words."""
        jobs: list[Job] = []
        images = prompt.images()
        if any(im.modality == "VIDEO" for im in images):
            images = [images[i] for i in coarse_to_fine(len(images))]
        for image in images:
            key = self.feature_key(image)
            if key is not None and key not in self.features:
                jobs.append((key, functools.partial(self.image_features, image)))
        if warm_prefix:
            jobs.append((f"prefix:{id(prompt)}", lambda: self._warm(prompt)))
        return jobs

    def _warm(self, prompt: Prompt) -> None:
        """Prefill `prompt` up to the end of its last image block into the KV state (and keep a snapshot),
        so the question that follows prefills only its own words; gives way to requests."""
        with self.queue.background_turn() as mine:
            if not mine or self.model is None:
                return  # a request runs or waits: it decides what the state holds
            fast = self.prepare(prompt)
            slots = [i for i, key in enumerate(fast.keys) if isinstance(key, tuple)]
            end = min(fast.length, slots[-1] + 2) if slots else fast.length  # + the block's closing token
            head = FastPrompt(fast.ids[:, :end], fast.embeds[:, :end], fast.keys[:end])
            positions = end - self.prefix.reusable(head.keys + [None])
            if self.choice.torch_for(positions):  # the question will prefill it faster on torch
                self.served["warmupsLeftToTransformers"] += 1
                log.info("no KV warm-up of %d positions: transformers prefills them faster here", positions)
                return
            if self._prefill(head, stop=self.queue.requests_waiting, chunk=WARM_CHUNK, whole=True) is not None:
                self.prefix.save(self.model.language_model.request)

    def pin(self, handle: str, prompt: Prompt, wanted: Callable[[], bool], settled: Callable[[], None],
            tries: int = 0) -> None:
        """A cache's prefix: its vision features, then its KV state (after the requests in line), kept
        inside `cache_memory_bytes` while the cache lives."""
        if not wanted():
            return  # unpinned meanwhile
        for image in prompt.images():
            key = self.feature_key(image)
            if key is not None:
                self.image_features(image)
                self.features.pin(handle, key, self.pin_budget)
        if self.prefix.pinned(handle):
            return

        def again() -> None:
            self.pin(handle, prompt, wanted, settled, tries + 1)

        with self.queue.background_turn() as mine:
            if not mine:  # a request runs: it decides the state; try again after it
                if tries < PIN_RETRIES:
                    time.sleep(0.05)
                    self.background.submit(f"pin:{handle}", again)
                return
            fast = self.prepare(prompt)
            done = self._prefill(fast, stop=self.queue.requests_waiting, chunk=WARM_CHUNK, whole=True)
            if done is not None and wanted():
                self.prefix.pin(handle, self.model.language_model.request, self.pin_budget)
                settled()  # done (or over budget): the prompt's frames need not stay in memory
        if done is None and tries < PIN_RETRIES:  # gave way to a request: go on after it
            self.background.submit(f"pin:{handle}", again)

    def unpin(self, handle: str) -> None:
        self.features.unpin(handle, self.pin_budget)
        self.prefix.unpin(handle, self.pin_budget)


def _logits_for_last_position(model: Any) -> None:
    """Slice the hidden states to the last position before the LM head: a long prompt's first step
    would otherwise compute (and hold) logits for every prompt token."""
    import numpy as np
    from openvino import opset13 as ops

    result = model.output("logits").get_node()
    head = result.input_value(0).get_node()
    if head.get_type_name() != "MatMul":
        return  # an unfamiliar graph: leave it as exported
    hidden = head.input_value(0)
    last = ops.slice(hidden, np.array([-1], np.int64), np.array([np.iinfo(np.int64).max], np.int64),
                     np.array([1], np.int64), np.array([1], np.int64))
    head.input(0).replace_source_output(last.output(0))
    model.validate_nodes_and_infer_types()


def _property(compiled: Any, name: str) -> str:
    try:
        return str(compiled.get_property(name))
    except Exception:  # a property this OpenVINO version does not report
        return "-"
