"""The File service: uploads (sessions, limits, durability), get/list/delete, expiry, processing.

Project isolation is enforced here: every lookup is keyed by (project, id), and a foreign,
deleted, expired or never-existing file all raise the same PermissionDenied; a proposed name that
another project holds is accepted like a free one (the file gets its own storage key).

Integrity: each upload session is written by one request at a time (`SessionLocks`); quota is
reserved in the same transaction that checks it; a commit is recorded on the session before the
blob is renamed and the row inserted after it, so start-up (`recovery.py`) can finish or undo it.
Disk and database work runs in threads: the async methods never block the event loop.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import string
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from pollux.errors import (AlreadyExists, FileNotActive, InvalidArgument, NotFound, PayloadTooLarge,
                           PermissionDenied, PolluxError, ResourceExhausted, Unavailable, UnsupportedMedia)
from pollux.files import recovery, upload_parts
from pollux.files.blobs import BlobStore, open_blob_store
from pollux.files.dirlock import DirLock
from pollux.files.locks import SessionBusy, SessionLocks, claim
from pollux.files.processing import Processor
from pollux.files.records import FileRecord, State, UploadSession
from pollux.files.storage_errors import out_of_space, storage_errors
from pollux.files.store import MetadataStore, NameTaken, QuotaRefused, from_us, now_us
from pollux.media import mime as mimes
from pollux.media import pipeline

if TYPE_CHECKING:
    from pollux.settings import Settings

log = logging.getLogger("pollux.files")

HOUSEKEEPING = "housekeeping"  # the cluster lock of start-up recovery and the expiry sweep
_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_ALPHABET = string.ascii_lowercase + string.digits
SNIFF_BYTES = 4096
WRITE_BYTES = 1 << 20  # network reads are gathered into writes of this size, each done in a thread
RESERVE_STEP = 8 << 20  # quota taken ahead for uploads that did not declare their size


@dataclass
class NewFile:
    """What a client says about a file before its bytes arrive."""

    name: str | None = None  # proposed id ("files/x" or "x")
    display_name: str = ""
    mime_type: str = ""
    size_bytes: int | None = None


def _denied(file_id: str) -> PermissionDenied:
    return PermissionDenied(f"You do not have permission to access the File {file_id} or it may not exist.")


def parse_file_id(name: str) -> str:
    """'files/abc' or 'abc' → 'abc', validated against Gemini's id rules."""
    file_id = name.removeprefix("files/")
    if not _ID_RE.match(file_id):
        raise InvalidArgument(
            f"Invalid file name {name!r}: ids are at most 40 characters of lowercase letters, digits or '-', "
            "and may not start or end with '-'.")
    return file_id


class FileService:
    def __init__(self, settings: "Settings", store: MetadataStore | None = None, blobs: BlobStore | None = None):
        self.settings = settings
        self.store = store or MetadataStore.open(settings)
        self.blobs = blobs or open_blob_store(settings, self.store)
        self.processor = Processor(self.store, self.blobs, settings)
        # Predicates on a MIME type: true when a file of that type that needs no decoding (an image) still
        # has PROCESSING work (the Processor's hooks, e.g. vision features). Registered by the app wiring.
        self.processing_wanted: list[Callable[[str], bool]] = []
        self._hashers: dict[str, tuple[object, int]] = {}  # session id → (sha256, bytes hashed)
        self._hash_lock = threading.Lock()
        self._sessions = SessionLocks(cluster=self.store)  # across nodes too, on a shared database
        self._recovered = False
        self.recover()  # before anything is served: a data dir we cannot trust stops the app being built
        self._dir_lock = DirLock(self.blobs.root, exclusive=False)  # tells `pollux doctor` a server is here

    # ---- life cycle ----
    def recover(self) -> None:
        """Make the data dir consistent, or refuse it (StorageError) when it holds bytes the database
        does not explain. Runs once, before serving; the app calls it while it is built."""
        if self._recovered:
            return
        self.blobs.check_writable()
        try:
            with self.store.cluster_lock(HOUSEKEEPING) as mine:
                if mine:  # else another node is recovering or sweeping right now: it does this round
                    recovery.recover(self.store, self.blobs)
        except Exception as e:
            if not out_of_space(e):
                raise
            log.warning("the disk is full: start-up recovery is incomplete and runs again at the next start (%s)", e)
        self._recovered = True

    def start(self) -> None:
        """Recover after a crash, drop dead sessions, resume PROCESSING jobs."""
        self.recover()
        if not self._dir_lock.held:
            self._dir_lock = DirLock(self.blobs.root, exclusive=False)
        try:
            self.sweep()
        except Exception as e:  # e.g. a full disk: serving reads matters more; the periodic sweep retries
            log.warning("start-up sweep failed: %s", e)
        self.processor.start()
        self.resume_processing()

    def stop(self) -> None:
        self.processor.stop()
        try:
            self.store.checkpoint()  # after a clean stop pollux.db alone holds every row
        except Exception as e:  # a read-only or full disk: the WAL is still valid, just not folded in
            log.warning("could not checkpoint the metadata database: %s", e)
        self._dir_lock.release()

    def resume_processing(self) -> None:
        """Queue a job for every PROCESSING file without one (jobs are kept in the database: a stop or a
        crash leaves them there, claimable again)."""
        self.processor.resume()

    def sweep(self) -> int:
        """Delete expired files (rows, then bytes) and dead upload sessions; retry waiting jobs."""
        count = 0
        with self.store.cluster_lock(HOUSEKEEPING) as mine:  # one node sweeps at a time; the others skip
            if mine:
                count = self._sweep_expired(now_us())
        self.processor.resume()  # a PROCESSING file whose job was never queued (its node died in between)
        return count

    def _sweep_expired(self, now: int) -> int:
        if self.store.is_postgres:  # other nodes may have died mid-commit; this process's commits hold their lock
            recovery.settle_abandoned(self.store, self.blobs)
        count = 0
        for rec in self.store.expired_files(now):
            if self.store.delete_file(rec.project, rec.id):
                self._remove_bytes(rec.key)
                count += 1
        for s in self.store.stale_sessions(now):
            if s.status == "committing":
                continue  # settled (by start-up, or above), never swept halfway
            with claim(self.store, s.id) as mine:
                if not mine:  # another node is writing it this very moment: the next sweep
                    continue
                self.blobs.discard_staging(s.id)
                self.store.delete_session(s.id)
            self._forget_hasher(s.id)
        try:
            self.blobs.sweep()  # multipart uploads nobody can finish (S3)
        except Exception as e:
            log.warning("blob store sweep failed: %s", e)
        return count

    # ---- queries ----
    def get(self, project: str, name: str) -> FileRecord:
        file_id = name.removeprefix("files/")
        rec = self.store.get_file(project, file_id) if _ID_RE.match(file_id) else None
        if rec is None or rec.expiration_time.timestamp() * 1e6 <= now_us():
            raise _denied(file_id)
        return rec

    def get_usable(self, project: str, name: str) -> FileRecord:
        """A file a prompt may use: ACTIVE, or an image still PROCESSING (its bytes were decoded and
        checked at upload; what is left is the models' own warm-up, which the request waits for), or
        audio still PROCESSING: decoding and transcription take seconds, so the request waits for them
        (up to `processing_wait_seconds`), as Gemini lets audio be used right after upload. A video
        still PROCESSING is Gemini's 400 FAILED_PRECONDITION (an hour of frames is no wait)."""
        import time  # local: this method is the only user here

        rec = self.get(project, name)
        if rec.state == State.PROCESSING and not pipeline.needs_processing(rec.mime_type):
            return rec
        if rec.state == State.PROCESSING and mimes.kind(rec.mime_type) == "audio":
            deadline = time.monotonic() + self.settings.processing_wait_seconds
            delay = 0.02
            while rec.state == State.PROCESSING and time.monotonic() < deadline:
                time.sleep(delay)  # the processing job may run in another worker: the store is the truth
                delay = min(delay * 2, 0.25)
                rec = self.get(project, name)
        if rec.state != State.ACTIVE:
            why = f" It failed: {rec.error.get('message')}" if rec.state == State.FAILED and rec.error else ""
            raise FileNotActive(f"The File {rec.id} is not in an ACTIVE state and usage is not allowed.{why}")
        return rec

    def list(self, project: str, page_size: int | None, page_token: str | None) -> tuple[list[FileRecord], str | None]:
        size = 10 if not page_size else page_size
        if size < 0:
            raise InvalidArgument(f"pageSize must not be negative, got {page_size}.")
        size = min(size, 100)
        before = _decode_token(page_token) if page_token else None
        rows = self.store.list_files(project, size + 1, before, now_us())
        page, more = rows[:size], len(rows) > size
        token = _encode_token(page[-1]) if more and page else None
        return page, token

    def delete(self, project: str, name: str) -> None:
        """The row goes first (with a tombstone for its bytes), then the bytes (blocking: call from a thread)."""
        file_id = name.removeprefix("files/")
        with storage_errors():
            key = self.store.delete_file(project, file_id) if _ID_RE.match(file_id) else None
            if key is None:
                raise _denied(file_id)
        self._remove_bytes(key)

    def _remove_bytes(self, key: str) -> None:
        self.processor.cancel(key)
        try:
            self.blobs.remove(key)
            self.store.forget_tombstone(key)
        except Exception as e:  # the tombstone stays: the next start-up or `pollux doctor` removes them
            log.warning("bytes of deleted file %s not removed yet: %s", key, e)

    def blob_path(self, rec: FileRecord):
        """A local path holding the file's bytes (S3: a cached copy; blocking: call from a thread)."""
        return self.blobs.local_blob(rec.key)

    def artifact_dir(self, rec: FileRecord):
        """The file's artifacts as a local dir (S3: fetched once into the cache; blocking)."""
        return self.blobs.fetch_artifacts(rec.key) or self.blobs.artifact_dir(rec.key)

    # ---- uploads ----
    def start_upload(self, project: str, new: NewFile, protocol: str) -> UploadSession:
        """Open a session (blocking: call from a thread). A declared size reserves its quota now."""
        file_id = parse_file_id(new.name) if new.name else None
        if len(new.display_name) > 512:
            raise InvalidArgument("displayName must be at most 512 characters.")
        declared = mimes.bare(new.mime_type) if new.mime_type else ""
        if declared and mimes.kind(declared) is None:
            raise UnsupportedMedia(f"Unsupported MIME type: {declared}. Supported: images, video and audio "
                                   "(see the Gemini API's list of supported types).")
        if new.size_bytes is not None:
            if new.size_bytes < 0:
                raise InvalidArgument(f"Invalid upload size {new.size_bytes}.")
            self._check_size(None, new.size_bytes)
        created = from_us(now_us())
        session = UploadSession(
            id=secrets.token_urlsafe(32), project=project, file_id=file_id or _new_id(), display_name=new.display_name,
            mime_type=declared, declared_size=new.size_bytes, received=0, protocol=protocol, status="active",
            create_time=created, expire_time=created + timedelta(seconds=self.settings.upload_session_ttl_seconds))
        try:
            with storage_errors():
                self.store.insert_session(session, reserve=new.size_bytes or 0, limit=self.settings.max_project_bytes,
                                          unique_name=file_id is not None)
        except NameTaken:
            raise AlreadyExists(f"A file named files/{file_id} already exists.") from None
        except QuotaRefused as e:
            raise self._quota_error(e.used, new.size_bytes or 0) from None
        return session

    def session(self, session_id: str) -> UploadSession:
        s = self.store.get_session(session_id) if session_id else None
        if s is None or s.expire_time.timestamp() * 1e6 <= now_us():
            raise NotFound("No such upload session: it never existed, expired, or was completed long ago.")
        if s.status == "cancelled":
            raise NotFound("The upload session was cancelled.")
        return s

    async def append(self, session_id: str, offset: int | None, chunks: AsyncIterator[bytes],
                     total: int | None = None) -> UploadSession:
        """Stream one chunk's bytes into the session at `offset` (default: where it stands).

        One writer per session: a second chunk waits, then finds the offset moved and gets a clean 400.
        `total` is a size announced with the chunk (googleapiclient's Content-Range)."""
        async with self._sessions.hold(session_id):
            s = await run_in_threadpool(self.session, session_id)
            if s.status != "active":
                raise InvalidArgument("The upload session is already finalized.")
            if total is not None and s.declared_size is None:
                self._check_size(None, total)
                s.declared_size = total
                await run_in_threadpool(self._store_call, self.store.update_session, s.id, declared_size=total)
            if offset is None:
                offset = s.received
            if offset != s.received:
                raise InvalidArgument(f"Invalid upload offset {offset}: the session has received {s.received} bytes. "
                                      "Query the session and resume from there.")
            return await self._write_chunk(s, chunks)

    async def _write_chunk(self, s: UploadSession, chunks: AsyncIterator[bytes]) -> UploadSession:
        hasher = await run_in_threadpool(self._hasher, s)  # None: computed at finalize (S3, chunks from other nodes)
        fh = await run_in_threadpool(self._store_call, self.blobs.open_chunk, s.id, s.received)
        received, pending = s.received, bytearray()
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                self._check_size(s, received + len(pending) + len(chunk))
                pending += chunk
                if len(pending) >= WRITE_BYTES:
                    await run_in_threadpool(self._write, s, fh, hasher, received, bytes(pending))
                    received += len(pending)
                    pending.clear()
            if pending:
                await run_in_threadpool(self._write, s, fh, hasher, received, bytes(pending))
                received += len(pending)
            await run_in_threadpool(self._acknowledge, s, fh, hasher, received)
        except SessionBusy:
            fh.close()
            raise
        except PolluxError as e:
            if e.reason in ("STORAGE_FULL", "STORAGE_NOT_WRITABLE") or isinstance(e, Unavailable):
                # The storage failed, not the client: drop this chunk's bytes, keep the acknowledged ones.
                await run_in_threadpool(fh.discard)
                self._forget_hasher(s.id)
            else:
                await run_in_threadpool(fh.discard)
                await run_in_threadpool(self.abort, s.id)  # a limit was crossed: the upload is over
            raise
        except Exception:
            # Client went away mid-chunk: keep what arrived, the SDK resumes from `query`.
            await run_in_threadpool(self._salvage, s, fh, hasher, received, bytes(pending))
            raise
        except BaseException:  # cancelled (the server is stopping): the same, without awaiting
            self._salvage(s, fh, hasher, received, bytes(pending))
            raise
        s.received = received
        return s

    def _write(self, s: UploadSession, fh, hasher, received: int, data: bytes) -> None:
        """One write (in a thread), with its quota taken first: the check and the take are one transaction."""
        self._reserve(s, received + len(data))
        with storage_errors():
            fh.write(data)
        if hasher is not None:
            hasher.update(data)

    def _acknowledge(self, s: UploadSession, fh, hasher, received: int) -> None:
        with storage_errors():
            part = fh.finish()
            if part is None:
                moved = self.store.advance_session(s.id, s.received, received)
            else:  # the chunk's object is acknowledged with its row, in one compare-and-set
                moved = upload_parts.advance_with_part(self.store, s.id, s.received, received, part)
            if not moved:
                if part is not None:
                    self.blobs.drop_chunk(part)  # another node took this offset: these bytes are nobody's
                raise SessionBusy("The upload session changed while this chunk was written; query it and resume.")
        if hasher is not None:
            self._remember_hasher(s.id, hasher, received)

    def _salvage(self, s: UploadSession, fh, hasher, received: int, pending: bytes) -> None:
        try:
            if pending:
                self._write(s, fh, hasher, received, pending)
                received += len(pending)
            self._acknowledge(s, fh, hasher, received)
        except Exception as e:  # nothing more to keep: the next chunk truncates back to the acknowledged offset
            fh.discard() if not isinstance(e, SessionBusy) else fh.close()
            self._forget_hasher(s.id)
            log.info("upload %s: the interrupted chunk's bytes were not kept (%s)", s.id, e)

    def _reserve(self, s: UploadSession, total: int) -> None:
        if total <= s.reserved:
            return
        step = total if s.declared_size is not None else max(total, s.reserved + RESERVE_STEP)
        for want in dict.fromkeys((min(step, self.settings.max_file_bytes), total)):
            with storage_errors():
                used = self.store.reserve(s.id, s.project, want, self.settings.max_project_bytes)
            if used is None:
                s.reserved = want
                return
        raise self._quota_error(used, total)

    async def finalize(self, session_id: str) -> FileRecord:
        async with self._sessions.hold(session_id):
            s = await run_in_threadpool(self.session, session_id)
            if s.status == "committing":  # an earlier finalize failed midway (e.g. a full disk): settle it
                how = await run_in_threadpool(self._store_call, recovery.settle, self.store, self.blobs, s)
                if how == "busy":
                    raise Unavailable("The upload is being finalized by another request; retry in a moment.")
                s = await run_in_threadpool(self.session, session_id)
            if s.status == "final":  # a retried finalize: answer the same file
                return await run_in_threadpool(self._committed, s)
            if s.declared_size is not None and s.received != s.declared_size:
                await run_in_threadpool(self.abort, s.id)
                raise InvalidArgument(f"Upload finalized with {s.received} bytes, but {s.declared_size} were declared "
                                      "(X-Goog-Upload-Header-Content-Length). The upload was discarded.")
            if s.received == 0:
                await run_in_threadpool(self.abort, s.id)
                raise InvalidArgument("The uploaded file is empty.")
            try:
                return await run_in_threadpool(self._commit, s)
            except PolluxError as e:
                # Retryable failures (full or read-only disk, a busy decoder) keep the bytes: the client retries.
                if e.reason not in ("STORAGE_FULL", "STORAGE_NOT_WRITABLE") and not isinstance(e, Unavailable):
                    await run_in_threadpool(self.abort, s.id)
                raise

    async def cancel(self, session_id: str) -> None:
        async with self._sessions.hold(session_id):
            s = await run_in_threadpool(self.session, session_id)
            if s.status == "final":
                raise InvalidArgument("The upload session is already finalized.")
            await run_in_threadpool(self.abort, session_id)

    def abort(self, session_id: str, status: str = "cancelled") -> None:
        with storage_errors():
            self.store.update_session(session_id, status=status, received=0, reserved=0)
        self.blobs.discard_staging(session_id)
        self._forget_hasher(session_id)

    async def upload_stream(self, project: str, new: NewFile, chunks: AsyncIterator[bytes], protocol: str) -> FileRecord:
        """One-shot upload (multipart, media): a session that is finalized right away."""
        s = await run_in_threadpool(self.start_upload, project, new, protocol)
        try:
            await self.append(s.id, 0, chunks)
            return await self.finalize(s.id)
        except PolluxError:  # nobody can resume a one-shot upload: its bytes go at once
            with contextlib.suppress(Exception):  # on a sick disk the sweep drops it later
                current = await run_in_threadpool(self.store.get_session, s.id)
                if current is not None and current.status == "active":
                    await run_in_threadpool(self.abort, s.id)
            raise

    # ---- internals ----
    @staticmethod
    def _store_call(fn, *args, **kwargs):
        with storage_errors():
            return fn(*args, **kwargs)

    def _check_size(self, s: UploadSession | None, total: int) -> None:
        if total > self.settings.max_file_bytes:
            raise PayloadTooLarge(f"File size exceeds the limit of {self.settings.max_file_bytes} bytes per file.")
        if s is not None and s.declared_size is not None and total > s.declared_size:
            raise InvalidArgument(f"Received more bytes than the {s.declared_size} declared for this upload.")

    def _quota_error(self, used: int | None, total: int) -> ResourceExhausted:
        return ResourceExhausted(
            f"Project storage quota exceeded: {used} bytes stored, this upload needs {total}, "
            f"the limit is {self.settings.max_project_bytes} bytes.")

    def _hasher(self, s: UploadSession):
        with self._hash_lock:
            hasher, pos = self._hashers.get(s.id, (None, -1))
        if hasher is None or pos != s.received:
            # After a restart (or a dropped chunk, or a chunk taken by another node) the digest of the
            # acknowledged bytes is rebuilt where that is cheap (local disk), else computed at finalize.
            try:
                hasher = self.blobs.staged_digest(s.id, s.received)
            except FileNotFoundError:
                raise InvalidArgument("The upload session's bytes were lost; start a new upload.") from None
        return hasher

    def _remember_hasher(self, session_id: str, hasher, received: int) -> None:
        with self._hash_lock:
            self._hashers[session_id] = (hasher, received)

    def _forget_hasher(self, session_id: str) -> None:
        with self._hash_lock:
            self._hashers.pop(session_id, None)

    def _committed(self, s: UploadSession) -> FileRecord:
        """The file a finished session made (the same answer for its whole life)."""
        rec = self.store.get_file_by_key(s.final_file_id) if s.final_file_id else None
        if rec is None or rec.project != s.project or rec.expiration_time.timestamp() * 1e6 <= now_us():
            raise _denied(s.file_id)
        return rec

    def _commit(self, s: UploadSession) -> FileRecord:
        """Intent on the session row → blob made visible → file row inserted (see `recovery.settle_commits`)."""
        try:
            head = self.blobs.staged_head(s.id, SNIFF_BYTES)
        except FileNotFoundError:
            raise InvalidArgument("The upload session's bytes were lost; start a new upload.") from None
        # Checked in its canonical form; the record keeps the type the client named, as Gemini echoes it.
        mime = mimes.check(s.mime_type or _sniffed(head), head)
        named = s.mime_type or mime
        hasher = self._hasher(s)
        sha = hasher.hexdigest() if hasher is not None else ""  # "": filled in while the bytes are assembled
        decoded_later = pipeline.needs_processing(mime)
        processing = decoded_later or any(wanted(mime) for wanted in self.processing_wanted)
        created = from_us(now_us())
        rec = FileRecord(
            id=s.file_id, project=s.project, display_name=s.display_name, mime_type=named, size_bytes=s.received,
            sha256=sha, state=State.PROCESSING if processing else State.ACTIVE, create_time=created,
            update_time=created, expiration_time=created + timedelta(seconds=self.settings.file_ttl_seconds))
        with storage_errors():
            if not self.store.begin_commit(s.id, rec):  # picks rec.key: the id, unless another project has it
                raise SessionBusy("The upload session changed while it was being finalized; query it.")
        assembly = None
        try:
            with storage_errors():  # a full disk keeps the upload resumable; a corrupt image is refused
                try:
                    local = self._keep_local(s, hasher, decoded_later)
                    assembly = self.blobs.assemble(s.id, rec.key, s.received, hasher, local=local)
                except FileNotFoundError:
                    raise InvalidArgument("The upload session's bytes were lost; start a new upload.") from None
                if assembly.sha256 != rec.sha256:  # recorded before the blob can become visible
                    rec.sha256 = assembly.sha256
                    upload_parts.record_commit_sha(self.store, s.id, rec.sha256)
                if not decoded_later:  # images: decoded now, so a corrupt one is refused instead of stored
                    pipeline.prepare_file(mime, assembly.path, self.blobs.artifact_dir(rec.key), self.settings,
                                          lambda: False)
                assembly.complete()  # durable bytes first, then the row that makes them visible
        except BaseException as e:
            if assembly is not None:
                assembly.abort()
            self.blobs.remove_artifacts(rec.key)
            self._undo_commit(s.id, e)
            raise
        with storage_errors():
            self.store.finish_commit(s.id, rec)
        self._forget_hasher(s.id)
        self._after_commit(s.id, rec.key, publish=not decoded_later)
        if processing:
            self.processor.submit(rec.key)
        return rec

    def _keep_local(self, s: UploadSession, hasher, decoded_later: bool) -> bool:
        """Whether the commit writes a local copy as it goes (S3): images are decoded right now; other
        media when its bytes stream through this node anyway (the digest is computed here) and fit the
        cache. Else big chunks are copied server-side and a processing node downloads the blob once."""
        return not decoded_later or (hasher is None and s.received <= self.settings.blob_cache_bytes // 8)

    def _after_commit(self, session_id: str, key: str, publish: bool) -> None:
        """The chunks are no longer needed (S3; the local staging file was renamed), and an image's
        decoded copy is shared. Best effort: the sweep and start-up collect what is left."""
        try:
            self.blobs.discard_staging(session_id)
            if publish:
                self.blobs.publish_artifacts(key)
        except Exception as e:
            log.warning("upload %s committed; cleaning up after it failed: %s", session_id, e)

    def _undo_commit(self, session_id: str, why: BaseException) -> None:
        """The bytes are still staged: the session is active again (a bad file is then aborted by the caller)."""
        try:
            self.store.update_session(session_id, status="active", final_file_id=None, commit_json=None)
        except Exception as e:  # the next start-up rolls it back instead
            log.warning("upload %s stays committing after %r: %s", session_id, why, e)


def _new_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def _sniffed(head: bytes) -> str:
    found = mimes.sniff(head)
    if found is None:
        raise UnsupportedMedia("The file's MIME type was not given and its content is not a supported image, "
                               "video or audio format.")
    return found


def _encode_token(rec: FileRecord) -> str:
    raw = json.dumps([int(rec.create_time.timestamp() * 1_000_000), rec.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, str]:
    try:
        us, fid = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)),
                             parse_constant=_reject_constant)
        if type(us) is not int or not 0 <= us < 2**63 or not isinstance(fid, str) or len(fid) > 40:
            raise ValueError
        return us, fid
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidArgument(f"Invalid pageToken {token[:200]!r}.") from None


def _reject_constant(name: str):
    raise ValueError(name)  # Infinity / NaN are not JSON, whatever Python's reader allows
