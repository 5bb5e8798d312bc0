"""The decoding every local runtime shares: pick a token (penalties, format constraint, sampling),
stream its text (complete characters, held back where a stop sequence may start), and stop on an end
token, a stop sequence, the token limit or cancellation.

A runtime hands over a prefilled `Session` (the prompt's ids, the next-token logits, and `advance`,
which runs the model over the newest token); what runs underneath (torch, OpenVINO) is not seen here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pollux.engines import constrained
from pollux.engines.base import Delta, GenerationParams
from pollux.errors import Cancelled

if TYPE_CHECKING:
    import torch

    from pollux.engines.chat import ChatFormat


@dataclass
class Session:
    """One candidate's decoding state, right after the prompt was prefilled."""

    ids: "torch.Tensor"  # [1, n] prompt ids (the logits processors see them)
    logits: "torch.Tensor"  # [1, vocab] float: the next token's scores
    advance: Callable[["torch.Tensor"], "torch.Tensor"]  # ids so far → the next logits [1, vocab]
    reused: int | None = None  # prompt positions a kept KV prefix served (implicit caching's count)


class Decoder:
    """The token loop over one loaded model's tokenizer, end tokens and generation defaults."""

    def __init__(self, format: "ChatFormat", eos_ids: list[int], generation_config: Any, output_token_limit: int):
        self.format = format
        self.eos_ids = eos_ids
        self.config = generation_config
        self.output_token_limit = output_token_limit

    def run(self, session: Session, params: GenerationParams, index: int,
            cancel: threading.Event | None) -> Iterator[Delta]:
        import torch

        limit = self.output_token_limit
        max_new = min(params.max_output_tokens or limit, limit)
        input_ids, logits = session.ids, session.logits
        processors, sample = self._decoding(params, index, int(input_ids.shape[1]))
        stream = TextStream(self.format.decode, params.stop_sequences)
        generated, finish = 0, "MAX_TOKENS"
        reused = session.reused  # reported once, on the candidate's first delta
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
                    yield Delta(text, candidate=index, output_tokens=generated, reused_tokens=reused)
                    reused = None
                if stopped:
                    finish = "STOP"
                    break
                if generated >= max_new:
                    break
                if cancel is not None and cancel.is_set():
                    raise Cancelled("Generation was cancelled: the client went away.")
                logits = session.advance(input_ids)
        yield Delta(stream.finish(), candidate=index, finish_reason=finish, output_tokens=generated,
                    reused_tokens=reused)

    def _decoding(self, params: GenerationParams, index: int,
                  prompt_len: int) -> tuple[Any, Callable[["torch.Tensor"], "torch.Tensor"]]:
        """Logits processors (penalties, format constraint, sampling warpers) and the token picker."""
        import torch
        from transformers import (LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                                  TopPLogitsWarper)

        config = self.config
        sampled = params.temperature is not None or bool(config.do_sample)
        temperature = params.temperature if params.temperature is not None else (config.temperature or 1.0)
        top_p = params.top_p if params.top_p is not None else (config.top_p if sampled else None)
        top_k = params.top_k if params.top_k is not None else (config.top_k if sampled else None)
        processors = LogitsProcessorList()
        if params.presence_penalty or params.frequency_penalty:
            processors.append(PresenceFrequencyPenalty(params.presence_penalty or 0.0,
                                                       params.frequency_penalty or 0.0, prompt_len))
        constraint = constrained.logits_processor(self.format.tokenizer, self.eos_ids,
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


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The model's end tokens: its generation config's, and the tokenizer's."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


class PresenceFrequencyPenalty:
    """Gemini's presencePenalty / frequencyPenalty: subtract from logits of tokens already generated."""

    def __init__(self, presence: float, frequency: float, prompt_len: int):
        self.presence, self.frequency, self.prompt_len = presence, frequency, prompt_len

    def __call__(self, input_ids: "torch.Tensor", scores: "torch.Tensor") -> "torch.Tensor":
        import torch

        generated = input_ids[:, self.prompt_len:]
        if generated.numel() == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


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
