"""The Interactions API (`/v1beta/interactions`): create (plain and SSE-streamed), get, delete.

The wire shape is the one google-genai 3.x parses (the May 2026 schema): `input` as a string, one
content item, a list of items or a list of `user_input` / `model_output` steps; responses with
`steps` (POST: the model's output steps, GET: the stored timeline with the `user_input` step first),
`usage` by modality, and streamed `interaction.created` → `step.start` → `step.delta`… → `step.stop`
→ `interaction.completed` events.

Nothing here assembles a prompt: an interaction (with its stored conversation before it) is rewritten
as the generateContent request it means and goes down that one path (`generate.to_input`,
`GenerationService.prepare`), media handling included.

Answered with a clear 400 for now: agents (`agent`, `agent_config`, `environment`), tools,
`background` execution, `continuation_token`, `cached_content`, `webhook_config`, and output
modalities other than text.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pollux import b64
from pollux.api.context import ctx
from pollux.api.errors import error_body
from pollux.api.generate import read_json, to_input
from pollux.api.schema import GenerateContentRequest, checked_json_schema, parse
from pollux.errors import FailedPrecondition, InvalidArgument, NotFound, PolluxError
from pollux.generation import Job
from pollux.media import tokens

# The Interactions API's error codes (its docs' table), by google.rpc status.
ERROR_CODES = {
    "INVALID_ARGUMENT": "invalid_request", "FAILED_PRECONDITION": "failed_precondition",
    "OUT_OF_RANGE": "out_of_range", "UNAUTHENTICATED": "authentication", "PERMISSION_DENIED": "permission_denied",
    "NOT_FOUND": "not_found", "ALREADY_EXISTS": "already_exists", "ABORTED": "aborted",
    "RESOURCE_EXHAUSTED": "rate_limit_exceeded", "CANCELLED": "cancelled", "INTERNAL": "api_error",
    "UNKNOWN": "api_error", "UNAVAILABLE": "service_unavailable", "DEADLINE_EXCEEDED": "deadline_exceeded",
}
CREATE_FIELDS = frozenset({
    "model", "input", "system_instruction", "generation_config", "response_format", "response_mime_type",
    "response_modalities", "previous_interaction_id", "store", "stream", "safety_settings", "labels",
    "service_tier", "background", "tools", "agent", "agent_config", "environment", "webhook_config",
    "continuation_token", "cached_content"})
NOT_YET = {  # accepted by Gemini, refused here with this reason
    "agent": "Agents are not supported by Pollux yet; name a model instead.",
    "agent_config": "Agents are not supported by Pollux yet; name a model instead.",
    "environment": "Agent environments are not supported by Pollux yet.",
    "tools": "Tools (function calling, search, code execution, MCP) are not supported on interactions by Pollux yet.",
    "background": "Background execution is not supported by Pollux yet; omit background or set it to false.",
    "continuation_token": "continuation_token is not supported by Pollux: its interactions always complete in "
                          "one request.",
    "cached_content": "cached_content is not supported on interactions by Pollux yet.",
    "webhook_config": "Webhooks are not supported by Pollux yet.",
}
CONFIG_FIELDS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "max_output_tokens":
                 "max_output_tokens", "stop_sequences": "stop_sequences"}
CONFIG_IGNORED = frozenset({"thinking_summaries"})  # about thought summaries, which Pollux never emits
CONFIG_REFUSED = frozenset({"tool_choice", "image_config", "speech_config", "video_config", "transcription_config"})
MEDIA_TYPES = ("image", "video", "audio", "document")
OUTPUT_FORMATS = ("audio", "image", "video")  # response_format types other than text
RESOLUTIONS = {"low": "MEDIA_RESOLUTION_LOW", "medium": "MEDIA_RESOLUTION_MEDIUM",
               "high": "MEDIA_RESOLUTION_HIGH", "ultra_high": "MEDIA_RESOLUTION_ULTRA_HIGH"}
STEP_ROLES = {"user_input": "user", "model_output": "model"}
MAX_ID = 64


# ---- errors: the Interactions API's envelope, from the same domain exceptions ----

def interactions_error(e: PolluxError) -> tuple[int, dict]:
    """`{"error": {"code": "invalid_request", "message", "status"}}`: the string codes google-genai's
    interactions client parses (its `Error.code` is a string), Gemini's status beside them."""
    code, body = error_body(e)
    body["error"]["code"] = ERROR_CODES.get(e.status, "api_error")
    return code, body


def _answering_errors(handler):
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except PolluxError as e:
            code, body = interactions_error(e)
            return JSONResponse(body, status_code=code)

    return endpoint


# ---- request → the generateContent request it means ----

def _content_part(item: Any, where: str) -> dict:
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where} must be a content object with a `type`.")
    kind = item.get("type")
    if kind == "text":
        if not isinstance(item.get("text"), str):
            raise InvalidArgument(f"{where}.text must be a string.")
        return {"text": item["text"]}
    if kind not in MEDIA_TYPES:
        raise InvalidArgument(f"{where}.type {kind!r} is not supported as input; use text, image, video, audio "
                              "or document.")
    part: dict = {}
    resolution = item.get("resolution")
    if resolution is not None:
        if resolution not in RESOLUTIONS:
            raise InvalidArgument(f"{where}.resolution {resolution!r} is not one of {', '.join(RESOLUTIONS)}.")
        part["media_resolution"] = RESOLUTIONS[resolution]
    mime = item.get("mime_type") or ""
    if not isinstance(mime, str):
        raise InvalidArgument(f"{where}.mime_type must be a string.")
    uri, data = item.get("uri"), item.get("data")
    if (uri is None) == (data is None):
        raise InvalidArgument(f"{where} needs exactly one of `uri` (a Files API uri or URL) and `data` (base64).")
    if uri is not None:
        if not isinstance(uri, str) or not uri:
            raise InvalidArgument(f"{where}.uri must be a non-empty string.")
        part["file_data"] = {"file_uri": uri, "mime_type": mime}
        return part
    if not mime:
        raise InvalidArgument(f"{where}.mime_type is required with inline `data`.")
    try:
        raw = b64.decode(data) if isinstance(data, str) else None
    except ValueError:
        raw = None
    if raw is None:
        raise InvalidArgument(f"{where}.data is not valid base64.")
    part["inline_data"] = {"mime_type": mime, "data": raw}
    return part


def input_turns(value: Any, where: str = "input") -> list[tuple[str, list[dict]]]:
    """`input` as (role, content items) turns: a string, one item, a list of items (one user turn), a list
    of steps (`user_input` / `model_output`), or the older `{role, content}` turns."""
    if isinstance(value, str):
        return [("user", [{"type": "text", "text": value}])]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidArgument(f"{where} must be a string, a content object or a non-empty list.")
    kinds = {_item_kind(x) for x in value}
    if len(kinds) > 1:
        raise InvalidArgument(f"{where} mixes content items with steps or turns; use one form.")
    kind = kinds.pop()
    if kind == "content":
        return [("user", value)]
    turns = []
    for i, item in enumerate(value):
        if kind == "step":
            role, content = STEP_ROLES[item["type"]], item.get("content") or []
        else:
            role, content = item.get("role") or "user", item.get("content")
            if role not in ("user", "model"):
                raise InvalidArgument(f"{where}[{i}].role must be 'user' or 'model'.")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
        if not isinstance(content, list) or not content:
            raise InvalidArgument(f"{where}[{i}].content must be a non-empty list of content items.")
        turns.append((role, content))
    return turns


def _item_kind(item: Any) -> str:
    if isinstance(item, dict) and item.get("type") in STEP_ROLES:
        return "step"
    if isinstance(item, dict) and "role" in item and "type" not in item:
        return "turn"
    if isinstance(item, dict) and item.get("type") in ("thought", "function_call", "function_result"):
        raise InvalidArgument(f"Steps of type {item['type']!r} are not supported by Pollux yet (tools and thoughts).")
    return "content"


def _check_fields(body: dict) -> None:
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise InvalidArgument(f"Unknown parameter: {unknown[0]!r} is not a field of CreateInteraction.")
    for name, why in NOT_YET.items():
        if body.get(name) not in (None, False, [], {}):
            raise InvalidArgument(why)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidArgument("model is required (Pollux serves models, not agents).")


def _generation_config(body: dict) -> dict:
    cfg = body.get("generation_config") or {}
    if not isinstance(cfg, dict):
        raise InvalidArgument("generation_config must be an object.")
    out: dict = {}
    for name, value in cfg.items():
        if value is None or name in CONFIG_IGNORED:
            continue
        if name in CONFIG_FIELDS:
            out[CONFIG_FIELDS[name]] = value
        elif name == "thinking_level":
            out["thinking_config"] = {"thinking_level": str(value).upper()}
        elif name in CONFIG_REFUSED:
            raise InvalidArgument(f"generation_config.{name} is not supported by Pollux yet (text output, no tools).")
        else:
            raise InvalidArgument(f"Unknown parameter: 'generation_config.{name}'.")
    modalities = body.get("response_modalities")
    modalities = [modalities] if isinstance(modalities, str) else modalities or []
    if not isinstance(modalities, list) or [m for m in modalities if str(m).lower() != "text"]:
        raise InvalidArgument("Pollux answers in text only: response_modalities may hold only 'text'.")
    out.update(_response_format(body.get("response_format"), body.get("response_mime_type")))
    return out


def _response_format(fmt: Any, legacy_mime: Any) -> dict:
    """`response_format` as today's SDKs send it ({type: text, mime_type, schema}, or a list of such), or
    as before May 2026 (a bare JSON schema beside `response_mime_type`)."""
    mime, schema = legacy_mime, None
    formats = fmt if isinstance(fmt, list) else [fmt] if fmt is not None else []
    texts = []
    for f in formats:
        if not isinstance(f, dict):
            raise InvalidArgument("response_format must be an object or a list of objects.")
        kind = f.get("type")
        if kind == "text":
            texts.append(f)
        elif kind in OUTPUT_FORMATS:
            raise InvalidArgument(f"response_format type {kind!r} is not supported: Pollux answers in text only.")
        else:  # the pre-May-2026 form: the JSON schema itself
            schema = f
    if len(texts) > 1:
        raise InvalidArgument("response_format may hold one text format.")
    if texts:
        mime = texts[0].get("mime_type") or mime
        schema = texts[0].get("schema", schema)
    if schema is not None:
        checked_json_schema(schema, "response_format.schema")
        mime = mime or "application/json"
    out: dict = {}
    if mime is not None:
        if mime not in ("text/plain", "application/json"):
            raise InvalidArgument(f"response_format mime_type {mime!r} is not supported; use application/json "
                                  "or text/plain.")
        out["response_mime_type"] = mime
    if schema is not None:
        if mime != "application/json":
            raise InvalidArgument("A response_format schema needs mime_type application/json.")
        out["response_json_schema"] = schema
    return out


def generate_request(body: dict, history: list[dict]) -> GenerateContentRequest:
    """The generateContent request an interaction means: the stored conversation's turns, then its input."""
    turns: list[tuple[str, list[dict]]] = []
    for past in history:
        for step in past.get("steps", []):
            turns.extend(input_turns([step], "previous interaction"))
    if body.get("input") is None:
        raise InvalidArgument("input is required.")
    turns.extend(input_turns(body["input"]))
    contents = [{"role": role, "parts": [_content_part(item, f"input content[{j}]") for j, item in enumerate(items)]}
                for role, items in turns]
    request: dict = {"contents": contents, "generation_config": _generation_config(body)}
    system = body.get("system_instruction")
    if system is not None:
        if not isinstance(system, str):
            raise InvalidArgument("system_instruction must be a string.")
        request["system_instruction"] = {"parts": [{"text": system}]}
    return parse(GenerateContentRequest, request)


# ---- responses ----

def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_json(job: Job, output_tokens: int) -> dict:
    by_modality = [{"modality": k.lower(), "tokens": v} for k, v in tokens.reported(job.usage.by_modality).items()]
    prompt = job.usage.prompt_tokens
    return {"total_input_tokens": prompt, "input_tokens_by_modality": by_modality,
            "total_output_tokens": output_tokens, "output_tokens_by_modality": [{"modality": "text",
                                                                                 "tokens": output_tokens}],
            "total_tokens": prompt + output_tokens}


def _resource(iid: str, body: dict, created: str) -> dict:
    out = {"id": iid, "object": "interaction", "model": body["model"], "status": "in_progress", "role": "model",
           "created": created, "updated": created}
    for name in ("previous_interaction_id", "system_instruction", "generation_config", "response_format"):
        if body.get(name) is not None:
            out[name] = body[name]
    return out


def _finish(resource: dict, text: str, finish: str | None, job: Job, output_tokens: int) -> dict:
    """The interaction once generated: `incomplete` when it stopped at max_output_tokens, as on Gemini."""
    return {**resource, "status": "incomplete" if finish == "MAX_TOKENS" else "completed", "updated": _now(),
            "steps": [{"type": "model_output", "content": [{"type": "text", "text": text}]}],
            "usage": usage_json(job, output_tokens)}


def _stored(done: dict, body: dict) -> dict:
    """What GET shows: the input as `user_input` / `model_output` steps, then the output."""
    steps = [{"type": "user_input" if role == "user" else "model_output", "content": items}
             for role, items in input_turns(body["input"])]
    return {**done, "steps": steps + done["steps"]}


def _store(request: Request):
    store = ctx(request).interactions
    assert store is not None  # built with the app
    return store


# ---- routes ----

@_answering_errors
async def create_interaction(request: Request) -> Response:
    c = ctx(request)
    project = await c.auth.project_async(request)
    body = await read_json(request)
    _check_fields(body)
    previous = body.get("previous_interaction_id")
    history: list[dict] = []
    if previous is not None:
        if not isinstance(previous, str):
            raise InvalidArgument("previous_interaction_id must be a string (an interaction's id).")
        found = await run_in_threadpool(_store(request).chain, project, previous) \
            if 0 < len(previous) <= MAX_ID else None
        if found is None:
            raise NotFound(f"Interaction {previous!r} was not found (it may have been deleted, expired, or created "
                           "with store=false).")
        history = found
    job = await c.generation.prepare(project, body["model"], to_input(generate_request(body, history)),
                                     api_version=request.path_params["version"], method="generateContent")
    if c.limits:  # per-project rate limits (pollux.limits)
        await c.limits.admit(project, job)
    iid = "v1_" + secrets.token_urlsafe(24)
    resource = _resource(iid, body, _now())
    keep = body.get("store", True) is not False
    chain_ids = [h["id"] for h in history]

    async def remember(done: dict) -> None:
        if keep:
            await run_in_threadpool(_store(request).insert, project, _stored(done, body), chain_ids)

    if body.get("stream"):
        return StreamingResponse(_events(request, job, resource, remember), media_type="text/event-stream")
    text, finish, tokens = "", None, 0
    async for delta in c.generation.stream(job):
        text += delta.text
        finish = delta.finish_reason or finish
        tokens = delta.output_tokens if delta.output_tokens is not None else tokens
    done = _finish(resource, text, finish, job, tokens)
    await remember(done)
    return JSONResponse(done)


class _Sse:
    """SSE as google-genai's interactions stream reads it: one JSON event per `data:` line, each with an
    `event_id` (`<interaction id>:<n>`); events up to `after` (a `last_event_id`'s n) are not sent."""

    def __init__(self, interaction_id: str, after: int = 0):
        self.interaction_id, self.after, self.seq = interaction_id, after, 0

    def __call__(self, kind: str, **fields) -> bytes:
        self.seq += 1
        if self.seq <= self.after:
            return b""
        payload = {"event_type": kind, **fields, "event_id": f"{self.interaction_id}:{self.seq}"}
        return b"event: " + kind.encode() + b"\ndata: " + json.dumps(payload).encode() + b"\n\n"

    def opening(self, resource: dict) -> list[bytes]:
        return [self("interaction.created", interaction={k: v for k, v in resource.items() if k != "steps"}
                     | {"status": "in_progress"}),
                self("step.start", index=0, step={"type": "model_output", "content": []})]

    def closing(self, done: dict) -> list[bytes]:
        summary = {k: v for k, v in done.items() if k != "steps"}  # lifecycle events carry no steps
        return [self("step.stop", index=0, usage=done["usage"]), self("interaction.completed", interaction=summary)]


async def _events(request: Request, job: Job, resource: dict, remember) -> AsyncIterator[bytes]:
    sse = _Sse(resource["id"])
    for chunk in sse.opening(resource):
        yield chunk
    text, finish, tokens = "", None, 0
    try:
        async for delta in ctx(request).generation.stream(job):
            finish = delta.finish_reason or finish
            tokens = delta.output_tokens if delta.output_tokens is not None else tokens
            if delta.text:
                text += delta.text
                yield sse("step.delta", index=0, delta={"type": "text", "text": delta.text})
    except PolluxError as e:
        yield sse("error", error={"code": ERROR_CODES.get(e.status, "api_error"), "message": e.message})
        return
    done = _finish(resource, text, finish, job, tokens)
    await remember(done)
    for chunk in sse.closing(done):
        yield chunk


async def _replay(stored: dict, after: int) -> AsyncIterator[bytes]:
    """A stored interaction streamed again (GET with stream=true): its output as one text delta."""
    sse = _Sse(stored["id"], after)
    for chunk in sse.opening(stored):
        yield chunk
    output = [s for s in stored["steps"] if s["type"] == "model_output"][-1]
    yield sse("step.delta", index=0, delta={"type": "text", "text": output["content"][0]["text"]})
    for chunk in sse.closing(stored):
        yield chunk


def _interaction_id(request: Request) -> str:
    iid = request.path_params["interaction_id"]
    return iid if 0 < len(iid) <= MAX_ID else ""


@_answering_errors
async def get_interaction(request: Request) -> Response:
    project = await ctx(request).auth.project_async(request)
    iid = _interaction_id(request)
    found = await run_in_threadpool(_store(request).get, project, iid) if iid else None
    if found is None:
        raise _not_found(request)
    if _flag(request, "stream"):
        last = request.query_params.get("last_event_id", "")
        after = int(last.rpartition(":")[2]) if last.rpartition(":")[2].isdigit() else 0
        return StreamingResponse(_replay(found, after), media_type="text/event-stream")
    if request.query_params.get("include_input") is not None and not _flag(request, "include_input"):
        found = {**found, "steps": [s for s in found["steps"] if s["type"] != "user_input"]}
    return JSONResponse(found)


def _not_found(request: Request) -> NotFound:
    return NotFound(f"Interaction {request.path_params['interaction_id']!r} was not found.")


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("true", "1")


@_answering_errors
async def delete_interaction(request: Request) -> Response:
    project = await ctx(request).auth.project_async(request)
    iid = _interaction_id(request)
    if not (iid and await run_in_threadpool(_store(request).delete, project, iid)):
        raise _not_found(request)
    return JSONResponse({})


@_answering_errors
async def cancel_interaction(request: Request) -> Response:
    """Only background interactions can be cancelled, and Pollux runs none: every stored one is finished."""
    project = await ctx(request).auth.project_async(request)
    iid = _interaction_id(request)
    if not (iid and await run_in_threadpool(_store(request).get, project, iid)):
        raise _not_found(request)
    raise FailedPrecondition("Only background interactions can be cancelled; this one has already finished.")
