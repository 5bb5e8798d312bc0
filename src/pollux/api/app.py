"""Builds the ASGI app: routes, the error mapping, and the services' life cycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from pollux import __version__, warmup
from pollux.api import caches, discovery, files, generate, interactions, models, ops, upload
from pollux.api.auth import Authenticator
from pollux.api.context import VERSIONS, AppContext
from pollux.api.errors import handle_pollux_error, handle_unexpected, status_body
from pollux.caches import CacheService
from pollux.catalog import Catalog
from pollux.engines import served_models
from pollux.engines.hub import EngineHub
from pollux.errors import NotFound, PolluxError
from pollux.files.interaction_store import InteractionStore
from pollux.files.limits_store import LimitStore
from pollux.files.service import FileService
from pollux.generation import GenerationService
from pollux.limits import RateLimiter
from pollux.observability import Ops, configure_logging
from pollux.settings import Settings

log = logging.getLogger("pollux")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_SLASHES = re.compile(r"/{2,}")
_VERBS = {
    "generateContent": generate.generate_content,
    "streamGenerateContent": generate.stream_generate_content,
    "countTokens": generate.count_tokens,
}


class NormalizePath:
    """Collapse repeated slashes (legacy JS with a trailing-slash base URL sends `//v1beta/...`)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope, path=_SLASHES.sub("/", scope["path"]), raw_path=None)
        await self.app(scope, receive, send)


def _versioned(handler):
    async def endpoint(request: Request) -> Response:
        if request.path_params.get("version") not in VERSIONS:
            raise NotFound(f"Unknown API version in {request.url.path}; use one of {', '.join(VERSIONS)}.")
        return await handler(request)

    return endpoint


async def _model_verb(request: Request) -> Response:
    """`models/{model}:{verb}`; the colon is part of the path segment."""
    name, sep, verb = request.path_params["target"].rpartition(":")
    handler = _VERBS.get(verb)
    if not sep or handler is None:
        if request.method == "GET" and not sep:
            request.path_params["model"] = request.path_params["target"]
            return await models.get_model(request)
        raise NotFound(f"Unknown method {verb!r} on models; use one of {', '.join(_VERBS)}.")
    if request.method != "POST":
        raise NotFound(f"{verb} takes POST.")
    request.path_params["model"] = name
    return await handler(request)


async def _index(_request: Request) -> Response:
    index = WEB_DIR / "index.html"
    if index.exists():
        return FileResponse(index)
    return JSONResponse({"name": "pollux", "version": __version__})


async def _health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = {404: "NOT_FOUND", 405: "NOT_FOUND"}.get(exc.status_code, "INVALID_ARGUMENT")
    code = 404 if exc.status_code == 405 else exc.status_code
    message = "The requested URL was not found on this server." if code == 404 else str(exc.detail)
    return JSONResponse(status_body(code, status, message), status_code=code)


def routes() -> list:
    v = _versioned
    return [
        Route("/", _index),
        Route("/healthz", _health),
        Route("/readyz", ops.readyz),
        Route("/metrics", ops.metrics),
        Route("/$discovery/rest", discovery.discovery),
        Route("/upload/{version}/files", v(upload.upload), methods=["POST", "PUT"]),
        Route("/resumable/upload/{version}/files", v(upload.upload), methods=["POST", "PUT"]),
        Route("/{version}/files", v(files.list_files), methods=["GET"]),
        Route("/{version}/files", v(files.create_file), methods=["POST"]),
        Route("/{version}/files/{file_id}", v(files.get_file), methods=["GET"]),
        Route("/{version}/files/{file_id}", v(files.delete_file), methods=["DELETE"]),
        Route("/{version}/cachedContents", v(caches.list_caches), methods=["GET"]),
        Route("/{version}/cachedContents", v(caches.create_cache), methods=["POST"]),
        Route("/{version}/cachedContents/{cache_id}", v(caches.get_cache), methods=["GET"]),
        Route("/{version}/cachedContents/{cache_id}", v(caches.update_cache), methods=["PATCH"]),
        Route("/{version}/cachedContents/{cache_id}", v(caches.delete_cache), methods=["DELETE"]),
        Route("/{version}/models", v(models.list_models), methods=["GET"]),
        Route("/{version}/models/{target}", v(_model_verb), methods=["GET", "POST"]),
        Route("/{version}/tunedModels/{target}", v(_model_verb), methods=["POST"]),
        Route("/{version}/interactions", v(interactions.create_interaction), methods=["POST"]),
        Route("/{version}/interactions/{interaction_id}", v(interactions.get_interaction), methods=["GET"]),
        Route("/{version}/interactions/{interaction_id}", v(interactions.delete_interaction), methods=["DELETE"]),
        Route("/{version}/interactions/{interaction_id}/cancel", v(interactions.cancel_interaction), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=WEB_DIR, check_dir=False), name="static"),
    ]


def build_context(settings: Settings) -> AppContext:
    files_service = FileService(settings)
    catalog = served_models.with_engine_url(Catalog.from_file(settings.catalog_file), settings)
    engines = EngineHub(settings)
    static_keys = settings.parsed_api_keys()
    generation = GenerationService(settings, catalog, files_service, engines)
    return AppContext(
        settings=settings, files=files_service, auth=Authenticator(static_keys, files_service.store),
        catalog=catalog, engines=engines, generation=generation,
        interactions=InteractionStore(files_service.store, settings.interaction_ttl_seconds),
        caches=CacheService(settings, files_service, generation),
        limits=RateLimiter(LimitStore(files_service.store), settings))


def _register_hooks(context: AppContext) -> None:
    """Speech recognition while a video/audio file is PROCESSING, so its transcript is ready when ACTIVE;
    then the plug-in hooks (`processing_hooks`, the same list `pollux worker` runs); then the warm-up (vision
    features as files arrive), which assembles prompts with that transcript."""
    from pollux.worker import media_hooks

    context.files.processor.hooks.extend(media_hooks(context.settings, context.engines.services.speech))
    warmup.install(context.files, context.engines, context.catalog, context.generation)


def create_app(settings: Settings) -> Starlette:
    configure_logging(settings)
    context = build_context(settings)
    operations = Ops(context)
    _register_hooks(context)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        context.files.start()
        sweeper = asyncio.create_task(_sweep_forever(context))
        try:
            yield
        finally:
            sweeper.cancel()
            context.files.stop()
            context.engines.close()

    app = Starlette(
        routes=routes(), lifespan=lifespan,
        middleware=[Middleware(NormalizePath), Middleware(ops.Observe, ops=operations)],
        exception_handlers={PolluxError: handle_pollux_error, HTTPException: _http_error,
                            Exception: handle_unexpected})
    app.state.pollux = context
    app.state.ops = operations  # metrics registry, in-flight count, drain flag (pollux.observability)
    return app


async def _sweep_forever(context: AppContext) -> None:
    while True:
        await asyncio.sleep(context.settings.sweep_interval_seconds)
        try:
            await asyncio.to_thread(context.files.sweep)
            await asyncio.to_thread(context.caches.sweep)
            await asyncio.to_thread(context.engines.unload_idle)
            if context.limits:
                await asyncio.to_thread(context.limits.sweep)
        except Exception:  # the sweeper must outlive a bad pass
            log.exception("sweep failed")
