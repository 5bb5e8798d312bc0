"""files.get / files.list / files.delete (metadata only: no endpoint ever returns a file's bytes)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from pollux.api.context import base_url, ctx
from pollux.api.render import file_json
from pollux.errors import InvalidArgument


async def list_files(request: Request) -> JSONResponse:
    project = ctx(request).auth.project(request)
    raw = request.query_params.get("pageSize") or request.query_params.get("page_size")
    try:
        size = int(float(raw)) if raw else None
        if raw and float(raw) != size:
            raise ValueError
    except ValueError:
        raise InvalidArgument(f"Invalid pageSize {raw!r}: expected an integer.") from None
    token = request.query_params.get("pageToken") or request.query_params.get("page_token")
    page, next_token = ctx(request).files.list(project, size, token)
    body: dict = {}
    if page:
        body["files"] = [file_json(r, base_url(request)) for r in page]
    if next_token:
        body["nextPageToken"] = next_token
    return JSONResponse(body)


async def get_file(request: Request) -> JSONResponse:
    project = ctx(request).auth.project(request)
    rec = ctx(request).files.get(project, request.path_params["file_id"])
    return JSONResponse(file_json(rec, base_url(request)))


async def delete_file(request: Request) -> JSONResponse:
    project = ctx(request).auth.project(request)
    ctx(request).files.delete(project, request.path_params["file_id"])
    return JSONResponse({})


async def create_file(request: Request) -> JSONResponse:
    ctx(request).auth.project(request)
    raise InvalidArgument("Creating a file needs its bytes: use media.upload (POST /upload/v1beta/files).")
