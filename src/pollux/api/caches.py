"""cachedContents: create / get / list / patch (the expiry only) / delete, and the prefix a
generateContent, streamGenerateContent or countTokens request names with `cachedContent`.

A cache's request part (contents, systemInstruction, tools, toolConfig) is parsed and checked
exactly as a generateContent request's is (`to_input`), and stored as sent.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from pollux.api.context import ctx
from pollux.api.files import page_size
from pollux.api.generate import read_json, to_input
from pollux.api.render import rfc3339
from pollux.api.schema import GenerateContentRequest, parse
from pollux.errors import InvalidArgument
from pollux.files.store import from_us
from pollux.generation import CachedPrefix, GenerateRequest

log = logging.getLogger("pollux.api.caches")
_background: set[asyncio.Task] = set()  # re-pinning tasks, held until done

_REQUEST_PART = {"contents": "contents", "systemInstruction": "systemInstruction",
                 "system_instruction": "systemInstruction", "tools": "tools", "toolConfig": "toolConfig",
                 "tool_config": "toolConfig"}
_OTHER = {"model", "displayName", "display_name", "ttl", "expireTime", "expire_time", "name", "createTime",
          "create_time", "updateTime", "update_time", "usageMetadata", "usage_metadata"}


def cache_json(rec) -> dict:
    """The resource as Gemini returns it (contents are not echoed)."""
    out = {"name": f"cachedContents/{rec.id}", "model": rec.model,
           "createTime": rfc3339(from_us(rec.create_us)), "updateTime": rfc3339(from_us(rec.update_us)),
           "expireTime": rfc3339(from_us(rec.expire_us)), "usageMetadata": {"totalTokenCount": rec.total_tokens}}
    if rec.display_name:
        out["displayName"] = rec.display_name
    return out


def _request_part(body: dict) -> dict:
    unknown = [k for k in body if k not in _REQUEST_PART and k not in _OTHER]
    if unknown:
        raise InvalidArgument(f'Invalid JSON payload received. Unknown name "{unknown[0][:100]}" at '
                              "'cached_content': Cannot find field.")
    return {_REQUEST_PART[k]: v for k, v in body.items() if k in _REQUEST_PART and v is not None}


def _input_of(stored: dict, version: str) -> GenerateRequest:
    return to_input(parse(GenerateContentRequest, stored, version))


async def create_cache(request: Request) -> JSONResponse:
    c = ctx(request)
    project = await c.auth.project_async(request)
    version = request.path_params["version"]
    body = await read_json(request)
    stored = _request_part(body)
    inp = _input_of(stored, version)
    name = body.get("displayName", body.get("display_name")) or ""
    if not isinstance(name, str):
        raise InvalidArgument("Invalid value at 'cached_content.display_name' (TYPE_STRING).")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidArgument("Invalid value at 'cached_content.model' (TYPE_STRING).")
    rec = await c.caches.create(project, model, stored, inp, display_name=name, ttl=body.get("ttl"),
                                expire_time=body.get("expireTime", body.get("expire_time")))
    return JSONResponse(cache_json(rec))


async def get_cache(request: Request) -> JSONResponse:
    c = ctx(request)
    project = await c.auth.project_async(request)
    rec = await run_in_threadpool(c.caches.get, project, request.path_params["cache_id"])
    return JSONResponse(cache_json(rec))


async def list_caches(request: Request) -> JSONResponse:
    c = ctx(request)
    project = await c.auth.project_async(request)
    q = request.query_params
    size = page_size(q.get("pageSize") or q.get("page_size"))
    page, token = await run_in_threadpool(c.caches.list, project, size, q.get("pageToken") or q.get("page_token"))
    body: dict = {}
    if page:
        body["cachedContents"] = [cache_json(r) for r in page]
    if token:
        body["nextPageToken"] = token
    return JSONResponse(body)


async def update_cache(request: Request) -> JSONResponse:
    c = ctx(request)
    project = await c.auth.project_async(request)
    body = await read_json(request)
    _request_part(body)  # unknown names are a 400; known ones other than the expiry are ignored, as on Gemini
    mask = request.query_params.get("updateMask") or request.query_params.get("update_mask")
    rec = await run_in_threadpool(c.caches.update, project, request.path_params["cache_id"], body.get("ttl"),
                                  body.get("expireTime", body.get("expire_time")), mask)
    return JSONResponse(cache_json(rec))


async def delete_cache(request: Request) -> JSONResponse:
    c = ctx(request)
    project = await c.auth.project_async(request)
    await run_in_threadpool(c.caches.delete, project, request.path_params["cache_id"])
    return JSONResponse({})


async def cached_prefix(request: Request, project: str, name: str, version: str) -> CachedPrefix:
    """The project's live cache `name` as a prompt prefix (a foreign or expired one is a 403)."""
    c = ctx(request)
    rec = await run_in_threadpool(c.caches.get, project, name)
    inp = _input_of(json.loads(rec.request_json), version)
    await run_in_threadpool(c.caches.attach_kept, rec.id, inp)
    if not c.caches.pinned(rec.id):  # after a restart: pin it again, in the background
        task = asyncio.get_running_loop().create_task(_repin(c, project, rec, inp))
        _background.add(task)
        task.add_done_callback(_background.discard)
    return CachedPrefix(f"cachedContents/{rec.id}", rec.model, inp.turns, inp.system)


async def _repin(c, project: str, rec, inp: GenerateRequest) -> None:
    try:
        job = await c.generation.prepare(project, rec.model, inp, method="countTokens")
        c.caches.pin(rec.id, job)
    except Exception:  # a file it names has expired since: the cache still answers what it can
        log.debug("re-pinning cache %s failed", rec.id, exc_info=True)
