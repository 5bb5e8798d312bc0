"""The engine-neutral prompt and generation parameters → an OpenAI chat-completions request, and the
server's streamed answer → Pollux deltas. Pure functions: no I/O here (engines/remote.py does that).

Images travel as `image_url` data URLs of the prepared image; video frames as images interleaved with
their `MM:SS` labels and transcript lines (already in the prompt's order); audio as its transcript, or
as `input_audio` where the entry declares audio. Function calls in the history become `tool_calls`
and `tool` messages.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pollux import b64, fastjson
from pollux.engines import resolution
from pollux.engines.base import Delta, GenerationParams, TokenLogprob
from pollux.engines.openai_dialects import DIALECTS, Dialect
from pollux.errors import InvalidArgument
from pollux.lru import BytesLRU
from pollux.prompt_types import Audio, FunctionCall, FunctionResponse, Image, Prompt, Text

FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP",
                  "function_call": "STOP", "eos": "STOP"}


# ---------------------------------------------------------------------------------- the request

def data_url(image: Any, video_frame: bool = False) -> str:
    """A data URL every server decodes: JPEG (quality 95 for still images, 90 for frames). PNG would keep
    exact pixels but costs several times the encoding time and bytes on the wire, for no visible change."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=90 if video_frame else 95)
    return f"data:image/jpeg;base64,{b64.encode(buf.getvalue())}"


class DataURLCache:
    """Encoded images by the prompt's cache key (content + preparation), bounded in bytes: a file asked
    about many times, or a video's frames, are encoded once."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self._urls: BytesLRU[str] = BytesLRU(max_bytes, len)

    @property
    def size(self) -> int:
        return self._urls.size

    def cached(self, image: Image) -> bool:
        return image.cache_key is not None and self._urls.get(image.cache_key) is not None

    def __call__(self, image: Image) -> str:
        key = image.cache_key
        if key is None:
            return _encode(image)
        if (url := self._urls.get(key)) is None:
            url = _encode(image)
            self._urls.put(key, url)
        return url


def sent_size(image: Image) -> tuple[int, int]:
    """The size a server is sent: the prepared image at its mediaResolution level, never larger than the
    original. (The seed's rule enlarges small images for the local models; a server resizes for its own
    model, and an enlarged copy only costs bytes on the wire and decoding at the server.)"""
    w, h = resolution.generic_size(image.image.size, image.resolution, image.timestamp is not None)
    ow, oh = image.original_size
    return (ow, oh) if w > ow and h > oh else (w, h)


def _encode(image: Image) -> str:
    """The prepared image at `sent_size`, as a data URL: the file's own bytes where they show exactly that (the
    original size, a format and mode every server decodes as it is), else the pixels re-encoded."""
    size = sent_size(image)
    if image.encoded is not None and size == image.original_size:
        mime, data = image.encoded
        try:
            raw = data.read_bytes() if isinstance(data, Path) else data
        except OSError:  # a stored file's blob gone from a local cache (S3): its pixels are still here
            raw = None
        if raw is not None:
            return f"data:{mime};base64,{b64.encode(raw)}"
    pixels = image.image
    if size != pixels.size:
        from PIL import Image as PILImage

        pixels = pixels.resize(size, PILImage.Resampling.BICUBIC)
    return data_url(pixels, image.timestamp is not None)


def _image_part(image: Image, image_url) -> dict:
    part: dict[str, Any] = {"url": image_url(image)}
    row = resolution.settings("generic", image.resolution)
    if row:  # OpenAI-compatible servers read `detail` (vLLM and llama.cpp ignore it harmlessly)
        part["detail"] = row["detail"]
    return {"type": "image_url", "image_url": part}


def encode_body(body: dict) -> bytes:
    """The request body as sent (orjson: a 130 KB data URL costs it microseconds, the standard library ~1 ms)."""
    return fastjson.dumps(body)


def wav_base64(samples: Any, rate: int = 16000) -> str:
    import wave

    import numpy as np

    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return b64.encode(buf.getvalue())


def messages(prompt: Prompt, *, audio: bool = False, image_url=_encode) -> list[dict]:
    """Chat messages in order; each turn's media in place. `image_url(Image)` encodes an image segment."""
    out: list[dict] = []
    if prompt.system:
        out.append({"role": "system", "content": prompt.system})
    call_ids: dict[str, list[str]] = {}  # function name → ids of calls not yet answered (Gemini ids are optional)
    for t, turn in enumerate(prompt.turns):
        content: list[dict] = []
        calls: list[dict] = []
        results: list[dict] = []
        for k, seg in enumerate(turn.segments):
            if isinstance(seg, Text):
                if content and content[-1]["type"] == "text" and seg.modality != "VIDEO":
                    content[-1]["text"] += "\n" + seg.text
                else:
                    content.append({"type": "text", "text": seg.text})
            elif isinstance(seg, Image):
                content.append(_image_part(seg, image_url))
            elif isinstance(seg, Audio):
                if audio:
                    content.append({"type": "input_audio", "input_audio": {"data": wav_base64(seg.samples),
                                                                           "format": "wav"}})
            elif isinstance(seg, FunctionCall):
                call_id = seg.id or f"call_{t}_{k}"
                call_ids.setdefault(seg.name, []).append(call_id)
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": seg.name, "arguments": json.dumps(seg.args)}})
            elif isinstance(seg, FunctionResponse):
                pending = call_ids.get(seg.name) or []
                call_id = seg.id or (pending.pop(0) if pending else f"call_{seg.name}")
                results.append({"role": "tool", "tool_call_id": call_id, "name": seg.name,
                                "content": json.dumps(seg.response)})
        if turn.role == "model":
            text = "\n".join(c["text"] for c in content if c["type"] == "text")
            message: dict = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            out.append(message)
        else:
            out.extend(results)
            if content:
                out.append({"role": "user", "content": content})
    return out


def tools_json(params: GenerationParams) -> dict:
    """`tools` and `tool_choice` from the request's function declarations and toolConfig."""
    if not params.tools:
        return {}
    cfg = params.tool_config or {}
    mode = str(cfg.get("mode") or "AUTO").upper()
    allowed = list(cfg.get("allowed_function_names") or [])
    declared = [t for t in params.tools if not allowed or t["name"] in allowed]
    tools = [{"type": "function", "function": {k: v for k, v in (("name", t["name"]),
                                                                  ("description", t.get("description")),
                                                                  ("parameters", t.get("parameters"))) if v}}
             for t in declared]
    out: dict = {"tools": tools}
    if mode == "NONE":
        out["tool_choice"] = "none"
    elif mode in ("ANY", "VALIDATED"):
        # "required" over the allowed tools rather than a named choice: vLLM's hermes parser leaves a named
        # call in the text, and "required" is what SGLang and vLLM both constrain.
        out["tool_choice"] = "required"
    else:
        out["tool_choice"] = "auto"
    return out


def response_format(params: GenerationParams, dialect: Dialect = DIALECTS["openai"]) -> dict:
    """responseSchema → the dialect's constraint: `response_format` json_schema (vLLM/SGLang guided decoding;
    Ollama turns it into its `format`), or llama.cpp's top-level `json_schema`."""
    schema = params.response_schema
    if params.response_mime_type == "text/x.enum":
        if not schema:
            return {}
        # The enum as a JSON string; the answer is unquoted again (enum_answer) to give Gemini's bare value.
        schema = {"type": "string", "enum": [str(v) for v in schema.get("enum", [])]}
    elif params.response_mime_type != "application/json":
        return {}
    if not schema:
        if dialect.json_object:
            return {"response_format": {"type": "json_object"}}
        schema = {"type": "object"}  # LM Studio takes json_schema only: JSON mode is an open object
    if dialect.schema == "json_schema":
        return {"json_schema": schema}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": schema,
                                                                        "strict": True}}}


def request_body(prompt: Prompt, params: GenerationParams, model: str, *, audio: bool = False,
                 extra: dict | None = None, image_url=_encode, dialect: Dialect = DIALECTS["openai"]) -> dict:
    """The whole chat-completions request, streamed (usage from `stream_options`) unless it declares tools:
    servers' streamed tool-call parsing is the fragile part (vLLM 0.32 garbles "required" calls), so a
    tool-using request is answered whole. Fields the dialect does not read are not sent."""
    if params.candidate_count > 1 and not dialect.n:
        raise InvalidArgument(f"generationConfig.candidateCount: this model's engine ({dialect.name}) answers one "
                              "candidate per request; use candidateCount 1.")
    body: dict[str, Any] = {"model": model, "messages": messages(prompt, audio=audio, image_url=image_url),
                            "stream": True,
                            "stream_options": {"include_usage": True}}
    if params.tools:
        body = {"model": body["model"], "messages": body["messages"], "stream": False}
    for key, value in (("temperature", params.temperature), ("top_p", params.top_p), ("top_k", params.top_k),
                       ("seed", params.seed), ("max_tokens", params.max_output_tokens),
                       ("presence_penalty", params.presence_penalty),
                       ("frequency_penalty", params.frequency_penalty)):
        if value is not None:
            body[key] = value
    if params.stop_sequences:
        body["stop"] = list(params.stop_sequences)
    if params.candidate_count > 1:
        body["n"] = params.candidate_count
    if params.response_logprobs:
        body["logprobs"] = True
        if params.logprobs:
            body["top_logprobs"] = params.logprobs
    body.update(response_format(params, dialect))
    body.update(tools_json(params))
    for key in dialect.unsupported:
        body.pop(key, None)
    body.update(extra or {})
    return body


# Which Gemini field a request field came from, to name it when a server rejects the request.
GEMINI_FIELDS = {"temperature": "generationConfig.temperature", "top_p": "generationConfig.topP",
                 "top_k": "generationConfig.topK", "seed": "generationConfig.seed",
                 "max_tokens": "generationConfig.maxOutputTokens", "stop": "generationConfig.stopSequences",
                 "n": "generationConfig.candidateCount", "presence_penalty": "generationConfig.presencePenalty",
                 "frequency_penalty": "generationConfig.frequencyPenalty",
                 "logprobs": "generationConfig.responseLogprobs", "top_logprobs": "generationConfig.logprobs",
                 "response_format": "generationConfig.responseSchema", "json_schema": "generationConfig.responseSchema",
                 "tools": "tools", "tool_choice": "toolConfig", "image_url": "contents (an image)",
                 "input_audio": "contents (audio)", "messages": "contents"}


def rejected_field(body: dict, message: str) -> str | None:
    """The Gemini field a server's 400 message is about (the first request field it names)."""
    locs = [str(p) for d in (body.get("detail") or []) if isinstance(d, dict) for p in d.get("loc", [])]
    text = " ".join(locs) + " " + message
    hits = [(m.start(), name) for name in GEMINI_FIELDS for m in [re.search(rf"\b{name}\b", text)] if m]
    return GEMINI_FIELDS[min(hits)[1]] if hits else None


def error_message(raw: bytes) -> tuple[dict, str]:
    """A server's error body (OpenAI `{"error": {...}}`, FastAPI `{"detail": ...}`, or text) → (json, message)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {}, raw.decode(errors="replace").strip()[:500]
    if not isinstance(body, dict):
        return {}, str(body)[:500]
    err = body.get("error")
    if isinstance(err, dict):
        return body, str(err.get("message") or err)[:500]
    if isinstance(err, str):
        return body, err[:500]
    detail = body.get("detail", body.get("message", body))
    return body, (detail if isinstance(detail, str) else json.dumps(detail))[:500]


# ---------------------------------------------------------------------------------- the answer

class MalformedAnswer(ValueError):
    """The server's stream is not what the OpenAI protocol says (logged; the client gets a 500)."""


@dataclass
class _Choice:
    chunks: int = 0
    finish: str | None = None
    held: str = ""  # text withheld until the end (enum answers, box answers)
    calls: dict[int, dict] = field(default_factory=dict)  # tool-call index → {id, name, arguments}
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet handed out with a delta


@dataclass
class StreamState:
    """Folds the server's SSE chunks into deltas; the finish deltas wait for the usage chunk."""

    candidates: int = 1
    hold_text: bool = False  # keep the whole text for a post-processing step (enum, boxes)
    choices: dict[int, _Choice] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    started: bool = False  # the first token arrived (no retry after this)

    def feed(self, chunk: dict) -> list[Delta]:
        if not isinstance(chunk, dict):
            raise MalformedAnswer(f"a stream chunk is not an object: {str(chunk)[:200]}")
        if "error" in chunk:
            raise MalformedAnswer(f"the server reported an error mid-stream: {str(chunk['error'])[:300]}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
            self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
        out: list[Delta] = []
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            if not isinstance(index, int) or not 0 <= index < self.candidates:
                raise MalformedAnswer(f"choice index {index!r} outside the {self.candidates} requested")
            state = self.choices.setdefault(index, _Choice())
            delta = choice.get("delta") or choice.get("message") or {}
            text = delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = state.calls.setdefault(call.get("index", len(state.calls)), {"id": None, "name": "",
                                                                                   "arguments": ""})
                fn = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += fn.get("name") or ""
                args = fn.get("arguments")
                slot["arguments"] += args if isinstance(args, str) else (json.dumps(args) if args else "")
            state.logprobs += token_logprobs(choice.get("logprobs"))
            if text:
                self.started = True
                state.chunks += 1
                if self.hold_text:
                    state.held += text
                else:
                    out.append(Delta(text=text, candidate=index, output_tokens=state.chunks,
                                     logprobs=state.logprobs or None))
                    state.logprobs = []
            if delta.get("tool_calls"):
                self.started = True
            if choice.get("finish_reason"):
                state.finish = FINISH_REASONS.get(choice["finish_reason"], "OTHER")
        return out

    def complete(self) -> bool:
        """Every candidate has its finish_reason (a stream cut short has not)."""
        return all(self.choices.get(i, _Choice()).finish for i in range(self.candidates))

    def finish(self) -> list[Delta]:
        """The last delta of every candidate (with its tool calls and token count)."""
        counts = {i: self.choices.get(i, _Choice()).chunks for i in range(self.candidates)}
        if self.completion_tokens is not None:  # the server's count is the truth; split it like the chunks were
            spare = self.completion_tokens - sum(counts.values())
            counts[self.candidates - 1] = max(0, counts[self.candidates - 1] + spare)
        out = []
        for i in range(self.candidates):
            state = self.choices.get(i, _Choice())
            calls = [_function_call(c) for _, c in sorted(state.calls.items())]
            out.append(Delta(text=state.held, candidate=i, finish_reason=state.finish or "STOP",
                             output_tokens=counts[i], function_calls=calls or None, logprobs=state.logprobs or None,
                             prompt_tokens=self.prompt_tokens))
        return out


def token_logprobs(raw: Any) -> list[TokenLogprob]:
    """A choice's OpenAI `logprobs` ({"content": [{token, logprob, top_logprobs: [...]}]}) → token logprobs."""
    if not raw:
        return []
    try:
        return [TokenLogprob(str(t["token"]), _logprob(t["logprob"]),
                             [(str(a["token"]), _logprob(a["logprob"])) for a in t.get("top_logprobs") or []])
                for t in raw.get("content") or []]
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise MalformedAnswer(f"logprobs are not OpenAI's shape ({e!r}): {str(raw)[:200]}") from None


def _logprob(value: Any) -> float:
    """Servers send -inf as a very negative number or null (a token the sampler never picks)."""
    return -9999.0 if value is None else max(float(value), -9999.0)


def _function_call(call: dict) -> FunctionCall:
    try:
        args = json.loads(call["arguments"]) if call["arguments"].strip() else {}
    except ValueError:
        raise MalformedAnswer(f"tool call {call['name']!r} has arguments that are not JSON: "
                              f"{call['arguments'][:200]}") from None
    if not call["name"] or not isinstance(args, dict):
        raise MalformedAnswer(f"a tool call without a name or with non-object arguments: {call}")
    return FunctionCall(name=call["name"], args=args, id=call["id"])


class SSEReader:
    """An SSE stream's `data:` payloads, decoded, from the bytes as they arrive (`feed` returns the events
    each network read completed, so what arrived together is handled together); `done` after `[DONE]`."""

    def __init__(self) -> None:
        self._rest = b""
        self.done = False

    def feed(self, data: bytes) -> list[Any]:
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        out = []
        for line in lines:
            if self.done or not line.startswith(b"data:"):
                continue  # comments, event names, blank separators; anything after [DONE]
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                out.append(fastjson.loads(payload))
            except ValueError:
                raise MalformedAnswer(f"a stream event is not JSON: {payload[:200]!r}") from None
        return out


def merged(deltas: list[Delta]) -> list[Delta]:
    """Text deltas of one network read, one per candidate: re-framing each token as its own Gemini chunk
    costs Pollux CPU per token (taken from the engine on a shared machine) for nothing a client can see."""
    if len(deltas) < 2:
        return deltas
    out: dict[int, Delta] = {}
    for d in deltas:
        if (m := out.get(d.candidate)) is None:
            out[d.candidate] = Delta(text=d.text, candidate=d.candidate, output_tokens=d.output_tokens,
                                     logprobs=list(d.logprobs) if d.logprobs else None)
            continue
        m.text += d.text
        m.output_tokens = d.output_tokens
        if d.logprobs:
            m.logprobs = (m.logprobs or []) + d.logprobs
    return list(out.values())


def enum_answer(text: str) -> str:
    """A JSON-string enum answer (how guided decoding produced it) → the bare value Gemini returns."""
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip()
    return value if isinstance(value, str) else text.strip()
