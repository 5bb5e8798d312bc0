"""generateContent, streamGenerateContent (SSE and JSON-array streaming) and countTokens."""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pollux import fastjson
from pollux.api import json_reader, tools
from pollux.api.context import ctx
from pollux.api.disconnect import cancelled_on_disconnect
from pollux.api.errors import error_body
from pollux.api.logprobs import logprobs_json, stream_logprobs
from pollux.api.schema import (CountTokensRequest, GenerateContentRequest, GenerationConfig, openapi_to_json_schema,
                               parse)
from pollux.engines.base import GenerationParams
from pollux.errors import InvalidArgument, PolluxError
from pollux.generation import GenerateRequest, Job
from pollux.media.tokens import modality_details
from pollux.prompt import mmss
from pollux.prompt_types import FileRef, InlineRef, Part, RequestTurn, TextPart, VideoOptions

RESPONSE_MIME_TYPES = ("text/plain", "application/json", "text/x.enum")


async def read_json(request: Request) -> dict:
    """The body as a JSON object (read leniently, as Gemini does), refused once it crosses the inline limit."""
    return await json_reader.read_object(request, ctx(request).settings.max_inline_bytes)


def to_input(req: GenerateContentRequest) -> GenerateRequest:
    """The wire request as the one typed `GenerateRequest`; its cachedContent is resolved later (`with_cached`)."""
    if req.cached_content and (req.system_instruction is not None or req.tools or req.tool_config is not None):
        raise InvalidArgument("Tool config, tools and system instruction should not be set in the request when "
                              "using cached content.")  # Gemini's rule: they belong in the cache
    turns: list[RequestTurn] = []
    for i, content in enumerate(req.contents):
        if content.role not in (None, "", "user", "model"):
            raise InvalidArgument(f"Invalid role {content.role!r} in contents[{i}]: use 'user' or 'model'.")
        role: Literal["user", "model"] = "model" if content.role == "model" else "user"
        if not content.parts:
            raise InvalidArgument(f"contents[{i}].parts must not be empty.")
        parts: list[Part] = []
        for j, part in enumerate(content.parts):
            video = VideoOptions(part.video_metadata.start_offset, part.video_metadata.end_offset,
                                 part.video_metadata.fps) if part.video_metadata else None
            if part.text is not None:
                parts.append(TextPart(part.text))
            elif part.inline_data is not None:
                parts.append(InlineRef(part.inline_data.mime_type, part.inline_data.data, video, part.media_resolution))
            elif part.file_data is not None:
                parts.append(FileRef(part.file_data.file_uri, part.file_data.mime_type, video, part.media_resolution))
            elif (call := tools.function_part(part.model_extra or {}, f"contents[{i}].parts[{j}]")) is not None:
                parts.append(call)  # the engine's capability is checked once the model is resolved
            else:
                kinds = sorted(part.model_extra or {}) or ["empty part"]
                raise InvalidArgument(f"contents[{i}].parts[{j}]: {', '.join(kinds)} is not supported; "
                                      "parts may hold text, inlineData or fileData.")
        turns.append(RequestTurn(role, parts))
    system = None
    if req.system_instruction is not None:
        system = "\n".join(p.text for p in req.system_instruction.parts if p.text) or None
    cfg = req.generation_config
    _check_modalities(cfg)
    thinking = cfg.thinking_config if cfg else None
    params = to_params(cfg)
    params.tools, params.tool_config = tools.declarations(req.tools), tools.tool_config(req.tool_config)
    return GenerateRequest(turns, system, params, media_resolution=cfg.media_resolution if cfg else None,
                         thinking_budget=thinking.thinking_budget if thinking else None,
                         thinking_level=thinking.thinking_level if thinking else None)


def _check_modalities(cfg: GenerationConfig | None) -> None:
    """Pollux answers in text only: Gemini's 400 for a text model asked for images or audio."""
    wanted = [m for m in (cfg.response_modalities or []) if m in ("IMAGE", "AUDIO")] if cfg else []
    if wanted:
        raise InvalidArgument("Model does not support the requested response modalities: "
                              + ",".join(m.lower() for m in wanted))


def to_params(cfg: GenerationConfig | None) -> GenerationParams:
    if cfg is None:
        return GenerationParams()
    mime = cfg.response_mime_type or "text/plain"
    if mime not in RESPONSE_MIME_TYPES:
        raise InvalidArgument(f"Unsupported response_mime_type {mime!r}; use one of {', '.join(RESPONSE_MIME_TYPES)}.")
    schema = cfg.response_json_schema or (openapi_to_json_schema(cfg.response_schema) if cfg.response_schema else None)
    if schema is not None and mime == "text/plain":
        raise InvalidArgument("responseSchema requires responseMimeType application/json or text/x.enum.")
    return GenerationParams(
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, max_output_tokens=cfg.max_output_tokens,
        stop_sequences=list(cfg.stop_sequences), seed=cfg.seed, candidate_count=cfg.candidate_count or 1,
        presence_penalty=cfg.presence_penalty, frequency_penalty=cfg.frequency_penalty, response_mime_type=mime,
        response_schema=schema, response_logprobs=bool(cfg.response_logprobs), logprobs=cfg.logprobs)


async def with_cached(request: Request, project: str, req: GenerateContentRequest, version: str) -> GenerateRequest:
    """`to_input`, with the named cachedContent (this project's, live) resolved into its prefix."""
    inp = to_input(req)
    if req.cached_content:
        from pollux.api.caches import cached_prefix  # the caches wire module parses stored requests with to_input

        inp.cached = await cached_prefix(request, project, req.cached_content, version)
    return inp


async def _job(request: Request, method: str) -> Job:
    c = ctx(request)
    project = await c.auth.project_async(request)
    version = request.path_params.get("version", "v1beta")
    req = parse(GenerateContentRequest, await read_json(request), version)
    job = await c.generation.prepare(project, request.path_params["model"],
                                     await with_cached(request, project, req, version), api_version=version,
                                     method=method)
    if c.limits:  # per-project rate limits, charged once the prompt is counted (pollux.limits)
        await c.limits.admit(project, job)
    return job


def thinning_json(job: Job) -> dict:
    """Extension field: the videos whose frames did not all fit the local model's context, which frames it
    was given (MM:SS) and how many were sampled. SDKs ignore fields they do not know."""
    if not job.prompt.thinning:
        return {}
    return {"polluxThinning": [{"source": t.source, "framesSampled": t.sampled, "framesUsed": len(t.used_at),
                                "usedAt": [mmss(s) for s in t.used_at]} for t in job.prompt.thinning]}


def cached_tokens(job: Job, reused: int = 0) -> int:
    """cachedContentTokenCount: the explicit cache's Gemini-rule count, or (implicit caching) the share of
    the prompt the engine's KV prefix served, in Gemini-rule tokens (the native count scaled)."""
    if job.usage.cached_tokens:
        return job.usage.cached_tokens
    native = job.usage.native_prompt_tokens
    return min(job.usage.prompt_tokens, round(job.usage.prompt_tokens * reused / native)) if native else 0


def usage_json(job: Job, output_tokens: int | None, reused: int = 0) -> dict:
    prompt = job.usage.prompt_tokens
    out: dict = {"promptTokenCount": prompt}
    if output_tokens is not None:
        out["candidatesTokenCount"] = output_tokens
    out["totalTokenCount"] = prompt + (output_tokens or 0)
    out["promptTokensDetails"] = modality_details(job.usage.by_modality)
    cached = cached_tokens(job, reused)
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _native_headers(job: Job, server_count: int | None = None) -> dict:
    # Extension: what the local model really consumes (Gemini-rule counts are in the body); a whole answer's
    # headers leave after it, with the count a remote server reported in its usage where it did.
    native, source = (job.usage.native_prompt_tokens, job.usage.native_source) if server_count is None \
        else (server_count, "server")
    return {"x-pollux-native-prompt-tokens": str(native), "x-pollux-native-token-source": source,
            "x-pollux-model": job.model.entry.id}


class _Candidates:
    def __init__(self, count: int):
        self.text = [""] * count
        self.finish: list[str | None] = [None] * count
        self.tokens = [0] * count
        self.calls: list[list] = [[] for _ in range(count)]
        self.logprobs: list[list] = [[] for _ in range(count)]
        self.reused = 0  # native prompt positions the engine's KV prefix served
        self.server_prompt: int | None = None  # the prompt's count in a remote server's usage

    def add(self, delta) -> None:
        self.text[delta.candidate] += delta.text
        self.calls[delta.candidate] += delta.function_calls or []
        self.logprobs[delta.candidate] += delta.logprobs or []
        if delta.finish_reason:
            self.finish[delta.candidate] = delta.finish_reason
        if delta.output_tokens is not None:
            self.tokens[delta.candidate] = delta.output_tokens
        if delta.reused_tokens is not None and delta.candidate == 0:
            self.reused = delta.reused_tokens
        if delta.prompt_tokens is not None:
            self.server_prompt = delta.prompt_tokens


def _candidate(index: int, text: str, finish: str | None, calls: list | None = None,
               logprobs: dict | None = None) -> dict:
    parts = ([{"text": text}] if text or not calls else []) + tools.call_parts(calls)
    out: dict = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish:
        out["finishReason"] = finish
    return {**out, **(logprobs or {})}


async def generate_content(request: Request) -> JSONResponse:
    job = await _job(request, "generateContent")
    cands = _Candidates(job.params.candidate_count)

    async with cancelled_on_disconnect(request):  # a client hanging up cancels generation (and upstream)
        async for delta in ctx(request).generation.stream(job):
            cands.add(delta)
    body = {
        "candidates": [_candidate(i, t, cands.finish[i] or "STOP", cands.calls[i],
                                  logprobs_json(cands.logprobs[i], job.params.logprobs))
                       for i, t in enumerate(cands.text)],
        "usageMetadata": usage_json(job, sum(cands.tokens), cands.reused),
        "modelVersion": job.model.requested,
        "responseId": secrets.token_urlsafe(12),
        **thinning_json(job),
    }
    return JSONResponse(body, headers=_native_headers(job, cands.server_prompt))


async def stream_generate_content(request: Request) -> Response:
    job = await _job(request, "streamGenerateContent")
    sse = request.query_params.get("alt", "").lower() == "sse"
    response_id = secrets.token_urlsafe(12)

    async def chunks() -> AsyncGenerator[dict, None]:
        cands = _Candidates(job.params.candidate_count)
        async for delta in ctx(request).generation.stream(job):
            cands.add(delta)
            done = all(cands.finish)
            if not delta.text and not delta.finish_reason:
                continue
            yield {"candidates": [_candidate(delta.candidate, delta.text, delta.finish_reason, delta.function_calls,
                                             stream_logprobs(delta, cands.logprobs, job.params.logprobs))],
                   "usageMetadata": usage_json(job, sum(cands.tokens) if done else None, cands.reused),
                   "modelVersion": job.model.requested, "responseId": response_id,
                   **(thinning_json(job) if done else {})}

    # The first chunk is awaited here, before the response starts: an engine that fails before its first token
    # answers with its own HTTP status (as Gemini's 503 does), and the upstream request is sent from this task,
    # without a pass of the event loop in between. An error after that can only be the stream's last chunk.
    stream = chunks()
    try:
        async with cancelled_on_disconnect(request):
            first = await anext(stream, None)
    except BaseException:
        await stream.aclose()
        raise

    async def rest() -> AsyncIterator[dict]:
        try:
            if first is not None:
                yield first
            async for chunk in stream:
                yield chunk
        except PolluxError as e:
            yield error_body(e)[1]
        finally:
            await stream.aclose()

    async def sse_body() -> AsyncIterator[bytes]:
        async for chunk in rest():
            yield b"data: " + fastjson.dumps(chunk) + b"\r\n\r\n"

    async def array_body() -> AsyncIterator[bytes]:
        opening = True
        async for chunk in rest():
            yield (b"[" if opening else b",\r\n") + fastjson.dumps(chunk)
            opening = False
        yield b"[]" if opening else b"]"

    if sse:
        return StreamingResponse(sse_body(), media_type="text/event-stream", headers=_native_headers(job))
    return StreamingResponse(array_body(), media_type="application/json", headers=_native_headers(job))


async def count_tokens(request: Request) -> JSONResponse:
    c = ctx(request)
    project = await c.auth.project_async(request)
    version = request.path_params.get("version", "v1beta")
    req = parse(CountTokensRequest, await read_json(request), version).as_generate()
    job = await c.generation.prepare(project, request.path_params["model"],
                                     await with_cached(request, project, req, version), api_version=version,
                                     method="countTokens")
    body = {"totalTokens": job.usage.prompt_tokens,
            **({"cachedContentTokenCount": job.usage.cached_tokens} if job.usage.cached_tokens else {}),
            "promptTokensDetails": modality_details(job.usage.by_modality),
            **thinning_json(job)}
    return JSONResponse(body, headers=_native_headers(job))
