"""models.list / models.get from the catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from pollux.api.context import ctx
from pollux.api.render import model_json
from pollux.errors import InvalidArgument


async def list_models(request: Request) -> JSONResponse:
    c = ctx(request)
    c.auth.project(request)
    raw = request.query_params.get("pageSize") or request.query_params.get("page_size")
    token = request.query_params.get("pageToken") or request.query_params.get("page_token")
    try:
        size = min(int(float(raw)), 1000) if raw else 50
        start = int(token) if token else 0
    except ValueError:
        raise InvalidArgument("Invalid pageSize or pageToken.") from None
    if size <= 0:
        size = 50
    names = c.catalog.names()
    page = names[start:start + size]
    body: dict = {"models": [model_json(c.catalog.resolve(n).entry, n) for n in page]}  # every listed name resolves
    if start + size < len(names):
        body["nextPageToken"] = str(start + size)
    return JSONResponse(body)


async def get_model(request: Request) -> JSONResponse:
    c = ctx(request)
    c.auth.project(request)
    resolved = c.catalog.resolve(request.path_params["model"], api_version=request.path_params.get("version", "v1beta"),
                                 strict=c.settings.strict_model_names)
    return JSONResponse(model_json(resolved.entry, resolved.requested, c.engines.info(resolved.entry)))
