"""The File service: uploads (sessions, limits, durability), get/list/delete, expiry, processing.

Project isolation is enforced here: every lookup is keyed by (project, id), and a foreign,
deleted, expired or never-existing file all raise the same PermissionDenied.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
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
                           PermissionDenied, PolluxError, ResourceExhausted, UnsupportedMedia)
from pollux.files.blobs import LocalBlobStore
from pollux.files.processing import Processor
from pollux.files.records import FileRecord, State, UploadSession
from pollux.files.store import MetadataStore, from_us, now_us
from pollux.media import mime as mimes
from pollux.media import pipeline

if TYPE_CHECKING:
    from pollux.settings import Settings

log = logging.getLogger("pollux.files")

_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_ALPHABET = string.ascii_lowercase + string.digits
SNIFF_BYTES = 4096


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
    def __init__(self, settings: "Settings", store: MetadataStore | None = None, blobs: LocalBlobStore | None = None):
        self.settings = settings
        self.store = store or MetadataStore.open(settings)
        self.blobs = blobs or LocalBlobStore(settings.data_dir, fsync=settings.fsync)
        self.processor = Processor(self)
        # Predicates on a MIME type: true when a file of that type that needs no decoding (an image) still
        # has PROCESSING work (the Processor's hooks, e.g. vision features). Registered by the app wiring.
        self.processing_wanted: list[Callable[[str], bool]] = []
        self._hashers: dict[str, tuple[object, int]] = {}  # session id → (sha256, bytes hashed)
        self._hash_lock = threading.Lock()

    # ---- life cycle ----
    def start(self) -> None:
        """Recover after a crash: settle half-finished sessions, drop orphans, resume PROCESSING jobs."""
        for s in self.store.stale_sessions(now=2**62):  # every session
            if s.status == "active" and s.file_id and self.store.file_exists(s.file_id) and s.final_file_id is None:
                self.store.update_session(s.id, status="final", final_file_id=s.file_id)
        self.sweep()
        removed = self.blobs.remove_orphans(self.store.all_file_ids(), self.store.active_session_ids())
        if removed:
            log.info("removed %d orphaned blob(s)/artifact(s)", removed)
        self.processor.start()
        for rec in self.store.files_in_state(State.PROCESSING):
            self.processor.submit(rec.id)

    def stop(self) -> None:
        self.processor.stop()

    def sweep(self) -> int:
        """Delete expired files (rows, then bytes) and dead upload sessions."""
        now = now_us()
        count = 0
        for rec in self.store.expired_files(now):
            self.store.delete_file(rec.project, rec.id)
            self.processor.cancel(rec.id)
            self.blobs.remove(rec.id)
            count += 1
        for s in self.store.stale_sessions(now):
            if s.status != "active" or s.expire_time.timestamp() * 1e6 <= now:
                self.blobs.discard_staging(s.id)
                self.store.delete_session(s.id)
                self._forget_hasher(s.id)
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
        file_id = name.removeprefix("files/")
        if not _ID_RE.match(file_id) or not self.store.delete_file(project, file_id):
            raise _denied(file_id)
        self.processor.cancel(file_id)
        self.blobs.remove(file_id)

    def blob_path(self, rec: FileRecord):
        return self.blobs.blob_path(rec.id)

    def artifact_dir(self, rec: FileRecord):
        return self.blobs.artifact_dir(rec.id)

    # ---- uploads ----
    def start_upload(self, project: str, new: NewFile, protocol: str) -> UploadSession:
        if new.name:
            file_id = parse_file_id(new.name)
            if self.store.file_exists(file_id) or self.store.session_file_id_taken(file_id):
                raise AlreadyExists(f"A file named files/{file_id} already exists.")
        else:
            file_id = "".join(secrets.choice(_ALPHABET) for _ in range(12))
        if len(new.display_name) > 512:
            raise InvalidArgument("displayName must be at most 512 characters.")
        declared = mimes.normalize(new.mime_type) if new.mime_type else ""
        if declared and mimes.kind(declared) is None:
            raise UnsupportedMedia(f"Unsupported MIME type: {declared}. Supported: images, video and audio "
                                   "(see the Gemini API's list of supported types).")
        if new.size_bytes is not None:
            if new.size_bytes < 0:
                raise InvalidArgument(f"Invalid upload size {new.size_bytes}.")
            self._check_limits(project, None, new.size_bytes)
        created = from_us(now_us())
        session = UploadSession(
            id=secrets.token_urlsafe(32), project=project, file_id=file_id, display_name=new.display_name,
            mime_type=declared, declared_size=new.size_bytes, received=0, protocol=protocol, status="active",
            create_time=created, expire_time=created + timedelta(seconds=self.settings.upload_session_ttl_seconds))
        self.store.insert_session(session)
        return session

    def session(self, session_id: str) -> UploadSession:
        s = self.store.get_session(session_id) if session_id else None
        if s is None or s.expire_time.timestamp() * 1e6 <= now_us():
            raise NotFound("No such upload session: it never existed, expired, or was completed long ago.")
        if s.status == "cancelled":
            raise NotFound("The upload session was cancelled.")
        return s

    async def append(self, session_id: str, offset: int | None, chunks: AsyncIterator[bytes]) -> UploadSession:
        """Stream one chunk's bytes into the session at `offset` (default: where it stands)."""
        s = self.session(session_id)
        if s.status == "final":
            raise InvalidArgument("The upload session is already finalized.")
        if offset is None:
            offset = s.received
        if offset != s.received:
            raise InvalidArgument(f"Invalid upload offset {offset}: the session has received {s.received} bytes. "
                                  "Query the session and resume from there.")
        hasher = self._hasher(s)
        received = s.received
        # Other uploads' bytes are read once per chunk request, not per network read: this loop is the hot path.
        used_elsewhere = self.store.project_usage(s.project, exclude_session=s.id)
        fh = self.blobs.open_staging(s.id, received)
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                self._check_limits(s.project, s, received + len(chunk), used_elsewhere)
                fh.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
        except PolluxError:
            fh.close()
            self.abort(s.id)  # a limit was crossed: the upload is over and its bytes go
            raise
        except BaseException:
            # Client went away mid-chunk: keep what arrived, the SDK resumes from `query`.
            fh.flush()
            fh.close()
            self._record(s.id, hasher, received)
            raise
        fh.flush()
        fh.close()
        self._record(s.id, hasher, received)
        s.received = received
        return s

    async def finalize(self, session_id: str) -> FileRecord:
        s = self.session(session_id)
        if s.status == "final":  # a retried finalize: answer the same file
            return self.get(s.project, s.final_file_id or s.file_id)
        if s.declared_size is not None and s.received != s.declared_size:
            self.abort(s.id)
            raise InvalidArgument(f"Upload finalized with {s.received} bytes, but {s.declared_size} were declared "
                                  "(X-Goog-Upload-Header-Content-Length). The upload was discarded.")
        if s.received == 0:
            self.abort(s.id)
            raise InvalidArgument("The uploaded file is empty.")
        try:
            return await run_in_threadpool(self._commit, s)
        except PolluxError:
            self.abort(s.id)
            raise

    def abort(self, session_id: str, status: str = "cancelled") -> None:
        self.store.update_session(session_id, status=status, received=0)
        self.blobs.discard_staging(session_id)
        self._forget_hasher(session_id)

    async def upload_stream(self, project: str, new: NewFile, chunks: AsyncIterator[bytes], protocol: str) -> FileRecord:
        """One-shot upload (multipart, media): a session that is finalized right away."""
        s = self.start_upload(project, new, protocol)
        await self.append(s.id, 0, chunks)
        return await self.finalize(s.id)

    # ---- internals ----
    def _check_limits(self, project: str, s: UploadSession | None, total: int, used: int | None = None) -> None:
        if total > self.settings.max_file_bytes:
            raise PayloadTooLarge(f"File size exceeds the limit of {self.settings.max_file_bytes} bytes per file.")
        if s is not None and s.declared_size is not None and total > s.declared_size:
            raise InvalidArgument(f"Received more bytes than the {s.declared_size} declared for this upload.")
        if used is None:
            used = self.store.project_usage(project, exclude_session=s.id if s else None)
        if used + total > self.settings.max_project_bytes:
            raise ResourceExhausted(
                f"Project storage quota exceeded: {used} bytes stored, this upload needs {total}, "
                f"the limit is {self.settings.max_project_bytes} bytes.")

    def _hasher(self, s: UploadSession):
        with self._hash_lock:
            hasher, pos = self._hashers.get(s.id, (None, -1))
        if hasher is None or pos != s.received:
            # After a restart (or a dropped chunk) rebuild the digest from the acknowledged bytes.
            hasher = hashlib.sha256()
            path = self.blobs.staging_path(s.id)
            if s.received:
                with open(path, "rb") as fh:
                    left = s.received
                    while left:
                        block = fh.read(min(left, 8 << 20))
                        if not block:
                            raise InvalidArgument("The upload session's bytes were lost; start a new upload.")
                        hasher.update(block)
                        left -= len(block)
        return hasher

    def _record(self, session_id: str, hasher, received: int) -> None:
        with self._hash_lock:
            self._hashers[session_id] = (hasher, received)
        self.store.update_session(session_id, received=received)

    def _forget_hasher(self, session_id: str) -> None:
        with self._hash_lock:
            self._hashers.pop(session_id, None)

    def _commit(self, s: UploadSession) -> FileRecord:
        staging = self.blobs.staging_path(s.id)
        with open(staging, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
        mime = mimes.check(s.mime_type or _sniffed(head), head)
        hasher = self._hasher(s)
        sha = hasher.hexdigest()
        decoded_later = pipeline.needs_processing(mime)
        if not decoded_later:  # images: decoded now, so a corrupt one is refused instead of stored
            pipeline.prepare_file(mime, staging, self.blobs.artifact_dir(s.file_id), self.settings, lambda: False)
        processing = decoded_later or any(wanted(mime) for wanted in self.processing_wanted)
        self.blobs.commit(s.id, s.file_id)  # durable bytes first, then the row that makes them visible
        created = from_us(now_us())
        rec = FileRecord(
            id=s.file_id, project=s.project, display_name=s.display_name, mime_type=mime, size_bytes=s.received,
            sha256=sha, state=State.PROCESSING if processing else State.ACTIVE, create_time=created,
            update_time=created, expiration_time=created + timedelta(seconds=self.settings.file_ttl_seconds))
        try:
            self.store.insert_file(rec)
        except Exception:
            self.blobs.remove(s.file_id)
            raise
        self.store.update_session(s.id, status="final", final_file_id=s.file_id)
        self._forget_hasher(s.id)
        if processing:
            self.processor.submit(rec.id)
        return rec


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
        us, fid = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(us), str(fid)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(f"Invalid pageToken {token!r}.") from None
