"""Blobs and artifacts in any S3 (plain S3 API: SigV4, path-style, multipart, Range, conditional create).

Layout under `s3://BUCKET/PREFIX/`:
  staging/<session>/<offset>-<random>  one object per acknowledged chunk (the row in `upload_parts` owns it)
  blobs/<key>                          a committed file's bytes
  artifacts/<key>/<path>               frames, WAV, transcripts, cached images (manifest.json last)

A chunk is written to a fresh object (`If-None-Match: *`, so nothing is ever overwritten), then
acknowledged by the database's compare-and-set that also records it: a chunk may land on any node.
Finalize streams the chunks in order into one multipart upload of the blob's key while hashing
(parts >= 5 MiB, as S3 requires; a chunk already >= 5 MiB whose digest is known is copied server-side
with UploadPartCopy), and the blob becomes visible only when that upload completes.

Readers get local paths: `local_blob` and `fetch_artifacts` download once into `data_dir/cache/`
(evicted least-recently-used beyond `blob_cache_bytes`), checked against the object's ETag so a key
reused after a delete never serves stale bytes. Every call blocks: the service runs them in threads.
Bytes are streamed in bounded parts, never buffered whole.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pollux.errors import Unavailable
from pollux.files import upload_parts
from pollux.files.blobs import Inventory
from pollux.files.store import StorageError
from pollux.files.upload_parts import Part

if TYPE_CHECKING:
    from pollux.files.store import MetadataStore
    from pollux.settings import Settings

log = logging.getLogger("pollux.files")

PART_BYTES = 8 << 20  # upload part size: bytes held in memory per upload in flight
MIN_PART = 5 << 20  # S3's smallest part but the last
READ_BYTES = 1 << 20
MULTIPART_GRACE_S = 24 * 3600  # an unfinished multipart upload older than this has no live writer
MANIFEST = "manifest.json"
PROBE = ".pollux-write-probe"


def _unavailable(fn):
    """An S3 failure in a request's path is the server's, not the client's: a 503 the client retries
    (the upload keeps its acknowledged chunks), never a 500 or a cancelled upload."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except (BotoCoreError, ClientError) as e:
            log.warning("S3 call failed in %s: %s", fn.__qualname__, e)
            raise Unavailable(f"The blob store is unavailable right now ({type(e).__name__}); retry.") from None
    return call


class S3BlobStore:
    def __init__(self, client, bucket: str, prefix: str, root: Path, store: "MetadataStore",
                 cache_bytes: int = 10 << 30, url: str = ""):
        self.s3, self.bucket, self.store = client, bucket, store
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.root = Path(root)
        self.url = url or f"s3://{bucket}/{prefix}"
        self.cache = BlobCache(self.root / "cache", cache_bytes)

    @classmethod
    def from_settings(cls, settings: "Settings", store: "MetadataStore", bucket: str, prefix: str) -> "S3BlobStore":
        import boto3
        from botocore.config import Config

        if not bucket:
            raise StorageError("blob_url s3://BUCKET/PREFIX names no bucket.")
        endpoint = settings.s3_endpoint_url or None
        path_style = settings.s3_path_style if settings.s3_path_style is not None else endpoint is not None
        config = Config(signature_version="s3v4", s3={"addressing_style": "path" if path_style else "auto"},
                        retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                        max_pool_connections=32, request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, config=config,
            region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        return cls(client, bucket, prefix, Path(settings.data_dir), store, settings.blob_cache_bytes,
                   url=f"s3://{bucket}/{prefix}")

    def _k(self, rel: str) -> str:
        return self.prefix + rel

    # ---- start-up ----
    def describe(self) -> str:
        return f"the blob store {self.url}"

    def check_writable(self) -> None:
        """Stop start-up with a clear message when the bucket cannot be reached, read or written."""
        from botocore.exceptions import BotoCoreError, ClientError

        probe = self._k(f"staging/{PROBE}-{secrets.token_hex(6)}")
        try:
            self.s3.head_bucket(Bucket=self.bucket)
            self.s3.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
            self.s3.delete_object(Bucket=self.bucket, Key=probe)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
                why = ("refused the credentials (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the "
                       "identity's permissions on the bucket)")
            elif code in ("404", "NoSuchBucket") or status == 404:
                why = "has no such bucket (create it first)"
            else:
                why = f"answered {code or status}: {e}"
            raise StorageError(f"The S3 store at {self.endpoint} {why}; blob_url is {self.url}.") from None
        except BotoCoreError as e:
            raise StorageError(f"The S3 store at {self.endpoint} cannot be used: {e}. Check s3_endpoint_url "
                               f"(POLLUX_S3_ENDPOINT_URL) and the AWS_* variables; blob_url is {self.url}.") from None

    @property
    def endpoint(self) -> str:
        return self.s3.meta.endpoint_url

    # ---- uploads ----
    def open_chunk(self, session_id: str, offset: int) -> "S3Chunk":
        return S3Chunk(self, session_id, offset)

    def drop_chunk(self, part: Part) -> None:
        """A chunk that lost the race for its offset (or was never acknowledged): nobody owns it."""
        self.s3.delete_object(Bucket=self.bucket, Key=self._k(part.key))

    def _parts(self, session_id: str) -> list[Part]:
        return upload_parts.parts_of(self.store, session_id)

    @_unavailable
    def staged_head(self, session_id: str, size: int) -> bytes:
        out = bytearray()
        for part in self._parts(session_id):
            out += self._get(part.key, f"bytes=0-{min(part.size, size - len(out)) - 1}").read()
            if len(out) >= size:
                break
        if not out:
            raise FileNotFoundError(session_id)
        return bytes(out[:size])

    def staged_digest(self, session_id: str, received: int):
        """Only a fresh digest: rebuilding one means reading every acknowledged byte back from S3, so
        when another node took earlier chunks the digest is computed once, at finalize (None)."""
        return hashlib.sha256() if not received else None

    def staging_size(self, session_id: str) -> int:
        owned = {p.key: p.size for p in self._parts(session_id)}
        listed = {key for key, _size in self._list(f"staging/{session_id}/")}
        return sum(size for key, size in owned.items() if self._k(key) in listed)

    def has_staging(self, session_id: str) -> bool:
        return bool(self._parts(session_id))

    @_unavailable
    def assemble(self, session_id: str, key: str, size: int, hasher, local: bool) -> "S3Assembly":
        parts = self._parts(session_id)
        at = 0
        for p in parts:
            if p.offset != at:
                raise FileNotFoundError(f"upload {session_id} misses bytes at {at}")
            at += p.size
        if at != size:
            raise FileNotFoundError(f"upload {session_id} holds {at} of {size} bytes")
        asm = S3Assembly(self, key, parts, hasher, self.cache.tmp_path("blobs", key) if local else None)
        asm.run()
        return asm

    def commit_in_flight(self, key: str) -> bool:
        """Whether some node is assembling blobs/<key> right now (an unfinished multipart upload)."""
        r = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=self._k(f"blobs/{key}"))
        return any(up["Key"] == self._k(f"blobs/{key}") for up in r.get("Uploads", []))

    def uncommit(self, key: str, session_id: str) -> None:
        raise StorageError(f"blob {key} has no upload parts to return to")  # only pre-S3 local versions did this

    def discard_staging(self, session_id: str) -> None:
        """Remove every object under the session's staging prefix (owned or lost races) and its rows."""
        self._delete_many([k for k, _ in self._list(f"staging/{session_id}/")])
        upload_parts.forget_parts(self.store, session_id)

    # ---- blobs ----
    def blob_size(self, key: str) -> int | None:
        head = self._head(f"blobs/{key}")
        return None if head is None else head["ContentLength"]

    def blob_sha256(self, key: str) -> str:
        h = hashlib.sha256()
        for block in self._get(f"blobs/{key}").iter_chunks(READ_BYTES):
            h.update(block)
        return h.hexdigest()

    @_unavailable
    def local_blob(self, key: str) -> Path:
        head = self._head(f"blobs/{key}")
        if head is None:
            raise FileNotFoundError(f"blob {key}")
        return self.cache.get_file("blobs", key, head["ETag"], lambda dst: self._download(f"blobs/{key}", dst))

    blob_path = local_blob  # what pre-seam callers name it

    def _download(self, rel: str, dst: Path) -> None:
        with open(dst, "wb") as fh:
            for block in self._get(rel).iter_chunks(READ_BYTES):
                fh.write(block)

    # ---- artifacts ----
    def artifact_dir(self, key: str) -> Path:
        return self.cache.path("artifacts", key)

    def publish_artifacts(self, key: str) -> None:
        """Upload the artifact dir's files under artifacts/<key>/, the manifest last (its presence means
        complete), replacing what an earlier run published."""
        local = self.artifact_dir(key)
        if not local.is_dir():
            return
        files = sorted(p for p in local.rglob("*") if p.is_file())
        stale = {k for k, _ in self._list(f"artifacts/{key}/")}
        manifest_etag = None
        for path in sorted(files, key=lambda p: p.name == MANIFEST and p.parent == local):
            rel = f"artifacts/{key}/{path.relative_to(local).as_posix()}"
            self.s3.upload_file(str(path), self.bucket, self._k(rel))
            stale.discard(self._k(rel))
            if path.parent == local and path.name == MANIFEST:
                manifest_etag = self._head(rel)["ETag"]
        self._delete_many(sorted(stale))
        if manifest_etag:
            self.cache.mark("artifacts", key, manifest_etag)

    @_unavailable
    def fetch_artifacts(self, key: str) -> Path | None:
        head = self._head(f"artifacts/{key}/{MANIFEST}")
        local = self.artifact_dir(key)
        if head is None:  # not published (yet): what this node built itself, if anything
            return local if local.is_dir() else None
        return self.cache.get_dir("artifacts", key, head["ETag"], lambda dst: self._download_tree(key, dst))

    def _download_tree(self, key: str, dst: Path) -> None:
        base = self._k(f"artifacts/{key}/")
        for obj_key, _size in self._list(f"artifacts/{key}/"):
            target = dst / obj_key[len(base):]
            target.parent.mkdir(parents=True, exist_ok=True)
            self._download(obj_key[len(self.prefix):], target)

    # ---- removal and inventory ----
    def remove(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._k(f"blobs/{key}"))
        self.cache.drop("blobs", key)
        self.remove_artifacts(key)

    def remove_artifacts(self, key: str) -> None:
        self._delete_many([k for k, _ in self._list(f"artifacts/{key}/")])
        self.cache.drop("artifacts", key)

    def remove_artifact_entry(self, name: str) -> None:
        self.remove_artifacts(name)

    def inventory(self) -> Inventory:
        inv = Inventory()
        inv.blobs = set(self._owners("blobs/"))
        inv.artifacts = {owner: [owner] for owner in self._owners("artifacts/")}
        inv.staging = {sid for sid in self._owners("staging/") if not sid.startswith(PROBE)}
        return inv

    def _owners(self, rel_prefix: str) -> set[str]:
        """The first path segment after `rel_prefix` of every object (a full listing: some stores,
        SeaweedFS among them, list emptied "directories" as common prefixes)."""
        cut = len(self._k(rel_prefix))
        return {key[cut:].split("/", 1)[0] for key, _ in self._list(rel_prefix)}

    def sweep(self) -> int:
        """Abort multipart uploads nobody can finish: a staging one of a session that is over, or any
        older than a day (no chunk or commit takes that long). Returns how many."""
        live = {s.id for s in self.store.sessions_in("active", "committing")}
        now, aborted = time.time(), 0
        for up in self._multipart_uploads():
            rel = up["Key"][len(self.prefix):]
            sid = rel.split("/")[1] if rel.startswith("staging/") else None
            old = now - up["Initiated"].timestamp() > MULTIPART_GRACE_S
            if old or (sid is not None and sid not in live):
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                aborted += 1
        return aborted

    # ---- S3 calls ----
    def _head(self, rel: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self._k(rel))
        except ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise

    def _get(self, rel: str, byte_range: str | None = None):
        from botocore.exceptions import ClientError

        try:
            kw = {"Range": byte_range} if byte_range else {}
            return self.s3.get_object(Bucket=self.bucket, Key=self._k(rel), **kw)["Body"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(rel) from None
            raise

    def _list(self, rel_prefix: str) -> list[tuple[str, int]]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._k(rel_prefix)):
            out += [(o["Key"], o["Size"]) for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        return out  # without "directory" markers

    def _multipart_uploads(self) -> list[dict]:
        out = []
        for page in self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix):
            out += page.get("Uploads", [])
        return out

    def _delete_many(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = keys[i:i + 1000]
            if batch:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch],
                                                                   "Quiet": True})


class S3Chunk:
    """One chunk streamed into its own object: a single PUT when it stays under one part, else a
    multipart upload of PART_BYTES parts. At most one part is held in memory."""

    def __init__(self, blobs: S3BlobStore, session_id: str, offset: int):
        self.blobs, self.offset = blobs, offset
        self.rel = f"staging/{session_id}/{offset:020d}-{secrets.token_hex(8)}"
        self.key = blobs._k(self.rel)
        self.buf = bytearray()
        self.size = 0
        self.upload_id: str | None = None
        self.etags: list[dict] = []

    @_unavailable
    def write(self, data: bytes) -> None:
        self.buf += data
        self.size += len(data)
        while len(self.buf) > PART_BYTES:  # strictly: a chunk of exactly one part is a single PUT
            self._send(bytes(self.buf[:PART_BYTES]))
            del self.buf[:PART_BYTES]

    def _send(self, data: bytes) -> None:
        s3, bucket = self.blobs.s3, self.blobs.bucket
        if self.upload_id is None:
            self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=self.key)["UploadId"]
        n = len(self.etags) + 1
        r = s3.upload_part(Bucket=bucket, Key=self.key, UploadId=self.upload_id, PartNumber=n, Body=data)
        self.etags.append({"PartNumber": n, "ETag": r["ETag"]})

    @_unavailable
    def finish(self) -> Part | None:
        s3, bucket = self.blobs.s3, self.blobs.bucket
        if self.size == 0:
            self.discard()
            return None
        if self.upload_id is None:
            s3.put_object(Bucket=bucket, Key=self.key, Body=bytes(self.buf), IfNoneMatch="*")
        else:
            if self.buf:
                self._send(bytes(self.buf))
            s3.complete_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self.upload_id,
                                         MultipartUpload={"Parts": self.etags})
        self.buf.clear()
        return Part(self.offset, self.size, self.rel)

    def discard(self) -> None:
        self.buf.clear()
        if self.upload_id is not None:
            try:
                self.blobs.s3.abort_multipart_upload(Bucket=self.blobs.bucket, Key=self.key, UploadId=self.upload_id)
            except Exception as e:  # the sweep aborts it later
                log.info("could not abort the multipart upload of %s: %s", self.key, e)
            self.upload_id = None

    def close(self) -> None:
        self.buf.clear()


@dataclass
class S3Assembly:
    """A commit's chunks gathered into one multipart upload at blobs/<key> (invisible until complete)."""

    blobs: S3BlobStore
    key: str
    parts: list[Part]
    hasher: object | None  # the upload's digest when this node saw every byte, else computed here
    tee: Path | None  # a local copy written while streaming (for decoding now, and this node's cache)
    sha256: str = ""
    upload_id: str = ""
    etags: list[dict] = field(default_factory=list)
    copied: int = 0  # bytes copied server-side (UploadPartCopy)

    @property
    def path(self) -> Path:
        assert self.tee is not None, "assembled without a local copy"
        return self.tee

    def run(self) -> None:
        b = self.blobs
        self.upload_id = b.s3.create_multipart_upload(Bucket=b.bucket, Key=b._k(f"blobs/{self.key}"))["UploadId"]
        hashing = self.hasher is None
        hasher = self.hasher or hashlib.sha256()
        stream = hashing or self.tee is not None  # every byte must pass through here
        buf = bytearray()
        out = open(self.tee, "wb") if self.tee else None
        try:
            for p in self.parts:
                if not stream and not buf and p.size >= MIN_PART:
                    self._copy(p)
                    continue
                for block in b._get(p.key).iter_chunks(READ_BYTES):
                    if hashing:
                        hasher.update(block)
                    if out:
                        out.write(block)
                    buf += block
                    while len(buf) >= PART_BYTES:
                        self._send(bytes(buf[:PART_BYTES]))
                        del buf[:PART_BYTES]
            if buf or not self.etags:
                self._send(bytes(buf))
        except BaseException:
            self.abort()
            raise
        finally:
            if out:
                out.close()
        self.sha256 = hasher.hexdigest()

    def _send(self, data: bytes) -> None:
        b = self.blobs
        n = len(self.etags) + 1
        r = b.s3.upload_part(Bucket=b.bucket, Key=b._k(f"blobs/{self.key}"), UploadId=self.upload_id,
                             PartNumber=n, Body=data)
        self.etags.append({"PartNumber": n, "ETag": r["ETag"]})

    def _copy(self, p: Part) -> None:
        b = self.blobs
        n = len(self.etags) + 1
        r = b.s3.upload_part_copy(Bucket=b.bucket, Key=b._k(f"blobs/{self.key}"), UploadId=self.upload_id,
                                  PartNumber=n, CopySource={"Bucket": b.bucket, "Key": b._k(p.key)})
        self.etags.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
        self.copied += p.size

    @_unavailable
    def complete(self) -> None:
        b = self.blobs
        r = b.s3.complete_multipart_upload(Bucket=b.bucket, Key=b._k(f"blobs/{self.key}"), UploadId=self.upload_id,
                                           MultipartUpload={"Parts": self.etags})
        self.upload_id = ""
        if self.tee is not None:
            b.cache.adopt("blobs", self.key, self.tee, r["ETag"])

    def abort(self) -> None:
        b = self.blobs
        if self.upload_id:
            try:
                b.s3.abort_multipart_upload(Bucket=b.bucket, Key=b._k(f"blobs/{self.key}"), UploadId=self.upload_id)
            except Exception as e:  # the sweep aborts it later
                log.info("could not abort the assembly of %s: %s", self.key, e)
            self.upload_id = ""
        if self.tee is not None:
            self.tee.unlink(missing_ok=True)


class BlobCache:
    """Local copies of objects (`blobs/<key>` files, `artifacts/<key>` dirs), each with the ETag it was
    copied from in `<entry>.etag`; least-recently-used entries go beyond `limit` bytes."""

    def __init__(self, root: Path, limit: int):
        self.root, self.limit = root, limit
        self._lock = threading.Lock()
        for kind in ("blobs", "artifacts"):
            (root / kind).mkdir(parents=True, exist_ok=True)
            for left in (root / kind).glob(".*.part"):  # copies a killed process never finished
                shutil.rmtree(left, ignore_errors=True) if left.is_dir() else left.unlink(missing_ok=True)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def tmp_path(self, kind: str, key: str) -> Path:
        return self.root / kind / f".{key}.{secrets.token_hex(6)}.part"

    def _etag_file(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.etag"

    def _fresh(self, kind: str, key: str, etag: str) -> Path | None:
        p = self.path(kind, key)
        try:
            if p.exists() and self._etag_file(kind, key).read_text() == etag:
                os.utime(self._etag_file(kind, key))  # recently used
                return p
        except FileNotFoundError:
            pass
        return None

    def get_file(self, kind: str, key: str, etag: str, fill) -> Path:
        if found := self._fresh(kind, key, etag):
            return found
        tmp = self.tmp_path(kind, key)
        try:
            fill(tmp)
            self.adopt(kind, key, tmp, etag)
        finally:
            tmp.unlink(missing_ok=True)
        return self.path(kind, key)

    def get_dir(self, kind: str, key: str, etag: str, fill) -> Path:
        if found := self._fresh(kind, key, etag):
            return found
        tmp = self.tmp_path(kind, key)
        tmp.mkdir()
        try:
            fill(tmp)
            self.adopt(kind, key, tmp, etag)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.path(kind, key)

    def adopt(self, kind: str, key: str, tmp: Path, etag: str) -> None:
        """Make `tmp` (a finished copy) the cache entry for `key`, then evict beyond the limit."""
        dst = self.path(kind, key)
        with self._lock:
            self._etag_file(kind, key).unlink(missing_ok=True)
            if dst.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
            os.replace(tmp, dst)
            self._etag_file(kind, key).write_text(etag)
        self.evict(keep=dst)

    def mark(self, kind: str, key: str, etag: str) -> None:
        """The entry built here is what was just published as `etag`."""
        self._etag_file(kind, key).write_text(etag)
        self.evict(keep=self.path(kind, key))

    def drop(self, kind: str, key: str) -> None:
        with self._lock:
            self._etag_file(kind, key).unlink(missing_ok=True)
            p = self.path(kind, key)
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            shutil.rmtree(p.with_name(p.name + ".tmp"), ignore_errors=True)

    def evict(self, keep: Path) -> None:
        with self._lock:
            entries = []
            for kind in ("blobs", "artifacts"):
                for tag in (self.root / kind).glob("*.etag"):
                    p = tag.with_suffix("")
                    if p.exists():
                        entries.append((tag.stat().st_mtime, _size(p), p, tag))
            total = sum(e[1] for e in entries)
            for _mtime, size, p, tag in sorted(entries, key=lambda e: e[0]):
                if total <= self.limit:
                    break
                if p == keep:
                    continue
                tag.unlink(missing_ok=True)
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                total -= size


def _size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
