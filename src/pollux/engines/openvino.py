"""The fast CPU engine: OpenVINO (through optimum-intel) for the models it supports, int8 weights by default.

It is the transformers engine with a different runtime underneath: the same chat formats, token
counts, sampling, constrained decoding, stop sequences and grounding, and the same streaming loop
(one token per step, `cancel` checked between steps). What differs:

* weights are converted once to OpenVINO IR (`ov_convert`, cached by source revision and setting);
* vision features are computed once per (file content, model, preprocessing) and cached
  (`features`), also ahead of time in the background after an upload (`precompute`);
* the language model's KV cache is kept after a request, so the next prompt that starts the same
  way (the same file asked about again) only prefills what is new;
* logits are computed for the last position only (a Slice inserted before the LM head).

Families without a fast path (and any conversion failure) fall back to the transformers engine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollux.engines import ov_convert, weights
from pollux.engines.base import Delta, GenerationParams
from pollux.engines.features import Background, Features, FeatureStore, PinBudget, coarse_to_fine
from pollux.engines.kv_prefix import PrefixCache
from pollux.engines.transformers import TransformersEngine, _eos_ids
from pollux.errors import Cancelled, PolluxError
from pollux.prompt_types import Image, Prompt

if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("optimum.intel") is None:
    # The hub falls back to the transformers engine on ImportError.
    raise ImportError("the openvino engine needs `openvino` and `optimum-intel`")

if TYPE_CHECKING:
    import numpy as np
    import torch

    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines.openvino")

# Tokens per prefill step. OpenVINO's CPU attention is much slower for a chunk that follows cached
# positions than for a fresh prompt (AVX2), so a whole prompt (the input limit is 8192) goes at once,
# in the background too (a request arriving meanwhile waits for it: a 90 s video's prompt, ~1 min).
PREFILL_CHUNK = 8192
WARM_CHUNK = PREFILL_CHUNK
VISION_CHUNK = 2  # tiles per encoder call: a request waits at most this long behind background work
DEFAULT_FEATURE_CACHE_MB = 512
DEFAULT_KV_SNAPSHOT_MB = 384
PIN_RETRIES = 100  # a cache's prefill waits behind requests; it is queued again at most this many times


@dataclass
class FastPrompt:
    """A prompt ready for the language model: ids, embeddings with vision features merged, identities."""

    ids: "torch.Tensor"  # [1, n] (the logits processors see the same ids the transformers engine would)
    embeds: "np.ndarray"  # [1, n, hidden]
    keys: list  # per position: the token id, or (feature key, index) for image positions

    @property
    def length(self) -> int:
        return int(self.ids.shape[1])


class OpenVINOEngine(TransformersEngine):
    name = "openvino"

    def __init__(self, entry: "ModelEntry", settings: "Settings"):
        super().__init__(entry, settings)
        self._load_lock: Any = threading.RLock()  # the fallback path calls TransformersEngine.load inside it
        self.fast = False
        self.fallback_reason: str | None = None
        self.converted: Path | None = None
        mb = int(entry.options.get("feature_cache_mb", DEFAULT_FEATURE_CACHE_MB))
        self.features = FeatureStore(mb * 1024 * 1024)
        self.background = Background(f"features-{entry.id}")
        self.prefix = PrefixCache(int(entry.options.get("kv_snapshot_mb", DEFAULT_KV_SNAPSHOT_MB)) * 1024 * 1024)
        self.stats = {"vision_calls": 0, "vision_tiles": 0, "vision_seconds": 0.0, "prefill_tokens": 0,
                      "reused_tokens": 0}
        self._vision_lock = threading.Lock()  # one encoder inference at a time (background or request)
        self._waiting = 0  # requests waiting for the model: background prefill gives way to them
        self._waiting_lock = threading.Lock()
        self._feature_prefix = ""
        self.pin_budget = PinBudget(settings.cache_memory_bytes)
        self._pins: dict[str, Prompt | None] = {}  # live explicit caches' prompts (None once pinned), by handle
        self._reused: int | None = None  # positions the last prefill found in the KV state

    # ------------------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        with self._load_lock:
            if self.model is not None:
                return
            reason = self._no_fast_path()
            if reason is None:
                source = weights.resolve(self.entry, self.settings)  # ModelUnavailable naming `pollux pull`
                try:
                    self.converted = ov_convert.ensure_converted(self.entry, self.settings, source)
                    self._load_openvino(source, self.converted)
                    return
                except PolluxError:
                    raise
                except Exception as e:  # an export the installed optimum-intel cannot do: stay correct, be slow
                    log.warning("OpenVINO path for %s failed (%s); using transformers", self.entry.id, e)
                    reason = f"OpenVINO conversion or load failed: {e}"
            self.fallback_reason = reason
            self.fast = False
            super().load()

    def _no_fast_path(self) -> str | None:
        if self.entry.family not in ov_convert.SUPPORTED_FAMILIES:
            return f"no OpenVINO path for model family {self.entry.family!r}"
        if str(self.settings.device).lower() not in ("cpu", "auto"):
            return f"device {self.settings.device!r} runs the transformers engine"
        if str(self.entry.options.get("runtime", "openvino")) == "transformers":
            return "options.runtime = transformers"
        return None

    def _load_openvino(self, source: Path, folder: Path) -> None:
        from optimum.intel import OVModelForVisualCausalLM
        from transformers import AutoProcessor

        from pollux.engines import chat

        processor = AutoProcessor.from_pretrained(source)
        processor.tokenizer.model_input_names = ["input_ids", "attention_mask"]
        if "image_longest_edge" in self.entry.options:  # as TransformersEngine.load: fewer tiles per image
            processor.image_processor.size = {"longest_edge": int(self.entry.options["image_longest_edge"])}
        mode = ov_convert.weights_mode(self.entry)
        config: dict[str, str] = {"PERFORMANCE_HINT": "LATENCY"}
        if mode == "fp32":  # the reference setting: no reduced precision anywhere (same tokens as eager)
            config.update(INFERENCE_PRECISION_HINT="f32", KV_CACHE_PRECISION="f32")
        model = OVModelForVisualCausalLM.from_pretrained(str(folder), ov_config=config, compile=False)
        _logits_for_last_position(model.language_model.model)
        model.compile()
        self.format = chat.format_for(self.entry.family, processor, self.entry.options)
        self.eos_ids = _eos_ids(model, processor.tokenizer)
        digest = hashlib.sha256(json.dumps(processor.image_processor.to_dict(), sort_keys=True, default=str).encode())
        self._feature_prefix = f"{folder.name}:{digest.hexdigest()[:12]}"
        self.prefix = PrefixCache(self.prefix.max_bytes, "float32" if mode == "fp32" else "float16")
        self.fast = True
        self.fallback_reason = None
        self.model = model
        log.info("loaded %s with OpenVINO (%s weights) from %s", self.entry.id, mode, folder)

    def unload(self) -> None:
        self.background.cancel_all()
        with self._load_lock, self._run_lock, self._vision_lock:
            self.model = None
            self.format = None
            self.fast = False
            self.prefix.clear(pinned=True)
            self.features.clear(pinned=True)  # features belong to the loaded model's conversion
            self.pin_budget = PinBudget(self.settings.cache_memory_bytes)  # pins are warmed again on next use

    def info(self) -> dict[str, Any]:
        if self.model is None:
            return {"loaded": False}
        if not self.fast:
            return {**super().info(), "runtime": "transformers", "fallbackReason": self.fallback_reason,
                    "memory": _memory()}
        bins = sum(p.stat().st_size for p in self.converted.glob("*.bin")) if self.converted else 0
        return {"loaded": True, "family": self.entry.family, "runtime": "openvino",
                "weights": ov_convert.weights_mode(self.entry), "converted": str(self.converted),
                "memory": {**_memory(), "weightsBytes": bins, "featureCacheBytes": self.features.bytes,
                           "kvSnapshotBytes": self.prefix.bytes, "pinnedBytes": self.pin_budget.used,
                           "pinBudgetBytes": self.pin_budget.max_bytes},
                "featureCache": self.features.info(), "prefixCache": self.prefix.info(), "stats": dict(self.stats)}

    # ------------------------------------------------------------------------------ generation

    def generate(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> Iterator[Delta]:
        self.load()
        if not self.fast:
            yield from super().generate(prompt, params, cancel)
            return
        self._acquire(cancel)
        try:
            with self.background.paused():
                boxed = self._box_deltas(prompt, params, cancel)
                if boxed is not None:
                    yield from boxed
                    return
                fast = self.prepare_prompt(prompt, cancel)
                for index in range(max(1, params.candidate_count)):
                    yield from self._ov_candidate(fast, params, index, cancel)
        finally:
            self._run_lock.release()

    def _acquire(self, cancel: threading.Event) -> None:
        """The model for this request, queued behind others; a background prefill gives way."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            super()._acquire(cancel)
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def prepare_prompt(self, prompt: Prompt, cancel: threading.Event | None = None) -> FastPrompt:
        """Token ids and input embeddings for `prompt`, vision features from the cache where possible."""
        import numpy as np

        images = prompt.images()
        found = [self.image_features(image, cancel) for image in images]
        with self._tokenizer_lock:
            text = self.format.text(prompt)  # type: ignore[union-attr]
            if images:
                text = self.format.processor.expand_text_with_image_tokens(  # type: ignore[union-attr]
                    [text], image_rows=[[f.rows for f in found]], image_cols=[[f.cols for f in found]])[0]
            ids = self.format._tokenize(text)["input_ids"]  # type: ignore[union-attr]
        embeds = np.array(self.model.language_model.embed_tokens(ids), dtype=np.float32, copy=True)
        keys: list = ids[0].tolist()
        if images:
            mask = (ids[0] == self.model.config.image_token_id).numpy()
            vision = np.concatenate([f.array.reshape(-1, f.array.shape[-1]) for f in found])
            if int(mask.sum()) != vision.shape[0]:
                raise RuntimeError(f"{int(mask.sum())} image positions in the prompt but {vision.shape[0]} features")
            embeds[0, mask] = vision
            # An image without a stable identity gets a fresh object: it never matches a cached prefix.
            slots = iter([(self._ov_feature_key(image) or object(), i) for image, f in zip(images, found)
                          for i in range(f.array.shape[0] * f.array.shape[1])])
            keys = [next(slots) if is_image else k for k, is_image in zip(keys, mask)]
        return FastPrompt(ids, embeds, keys)

    def _ov_candidate(self, fast: FastPrompt, params: GenerationParams, index: int,
                      cancel: threading.Event) -> Iterator[Delta]:
        import torch

        logits = self._ov_prefill(fast, cancel.is_set)
        if logits is None:
            raise Cancelled("Generation was cancelled: the client went away.")

        def as_scores(array: "np.ndarray") -> "torch.Tensor":  # [vocab] → [1, vocab] float, as the loop takes
            return torch.from_numpy(array).reshape(1, -1).float()

        def advance(input_ids: "torch.Tensor") -> "torch.Tensor":
            return as_scores(self._ov_step(int(input_ids[0, -1])))

        reused = self._reused  # set by the prefill just run: reported once (implicit caching's count)
        for delta in self._token_loop(fast.ids, as_scores(logits), advance, params, index, cancel):
            if reused is not None:
                delta.reused_tokens, reused = reused, None
            yield delta

    # ------------------------------------------------------------------------------ language model

    def _ov_prefill(self, fast: FastPrompt, stop: Callable[[], bool] | None = None,
                    chunk: int = PREFILL_CHUNK, whole: bool = False) -> "np.ndarray | None":
        """Run the prompt through the language model after the longest prefix already in the KV state.
        Returns the last position's logits, or None when `stop` ended it early (the state then holds
        a consistent, shorter prefix). `whole`: a prefix to keep, nothing to generate from (its last
        position need not run again when it is already in the state)."""
        import numpy as np

        request = self.model.language_model.request
        keep = self.prefix.prepare(request, fast.keys + ([None] if whole else []))
        logits = None
        try:
            for start in range(keep, fast.length, chunk):
                if stop is not None and stop():
                    return None
                end = min(fast.length, start + chunk)
                logits = self._ov_infer(fast.embeds[:, start:end], start)
                self.prefix.live.extend(fast.keys[start:end])
                self.stats["prefill_tokens"] += end - start
        except BaseException:
            self.prefix.invalidate(request)
            raise
        self.stats["reused_tokens"] += keep
        self._reused = keep
        return np.asarray(logits) if logits is not None else np.empty(0, dtype=np.float32)

    def _ov_step(self, token: int) -> "np.ndarray":
        import numpy as np

        embeds = self.model.language_model.embed_tokens(np.array([[token]], dtype=np.int64))
        try:
            logits = self._ov_infer(embeds, len(self.prefix.live))
        except BaseException:
            self.prefix.invalidate(self.model.language_model.request)
            raise
        self.prefix.live.append(token)
        return logits

    def _ov_infer(self, embeds: "np.ndarray", past: int) -> "np.ndarray":
        import numpy as np

        n = embeds.shape[1]
        request = self.model.language_model.request
        request.infer({"inputs_embeds": embeds,
                       "attention_mask": np.ones((1, past + n), dtype=np.int64),
                       "position_ids": np.arange(past, past + n, dtype=np.int64)[None],
                       "beam_idx": np.zeros(1, dtype=np.int32)})
        return request.get_tensor("logits").data[0, -1].copy()

    # ------------------------------------------------------------------------------ vision

    def _ov_feature_key(self, image: Image) -> str | None:
        if not image.cache_key:
            return None
        splits = self.format._splits(image)  # type: ignore[union-attr]
        return f"{self._feature_prefix}:{'tiles' if splits else 'single'}:{image.cache_key}"

    def image_features(self, image: Image, cancel: threading.Event | None = None) -> Features:
        """The vision features of one image: cached, being computed (then waited for), or computed now."""
        return self.features.get_or_compute(self._ov_feature_key(image), lambda: self._ov_encode_image(image, cancel))

    def _ov_encode_image(self, image: Image, cancel: threading.Event | None) -> Features:
        import numpy as np

        out = self.format.processor.image_processor(  # type: ignore[union-attr]
            [[image.image]], **self.format._image_kwargs(image),  # type: ignore[union-attr]
            return_row_col_info=True, return_tensors="pt")
        pixels, masks = out["pixel_values"], out["pixel_attention_mask"]
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
        return Features(np.concatenate(parts), int(out["rows"][0][0]), int(out["cols"][0][0]))

    def precompute(self, load_prompt: Callable[[], Prompt], warm_prefix: bool = True,
                   done: threading.Event | None = None) -> None:
        """Compute a prompt's vision features ahead of the question, in the background; returns at once.

        `load_prompt` (called in the background) gives the prompt a request about a file would
        start with. Its images are queued first (video frames coarse-to-fine, so the frames a thinned
        prompt keeps come first); then, with `warm_prefix`, the prompt itself is prefilled so a
        question that follows it only prefills its own words. `done` is set once all of that has run,
        failed or been dropped (an unload).
        """
        finish = done.set if done is not None else None

        def plan() -> None:
            jobs: list[tuple[str, Callable[[], Any]]] = []
            try:
                self.load()
                if not self.fast:
                    return
                prompt = load_prompt()
                images = prompt.images()
                if any(im.modality == "VIDEO" for im in images):
                    images = [images[i] for i in coarse_to_fine(len(images))]
                for image in images:
                    key = self._ov_feature_key(image)
                    if key is not None and key not in self.features:
                        jobs.append((key, lambda image=image: self.image_features(image)))  # type: ignore[misc]
                if warm_prefix:
                    jobs.append((f"prefix:{id(prompt)}", lambda: self._ov_warm(prompt)))
            finally:
                if finish is not None:
                    jobs.append((f"done:{id(done)}", finish))
                # Someone waiting (an image held in PROCESSING) goes ahead of queued video frames.
                for key, job in (reversed(jobs) if done is not None else jobs):
                    self.background.submit(key, job, first=done is not None, on_drop=finish)

        self.background.submit(f"plan:{id(load_prompt)}", plan, first=True, on_drop=finish)

    # ------------------------------------------------------------------------------ explicit caches

    def pin(self, handle: str, prompt: Prompt) -> None:
        """A cache's prefix: its vision features, then its KV state, computed in the background (ahead
        of queued warm-ups) and kept while the cache lives, inside `cache_memory_bytes`."""
        self._pins[handle] = prompt
        self.background.submit(f"pin:{handle}", lambda: self._pin_now(handle, prompt), first=True)

    def unpin(self, handle: str) -> None:
        self._pins.pop(handle, None)
        self.features.unpin(handle, self.pin_budget)
        self.prefix.unpin(handle, self.pin_budget)

    def _pin_now(self, handle: str, prompt: Prompt, tries: int = 0) -> None:
        if self._pins.get(handle) is not prompt:
            return  # unpinned meanwhile
        self.load()
        if not self.fast:
            return  # the transformers fallback keeps no reusable state
        for image in prompt.images():
            key = self._ov_feature_key(image)
            if key is not None:
                self.image_features(image)
                self.features.pin(handle, key, self.pin_budget)
        if self.prefix.pinned(handle):
            return
        if self._waiting or not self._run_lock.acquire(blocking=False):
            if tries < PIN_RETRIES:  # a request runs: it decides the state; try again after it
                time.sleep(0.05)
                self.background.submit(f"pin:{handle}", lambda: self._pin_now(handle, prompt, tries + 1))
            return
        try:
            fast = self.prepare_prompt(prompt)
            done = self._ov_prefill(fast, stop=lambda: self._waiting > 0, chunk=WARM_CHUNK, whole=True)
            if done is not None and self._pins.get(handle) is prompt:
                self.prefix.pin(handle, self.model.language_model.request, self.pin_budget)
                self._pins[handle] = None  # done (or over budget): the prompt's frames need not stay in memory
        finally:
            self._run_lock.release()
        if done is None and tries < PIN_RETRIES:  # gave way to a request: go on after it
            self.background.submit(f"pin:{handle}", lambda: self._pin_now(handle, prompt, tries + 1))

    def _ov_warm(self, prompt: Prompt) -> None:
        """Prefill `prompt` up to the end of its last image block into the KV state (and keep a snapshot),
        so the question that follows prefills only its own words; gives way to requests."""
        if not self.fast or self._waiting:
            return
        if not self._run_lock.acquire(blocking=False):
            return  # a request is running: it decides what the state holds
        try:
            fast = self.prepare_prompt(prompt)
            slots = [i for i, key in enumerate(fast.keys) if isinstance(key, tuple)]
            end = min(fast.length, slots[-1] + 2) if slots else fast.length  # + the block's closing token
            head = FastPrompt(fast.ids[:, :end], fast.embeds[:, :end], fast.keys[:end])
            if self._ov_prefill(head, stop=lambda: self._waiting > 0, chunk=WARM_CHUNK, whole=True) is not None:
                self.prefix.save(self.model.language_model.request)
        finally:
            self._run_lock.release()


# ---------------------------------------------------------------------------------- helpers

def _logits_for_last_position(model: Any) -> None:
    """Slice the hidden states to the last position before the LM head: a long prompt's first step
    would otherwise compute (and hold) logits for every prompt token."""
    import numpy as np
    import openvino as ov
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
    del ov


def _memory() -> dict[str, int]:
    try:
        import psutil

        info = psutil.Process(os.getpid()).memory_info()
        return {"processRssBytes": int(info.rss)}
    except Exception:  # psutil missing: memory is best effort
        return {}
