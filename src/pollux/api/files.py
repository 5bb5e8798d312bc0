"""files.get / files.list / files.delete (metadata only: no endpoint ever returns a file's bytes).

The File service's calls touch the database and the disk (a delete removes a whole artifact folder):
they run in threads, never on the event loop.
"""

from __future__ import annotations

import math
import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from pollux.api.context import base_url, ctx
from pollux.api.render import file_json
from pollux.errors import InvalidArgument


_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d{1,4})?\s*$")


def page_size(raw: str | None) -> int | None:
    """`pageSize` as an integer: "10" and "10.0" are fine; inf, 1e400, 2.5 and words are a 400."""
    if not raw:
        return None
    if raw.strip().lstrip("+-").isdigit() and len(raw) < 1000:
        value: float = int(raw)
    else:
        value = float(raw) if _NUMBER.match(raw) else math.nan
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise InvalidArgument(f"Invalid pageSize {raw[:100]!r}: expected an integer.")
    return max(min(int(value), 2**31), -(2**31))  # the service clamps; keep the integer small


async def list_files(request: Request) -> JSONResponse:
    project = await ctx(request).auth.project_async(request)
    size = page_size(request.query_params.get("pageSize") or request.query_params.get("page_size"))
    token = request.query_params.get("pageToken") or request.query_params.get("page_token")
    page, next_token = await run_in_threadpool(ctx(request).files.list, project, size, token)
    body: dict = {}
    if page:
        body["files"] = [file_json(r, base_url(request)) for r in page]
    if next_token:
        body["nextPageToken"] = next_token
    return JSONResponse(body)


async def get_file(request: Request) -> JSONResponse:
    project = await ctx(request).auth.project_async(request)
    rec = await run_in_threadpool(ctx(request).files.get, project, request.path_params["file_id"])
    return JSONResponse(file_json(rec, base_url(request)))


async def delete_file(request: Request) -> JSONResponse:
    project = await ctx(request).auth.project_async(request)
    await run_in_threadpool(ctx(request).files.delete, project, request.path_params["file_id"])
    return JSONResponse({})


async def create_file(request: Request) -> JSONResponse:
    await ctx(request).auth.project_async(request)
    raise InvalidArgument("Creating a file needs its bytes: use media.upload (POST /upload/v1beta/files).")
