"""generateContent / countTokens as a service: resolve the model and media, assemble the prompt,
count tokens both ways (Gemini's rules and the local model's own), and run the engine.

Two limits: the Gemini-rule count must fit the entry's `gemini_input_token_limit` (what models.get
reports as `inputTokenLimit`), and the local model's own count its `input_token_limit` (its context),
video frames being thinned to fit (reported in `Prompt.thinning`).

The API layer hands in a parsed, engine-neutral `GenerateRequest`; nothing here knows about HTTP.
The request is checked against the engine's declared capabilities once, here (`capabilities.py`),
and counted by Gemini's rules once (`media/tokens.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from pollux import capabilities, request_timing
from pollux import prompt as prompt_assembly
from pollux.catalog import Catalog, Resolved, check_thinking
from pollux.engines.base import Delta, Engine, GenerationParams
from pollux.errors import InvalidArgument, PermissionDenied, UnsupportedMedia
from pollux.media import mime as mimes
from pollux.media import pipeline, tokens, urls
from pollux.prompt_types import FileRef, InlineRef, MediaPart, Part, Prompt, RequestTurn, TextPart, VideoOptions

if TYPE_CHECKING:
    from pollux.engines.hub import EngineHub
    from pollux.files.service import FileService
    from pollux.settings import Settings

log = logging.getLogger("pollux.generation")

_FILE_URI = re.compile(r"(?:^|/)files/([a-z0-9][a-z0-9-]{0,39})/?$")
# A light request (`GenerationService._light`) holds at most this much text and inline bytes: hashing and
# counting more than ~1 MB on the event loop would hold up every other request there.
LIGHT_REQUEST_BYTES = 1 << 20
_API_FILE_URL = re.compile(r"/v1(?:beta|alpha)?/files/([a-z0-9][a-z0-9-]{0,39})/?$")  # our `uri`, Gemini's


class _NeedsThread(Exception):
    """Preparing on the event loop met work that would block it (the engine's tokenizer or server counting)."""


@dataclass
class GenerateRequest:
    """The one request shape below the wire: turns of typed parts (media as references until
    `prepare` fetches them), the system instruction and the generation parameters."""

    turns: list[RequestTurn]
    system: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    media_resolution: str | None = None  # generationConfig.mediaResolution (Gemini 3 token accounting)
    thinking_budget: int | None = None  # checked against the named Gemini model, not honoured
    thinking_level: str | None = None
    cached: "CachedPrefix | None" = None  # the request's cachedContent, resolved by the API layer


@dataclass
class CachedPrefix:
    """An explicit cache (cachedContents/ID) as a prompt prefix: its turns go first, its system
    instruction is the request's."""

    name: str  # cachedContents/ID
    model: str  # models/... it was created for (a request must name the same)
    turns: list[RequestTurn]
    system: str | None = None


def with_cache(req: GenerateRequest, model: Resolved) -> tuple[GenerateRequest, int]:
    """The request with its cache's turns first, and how many leading turns came from the cache."""
    cached = req.cached
    if cached is None:
        return req, 0
    if cached.model.removeprefix("models/") != model.requested:
        raise InvalidArgument(f"Model used by GenerateContent request (models/{model.requested}) and CachedContent "
                              f"({cached.model}) has to be the same!")
    return replace(req, turns=cached.turns + req.turns, system=cached.system, cached=None), len(cached.turns)


def file_id_of(uri: str) -> str | None:
    """The File API id a fileUri names (our `uri`, Gemini's https form, a bare files/ID), or None for a
    URL of something else, to be fetched."""
    path = uri.split("?", 1)[0]
    if not urls.is_url(path):
        m = _FILE_URI.search(path)
        return m.group(1) if m else ""
    m = _API_FILE_URL.search(path)
    return m.group(1) if m else None


@dataclass
class Usage:
    by_modality: dict[str, int]  # Gemini-rule counts of the prompt
    native_prompt_tokens: int  # what the local model really consumes
    cached_tokens: int = 0  # Gemini-rule count of the prompt's cachedContent prefix (part of by_modality)
    native_source: str = "model"  # what the native count is: "model", "server" or "estimate"

    @property
    def prompt_tokens(self) -> int:
        return sum(self.by_modality.values())


@dataclass
class Job:
    model: Resolved
    engine: Engine
    prompt: Prompt
    params: GenerationParams
    usage: Usage


@contextmanager
def _scratch_dir(base: Path) -> Iterator[Path]:
    """A folder for this request's inline video/audio and fetched URLs, under the data dir (or the system's
    temp dir when the data dir is not writable). Named, not made: whatever writes there makes it, and most
    requests (text, images) write nothing, so they cost no mkdir and rmtree."""
    if not os.access(base, os.W_OK):
        base = Path(tempfile.gettempdir())
    path = base / f"pollux-scratch-{secrets.token_hex(8)}"
    try:
        yield path
    finally:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)


class GenerationService:
    def __init__(self, settings: "Settings", catalog: Catalog, files: "FileService", engines: "EngineHub"):
        self.settings = settings
        self.catalog = catalog
        self.files = files
        self.engines = engines
        self.scratch = Path(settings.data_dir) / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)

    async def prepare(self, project: str, model_name: str, req: GenerateRequest, *, api_version: str = "v1beta",
                      method: str = "generateContent", enforce_limit: bool | None = None) -> Job:
        """Everything up to the first token; every request error is raised from here. countTokens
        (`method`) reports a count over the Gemini-rule limit, as Gemini does, instead of refusing it
        (`enforce_limit` overrides that: a cache is created from a countTokens-style preparation)."""
        model = self.catalog.resolve(model_name, api_version=api_version, method=method,
                                     strict=self.settings.strict_model_names)
        check_thinking(model, req.thinking_budget, req.thinking_level)
        enforce = method != "countTokens" if enforce_limit is None else enforce_limit
        if method != "countTokens" and self._light(model, req):
            # On the event loop: this work costs less than a worker thread's hop, which under load also waits
            # for the GIL (measured: 3 -> 10 ms before the upstream request at 16 clients of a remote engine).
            job = self._prepare(project, model, req, method, enforce, quick_only=True)
            if job is not None:
                return job
        job = await run_in_threadpool(self._prepare, project, model, req, method, enforce)
        assert job is not None  # None only with quick_only
        return job

    def _light(self, model: Resolved, req: GenerateRequest) -> bool:
        """Text and inline images already prepared (by content hash), for an engine that prepares without a
        tokenizer, model or I/O (`Engine.prepares_on_loop`); nothing from the File API, a URL or a cache."""
        if req.cached is not None or not self.engines.get(model.entry).prepares_on_loop:
            return False
        budget = LIGHT_REQUEST_BYTES - len(req.system or "")
        for turn in req.turns:
            for part in turn.parts:
                if isinstance(part, FileRef):
                    return False
                if isinstance(part, TextPart):
                    budget -= len(part.text)
                elif isinstance(part, InlineRef):
                    budget -= len(part.data)
                    if budget < 0:
                        return False
                    part.sha256 = pipeline.inline_image_ready(part.mime_type, part.data, self.settings)
                    if part.sha256 is None:
                        return False
        return budget >= 0

    def _prepare(self, project: str, model: Resolved, req: GenerateRequest, method: str, enforce_limit: bool,
                 quick_only: bool = False) -> Job | None:
        """The job; with `quick_only`, None where the native count would need the engine's tokenizer or
        server (the caller then does it all again in a worker thread)."""
        if not req.turns:  # a cachedContent request too names its own contents
            raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified")
        has_cache = req.cached is not None
        req, cached_turns = with_cache(req, model)
        engine = self.engines.get(model.entry)
        capabilities.check_request(req.turns, req.params, engine, model.requested, method)
        transcribe = self.engines.services.speech.transcriber()
        with _scratch_dir(self.scratch) as scratch:
            turns = self._resolve_media(project, req.turns, Path(scratch))
            capabilities.check_media(turns, engine, model.requested, transcribes=transcribe is not None,
                                     max_images_per_request=self.settings.max_images_per_request)
            count_text = engine.count_text  # the engine's tokenizer for text where it has one
            counts = tokens.count_request(turns, req.system, model.token_profile, count_text, req.media_resolution)
            cached = sum(tokens.count_request(turns[:cached_turns], req.system, model.token_profile, count_text,
                                              req.media_resolution).values()) if has_cache else 0
            if enforce_limit:
                tokens.check_input_limit(sum(counts.values()), model.entry.gemini_input_token_limit)
            with self.engines.lease(model.entry):
                pass  # load the model now, so a missing one fails before any bytes are streamed
            try:
                prompt = self.assemble(engine, turns, req.system, req.params, req.media_resolution, on_loop=quick_only)
            except _NeedsThread:
                return None
            quick = None if method == "countTokens" else engine.quick_count(prompt)
            if quick is None and quick_only:
                return None
            native, source = quick or (engine.count_tokens(prompt), engine.native_count_source)
        if native > model.entry.input_token_limit:
            raise InvalidArgument(f"The input token count ({native}) exceeds the maximum number of tokens allowed "
                                  f"({model.entry.input_token_limit}) by the local model's context "
                                  f"({model.entry.id}, its own tokens) for {model.requested}.")
        return Job(model, engine, prompt, req.params, Usage(counts, native, cached, source))

    def _resolve_media(self, project: str, turns: list[RequestTurn], scratch: Path) -> list[RequestTurn]:
        """The same turns with every media reference replaced by its prepared `MediaPart`."""
        out: list[RequestTurn] = []
        position = 0  # of the part in the whole request: names inline parts ("inline[3]") and their scratch
        fetcher = urls.UrlFetcher(self.settings, scratch)  # a URL named twice is fetched once
        for turn in turns:
            parts: list[Part] = []
            for part in turn.parts:
                position += 1
                if isinstance(part, (FileRef, InlineRef)):
                    started = time.perf_counter()
                    parts.append(self._media(project, part, scratch, position - 1, fetcher))
                    request_timing.add_media(time.perf_counter() - started)
                else:
                    parts.append(part)
            out.append(RequestTurn(turn.role, parts))
        return out

    def _media(self, project: str, part: FileRef | InlineRef, scratch: Path, position: int,
               fetcher: urls.UrlFetcher) -> MediaPart:
        if isinstance(part, FileRef):
            file_id = file_id_of(part.uri)
            if file_id is None:
                return self._url_media(part, fetcher)
            if not file_id:
                raise PermissionDenied(f"You do not have permission to access the File {part.uri} or it may not "
                                       "exist.")
            try:
                rec = self.files.get_usable(project, file_id)
            except PermissionDenied:
                if part.kept is None:
                    raise
                kept = part.kept  # the file is gone; the cache naming it still holds its bytes
                prepared = pipeline.load_prepared(kept.mime_type, kept.blob, kept.artifacts, self.settings)
                return MediaPart(prepared, kept.mime_type, kept.name, part.video, part.resolution)
            return self.file_part(rec, video=part.video, resolution=part.resolution)
        if not part.mime_type:
            raise InvalidArgument("inlineData.mimeType is required.")
        declared = mimes.normalize(part.mime_type)
        if mimes.kind(declared) is None:
            raise UnsupportedMedia(f"Unsupported MIME type: {part.mime_type}.")
        mime = mimes.check(declared, part.data[:4096])
        prepared = pipeline.prepare_inline(mime, part.data, self.settings, scratch / str(position), part.sha256)
        return MediaPart(prepared, mime, f"inline[{position}]", part.video, part.resolution)

    def _url_media(self, part: FileRef, fetcher: urls.UrlFetcher) -> MediaPart:
        """An http(s) or YouTube fileUri: fetched and prepared like an upload, once per request."""
        fetched = fetcher.fetch(part.uri, part.mime_type)
        if fetched.prepared is None:
            artifact_dir = fetched.path.with_name(fetched.path.name + "-prepared")
            pipeline.prepare_file(fetched.mime_type, fetched.path, artifact_dir, self.settings)
            fetched.prepared = pipeline.load_prepared(fetched.mime_type, fetched.path, artifact_dir, self.settings)
        return MediaPart(fetched.prepared, fetched.mime_type, part.uri, part.video, part.resolution)

    def file_part(self, rec, prepared=None, video: VideoOptions | None = None,
                  resolution: str | None = None) -> MediaPart:
        """A stored file as a prompt part (its prepared media loaded unless given)."""
        if prepared is None:
            prepared = pipeline.load_prepared(rec.mime_type, self.files.blob_path(rec), self.files.artifact_dir(rec),
                                              self.settings)
        return MediaPart(prepared, rec.mime_type, rec.name, video, resolution)

    def assemble(self, engine: Engine, turns: list[RequestTurn], system: str | None = None,
                 params: GenerationParams | None = None, media_resolution: str | None = None,
                 on_loop: bool = False) -> Prompt:
        """The one way request turns become an engine's prompt: requests, and the upload warm-up. Whether it
        fits (and how far a video is thinned) is judged by the engine's quick count where it has one; `on_loop`:
        `_NeedsThread` where only `count_tokens` (a tokenizer, a server) can judge."""
        params = params or GenerationParams()

        def count(prompt: Prompt) -> int:
            quick = engine.quick_count(prompt)
            if quick is not None:
                return quick[0]
            if on_loop:
                raise _NeedsThread()
            return engine.count_tokens(prompt)

        return prompt_assembly.assemble(
            turns, system, capabilities=engine.capabilities, token_budget=engine.entry.input_token_limit,
            count_tokens=count, transcribe=self.engines.services.speech.transcriber(),
            response_mime_type=params.response_mime_type, response_schema=params.response_schema,
            media_resolution=media_resolution)

    def prompt_for_file(self, engine: Engine, rec, prepared=None, media_resolution: str | None = None) -> Prompt:
        """The prompt a request holding just this file assembles (what the warm-up precomputes)."""
        return self.assemble(engine, [RequestTurn("user", [self.file_part(rec, prepared)])],
                             media_resolution=media_resolution)

    async def stream(self, job: Job) -> AsyncIterator[Delta]:
        """Run the engine in a worker thread; leaving the iterator early cancels generation."""
        if not job.engine.serialised:  # a remote server: streamed on the event loop, closing it cancels upstream
            async for delta in job.engine.astream(job.prompt, job.params):
                yield delta
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        end = object()

        def work() -> None:
            try:
                with self.engines.lease(job.model.entry) as engine:
                    for delta in engine.generate(job.prompt, job.params, cancel):
                        loop.call_soon_threadsafe(queue.put_nowait, delta)
                        if cancel.is_set():
                            break
            except BaseException as e:  # handed to the request's task, raised there
                loop.call_soon_threadsafe(queue.put_nowait, e)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, end)

        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not end:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()
            if not worker.done():
                worker.add_done_callback(lambda f: f.exception())

