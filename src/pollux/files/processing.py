"""Background preparation of uploaded media: PROCESSING → ACTIVE or FAILED.

The durable job queue is the files table itself: every row in PROCESSING is a job. On start-up
they are all submitted again, so work interrupted by a crash is picked up. A bounded pool keeps
decoding from starving the API (at most `processing_workers` jobs at once). A job that fails because
the disk is full (or read-only) is not the file's fault: it stays PROCESSING and the sweep submits
it again, so it becomes ACTIVE once space returns. Jobs are keyed by the file's storage key.
"""

from __future__ import annotations

import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

from pollux.errors import RPC_CODES, Cancelled, PolluxError, rpc_status
from pollux.files.records import State
from pollux.files.storage_errors import not_writable, out_of_space

if TYPE_CHECKING:
    from pollux.files.service import FileService

log = logging.getLogger("pollux.processing")

# Hooks run after media preparation while the file is still PROCESSING (e.g. speech recognition),
# each given (file record, prepared media, settings). Registered by the app wiring, not imported here,
# so `files/` does not depend on the engines.
PostProcessHook = Callable[[object, object, object], None]


class Processor:
    def __init__(self, service: "FileService"):
        self.service = service
        self.hooks: list[PostProcessHook] = []
        self._pool: ThreadPoolExecutor | None = None
        self._cancelled: set[str] = set()
        self._queued: set[str] = set()
        self._no_space: set[str] = set()  # jobs put back because the disk was full or read-only
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def start(self) -> None:
        if self._pool is None:
            from pollux.media.decode_budget import make_thread_patient  # no client would retry a 503

            self._pool = ThreadPoolExecutor(max(1, self.service.settings.processing_workers),
                                            thread_name_prefix="pollux-media", initializer=make_thread_patient)

    def stop(self) -> None:
        if self._pool is not None:
            with self._lock:
                self._cancelled.update(self._queued)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, file_id: str) -> None:
        self.start()
        with self._lock:
            if file_id in self._queued:
                return
            self._queued.add(file_id)
            self._cancelled.discard(file_id)
        self._pool.submit(self._run, file_id)  # type: ignore[union-attr]  # start() made it

    def cancel(self, file_id: str) -> None:
        with self._lock:
            if file_id in self._queued:
                self._cancelled.add(file_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._queued, timeout)

    def take_waiting(self) -> set[str]:
        """Jobs put back for a full or read-only disk whose run has ended: to be submitted again."""
        with self._lock:
            ready = self._no_space - self._queued
            self._no_space -= ready
        return ready

    def is_cancelled(self, file_id: str) -> bool:
        """The file was deleted or the server is stopping: its job should end."""
        with self._lock:
            return file_id in self._cancelled

    def _run(self, file_id: str) -> None:
        try:
            self._process(file_id)
        except Exception as e:  # never let a job kill the worker thread
            if out_of_space(e) or not_writable(e):  # e.g. the row's update on a full disk: retried later
                log.warning("processing %s could not record its result (%s); retried later", file_id, e)
                with self._lock:
                    self._no_space.add(file_id)
            else:
                log.exception("processing %s crashed", file_id)
        finally:
            with self._idle:
                self._queued.discard(file_id)
                self._cancelled.discard(file_id)
                self._idle.notify_all()

    def _process(self, file_id: str) -> None:
        from pollux.media import pipeline

        svc = self.service
        rec = svc.store.get_file_by_key(file_id)
        if rec is not None and rec.state != State.PROCESSING:
            rec = None
        if rec is None or self.is_cancelled(file_id):
            return
        blob, artifact = svc.blobs.blob_path(file_id), svc.blobs.artifact_dir(file_id)
        decode = pipeline.needs_processing(rec.mime_type)  # else an image, decoded at upload and usable now
        if decode:
            shutil.rmtree(artifact, ignore_errors=True)  # a half-built artifact from a crash is never trusted
        cancelled = lambda: self.is_cancelled(file_id)  # noqa: E731
        try:
            info = pipeline.prepare_file(rec.mime_type, blob, artifact, svc.settings, cancelled) if decode else None
            prepared = pipeline.load_prepared(rec.mime_type, blob, artifact, svc.settings)
            for hook in self.hooks:
                if cancelled():
                    raise Cancelled("deleted while processing")
                hook(rec, prepared, svc.settings)
        except Cancelled:
            self._abandon(file_id)
            return
        except Exception as e:
            if not (out_of_space(e) or not_writable(e)):
                return self._failed(file_id, e)
            log.warning("processing %s stopped: the disk is full or not writable (%s); retried later", file_id, e)
            if decode:
                shutil.rmtree(artifact, ignore_errors=True)  # what was written before the disk filled up
            with self._lock:
                self._no_space.add(file_id)
            return
        if info is None:
            self._finish(file_id, state=State.ACTIVE)
            return
        self._finish(file_id, state=State.ACTIVE, video_duration=info.get("videoDuration"),
                     meta={k: v for k, v in info.items() if k != "videoDuration"})

    def _failed(self, file_id: str, e: Exception) -> None:
        if isinstance(e, PolluxError):
            self._finish(file_id, state=State.FAILED, error=rpc_status(e))
            return
        log.warning("processing %s failed: %r", file_id, e)  # corrupt input can make decoders throw anything
        self._finish(file_id, state=State.FAILED,
                     error={"code": RPC_CODES["INVALID_ARGUMENT"], "message": f"The file could not be processed: {e}"})

    def _finish(self, file_id: str, **values) -> None:
        if self.is_cancelled(file_id):
            self._abandon(file_id)
        elif not self.service.store.update_file(file_id, **values):
            self.service.blobs.remove(file_id)  # deleted meanwhile: leave nothing behind

    def _abandon(self, file_id: str) -> None:
        """A job stopped midway: the file was deleted (leave nothing behind) or the server is stopping
        (keep the bytes; the row is still PROCESSING, so the next start runs the job again)."""
        if not self.service.store.file_exists(file_id):
            self.service.blobs.remove(file_id)

