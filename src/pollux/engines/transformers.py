"""The reference engine: vision-language models through transformers (SmolVLM2, Qwen2.5-VL).

Generation is a token loop in the calling thread (the same steps as `model.generate`: the model's
own `prepare_inputs_for_generation`, a KV cache, transformers' logits processors), so each token
leaves as a delta as soon as it is decoded, and a set `cancel` event stops it between two tokens.

Catalog entry options: `dtype` (float32), `grounding` (grounding model id or folder, default
owlv2-base), `image_longest_edge` (SmolVLM2 tiling), `max_pixels` / `frame_max_pixels` (Qwen2.5-VL).
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pollux.engines import boxes, chat, constrained, grounding, weights
from pollux.engines.base import Capabilities, Delta, Engine, GenerationParams
from pollux.errors import Cancelled, ModelUnavailable
from pollux.prompt_types import Image, Prompt, Text, Turn

if TYPE_CHECKING:
    import torch

    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines.transformers")

NATIVE_GROUNDING = {"qwen2_5_vl", "qwen2_vl"}
_QWEN_GROUNDING_PROMPT = "Outline the position of each {names} and output all the coordinates in JSON format."


class TransformersEngine(Engine):
    name = "transformers"

    def __init__(self, entry: "ModelEntry", settings: "Settings"):
        super().__init__(entry, settings)
        self.capabilities = Capabilities(
            mime_types=frozenset({"image/*", "video/*", "audio/*"}), video=True, audio=False,
            boxes=entry.family in NATIVE_GROUNDING, json_schema=True, streaming=True)
        self.model: Any = None
        self.format: chat.ChatFormat | None = None
        self.eos_ids: list[int] = []
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one generation at a time per loaded model
        self._tokenizer_lock = threading.Lock()  # fast tokenizers are not safe across threads

    # ------------------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        with self._load_lock:
            if self.model is not None:
                return
            path = weights.resolve(self.entry, self.settings)
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor

            options = self.entry.options
            processor = AutoProcessor.from_pretrained(path)
            processor.tokenizer.model_input_names = ["input_ids", "attention_mask"]
            if "image_longest_edge" in options:  # fewer tiles per image: SmolVLM2 upsizes to 2048 px by default
                processor.image_processor.size = {"longest_edge": int(options["image_longest_edge"])}
            dtype = getattr(torch, str(options.get("dtype", "float32")))
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).eval()
            model.to(self.settings.device)
            self.format = chat.format_for(self.entry.family, processor, options)
            self.eos_ids = _eos_ids(model, processor.tokenizer)
            self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
            self.model = model
            log.info("loaded %s from %s (%s)", self.entry.id, path, dtype)

    def unload(self) -> None:
        with self._load_lock, self._run_lock:
            self.model = None
            self.format = None

    def info(self) -> dict[str, Any]:
        if self.model is None:
            return {"loaded": False}
        return {"loaded": True, "family": self.entry.family, "dtype": str(self.model.dtype).removeprefix("torch."),
                "parameters": sum(p.numel() for p in self.model.parameters())}

    # ------------------------------------------------------------------------------ counting

    def count_tokens(self, prompt: Prompt) -> int:
        self.load()
        with self._tokenizer_lock:
            return self.format.count(prompt)  # type: ignore[union-attr]

    def count_text(self, text: str) -> int:
        self.load()
        with self._tokenizer_lock:
            return len(self.format.tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[union-attr]

    # ------------------------------------------------------------------------------ generation

    def generate(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> Iterator[Delta]:
        self.load()
        self._acquire(cancel)
        try:
            boxed = self._box_deltas(prompt, params, cancel)
            if boxed is not None:
                yield from boxed
                return
            with self._tokenizer_lock:
                encoded = self.format.encode(prompt)  # type: ignore[union-attr]
            count = max(1, params.candidate_count)
            shared = self._prefill(encoded) if count > 1 else None  # the prompt is read once for all candidates
            for index in range(count):
                yield from self._candidate(encoded, params, index, cancel, shared)
        finally:
            self._run_lock.release()

    def _acquire(self, cancel: threading.Event) -> None:
        """The model for this request, queued behind the one running."""
        while not self._run_lock.acquire(timeout=0.05):
            if cancel.is_set():
                raise Cancelled("The request was cancelled while waiting for the model.")

    def _box_deltas(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> list[Delta] | None:
        """The whole answer to a bounding-box request (every candidate the same), or None for other prompts."""
        answer = self._box_answer(prompt, params, cancel)
        if answer is None:
            return None
        tokens = self.count_text(answer)
        return [Delta(answer, candidate=i, finish_reason="STOP", output_tokens=tokens)
                for i in range(max(1, params.candidate_count))]

    def _prefill(self, encoded: chat.Encoded) -> "Step":
        """Run the model over the prompt (vision encoder included): the KV cache and the first logits."""
        import torch
        from transformers import DynamicCache

        input_ids = encoded.inputs["input_ids"].to(self.model.device)
        kwargs = {k: (v.to(self.model.device) if hasattr(v, "to") else v)
                  for k, v in encoded.inputs.items() if k != "input_ids"}
        kwargs.update(past_key_values=DynamicCache(), use_cache=True, cache_position=torch.arange(encoded.length))
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        step = Step(input_ids, kwargs)
        with torch.inference_mode():
            self._forward(step)
        for name in ("pixel_values", "pixel_attention_mask", "pixel_values_videos"):  # only the prefill reads them
            kwargs.pop(name, None)
        return step

    def _forward(self, step: "Step") -> None:
        """One model call with the model's own input preparation, as `generate` does it."""
        import torch

        inputs = self.model.prepare_inputs_for_generation(step.input_ids, **step.kwargs)
        out = self.model(**inputs, return_dict=True)
        kwargs = step.kwargs
        kwargs["past_key_values"] = out.past_key_values
        kwargs["attention_mask"] = torch.cat([kwargs["attention_mask"], kwargs["attention_mask"].new_ones((1, 1))],
                                             dim=-1)
        kwargs["cache_position"] = kwargs["cache_position"][-1:] + 1
        step.logits = out.logits[:, -1, :].float()

    def _candidate(self, encoded: chat.Encoded, params: GenerationParams, index: int, cancel: threading.Event,
                   shared: "Step | None" = None) -> Iterator[Delta]:
        if cancel.is_set():
            raise Cancelled("Generation was cancelled: the client went away.")
        step = shared.copy() if shared is not None else self._prefill(encoded)

        def advance(input_ids: "torch.Tensor") -> "torch.Tensor":
            step.input_ids = input_ids
            self._forward(step)
            return step.logits

        yield from self._token_loop(step.input_ids, step.logits, advance, params, index, cancel)

    def _token_loop(self, input_ids: "torch.Tensor", logits: "torch.Tensor",
                    advance: Callable[["torch.Tensor"], "torch.Tensor"], params: GenerationParams, index: int,
                    cancel: threading.Event) -> Iterator[Delta]:
        """The decoding loop every runtime shares: pick a token (penalties, constraint, sampling), stream its
        text, stop on EOS, a stop sequence, the token limit or cancellation. `advance(ids)` runs the model
        over the newest token and returns the next logits [1, vocab]."""
        import torch

        max_new = min(params.max_output_tokens or self.entry.output_token_limit, self.entry.output_token_limit)
        processors, sample = self._decoding(params, index, int(input_ids.shape[1]))
        stream = TextStream(self._decode, params.stop_sequences)
        generated, finish = 0, "MAX_TOKENS"
        with torch.inference_mode():
            while True:
                token = sample(processors(input_ids, logits))
                input_ids = torch.cat([input_ids, token.view(1, 1)], dim=-1)
                generated += 1
                if int(token) in self.eos_ids:
                    finish = "STOP"
                    break
                text, stopped = stream.push(int(token))
                if text:
                    yield Delta(text, candidate=index, output_tokens=generated)
                if stopped:
                    finish = "STOP"
                    break
                if generated >= max_new:
                    break
                if cancel.is_set():
                    raise Cancelled("Generation was cancelled: the client went away.")
                logits = advance(input_ids)
        yield Delta(stream.finish(), candidate=index, finish_reason=finish, output_tokens=generated)

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self.format.tokenizer.decode(ids, skip_special_tokens=True)  # type: ignore[union-attr]

    def _decoding(self, params: GenerationParams, index: int,
                  prompt_len: int) -> tuple[Any, Callable[["torch.Tensor"], "torch.Tensor"]]:
        """Logits processors (penalties, format constraint, sampling warpers) and the token picker."""
        import torch
        from transformers import (LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                                  TopPLogitsWarper)

        config = self.model.generation_config
        sampled = params.temperature is not None or bool(config.do_sample)
        temperature = params.temperature if params.temperature is not None else (config.temperature or 1.0)
        top_p = params.top_p if params.top_p is not None else (config.top_p if sampled else None)
        top_k = params.top_k if params.top_k is not None else (config.top_k if sampled else None)
        processors = LogitsProcessorList()
        if params.presence_penalty or params.frequency_penalty:
            processors.append(PresenceFrequencyPenalty(params.presence_penalty or 0.0,
                                                       params.frequency_penalty or 0.0, prompt_len))
        constraint = constrained.logits_processor(self.format.tokenizer, self.eos_ids,  # type: ignore[union-attr]
                                                  params.response_mime_type, params.response_schema)
        if constraint is not None:
            processors.append(constraint)
        if not sampled or temperature <= 0:
            return processors, lambda scores: scores.argmax(dim=-1)
        if temperature != 1.0:
            processors.append(TemperatureLogitsWarper(temperature))
        if top_k:
            processors.append(TopKLogitsWarper(int(top_k)))
        if top_p is not None and top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p))
        seed = (params.seed + index) if params.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        rng = torch.Generator().manual_seed(seed)

        def sample(scores: "torch.Tensor") -> "torch.Tensor":
            probs = torch.softmax(scores, dim=-1)
            return torch.multinomial(probs, 1, generator=rng)[:, 0]

        return processors, sample

    # ------------------------------------------------------------------------------ boxes

    def _box_answer(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> str | None:
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
            try:
                grounder = grounding.grounder_for(self.entry.options.get("grounding", grounding.DEFAULT_GROUNDING_MODEL),
                                                  self.settings)
            except ModelUnavailable as e:
                if self.entry.family in NATIVE_GROUNDING:
                    return None  # the model's own answer is still better than an error
                raise ModelUnavailable(f"Bounding boxes for {self.entry.id} come from a grounding model. {e.message}",
                                       reason=e.reason, metadata=e.metadata) from None
            for i, image in enumerate(images):
                found += grounder.detect(image.image, names, many=many, image_index=i)
        if prompt.boxes.json or params.response_mime_type == "application/json":
            return boxes.to_json_text(found, params.response_schema)
        return boxes.to_gemini_text(found, len(images))

    def _native_boxes(self, image: Image, names: list[str], many: bool, index: int,
                      cancel: threading.Event) -> list[boxes.Detection]:
        """Ask the model in its own grounding idiom, then convert its native boxes."""
        ask = _QWEN_GROUNDING_PROMPT.format(names=", ".join(names))
        with self._tokenizer_lock:
            encoded = self.format.encode(Prompt([Turn("user", [image, Text(ask)])]))  # type: ignore[union-attr]
        params = GenerationParams(temperature=0.0, max_output_tokens=256)
        answer = "".join(d.text for d in self._candidate(encoded, params, 0, cancel))
        found = boxes.native_detections(answer, self.entry.family, encoded.input_sizes[0], image=index)
        for d in found:
            d.label = d.label or names[0]
        if not many:
            firsts: dict[str, boxes.Detection] = {}
            for d in found:
                firsts.setdefault(d.label, d)
            found = list(firsts.values())
        return found


# ---------------------------------------------------------------------------------- helpers

class Step:
    """The decoding state: ids so far, the model kwargs (KV cache, mask, cache position), next-token logits."""

    def __init__(self, input_ids: Any, kwargs: dict[str, Any], logits: Any = None):
        self.input_ids, self.kwargs, self.logits = input_ids, kwargs, logits

    def copy(self) -> "Step":
        import copy

        return Step(self.input_ids.clone(), copy.deepcopy(self.kwargs), self.logits.clone())


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


class PresenceFrequencyPenalty:
    """Gemini's presencePenalty / frequencyPenalty: subtract from logits of tokens already generated."""

    def __init__(self, presence: float, frequency: float, prompt_len: int):
        self.presence, self.frequency, self.prompt_len = presence, frequency, prompt_len

    def __call__(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> "torch.FloatTensor":
        import torch

        generated = input_ids[:, self.prompt_len:]
        if generated.numel() == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)  # type: ignore[return-value]


class TextStream:
    """Token ids → text deltas: complete characters only, and nothing that may start a stop sequence."""

    def __init__(self, decode: Callable[[list[int]], str], stop_sequences: list[str] | None = None):
        self.decode = decode
        self.stops = [s for s in (stop_sequences or []) if s]
        self.ids: list[int] = []
        self.prefix = self.read = 0  # window offsets: re-decode a few tokens for context, not all
        self.text = ""
        self.sent = 0
        self.stopped = False

    def push(self, token: int) -> tuple[str, bool]:
        """Add a token; return (text now safe to send, whether a stop sequence was reached)."""
        self.ids.append(token)
        before = self.decode(self.ids[self.prefix:self.read])
        after = self.decode(self.ids[self.prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before):]
            self.prefix, self.read = self.read, len(self.ids)
        return self._release(final=False)

    def finish(self) -> str:
        """Whatever is left once generation ends (held-back text, trailing partial characters)."""
        if self.stopped:
            return ""
        tail = self.decode(self.ids[self.prefix:])
        before = self.decode(self.ids[self.prefix:self.read])
        if len(tail) > len(before):
            self.text += tail[len(before):].rstrip("\ufffd")
        return self._release(final=True)[0]

    def _release(self, final: bool) -> tuple[str, bool]:
        if self.stops:
            window = max(len(s) for s in self.stops)
            hits = [i for s in self.stops if (i := self.text.find(s, max(0, self.sent - window))) >= 0]
            if hits:
                cut = min(hits)
                out, self.sent, self.stopped = self.text[self.sent:cut], cut, True
                return out, True
        safe = len(self.text) if final else len(self.text) - self._held()
        out = self.text[self.sent:max(self.sent, safe)]
        self.sent = max(self.sent, safe)
        return out, False

    def _held(self) -> int:
        """Length of the longest text suffix that is a proper prefix of a stop sequence."""
        best = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.text)), 0, -1):
                if self.text.endswith(s[:n]):
                    best = max(best, n)
                    break
        return best
