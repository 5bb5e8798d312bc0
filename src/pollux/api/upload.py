"""media.upload: X-Goog resumable, multipart/related, googleapiclient resumable, and raw/media.

Every protocol ends in the same File service calls (start_upload / append / finalize), so limits,
hashing and durability are the same whichever SDK is talking.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pollux.api import json_reader
from pollux.api.context import ctx, base_url
from pollux.api.errors import error_body
from pollux.api.render import file_json
from pollux.api.schema import CreateFileRequest, parse
from pollux.api.multipart import RelatedReader
from pollux.errors import InvalidArgument, PolluxError
from pollux.files.service import NewFile

CHUNK_GRANULARITY = 8 * 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024  # a File resource's JSON; anything bigger is not metadata
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


def session_url(request: Request, session_id: str) -> str:
    version = request.path_params.get("version", "v1beta")
    query = urlencode({"upload_id": session_id, "upload_protocol": "resumable"})
    return f"{base_url(request)}/upload/{version}/files?{query}"


async def upload(request: Request) -> Response:
    """POST/PUT /upload/{version}/files (and /resumable/upload/...): dispatch on protocol."""
    if "upload_id" in request.query_params:
        if request.headers.get("x-goog-upload-command"):
            return await _xgoog_command(request)
        return await _gapi_chunk(request)
    protocol = request.headers.get("x-goog-upload-protocol", "").lower()
    upload_type = request.query_params.get("uploadType", "").lower()
    content_type = request.headers.get("content-type", "")
    if protocol == "resumable":
        return await _xgoog_start(request)
    if upload_type == "resumable" or request.url.path.startswith("/resumable/"):
        return await _gapi_start(request)
    if protocol == "multipart" or upload_type == "multipart" or content_type.startswith("multipart/related"):
        return await _multipart(request)
    if protocol == "raw" or upload_type == "media" or (content_type and "json" not in content_type):
        return await _raw(request)
    raise InvalidArgument("Upload requests need a protocol: X-Goog-Upload-Protocol (resumable, multipart, raw) "
                          "or uploadType (resumable, multipart, media).")


async def _metadata(request: Request) -> NewFile:
    """The start request's File metadata; the body is read as Gemini reads it (the docs' curl sends single quotes)."""
    data = await json_reader.read_object(request, MAX_METADATA_BYTES)
    meta = parse(CreateFileRequest, data).file
    return NewFile(name=meta.name, display_name=meta.display_name, mime_type=meta.mime_type,
                   size_bytes=meta.size_bytes)


def _int_header(request: Request, name: str) -> int | None:
    value = request.headers.get(name)
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise InvalidArgument(f"Invalid {name} header: {value!r}.") from None
    if n < 0:
        raise InvalidArgument(f"Invalid {name} header: {value!r}.")
    return n


# ---- A. X-Goog resumable ----

async def _xgoog_start(request: Request) -> Response:
    project = ctx(request).auth.project(request)
    command = request.headers.get("x-goog-upload-command", "start").lower()
    if "start" not in command:
        raise InvalidArgument("A resumable upload starts with X-Goog-Upload-Command: start.")
    new = await _metadata(request)
    size = _int_header(request, "x-goog-upload-header-content-length")
    new.size_bytes = size if size is not None else new.size_bytes
    new.mime_type = request.headers.get("x-goog-upload-header-content-type") or new.mime_type
    if not new.display_name and request.headers.get("x-goog-upload-file-name"):
        new.display_name = request.headers["x-goog-upload-file-name"][:512]
    session = ctx(request).files.start_upload(project, new, "resumable")
    url = session_url(request, session.id)
    headers = {"X-Goog-Upload-Status": "active", "X-Goog-Upload-URL": url, "X-Goog-Upload-Control-URL": url,
               "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY)}
    if new.size_bytes is not None:
        headers["X-Goog-Upload-Header-Content-Length"] = str(new.size_bytes)
    if new.mime_type:
        headers["X-Goog-Upload-Header-Content-Type"] = new.mime_type
    return Response(status_code=200, headers=headers)


async def _xgoog_command(request: Request) -> Response:
    files = ctx(request).files
    session_id = request.query_params["upload_id"]
    commands = {c.strip() for c in request.headers["x-goog-upload-command"].lower().split(",")}
    try:
        if "query" in commands:
            s = files.session(session_id)
            status = "final" if s.status == "final" else "active"
            return Response(headers={"X-Goog-Upload-Status": status, "X-Goog-Upload-Size-Received": str(s.received)})
        if "cancel" in commands:
            files.session(session_id)
            files.abort(session_id)
            return Response(headers={"X-Goog-Upload-Status": "cancelled"})
        if not commands & {"upload", "finalize"}:
            raise InvalidArgument(f"Unknown X-Goog-Upload-Command {request.headers['x-goog-upload-command']!r}.")
        offset = _int_header(request, "x-goog-upload-offset")
        if "upload" in commands:
            s = await files.append(session_id, offset, request.stream())
        else:
            s = files.session(session_id)
            if offset is not None and offset != s.received:
                raise InvalidArgument(f"Invalid upload offset {offset}: the session has received {s.received} bytes.")
        if "finalize" in commands:
            rec = await files.finalize(session_id)
            return JSONResponse({"file": file_json(rec, base_url(request))},
                                headers={"X-Goog-Upload-Status": "final"})
        return Response(headers={"X-Goog-Upload-Status": "active", "X-Goog-Upload-Size-Received": str(s.received)})
    except PolluxError as e:
        # "final" stops the SDKs' retry loop, so they surface this error instead of retrying blindly.
        code, body = error_body(e)
        return JSONResponse(body, status_code=code, headers={"X-Goog-Upload-Status": "final"})


# ---- B. multipart/related (and uploadType=multipart) ----

async def _multipart(request: Request) -> Response:
    project = ctx(request).auth.project(request)
    content_type = request.headers.get("content-type", "")
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise InvalidArgument("multipart upload without a boundary in Content-Type.")
    reader = RelatedReader(request.stream(), m.group(1))
    meta, media_headers = await reader.metadata()
    new = _new_file(meta)
    new.mime_type = new.mime_type or media_headers.get("content-type", "").split(";")[0].strip()
    rec = await ctx(request).files.upload_stream(project, new, reader.media(), "multipart")
    return JSONResponse({"file": file_json(rec, base_url(request))})


def _new_file(meta: dict) -> NewFile:
    f = parse(CreateFileRequest, meta).file
    return NewFile(name=f.name, display_name=f.display_name, mime_type=f.mime_type, size_bytes=f.size_bytes)


# ---- raw / uploadType=media ----

async def _raw(request: Request) -> Response:
    project = ctx(request).auth.project(request)
    new = NewFile(display_name=request.headers.get("x-goog-upload-file-name", "")[:512],
                  mime_type=request.headers.get("x-goog-upload-header-content-type")
                  or request.headers.get("content-type", "").split(";")[0].strip(),
                  size_bytes=_int_header(request, "x-goog-upload-header-content-length"))
    rec = await ctx(request).files.upload_stream(project, new, request.stream(), "raw")
    return JSONResponse({"file": file_json(rec, base_url(request))})


# ---- C. googleapiclient resumable (legacy google-generativeai) ----

async def _gapi_start(request: Request) -> Response:
    project = ctx(request).auth.project(request)
    new = await _metadata(request)
    new.mime_type = request.headers.get("x-upload-content-type") or new.mime_type
    size = _int_header(request, "x-upload-content-length")
    new.size_bytes = size if size is not None else new.size_bytes
    session = ctx(request).files.start_upload(project, new, "gapi-resumable")
    return Response(status_code=200, headers={"Location": session_url(request, session.id)})


async def _gapi_chunk(request: Request) -> Response:
    files = ctx(request).files
    session_id = request.query_params["upload_id"]
    s = files.session(session_id)
    rng = request.headers.get("content-range", "")
    m = _CONTENT_RANGE.match(rng.strip()) if rng else None
    if rng and not m:
        raise InvalidArgument(f"Invalid Content-Range {rng!r}.")
    total = int(m.group(3)) if m and m.group(3) != "*" else None
    if m and m.group(1) is None:  # "bytes */N": a status query
        return _gapi_progress(s.received) if not (total is not None and s.received == total and total) \
            else await _gapi_finish(request, session_id)
    start = int(m.group(1)) if m else s.received
    if total is not None and s.declared_size is None:
        files.store.update_session(session_id, declared_size=total)
    s = await files.append(session_id, start, request.stream())
    if total is None and m is not None:
        return _gapi_progress(s.received)
    if total is not None and s.received < total:
        return _gapi_progress(s.received)
    return await _gapi_finish(request, session_id)


async def _gapi_finish(request: Request, session_id: str) -> Response:
    rec = await ctx(request).files.finalize(session_id)
    return JSONResponse({"file": file_json(rec, base_url(request))})


def _gapi_progress(received: int) -> Response:
    headers = {"Range": f"bytes=0-{received - 1}"} if received else {}
    return Response(status_code=308, headers=headers)
