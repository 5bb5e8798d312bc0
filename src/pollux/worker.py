"""`pollux worker`: a process that only prepares media (claims jobs), no HTTP; and the hooks every
media-processing process runs (speech recognition, plug-ins named by `processing_hooks`).

Any number of workers, on any machine that reaches the database and the blob store, share the jobs
table with the API nodes (`files/jobs.py`). SIGTERM drains: nothing new is claimed, running jobs get
`job_drain_seconds` to finish and are then given back to the queue (a second signal gives them back at once).
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from typing import TYPE_CHECKING

from pollux.files.processing import PostProcessHook, Processor
from pollux.settings import Settings

if TYPE_CHECKING:
    from pollux.engines.speech import SpeechService

log = logging.getLogger("pollux.worker")
ADOPT_SECONDS = 30.0  # how often a worker queues PROCESSING files whose node died before queuing them


def media_hooks(settings: Settings, speech: "SpeechService | None" = None) -> list[PostProcessHook]:
    """Speech recognition (so a transcript is ready when the file is ACTIVE), then the plug-in hooks.
    `speech`: the process's speech service (the API's is its engine hub's); a worker makes its own."""
    hooks: list[PostProcessHook] = []
    if settings.transcribe:
        from pollux.engines.speech import SpeechService

        hooks.append((speech or SpeechService(settings)).processing_hook)
    for name in filter(None, (n.strip() for n in settings.processing_hooks.split(","))):
        module, _, attr = name.partition(":")
        hooks.append(getattr(importlib.import_module(module), attr))
    return hooks


def run(settings: Settings) -> None:
    """Claim and run media jobs until SIGTERM/SIGINT, then drain."""
    from pollux.files.blobs import open_blob_store
    from pollux.files.dirlock import DirLock
    from pollux.files.store import MetadataStore

    store = MetadataStore.open(settings)
    blobs = open_blob_store(settings, store)
    blobs.check_writable()  # wrong S3 credentials or a read-only data dir: a clear message, not a traceback
    dir_lock = DirLock(blobs.root, exclusive=False)  # tells `pollux doctor` a process uses the data dir
    processor = Processor(store, blobs, settings)
    processor.hooks.extend(media_hooks(settings))
    stop, force = threading.Event(), threading.Event()

    def on_signal(_signum, _frame) -> None:
        (force if stop.is_set() else stop).set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    processor.resume()
    processor.start()
    log.info("pollux worker %s: %d job loop(s)", processor.owner, processor.workers)
    try:
        while not stop.wait(ADOPT_SECONDS):
            try:
                processor.resume()
            except Exception as e:  # the database is away: the loops say so too
                log.warning("queuing orphaned PROCESSING files failed: %s", e)
        log.info("draining: no new jobs; running ones get %.0f s", settings.job_drain_seconds)
        drained = threading.Thread(target=processor.drain, args=(settings.job_drain_seconds,), daemon=True)
        drained.start()
        while drained.is_alive() and not force.is_set():
            drained.join(0.1)
        if force.is_set():
            processor.stop()
    finally:
        dir_lock.release()
        store.close()
