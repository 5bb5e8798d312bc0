"""generateContent / countTokens as a service: resolve the model and media, assemble the prompt,
count tokens both ways (Gemini's rules and the local model's own), and run the engine.

Two limits: the Gemini-rule count must fit the entry's `gemini_input_token_limit` (what models.get
reports as `inputTokenLimit`), and the local model's own count its `input_token_limit` (its context),
video frames being thinned to fit (reported in `Prompt.thinning`).

The API layer hands in a parsed, engine-neutral request; nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from pollux import prompt as prompt_assembly
from pollux.catalog import Catalog, Resolved, check_thinking
from pollux.engines.base import Delta, Engine, GenerationParams
from pollux.errors import InvalidArgument, PermissionDenied, UnsupportedMedia
from pollux.media import mime as mimes
from pollux.media import pipeline, tokens, urls
from pollux.media.prepared import PreparedAudio, PreparedImage, PreparedVideo
from pollux.prompt_types import (FunctionCall, FunctionResponse, MediaPart, Prompt, RequestTurn, TextPart,
                                 VideoOptions)

if TYPE_CHECKING:
    from pollux.engines.hub import EngineHub
    from pollux.files.service import FileService
    from pollux.settings import Settings

log = logging.getLogger("pollux.generation")

_FILE_URI = re.compile(r"(?:^|/)files/([a-z0-9][a-z0-9-]{0,39})/?$")
_API_FILE_URL = re.compile(r"/v1(?:beta|alpha)?/files/([a-z0-9][a-z0-9-]{0,39})/?$")  # our `uri`, Gemini's


@dataclass
class KeptFile:
    """A cache's own link to a file it names: the cache keeps working after the file is deleted or expires."""

    mime_type: str
    name: str  # files/ID
    blob: Path
    artifacts: Path


@dataclass
class FileRef:
    uri: str
    mime_type: str = ""
    video: VideoOptions | None = None
    resolution: str | None = None  # the part's mediaResolution
    kept: KeptFile | None = None  # set on a cachedContent's parts


@dataclass
class InlineRef:
    mime_type: str
    data: bytes
    video: VideoOptions | None = None
    resolution: str | None = None


@dataclass
class GenerateInput:
    turns: list[tuple[str, list[str | FileRef | InlineRef | FunctionCall | FunctionResponse]]]
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
    turns: list[tuple[str, list[str | FileRef | InlineRef]]]
    system: str | None = None


def with_cache(inp: GenerateInput, model: Resolved) -> tuple[GenerateInput, int]:
    """The input with its cache's turns first, and how many leading turns came from the cache."""
    cached = inp.cached
    if cached is None:
        return inp, 0
    if cached.model.removeprefix("models/") != model.requested:
        raise InvalidArgument(f"Model used by GenerateContent request (models/{model.requested}) and CachedContent "
                              f"({cached.model}) has to be the same!")
    merged = GenerateInput(cached.turns + inp.turns, cached.system, inp.params, inp.media_resolution,
                           inp.thinking_budget, inp.thinking_level)
    return merged, len(cached.turns)


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

    async def prepare(self, project: str, model_name: str, inp: GenerateInput, *, api_version: str = "v1beta",
                      method: str = "generateContent") -> Job:
        """Everything up to the first token; every request error is raised from here. countTokens
        (`method`) reports a count over the Gemini-rule limit, as Gemini does, instead of refusing it."""
        model = self.catalog.resolve(model_name, api_version=api_version, method=method,
                                     strict=self.settings.strict_model_names)
        check_thinking(model, inp.thinking_budget, inp.thinking_level)
        return await run_in_threadpool(self._prepare, project, model, inp, method != "countTokens")

    def _prepare(self, project: str, model: Resolved, inp: GenerateInput, enforce_limit: bool = True) -> Job:
        if not inp.turns:  # a cachedContent request too names its own contents
            raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified")
        has_cache = inp.cached is not None
        inp, cached_turns = with_cache(inp, model)
        engine = self.engines.get(model.entry)
        _check_tools(inp, engine, model.requested)
        with _scratch_dir(self.scratch) as scratch:
            turns = self._resolve_media(project, inp, engine, scratch)
            counts = self._gemini_counts(turns, inp.system, model.token_profile, engine, inp.media_resolution)
            cached = sum(self._gemini_counts(turns[:cached_turns], inp.system, model.token_profile, engine,
                                             inp.media_resolution).values()) if has_cache else 0
            limit = model.entry.gemini_input_token_limit
            if enforce_limit and sum(counts.values()) > limit:  # Gemini's 400, in the accounting countTokens reports
                raise InvalidArgument(f"The input token count ({sum(counts.values())}) exceeds the maximum number "
                                      f"of tokens allowed ({limit}).")
            with self.engines.lease(model.entry):
                pass  # load the model now, so a missing one fails before any bytes are streamed
            prompt = prompt_assembly.assemble(
                turns, inp.system, capabilities=engine.capabilities, token_budget=model.entry.input_token_limit,
                count_tokens=engine.count_tokens, transcribe=self._transcriber(),
                response_mime_type=inp.params.response_mime_type, response_schema=inp.params.response_schema,
                media_resolution=inp.media_resolution)
            native = engine.count_tokens(prompt)
        if native > model.entry.input_token_limit:
            raise InvalidArgument(f"The input token count ({native}) exceeds the maximum number of tokens allowed "
                                  f"({model.entry.input_token_limit}) by the local model's context "
                                  f"({model.entry.id}, its own tokens) for {model.requested}.")
        return Job(model, engine, prompt, inp.params, Usage(counts, native, cached))

    def _resolve_media(self, project: str, inp: GenerateInput, engine: Engine, scratch: Path) -> list[RequestTurn]:
        turns: list[RequestTurn] = []
        images = 0
        position = 0  # of the part in the whole request: names inline parts ("inline[3]") and their scratch
        fetcher = urls.UrlFetcher(self.settings, scratch)  # a URL named twice is fetched once
        for role, parts in inp.turns:
            turn = RequestTurn(role=role)  # type: ignore[arg-type]
            for part in parts:
                position += 1
                if isinstance(part, str):
                    turn.parts.append(TextPart(part))
                    continue
                if isinstance(part, (FunctionCall, FunctionResponse)):
                    turn.parts.append(part)
                    continue
                media = self._media(project, part, scratch, position - 1, fetcher)
                if not engine.capabilities.accepts(media.mime_type):
                    raise UnsupportedMedia(f"{media.mime_type} input is not supported by this model.")
                images += isinstance(media.prepared, PreparedImage)
                if isinstance(media.prepared, PreparedVideo):
                    images += self._frames_requested(media)
                turn.parts.append(media)
            turns.append(turn)
        if images > self.settings.max_images_per_request:
            raise InvalidArgument(f"Too many images and video frames in the request: {images}; at most "
                                  f"{self.settings.max_images_per_request} are allowed (lower videoMetadata.fps "
                                  "or clip the video with startOffset/endOffset).")
        return turns

    @staticmethod
    def _frames_requested(media: MediaPart) -> int:
        """Frames the sampler would take, known before any decoding (checked before `frames_for` runs)."""
        v = media.video or VideoOptions()
        return tokens.count_video_frames(media.prepared.duration, v.fps, v.start, v.end)

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
            prepared = pipeline.load_prepared(rec.mime_type, self.files.blob_path(rec), self.files.artifact_dir(rec),
                                              self.settings)
            return MediaPart(prepared, rec.mime_type, rec.name, part.video, part.resolution)
        if not part.mime_type:
            raise InvalidArgument("inlineData.mimeType is required.")
        declared = mimes.normalize(part.mime_type)
        if mimes.kind(declared) is None:
            raise UnsupportedMedia(f"Unsupported MIME type: {part.mime_type}.")
        mime = mimes.check(declared, part.data[:4096])
        prepared = pipeline.prepare_inline(mime, part.data, self.settings, scratch / str(position))
        return MediaPart(prepared, mime, f"inline[{position}]", part.video, part.resolution)

    def _url_media(self, part: FileRef, fetcher: urls.UrlFetcher) -> MediaPart:
        """An http(s) or YouTube fileUri: fetched and prepared like an upload, once per request."""
        fetched = fetcher.fetch(part.uri, part.mime_type)
        if fetched.prepared is None:
            artifact_dir = fetched.path.with_name(fetched.path.name + "-prepared")
            pipeline.prepare_file(fetched.mime_type, fetched.path, artifact_dir, self.settings)
            fetched.prepared = pipeline.load_prepared(fetched.mime_type, fetched.path, artifact_dir, self.settings)
        return MediaPart(fetched.prepared, fetched.mime_type, part.uri, part.video, part.resolution)

    def _transcriber(self):
        if not self.settings.transcribe:
            return None
        try:
            from pollux.engines import whisper
        except ImportError:
            return None
        return lambda audio: whisper.transcribe_cached(audio, self.settings)

    def _gemini_counts(self, turns: list[RequestTurn], system: str | None, profile: str, engine: Engine,
                       resolution: str | None = None) -> dict:
        count_text = getattr(engine, "count_text", None) or tokens.count_text_estimate
        counts = {"TEXT": count_text(system) if system else 0, "IMAGE": 0, "VIDEO": 0, "AUDIO": 0}
        for turn in turns:
            for part in turn.parts:
                if isinstance(part, TextPart):
                    counts["TEXT"] += count_text(part.text)
                    continue
                if isinstance(part, (FunctionCall, FunctionResponse)):
                    counts["TEXT"] += count_text(json.dumps(vars(part)))
                    continue
                p = part.prepared
                res = part.resolution or resolution
                if isinstance(p, PreparedImage):
                    counts["IMAGE"] += tokens.count_image(*p.original_size, profile, res)
                elif isinstance(p, PreparedVideo):
                    v = part.video or VideoOptions()
                    frames, audio = tokens.count_video(p.duration, v.fps or 1.0, v.start, v.end,
                                                       p.audio is not None, profile, res)
                    counts["VIDEO"] += frames
                    counts["AUDIO"] += audio
                elif isinstance(p, PreparedAudio):
                    counts["AUDIO"] += tokens.count_audio(p.duration)
        return {k: v for k, v in counts.items() if v or k == "TEXT"}

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


def _check_tools(inp: GenerateInput, engine: Engine, model: str) -> None:
    """Function calling reaches only engines that declare it (remote servers); others answer a clear 400."""
    calls = any(isinstance(p, (FunctionCall, FunctionResponse)) for _, parts in inp.turns for p in parts)
    if (inp.params.tools or calls) and not engine.capabilities.tools:
        raise InvalidArgument(f"Tools (function calling) are not supported by {model} on this server's "
                              f"{engine.name} engine; serve it from an OpenAI-compatible engine (--engine-url).")
