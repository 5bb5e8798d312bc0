"""Background preparation of uploaded media: PROCESSING → ACTIVE or FAILED, on any node.

Every PROCESSING file has a row in the jobs table (`files/jobs.py`); `workers` claim loops per process
take jobs with a lease that a heartbeat renews, so the embedded server, API nodes and `pollux worker`
processes share one queue. An upload on this process wakes its loops at once; other processes poll
every `job_poll_seconds`. Work is idempotent (artifacts are derived from the blob under the file's key)
and only the job's latest attempt may commit the file's state: a worker that was paused or lost its
lease finds its result refused and leaves the artifacts alone.

What happens to a job:
- the file was deleted (here: at once; elsewhere: at the next heartbeat) → cancelled, bytes removed;
- the process stops → the job is given back unfailed and claimed again at once (here or elsewhere);
- the disk is full or read-only (not the file's fault) → stays PROCESSING, retried at the sweep's pace;
- the media is refused by a decoder's verdict (a Pollux error) → FAILED with that error;
- anything else → retried with exponential backoff, FAILED with the error after `job_max_attempts`;
- a holder that vanished (kill -9, a lost machine) counts as a failed attempt once its lease passes.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pollux.errors import RPC_CODES, Cancelled, PolluxError, Unavailable, rpc_status
from pollux.files.jobs import GONE, SUPERSEDED, Job, JobStore
from pollux.files.records import State
from pollux.files.storage_errors import not_writable, out_of_space

if TYPE_CHECKING:
    from pollux.files.store import MetadataStore
    from pollux.settings import Settings

log = logging.getLogger("pollux.processing")

# Hooks run after media preparation while the file is still PROCESSING (e.g. speech recognition),
# each given (file record, prepared media, settings). Registered by the app wiring, not imported here,
# so `files/` does not depend on the engines.
PostProcessHook = Callable[[object, object, object], None]

MAX_BACKOFF_SECONDS = 300.0
DELETED, STOPPING, LOST = "deleted", "stopping", "lost"  # why a running job was cancelled


@dataclass
class _Running:
    job: Job
    reason: str | None = None  # set once: the job should end
    settling: bool = False  # its outcome is being committed (the heartbeat leaves it alone)

    def cancel(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


class Processor:
    def __init__(self, store: "MetadataStore", blobs, settings: "Settings"):
        self.store, self.blobs, self.settings = store, blobs, settings
        self.jobs = JobStore(store)
        self.hooks: list[PostProcessHook] = []
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._running: dict[str, _Running] = {}  # storage key → the attempt this process runs
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a job was enqueued here, or one ended
        self._wake = False  # an enqueue no loop has seen yet
        self._threads: list[threading.Thread] = []
        self._claiming = False
        self._stopped = threading.Event()

    @property
    def workers(self) -> int:
        return self.settings.resolved_workers

    @property
    def lease(self) -> float:
        return self.settings.job_lease_seconds

    # ---- life cycle ----
    def start(self) -> None:
        """Start the claim loops and the heartbeat (none with `workers = 0`: an API-only node)."""
        with self._lock:
            if self._threads or self.workers <= 0:
                return
            self._stopped.clear()
            self._claiming = True
            self._threads = [threading.Thread(target=self._claim_loop, name=f"pollux-media-{i}", daemon=True)
                             for i in range(self.workers)]
            self._threads.append(threading.Thread(target=self._heartbeat_loop, name="pollux-media-heartbeat",
                                                  daemon=True))
            threads = list(self._threads)
        for t in threads:
            t.start()

    def stop(self) -> None:
        """Cancel running jobs (they are given back unfailed: the next claimant runs them) and wait for them."""
        with self._lock:
            self._claiming = False
            for r in self._running.values():
                r.cancel(STOPPING)
            threads, self._threads = self._threads, []
            self._changed.notify_all()
        for t in threads:
            if t.name != "pollux-media-heartbeat":
                t.join()
        self._stopped.set()  # the heartbeat kept leases alive until every job had ended
        for t in threads:
            t.join()

    def drain(self, timeout: float) -> None:
        """Claim nothing new; let running jobs finish for up to `timeout` seconds, then give them back."""
        with self._lock:
            self._claiming = False
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._running, timeout)
        self.stop()

    def submit(self, key: str) -> None:
        """Queue the file's job (idempotent) and wake this process's loops: processing starts at once."""
        try:
            self.jobs.enqueue(key)
        except Exception as e:  # e.g. a full disk: the file stays PROCESSING and the sweep adopts it
            log.warning("could not queue processing of %s (%s); queued at the next sweep", key, e)
            return
        self.start()
        self._notify()

    def resume(self) -> None:
        """Queue a job for every PROCESSING file without one and free the jobs of this machine's dead
        processes (at start-up, then at every sweep)."""
        if added := self.jobs.adopt_orphans():
            log.info("queued processing for %d PROCESSING file(s) that had no job", added)
        if freed := self.jobs.expire_dead_holders(socket.gethostname(), _alive):
            log.info("%d job(s) held by a process of this machine that died are claimable now", freed)
        self._notify()

    def cancel(self, key: str) -> None:
        """The file was deleted: a job running here ends (elsewhere, its heartbeat notices)."""
        with self._lock:
            if (r := self._running.get(key)) is not None:
                r.cancel(DELETED)

    def is_cancelled(self, key: str) -> bool:
        """The file was deleted, the process is stopping or the job moved on: its work should end."""
        with self._lock:
            r = self._running.get(key)
            return r is not None and r.reason is not None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing runs here and no job is due or held anywhere (tests, shutdown)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            with self._changed:
                if not self._changed.wait_for(lambda: not self._running, left):
                    return False
            if self.jobs.busy() == 0:
                with self._lock:
                    if not self._running:
                        return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def depth(self) -> tuple[int, int | None]:
        """(jobs queued or running, the oldest one's enqueue time in µs)."""
        return self.jobs.depth()

    def _notify(self) -> None:
        with self._lock:
            self._wake = True
            self._changed.notify_all()

    # ---- the loops ----
    def _claim_loop(self) -> None:
        from pollux.media.decode_budget import make_thread_patient  # no client would retry a 503

        make_thread_patient()
        owner = f"{self.owner}/{threading.current_thread().name}"
        failing = False
        while self._claiming:
            try:
                job = self.jobs.claim(owner, self.lease)
                failing = False
            except Exception as e:  # the database is away: keep polling, say it once
                if not failing:
                    log.warning("claiming media jobs failed (%s); retrying", e)
                failing, job = True, None
            if job is not None:
                self._run(job)
                continue
            with self._lock:
                if not self._wake and self._claiming:
                    self._changed.wait(self.settings.job_poll_seconds)
                self._wake = False

    def _heartbeat_loop(self) -> None:
        while not self._stopped.wait(self.lease / 3):
            with self._lock:
                running = list(self._running.values())
            for r in running:
                if r.settling:
                    continue
                try:
                    if not self.jobs.renew(r.job, self.lease):
                        log.warning("processing %s: attempt %d lost its lease; its result will be discarded",
                                    r.job.key, r.job.attempt)
                        r.cancel(LOST)
                    elif not self.store.file_exists(r.job.key):
                        r.cancel(DELETED)  # deleted through another node
                except Exception as e:  # the lease may pass: another worker takes over, ours is then refused
                    log.warning("processing %s: heartbeat failed (%s)", r.job.key, e)

    # ---- one job ----
    def _run(self, job: Job) -> None:
        r = _Running(job)
        with self._lock:
            self._running[job.key] = r
            if not self._claiming:
                r.cancel(STOPPING)
        try:
            self._process(r)
        except Exception as e:  # never let a job kill the loop
            try:
                if out_of_space(e) or not_writable(e):  # e.g. the row's update on a full disk
                    log.warning("processing %s could not record its result (%s); retried later", job.key, e)
                    self._park(r)
                else:
                    log.exception("processing %s crashed", job.key)
                    self._retry_or_fail(r, {"code": RPC_CODES["INTERNAL"], "message": f"Processing failed: {e}"})
            except Exception as again:  # e.g. the database is away: the lease runs out and the job comes back
                log.warning("processing %s: its failure could not be recorded (%s)", job.key, again)
        finally:
            with self._changed:
                self._running.pop(job.key, None)
                self._changed.notify_all()

    def _process(self, r: _Running) -> None:
        from pollux.media import pipeline

        job, key = r.job, r.job.key
        rec = self.store.get_file_by_key(key)
        if rec is None or rec.state != State.PROCESSING:  # deleted, or already settled: nothing to do
            self.jobs.drop(job)
            if rec is None:
                self.blobs.remove(key)
            return
        if job.failures >= self.settings.job_max_attempts:  # its earlier holders vanished mid-job
            self._end(r, state=State.FAILED, error=job.last_error or {
                "code": RPC_CODES["INTERNAL"],
                "message": f"The file could not be processed: {job.failures} attempts stopped before finishing."})
            return
        decode = pipeline.needs_processing(rec.mime_type)  # else an image, decoded at upload and usable now
        artifact = self.blobs.artifact_dir(key)
        if decode:
            if not self.jobs.holds(job):
                return  # claimed again meanwhile: the artifacts are the new attempt's
            shutil.rmtree(artifact, ignore_errors=True)  # a half-built artifact from a crash is never trusted
        cancelled = lambda: r.reason is not None  # noqa: E731
        try:
            began = time.perf_counter()
            blob = self.blobs.local_blob(key)
            info = pipeline.prepare_file(rec.mime_type, blob, artifact, self.settings, cancelled) if decode else None
            prepared = pipeline.load_prepared(rec.mime_type, blob, artifact, self.settings)
            phases = [("prepare", time.perf_counter() - began)]
            for hook in self.hooks:
                if cancelled():
                    break
                began = time.perf_counter()
                hook(rec, prepared, self.settings)
                phases.append((getattr(hook, "__name__", "hook"), time.perf_counter() - began))
            # Where PROCESSING time goes (benchmarks/video_e2e.py reads this line).
            log.info("processed %s: %s", key, ", ".join(f"{name} {secs:.2f} s" for name, secs in phases))
            if cancelled():
                raise Cancelled("processing was interrupted")
        except Cancelled:
            self._abandon(r)
            return
        except Exception as e:
            if out_of_space(e) or not_writable(e):
                log.warning("processing %s stopped: the disk is full or not writable (%s); retried later", key, e)
                if decode and self.jobs.holds(job):
                    shutil.rmtree(artifact, ignore_errors=True)  # what was written before the disk filled up
                self._park(r)
            elif isinstance(e, PolluxError) and not isinstance(e, Unavailable):
                self._end(r, state=State.FAILED, error=rpc_status(e))  # the media's own verdict: no retry helps
            else:
                log.warning("processing %s failed: %r", key, e)  # corrupt input can make decoders throw anything
                self._retry_or_fail(r, {"code": RPC_CODES["INVALID_ARGUMENT"],
                                        "message": f"The file could not be processed: {e}"})
            return
        if not self.jobs.holds(job):  # fenced before publishing: a superseded attempt publishes nothing
            log.warning("processing %s: attempt %d was superseded; its result is discarded", key, job.attempt)
            return
        self.blobs.publish_artifacts(key)  # visible to every node before the file turns ACTIVE
        if info is None:
            self._end(r, state=State.ACTIVE)
        else:
            self._end(r, state=State.ACTIVE, video_duration=info.get("videoDuration"),
                      meta={k: v for k, v in info.items() if k != "videoDuration"})

    def _end(self, r: _Running, **values) -> None:
        """Commit the file's new state, fenced by the attempt (see `JobStore.complete`)."""
        if r.reason is not None:
            self._abandon(r)
            return
        r.settling = True
        outcome = self.jobs.complete(r.job, **values)
        if outcome == GONE:
            self.blobs.remove(r.job.key)  # deleted meanwhile: leave nothing behind
        elif outcome == SUPERSEDED:  # a paused holder whose job was claimed again: the live attempt decides
            log.warning("processing %s: attempt %d was superseded; its result is discarded", r.job.key, r.job.attempt)

    def _retry_or_fail(self, r: _Running, error: dict) -> None:
        job = r.job
        if job.failures + 1 >= self.settings.job_max_attempts:
            self._end(r, state=State.FAILED, error=error)
            return
        delay = min(self.settings.job_retry_seconds * 2 ** job.failures, MAX_BACKOFF_SECONDS)
        log.info("processing %s: attempt %d failed; retried in %.1f s", job.key, job.attempt, delay)
        self.jobs.retry(job, error, delay)

    def _park(self, r: _Running) -> None:
        """The disk failed, not the file: give the job back unfailed, retried at the sweep's pace."""
        try:
            self.jobs.release(r.job, self.settings.sweep_interval_seconds)
        except Exception as e:  # the lease runs out instead
            log.warning("processing %s: could not give the job back (%s)", r.job.key, e)

    def _abandon(self, r: _Running) -> None:
        """A job stopped midway: the file was deleted (leave nothing behind), the process is stopping (give it
        back: the next claimant runs it at once) or another attempt owns it now (touch nothing)."""
        if r.reason == LOST:
            return
        if not self.store.file_exists(r.job.key):
            self.jobs.drop(r.job)
            self.blobs.remove(r.job.key)
        else:
            self.jobs.release(r.job)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # unknown: let the lease decide
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
