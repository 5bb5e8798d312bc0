"""The blob-store contract, run on both implementations: local disk and a real S3 (SeaweedFS).

Everything goes through the File service (the way the API uses the stores): resumable uploads in
256 KiB and 8 MiB chunks, one-shot uploads, finalize's digest, artifacts published on one node and
fetched on another, deletes, and start-up recovery's view of what is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from pollux.files.service import FileService, NewFile
from tests.conftest import png_bytes

KiB, MiB = 1 << 10, 1 << 20


async def _chunks(data: bytes, piece: int = 64 * KiB):
    for i in range(0, len(data), piece):
        yield data[i:i + piece]


def _video(size: int) -> bytes:
    return b"\x00\x00\x00\x18ftypmp42" + os.urandom(size - 12)


@pytest.fixture(params=["local", "s3"])
def node(request, tmp_path, settings, monkeypatch):
    """A factory of File services ("nodes") on one database and one blob store; each S3 node has its own
    data dir (its cache), as separate machines would."""
    made = []
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        for k, v in s3.env().items():
            monkeypatch.setenv(k, v)
        db = f"sqlite:///{tmp_path / 'shared.db'}"

        def make(name: str = "a") -> FileService:
            svc = FileService(settings.model_copy(update={
                "data_dir": tmp_path / name, "database_url": db, "blob_url": f"s3://{bucket}/pollux",
                "s3_endpoint_url": s3.endpoint}))
            made.append(svc)
            return svc
    else:
        def make(name: str = "a") -> FileService:
            svc = FileService(settings)
            made.append(svc)
            return svc
    make.kind = request.param
    yield make
    for svc in made:
        svc.stop()


def _resumable(svc: FileService, data: bytes, chunk: int, mime: str = "video/mp4", nodes=None):
    s = svc.start_upload("demo", NewFile(mime_type=mime, size_bytes=len(data)), "resumable")
    nodes = nodes or [svc]
    for i, at in enumerate(range(0, len(data), chunk)):
        got = asyncio.run(nodes[i % len(nodes)].append(s.id, at, _chunks(data[at:at + chunk])))
        assert got.received == min(at + chunk, len(data))
    return asyncio.run(nodes[len(range(0, len(data), chunk)) % len(nodes)].finalize(s.id))


@pytest.mark.parametrize("chunk", [256 * KiB, 8 * MiB])
def test_resumable_upload_stores_exact_bytes_and_digest(node, chunk):
    svc = node()
    data = _video(9 * MiB + 123 if chunk == 8 * MiB else 3 * MiB + 7)
    rec = _resumable(svc, data, chunk)
    assert rec.size_bytes == len(data) and rec.sha256 == hashlib.sha256(data).hexdigest()
    assert svc.blobs.blob_size(rec.key) == len(data)
    assert svc.blobs.blob_sha256(rec.key) == rec.sha256
    assert svc.blob_path(rec).read_bytes() == data
    inv = svc.blobs.inventory()
    assert rec.key in inv.blobs and inv.staging == set()  # the chunks went with the commit


def test_chunks_alternating_between_nodes_make_one_file(node):
    """Every chunk on the other node: each sees the session where the previous one left it."""
    a, b = node("a"), node("b")
    data = _video(2 * MiB + 5)
    rec = _resumable(a, data, 256 * KiB, nodes=[a, b])
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    assert a.blob_path(rec).read_bytes() == data and b.blob_path(rec).read_bytes() == data


def test_one_shot_upload_and_image_artifacts_shared(node):
    a, b = node("a"), node("b")
    png = png_bytes(3200, 24)  # wider than MAX_SIDE: its resized copy is cached as an artifact
    rec = asyncio.run(a.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(png), "multipart"))
    assert rec.sha256 == hashlib.sha256(png).hexdigest()
    fetched = b.artifact_dir(b.get("demo", rec.id))  # decoded at upload on a, fetched (or shared) on b
    assert (fetched / "manifest.json").exists()
    assert sorted(p.name for p in fetched.iterdir()) == sorted(p.name for p in a.artifact_dir(rec).iterdir())


def test_a_losing_chunk_is_refused_and_leaves_no_owned_bytes(node):
    """Two chunks race for one offset: one is acknowledged, the other gets a clean error."""
    from pollux.errors import InvalidArgument

    svc = node()
    data = _video(600 * KiB)
    s = svc.start_upload("demo", NewFile(mime_type="video/mp4", size_bytes=len(data)), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(data[:300 * KiB])))
    with pytest.raises(InvalidArgument, match="offset"):
        asyncio.run(svc.append(s.id, 0, _chunks(b"x" * 1000)))
    asyncio.run(svc.append(s.id, 300 * KiB, _chunks(data[300 * KiB:])))
    rec = asyncio.run(svc.finalize(s.id))
    assert svc.blob_path(rec).read_bytes() == data


def test_cancel_delete_and_recovery_leave_nothing_behind(node):
    svc = node()
    data = _video(1 * MiB)
    s = svc.start_upload("demo", NewFile(mime_type="video/mp4", size_bytes=len(data)), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(data[:512 * KiB])))
    assert svc.blobs.has_staging(s.id) and svc.blobs.staging_size(s.id) == 512 * KiB
    asyncio.run(svc.cancel(s.id))
    assert not svc.blobs.has_staging(s.id)
    rec = _resumable(svc, data, 256 * KiB)
    assert svc.processor.wait_idle(30)  # its (failing) decode is over: the artifacts below are ours
    art = svc.blobs.artifact_dir(rec.key)
    art.mkdir(parents=True, exist_ok=True)
    (art / "manifest.json").write_text("{}")
    svc.blobs.publish_artifacts(rec.key)
    svc.delete("demo", rec.id)
    assert svc.blobs.blob_size(rec.key) is None and svc.blobs.fetch_artifacts(rec.key) is None
    svc.sweep()
    inv = svc.blobs.inventory()
    assert inv.blobs == set() and inv.staging == set() and inv.artifacts == {}


def test_startup_refuses_blobs_the_database_does_not_explain(node, tmp_path):
    """A blob without a row may be the only copy of an upload: a node stops instead of sweeping it."""
    from pollux.files.store import StorageError

    svc = node()
    rec = _resumable(svc, _video(300 * KiB), 256 * KiB)
    assert svc.processor.wait_idle(30)
    with svc.store.engine.begin() as c:  # the database lost the row (restored from an old backup)
        c.exec_driver_sql("DELETE FROM files")
    svc.stop()
    with pytest.raises(StorageError, match="pollux doctor"):
        node("c")
    assert svc.blobs.blob_size(rec.key) == 300 * KiB


def test_doctor_streams_every_active_blob_through_its_digest(node):
    """Bytes changed behind the server's back (same size) are found by `pollux doctor`, on either store."""
    from pollux.files.doctor import run_doctor
    from pollux.files.records import State

    svc = node()
    png = png_bytes(32, 32)
    good = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(png), "raw"))
    bad = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(png), "raw"))
    flipped = png[:-1] + bytes([png[-1] ^ 1])
    if node.kind == "s3":
        svc.blobs.s3.put_object(Bucket=svc.blobs.bucket, Key=svc.blobs._k(f"blobs/{bad.key}"), Body=flipped)
    else:
        svc.blobs.blob_path(bad.key).write_bytes(flipped)
    svc.stop()
    report = run_doctor(svc.store, svc.blobs)
    assert any(f"files/{bad.id}" in line and "SHA-256" in line for line in report.lines), report.lines
    assert report.lines[-1].startswith("summary: 2 ACTIVE file(s) verified, 1 unusable")
    assert svc.store.get_file_by_key(bad.key).state == State.FAILED
    assert svc.store.get_file_by_key(good.key).state == State.ACTIVE


def test_backup_of_an_s3_store_says_which_tools_do_it(node, tmp_path):
    from pollux.files.backup import backup
    from pollux.files.store import StorageError

    svc = node()
    if node.kind == "local":
        assert backup(svc.store, svc.blobs, tmp_path / "copy").files == 0
        return
    with pytest.raises(StorageError, match="aws s3 sync"):
        backup(svc.store, svc.blobs, tmp_path / "copy")


def test_interrupted_commits_roll_forward_or_back_on_the_next_node(node, monkeypatch):
    """Intent recorded, blob not yet visible → back to resumable; blob visible, row missing → forward,
    with the digest computed while the chunks were assembled (they came from another node)."""
    from pollux.files.records import State

    a = node("a")
    data = _video(700 * KiB)
    s = a.start_upload("demo", NewFile(mime_type="video/mp4", size_bytes=len(data)), "resumable")
    asyncio.run(a.append(s.id, 0, _chunks(data)))
    a._forget_hasher(s.id)  # as if another node took the chunks: the digest is computed at finalize
    with monkeypatch.context() as m, pytest.raises(RuntimeError):
        m.setattr(a.store, "finish_commit", lambda *_: (_ for _ in ()).throw(RuntimeError("node died")))
        asyncio.run(a.finalize(s.id))
    assert a.store.get_session(s.id).status == "committing"
    b = node("b")  # start-up recovery finishes the commit
    rec = b.store.get_file_by_key(b.store.get_session(s.id).final_file_id)
    assert rec.sha256 == hashlib.sha256(data).hexdigest() and rec.state in (State.PROCESSING, State.FAILED)
    assert b.blobs.inventory().staging == set()

    s2 = b.start_upload("demo", NewFile(mime_type="video/mp4", size_bytes=len(data)), "resumable")
    asyncio.run(b.append(s2.id, 0, _chunks(data)))
    intent = b.store.get_session(s2.id)
    b.store.begin_commit(s2.id, rec.__class__(**{**rec.__dict__, "id": s2.file_id}))  # then the node died
    c = node("c")
    assert c.store.get_session(s2.id).status == "active" and c.blobs.has_staging(intent.id)
    again = asyncio.run(c.finalize(s2.id))
    assert c.blob_path(again).read_bytes() == data


def test_chunks_alternating_between_nodes_on_postgresql(tmp_path, settings, s3_server, s3_bucket, postgres_url,
                                                        monkeypatch):
    """The chunk rows and the offset's compare-and-set on PostgreSQL, as a cluster runs them."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    a, b = (FileService(settings.model_copy(update={
        "data_dir": tmp_path / name, "database_url": postgres_url, "blob_url": f"s3://{s3_bucket}/pg",
        "s3_endpoint_url": s3_server.endpoint})) for name in "ab")
    data = _video(1 * MiB + 3)
    rec = _resumable(a, data, 256 * KiB, nodes=[a, b])
    assert rec.sha256 == hashlib.sha256(data).hexdigest() and b.blob_path(rec).read_bytes() == data
    a.stop()
    b.stop()
