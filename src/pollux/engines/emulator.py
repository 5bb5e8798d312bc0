"""The emulator: a deterministic engine for app developers' CI and for seeing what a model is given.

It answers with a readable account of the prompt (each part in order; images with their prepared
size, or the smaller one its mediaResolution gives it, as the remote engine sends it; video frames with `MM:SS`, transcripts, audio durations), streamed in several chunks. It
honours maxOutputTokens, stopSequences, candidateCount and JSON output, and answers box requests
with the bounding box of the image's foreground (pixels unlike its corner), in Gemini's
[ymin, xmin, ymax, xmax] 0-1000 convention, so box-drawing apps can be tested end to end.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from pollux.engines import resolution
from pollux.engines.base import Capabilities, Delta, Engine, GenerationParams
from pollux.prompt_types import Audio, Image, Prompt, Text


def estimate_tokens(text: str) -> int:
    """The emulator's text token estimate: Gemini's documented ~4 characters per token."""
    return math.ceil(len(text) / 4) if text else 0


def mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


class EmulatorEngine(Engine):
    name = "emulator"
    capabilities = Capabilities(mime_types=frozenset({"image/*", "video/*", "audio/*"}), video=True, audio=True,
                                boxes=True, json_schema=True, streaming=True)
    prepares_on_loop = True  # counting is arithmetic, and there is nothing to load
    serialised = False  # nothing to queue for: an answer is computed, not generated (see `astream`)

    def quick_count(self, prompt: Prompt) -> tuple[int, str]:
        return self.count_tokens(prompt), self.native_count_source

    def count_tokens(self, prompt: Prompt) -> int:
        total = estimate_tokens(prompt.system or "")
        for turn in prompt.turns:
            for seg in turn.segments:
                if isinstance(seg, Text):
                    total += estimate_tokens(seg.text)
                elif isinstance(seg, Image):
                    total += 258
                elif isinstance(seg, Audio):
                    total += math.ceil(seg.duration * 32)
        return total

    def count_text(self, text: str) -> int:
        return estimate_tokens(text)

    def generate(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event) -> Iterator[Delta]:
        for index in range(max(1, params.candidate_count)):
            text = self.answer(prompt, params, index)
            yield from self._stream(text, params, index, cancel)
            if cancel.is_set():
                return

    async def astream(self, prompt: Prompt, params: GenerationParams) -> AsyncIterator[Delta]:
        """On the event loop, where the answer is an account of the prompt (microseconds: a worker thread's hop
        would cost more); in a thread where it may measure boxes on an image's pixels."""
        cancel = threading.Event()
        if prompt.images():
            deltas: Iterator[Delta] = iter(await asyncio.to_thread(lambda: list(self.generate(prompt, params, cancel))))
        else:
            deltas = self.generate(prompt, params, cancel)
        for delta in deltas:
            yield delta

    def answer(self, prompt: Prompt, params: GenerationParams, index: int = 0) -> str:
        box = prompt.boxes if _stills(prompt) else None  # as the real engines: boxes on images, not frames
        if params.response_mime_type == "text/x.enum" and params.response_schema:
            return str((params.response_schema.get("enum") or [""])[0])
        if params.response_mime_type == "application/json":
            if params.response_schema:
                return json.dumps(example_for(params.response_schema, prompt), separators=(",", ":"))
            if box:
                return json.dumps(self.boxes(prompt))
            return json.dumps({"account": self.account(prompt)})
        text = self.account(prompt)
        if box:  # labelled JSON even for a plain-list request: the account is no plain answer anyway
            text += "\n\n```json\n" + json.dumps(self.boxes(prompt)) + "\n```"
        if index:
            text = f"(candidate {index + 1})\n" + text
        return text

    def account(self, prompt: Prompt) -> str:
        lines = [f"Pollux emulator ({self.entry.id}). The model would be given:"]
        if prompt.system:
            lines.append(f"system: {prompt.system}")
        for turn in prompt.turns:
            lines.append(f"{turn.role}:")
            for seg in turn.segments:
                lines.append("  " + _describe(seg))
        return "\n".join(lines)

    def boxes(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The foreground's box in each image (up to 8), labelled with the request's first phrase."""
        label = prompt.boxes.phrases[0] if prompt.boxes else "object"
        return [{"box_2d": foreground_box(img.image), "label": label} for img in _stills(prompt)[:8]]

    def _stream(self, text: str, params: GenerationParams, index: int, cancel: threading.Event) -> Iterator[Delta]:
        finish = "STOP"
        for stop in params.stop_sequences:
            if stop and stop in text:
                text = text[: text.index(stop)]
        limit = params.max_output_tokens
        if limit is not None and estimate_tokens(text) > limit:
            text, finish = text[: limit * 4], "MAX_TOKENS"
        pieces = re.findall(r".*?(?:\n|$)", text, flags=re.S)
        pieces = [p for p in pieces if p] or [""]
        sent = ""
        for piece in pieces:
            if cancel.is_set():
                return
            sent += piece
            yield Delta(text=piece, candidate=index, output_tokens=estimate_tokens(sent))
        yield Delta(text="", candidate=index, finish_reason=finish, output_tokens=estimate_tokens(sent))


def _stills(prompt: Prompt) -> list[Image]:
    return [im for im in prompt.images() if im.modality == "IMAGE"]


def _describe(seg) -> str:
    if isinstance(seg, Text):
        kind = "text" if seg.modality == "TEXT" else f"{seg.modality.lower()} text"
        return f"{kind}: {seg.text}"
    if isinstance(seg, Image):
        w, h = resolution.generic_size(seg.image.size, seg.resolution, seg.timestamp is not None)
        ow, oh = seg.original_size
        where = f" from {seg.source}" if seg.source else ""
        level = resolution.level(seg.resolution)
        at = f" at {level}" if level else ""
        if seg.timestamp is not None:
            return f"[{mmss(seg.timestamp)}] video frame {w}x{h}{at}{where}"
        return f"image {w}x{h}{at} (original {ow}x{oh}){where}"
    if isinstance(seg, Audio):
        return f"audio {seg.duration:.1f} s{' from ' + seg.source if seg.source else ''}"
    return repr(seg)


def foreground_box(image) -> list[int]:
    """[ymin, xmin, ymax, xmax] in 0-1000 of the region whose pixels differ from the top-left corner."""
    import numpy as np

    arr = np.asarray(image.convert("RGB"), dtype=np.int16)
    h, w = arr.shape[:2]
    diff = np.abs(arr - arr[0, 0]).sum(axis=2) > 48
    ys, xs = np.nonzero(diff)
    if len(xs) == 0:
        return [0, 0, 1000, 1000]
    return [int(ys.min() * 1000 / h), int(xs.min() * 1000 / w),
            int(math.ceil((ys.max() + 1) * 1000 / h)), int(math.ceil((xs.max() + 1) * 1000 / w))]


def example_for(schema: dict, prompt: Prompt | None = None) -> Any:
    """A deterministic instance of a JSON Schema (the emulator's structured answer)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example_for(schema["anyOf"][0], prompt)
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object":
        props = schema.get("properties", {})
        if "box_2d" in props and prompt is not None and prompt.images():
            return {k: (foreground_box(prompt.images()[0].image) if k == "box_2d" else example_for(v, prompt))
                    for k, v in props.items()}
        return {k: example_for(v, prompt) for k, v in props.items()}
    if t == "array":
        items = schema.get("items", {"type": "string"})
        if prompt is not None and items.get("type") == "integer" and schema.get("minItems") == 4:
            return foreground_box(prompt.images()[0].image) if prompt.images() else [0, 0, 1000, 1000]
        return [example_for(items, prompt) for _ in range(max(1, int(schema.get("minItems", 1))))]
    if t == "integer":
        return int(schema.get("minimum", 0))
    if t == "number":
        return float(schema.get("minimum", 0))
    if t == "boolean":
        return True
    if t == "null":
        return None
    return "emulated"
