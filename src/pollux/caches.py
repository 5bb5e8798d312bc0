"""cachedContents as a service: create (counted by Gemini's rules, checked against its minimum size),
get, list, change the expiry, delete, and sweep the expired; and the engines' pinned state.

A cache is a prompt prefix stored per project. The files it names are hard-linked (copied where links
fail) under `data_dir/cached-contents/ID/`, so the cache keeps answering after a file is deleted
or expires; they go with the cache. Its computed state (vision features, the KV
prefix) is pinned in the engine that serves its model while the cache lives: warmed in the
background at creation, released at delete or expiry. After a restart the first question using a
cache computes that state again (and pins it).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import shutil
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from pollux.errors import InvalidArgument, PermissionDenied
from pollux.files.cache_store import CacheRecord, CacheStore
from pollux.files.service import _decode_token
from pollux.files.store import now_us

if TYPE_CHECKING:
    from pollux.engines.base import Engine
    from pollux.files.service import FileService
    from pollux.generation import GenerateRequest, GenerationService, Job
    from pollux.settings import Settings

log = logging.getLogger("pollux.caches")

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_TTL = re.compile(r"^\s*(\d{1,12})(\.\d{1,9})?s\s*$")
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_EXPIRY_US = 253402300800 * 1_000_000  # 10000-01-01: the last RFC 3339 can write


def parse_ttl(raw: object) -> float:
    """A google.protobuf.Duration in JSON ("3600s", "1.5s") as seconds; anything else is a 400."""
    m = _TTL.match(raw) if isinstance(raw, str) else None
    if m is None:
        raise InvalidArgument(f"Invalid value at 'cached_content.ttl' (type.googleapis.com/google.protobuf.Duration), "
                              f"{json.dumps(raw)[:100]}")
    return int(m.group(1)) + float(m.group(2) or 0)


def parse_time(raw: object, field: str = "expire_time") -> int:
    """An RFC 3339 timestamp in microseconds; anything else is a 400."""
    try:
        if not isinstance(raw, str):
            raise ValueError
        dt = datetime.fromisoformat(raw.strip().replace("z", "Z").replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError
        return int(dt.timestamp() * 1_000_000)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"Invalid value at 'cached_content.{field}' (type.googleapis.com/"
                              f"google.protobuf.Timestamp), {json.dumps(raw)[:100]}") from None


def expiry(ttl: object, expire_time: object, default_seconds: float, now: int) -> int:
    """When a cache made (or changed) now expires: `ttl` or `expireTime`, never both; in the future."""
    if ttl is not None and expire_time is not None:
        raise InvalidArgument("Only one of ttl or expire_time may be set.")
    if expire_time is not None:
        at = parse_time(expire_time)
    else:
        at = now + int((parse_ttl(ttl) if ttl is not None else default_seconds) * 1_000_000)
    if at <= now:
        raise InvalidArgument("expire_time must be in the future (or ttl positive).")
    if at >= MAX_EXPIRY_US:
        raise InvalidArgument("expire_time must be before 10000-01-01T00:00:00Z.")
    return at


def min_tokens(settings: "Settings", model: str) -> int:
    """Gemini's smallest cache: 4096 tokens for Pro models, 1024 for Flash and the others."""
    if settings.cache_min_tokens is not None:
        return settings.cache_min_tokens
    return 4096 if "pro" in model.lower() else 1024


def _link(src: "os.PathLike | str", dst: "os.PathLike | str") -> None:
    """A hard link (no bytes copied), or a copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _denied(name: str) -> PermissionDenied:
    return PermissionDenied(f"CachedContent not found (or permission denied): {name[:200]}")


def cache_id_of(name: str) -> str:
    return name.strip().removeprefix("cachedContents/")


class CacheService:
    def __init__(self, settings: "Settings", files: "FileService", generation: "GenerationService"):
        self.settings = settings
        self.generation = generation
        self.files = files
        self.store = CacheStore(files.store)
        self.kept_root = Path(settings.data_dir) / "cached-contents"
        self._pins: dict[str, "Engine"] = {}  # cache id → the engine holding its pinned state
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ create

    async def create(self, project: str, model_name: str | None, request_json: dict, inp: "GenerateRequest",
                     display_name: str = "", ttl: object = None, expire_time: object = None) -> CacheRecord:
        if not model_name:
            raise InvalidArgument("* CreateCachedContentRequest.cached_content.model: model is required")
        now = now_us()
        expire = expiry(ttl, expire_time, self.settings.cache_default_ttl_seconds, now)
        if not inp.turns:
            raise InvalidArgument("* CreateCachedContentRequest.cached_content.contents: contents is not specified")
        job = await self.generation.prepare(project, model_name, inp, method="countTokens", enforce_limit=True)
        total = job.usage.prompt_tokens
        smallest = min_tokens(self.settings, job.model.requested)
        if total < smallest:
            raise InvalidArgument(f"Cached content is too small. total_token_count={total}, "
                                  f"min_total_token_count={smallest}")
        rec = CacheRecord(id=secrets.token_hex(8), project=project, model=f"models/{job.model.requested}",
                          display_name=display_name[:512], request_json=json.dumps(request_json),
                          total_tokens=total, create_us=now, update_us=now, expire_us=expire)
        await run_in_threadpool(self._keep_files, project, rec.id, inp)
        try:
            await run_in_threadpool(self.store.insert, rec)
        except BaseException:
            self._drop_files(rec.id)
            raise
        self.pin(rec.id, job)
        return rec

    # ------------------------------------------------------------------------------ the files it names

    def _keep_files(self, project: str, cache_id: str, inp: "GenerateRequest") -> None:
        from pollux.generation import file_id_of
        from pollux.prompt_types import FileRef

        for turn in inp.turns:
            for part in turn.parts:
                file_id = file_id_of(part.uri) if isinstance(part, FileRef) else None
                if not file_id:
                    continue
                rec = self.files.get(project, file_id)
                folder = self.kept_root / cache_id / rec.name.removeprefix("files/")
                if folder.exists():
                    continue
                folder.mkdir(parents=True)
                _link(self.files.blob_path(rec), folder / "blob")
                artifacts = Path(self.files.artifact_dir(rec))
                if artifacts.is_dir():
                    shutil.copytree(artifacts, folder / "artifacts", copy_function=_link)
                (folder / "meta.json").write_text(json.dumps({"mimeType": rec.mime_type, "name": rec.name}))

    def attach_kept(self, cache_id: str, inp: "GenerateRequest") -> None:
        """Point the cache's file parts at its own links (used when the file itself is gone)."""
        from pollux.generation import file_id_of
        from pollux.prompt_types import FileRef, KeptFile

        for turn in inp.turns:
            for part in turn.parts:
                file_id = file_id_of(part.uri) if isinstance(part, FileRef) else None
                folder = self.kept_root / cache_id / (file_id or "")
                if isinstance(part, FileRef) and file_id and (folder / "meta.json").is_file():
                    meta = json.loads((folder / "meta.json").read_text())
                    part.kept = KeptFile(meta["mimeType"], meta["name"], folder / "blob", folder / "artifacts")

    def _drop_files(self, cache_id: str) -> None:
        shutil.rmtree(self.kept_root / cache_id, ignore_errors=True)

    # ------------------------------------------------------------------------------ queries

    def get(self, project: str, name: str) -> CacheRecord:
        cache_id = cache_id_of(name)
        rec = self.store.get(project, cache_id, now_us()) if _ID.match(cache_id) else None
        if rec is None:
            raise _denied(name)
        return rec

    def list(self, project: str, page_size: int | None, page_token: str | None) -> tuple[list[CacheRecord], str | None]:
        size = page_size or DEFAULT_PAGE
        if size < 0:
            raise InvalidArgument(f"pageSize must not be negative, got {page_size}.")
        size = min(size, MAX_PAGE)
        before = _decode_token(page_token) if page_token else None
        rows = self.store.list(project, size + 1, before, now_us())
        page = rows[:size]
        token = None
        if len(rows) > size and page:
            raw = json.dumps([page[-1].create_us, page[-1].id]).encode()
            token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return page, token

    def update(self, project: str, name: str, ttl: object, expire_time: object,
               update_mask: str | None = None) -> CacheRecord:
        """PATCH: only the expiry changes (an updateMask naming anything else is a 400)."""
        fields = {f.strip() for f in (update_mask or "").split(",") if f.strip()}
        other = fields - {"ttl", "expire_time", "expireTime"}
        if other:
            raise InvalidArgument(f"Only ttl or expire_time can be updated on a CachedContent; updateMask names "
                                  f"{', '.join(sorted(other))[:200]}.")
        rec = self.get(project, name)
        if ttl is None and expire_time is None:
            return rec  # nothing to change (Gemini answers the cache as it is)
        now = now_us()
        at = expiry(ttl, expire_time, self.settings.cache_default_ttl_seconds, now)
        if not self.store.set_expiry(project, rec.id, at, now):
            raise _denied(name)
        return self.get(project, name)

    def delete(self, project: str, name: str) -> None:
        cache_id = cache_id_of(name)
        if not (_ID.match(cache_id) and self.store.delete(project, cache_id, now_us())):
            raise _denied(name)
        self.unpin(cache_id)
        self._drop_files(cache_id)

    def sweep(self) -> int:
        """Delete expired caches and release their pinned state (the app's sweeper calls it)."""
        gone = self.store.take_expired(now_us())
        for cache_id in gone:
            self.unpin(cache_id)
            self._drop_files(cache_id)
        return len(gone)

    # ------------------------------------------------------------------------------ pinned state

    def pin(self, cache_id: str, job: "Job") -> None:
        """Hand the cache's prompt to its engine to keep (warmed in the background there)."""
        with self._lock:
            if cache_id in self._pins:
                return
            self._pins[cache_id] = job.engine
        try:
            job.engine.pin(cache_id, job.prompt)
        except Exception:  # pinning is an optimisation: the cache works without it
            log.exception("pinning cache %s failed", cache_id)

    def pinned(self, cache_id: str) -> bool:
        with self._lock:
            return cache_id in self._pins

    def unpin(self, cache_id: str) -> None:
        with self._lock:
            engine = self._pins.pop(cache_id, None)
        if engine is not None:
            try:
                engine.unpin(cache_id)
            except Exception:
                log.exception("unpinning cache %s failed", cache_id)
