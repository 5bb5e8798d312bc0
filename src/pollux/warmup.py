"""The upload warm-up: what an engine will need for a file is computed as the file arrives.

The targets are the default model and every model loaded now, among the engines that keep reusable
state (`Engine.precomputes`); each is handed, through `Engine.precompute`, the prompt a request
holding just this file would assemble, built by the request path itself
(`GenerationService.prompt_for_file`: same frames, transcript and cache keys), so its vision
features and KV prefix are exactly what the first question needs.

Images: the file stays PROCESSING until its features and prefix are ready (`wants` tells the File
service so), so a question about an ACTIVE image starts answering at once; a request that names the
image earlier is still served (it waits for the work in flight).

Videos, in this order (measured with benchmarks/video_e2e.py):
1. as soon as the frames are decoded (`on_frames`, the first PROCESSING hook), their vision features
   are queued in the engine's background thread, so they are computed while the transcript is
   (the speech hook runs meanwhile in the processing thread);
2. once the transcript is on disk (`on_processed`, the last hook), the whole prompt is queued:
   what frames remain, then its KV prefix;
3. the file turns ACTIVE then, without waiting for that work: an hour of frames would take over an
   hour here, and a question that arrives meanwhile joins the work in flight rather than redoing it
   (a frame being encoded is waited for, never encoded twice; the prefix being prefilled is waited
   for and reused: `OpenVINORuntime._warm` holds the model's queue, the question takes its turn
   after it and prefills only its own words). For the first question the total is the same whether
   the file stayed PROCESSING for that work or not, so ACTIVE is not held back for it;
4. last, the features of the frames at MEDIA_RESOLUTION_LOW where the model sees them otherwise there.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pollux.catalog import Catalog
    from pollux.engines.base import Engine
    from pollux.engines.hub import EngineHub
    from pollux.files.service import FileService
    from pollux.generation import GenerationService
    from pollux.prompt_types import Prompt

log = logging.getLogger("pollux.warmup")

# An image stays PROCESSING at most this long for its features (a model being converted on first use
# can take minutes); after that it is ACTIVE anyway and the first question computes what is missing.
IMAGE_WARMUP_TIMEOUT = 900.0
LOW = "MEDIA_RESOLUTION_LOW"


class Warmup:
    def __init__(self, hub: "EngineHub", catalog: "Catalog", files: "FileService | None",
                 generation: "GenerationService | None" = None, image_timeout: float = IMAGE_WARMUP_TIMEOUT):
        self.hub, self.catalog, self.files, self.generation = hub, catalog, files, generation
        self.image_timeout = image_timeout

    def engines(self) -> list["Engine"]:
        found: list["Engine"] = []
        default = self.catalog.entries.get(self.hub.settings.default_model)
        if default is not None:
            try:
                found.append(self.hub.get(default))
            except Exception:  # an engine that cannot be built here has nothing to warm
                pass
        found += [engine for engine in self.hub.loaded() if engine not in found]
        return [engine for engine in found if engine.precomputes]

    def wants(self, mime: str) -> bool:
        """File service predicate: an uploaded image is PROCESSING while an engine computes its features."""
        return mime.startswith("image/") and bool(self.engines())

    def on_frames(self, record: Any, prepared: Any, settings: Any) -> None:
        """Processor hook, run first: a video's frames go to the vision encoder at once (in the engine's
        background thread), while the next hooks (the transcript) run here."""
        from pollux.media.prepared import PreparedVideo

        if not isinstance(prepared, PreparedVideo) or not prepared.frames:
            return
        try:
            frames_only = dataclasses.replace(prepared, audio=None)  # the same frames and keys, no transcript yet
            for engine in self.engines():
                engine.precompute(functools.partial(self.prompt_for, engine, record, frames_only), warm_prefix=False)
        except Exception:  # a warm-up is an optimisation: it never fails a file
            log.exception("vision warm-up of %s failed", getattr(record, "id", "?"))

    def on_processed(self, record: Any, prepared: Any, settings: Any) -> None:
        """Processor hook, run while the file is PROCESSING: an image waits for its features; a
        video's frames are queued and the hook returns at once."""
        from pollux.media.prepared import PreparedVideo

        try:
            if isinstance(prepared, PreparedVideo):
                if prepared.frames:
                    self._warm(record, prepared, wait=False, then=functools.partial(self._warm_low, record, prepared))
            elif str(getattr(record, "mime_type", "")).startswith("image/"):
                self._warm(record, prepared, wait=True)
        except Exception:  # a warm-up is an optimisation: it never fails a file
            log.exception("vision warm-up of %s failed", getattr(record, "id", "?"))

    def _warm(self, record: Any, prepared: Any, wait: bool, then: Callable[["Engine"], None] | None = None) -> None:
        pending = []
        for engine in self.engines():
            done = threading.Event() if wait else None
            engine.precompute(functools.partial(self.prompt_for, engine, record, prepared), done=done,
                              then=functools.partial(then, engine) if then else None)
            if done is not None:
                pending.append(done)
        deadline = time.monotonic() + self.image_timeout
        file_id = _file_id(record)
        for done in pending:
            while not done.wait(0.2):
                if self.files is not None and self.files.processor.is_cancelled(file_id):
                    return  # deleted, or the server is stopping (the next start warms it again)
                if time.monotonic() > deadline:
                    log.warning("vision features of %s not ready after %.0f s; ACTIVE without them", file_id,
                                self.image_timeout)
                    return

    def _warm_low(self, record: Any, prepared: Any, engine: "Engine") -> None:
        """After the default level's work, a video's features at LOW where they differ (SmolVLM2 packs
        frames into grids there): a LOW question then prefills only. No KV prefix: it would replace
        the default level's."""
        if self.files is not None and self.files.processor.is_cancelled(_file_id(record)):
            return
        engine.precompute(functools.partial(self.prompt_for, engine, record, prepared, LOW), warm_prefix=False)

    def prompt_for(self, engine: "Engine", record: Any, prepared: Any = None,
                   media_resolution: str | None = None) -> "Prompt":
        """The prompt a request holding just this file assembles for `engine` (run in the background)."""
        if self.generation is None:
            raise RuntimeError("the warm-up needs the generation service to assemble prompts")
        return self.generation.prompt_for_file(engine, record, prepared, media_resolution)


def _file_id(record: Any) -> str:
    return str(getattr(record, "key", None) or getattr(record, "id", "?"))  # jobs are keyed by storage key


def install(files: "FileService", hub: "EngineHub", catalog: "Catalog", generation: "GenerationService") -> Warmup:
    """Register the warm-up on the Files API: images before they are ACTIVE; a video's frames before
    its transcript is computed, its whole prompt after.

    Call it after the speech service's PROCESSING hook is registered, so a video's transcript is on
    disk before its whole warm-up prompt is assembled.
    """
    warmup = Warmup(hub, catalog, files, generation)
    files.processing_wanted.append(warmup.wants)
    files.processor.hooks.insert(0, warmup.on_frames)  # before the transcript: both run at once
    files.processor.hooks.append(warmup.on_processed)
    return warmup
