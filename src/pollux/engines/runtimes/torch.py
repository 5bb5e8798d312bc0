"""The reference runtime: the model in torch through transformers, stepped as `model.generate` does it
(the model's own `prepare_inputs_for_generation`, a KV cache), one token per call."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollux.engines.decoding import Session
from pollux.engines.runtimes import TORCH, Runtime

if TYPE_CHECKING:
    import torch

    from pollux.engines.chat import ChatFormat, Encoded
    from pollux.prompt_types import Prompt

log = logging.getLogger("pollux.engines.runtimes.torch")


class TorchRuntime(Runtime):
    name = TORCH

    def load(self, source: Path, format: "ChatFormat") -> Any:
        import torch
        from transformers import AutoModelForImageTextToText

        dtype = getattr(torch, self.options.dtype)
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype).eval()
        model.to(self.settings.device)
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.format, self.model = format, model
        log.info("loaded %s from %s (%s)", self.entry.id, source, dtype)
        return model

    def info(self) -> dict[str, Any]:
        return {"dtype": str(self.model.dtype).removeprefix("torch."),
                "parameters": sum(p.numel() for p in self.model.parameters())}

    def prepare(self, prompt: "Prompt", cancel: threading.Event | None = None) -> "Encoded":
        return self.format.encode(prompt)  # type: ignore[union-attr]

    # ------------------------------------------------------------------------------ under another runtime
    # (the OpenVINO runtime hands a long prompt's prefill here: runtimes/prefill_choice.py)

    def embedded(self, ids: "torch.Tensor", image_positions: Any = None, features: Any = None) -> "Encoded":
        """Model input for `ids` whose image positions (a boolean mask over them) carry `features`
        ([positions, hidden], computed elsewhere: the OpenVINO encoder's); the text positions get
        this model's own embeddings, as its forward would give them."""
        import torch

        from pollux.engines.chat import Encoded

        with torch.inference_mode():
            embeds = self.model.get_input_embeddings()(ids)
            if image_positions is not None and int(image_positions.sum()):
                embeds[0, torch.as_tensor(image_positions)] = torch.as_tensor(features).to(embeds.dtype)
        return Encoded({"input_ids": ids, "attention_mask": torch.ones_like(ids), "inputs_embeds": embeds})

    def drop_vision_tower(self) -> None:
        """Image features come from elsewhere: free the vision encoder's weights (SmolVLM: ~93M parameters)."""
        inner = getattr(self.model, "model", None)
        if inner is not None and getattr(inner, "vision_model", None) is not None:
            inner.vision_model = None

    def time_prefill(self, positions: int) -> float:
        """Seconds of one prefill of `positions` random embeddings, as `sessions` runs it (prefill_choice)."""
        import torch

        hidden = self.model.get_input_embeddings().embedding_dim
        ids = torch.zeros(1, positions, dtype=torch.long)
        embeds = torch.randn(1, positions, hidden, generator=torch.Generator().manual_seed(positions)) * 0.02
        encoded = self.embedded(ids)
        encoded.inputs["inputs_embeds"] = embeds.to(self.model.dtype)
        began = time.perf_counter()
        self._prefill(encoded, quiet=True)
        return time.perf_counter() - began

    def sessions(self, prepared: "Encoded", count: int, cancel: threading.Event | None) -> Iterator[Session]:
        if count > 1:  # the prompt is read once for all candidates
            shared = self._prefill(prepared)
            for _ in range(count):
                yield self._session(shared.copy())
            return
        yield self._session(self._prefill(prepared))

    def _session(self, step: "Step") -> Session:
        def advance(input_ids: "torch.Tensor") -> "torch.Tensor":
            step.input_ids = input_ids
            self._forward(step)
            return step.logits

        return Session(step.input_ids, step.logits, advance)

    def _prefill(self, encoded: "Encoded", quiet: bool = False) -> "Step":
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
        began = time.perf_counter()
        with torch.inference_mode():
            self._forward(step)
        if encoded.length > 256 and not quiet:  # a long prefill is worth a line (benchmarks/video_e2e.py reads it)
            log.info("prefilled %d positions after 0 cached in %.2f s (transformers)", encoded.length,
                     time.perf_counter() - began)
        for name in ("pixel_values", "pixel_attention_mask", "pixel_values_videos", "inputs_embeds"):
            kwargs.pop(name, None)  # only the prefill reads them
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


class Step:
    """The torch decoding state: ids so far, the model kwargs (KV cache, mask, cache position), next logits."""

    def __init__(self, input_ids: Any, kwargs: dict[str, Any], logits: Any = None):
        self.input_ids, self.kwargs, self.logits = input_ids, kwargs, logits

    def copy(self) -> "Step":
        import copy

        return Step(self.input_ids.clone(), copy.deepcopy(self.kwargs), self.logits.clone())
