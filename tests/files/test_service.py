"""The File service below HTTP: start-up recovery, sweeping, keys."""

import asyncio

from pollux.files.service import FileService, NewFile
from tests.conftest import png_bytes


async def _chunks(*parts):
    for p in parts:
        yield p


def test_startup_removes_orphans_and_keeps_live_sessions(settings):
    svc = FileService(settings)
    svc.start()
    data = png_bytes()
    rec = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(data), "raw"))
    live = svc.start_upload("demo", NewFile(mime_type="image/png", size_bytes=len(data)), "resumable")
    asyncio.run(svc.append(live.id, 0, _chunks(data[:10])))
    (svc.blobs.blobs / "orphan").write_bytes(b"x")
    (svc.blobs.staging / "deadsession.part").write_bytes(b"x")
    (svc.blobs.artifacts / "orphan.tmp").mkdir()
    svc.stop()

    again = FileService(settings)
    again.start()
    assert not (again.blobs.blobs / "orphan").exists()
    assert not (again.blobs.staging / "deadsession.part").exists()
    assert not (again.blobs.artifacts / "orphan.tmp").exists()
    assert again.blobs.blob_path(rec.id).read_bytes() == data
    assert again.session(live.id).received == 10
    assert again.blobs.staging_size(live.id) == 10
    again.stop()


def test_sweep_drops_expired_sessions(settings):
    svc = FileService(settings)
    s = svc.start_upload("demo", NewFile(mime_type="image/png"), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(b"abc")))
    svc.store.update_session(s.id, expire_us=1)
    svc.sweep()
    assert svc.store.get_session(s.id) is None
    assert not svc.blobs.staging_path(s.id).exists()


def test_a_row_never_points_at_missing_bytes(settings, monkeypatch):
    """If the metadata insert fails after the rename, the blob is removed: no orphan, no dangling row."""
    svc = FileService(settings)

    def boom(rec):
        raise RuntimeError("disk full")

    monkeypatch.setattr(svc.store, "insert_file", boom)
    try:
        asyncio.run(svc.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(png_bytes()), "raw"))
    except RuntimeError:
        pass
    assert list(svc.blobs.blobs.iterdir()) == []


def test_a_shutdown_mid_processing_keeps_the_upload_and_resumes_it(settings, tmp_path):
    """Stopping the server while a video is PROCESSING must not delete its bytes: the next start
    prepares it again and it becomes ACTIVE."""
    import threading

    from pollux.files.records import State
    from tests.fixtures.media import write_video

    data = write_video(tmp_path / "clip.mp4", seconds=2).read_bytes()
    svc = FileService(settings)
    started = threading.Event()

    def slow_hook(rec, prepared, _settings):  # e.g. speech recognition, interrupted by the shutdown
        started.set()
        while not svc.processor.is_cancelled(rec.id):
            threading.Event().wait(0.05)

    svc.processor.hooks.append(slow_hook)
    svc.start()
    rec = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="video/mp4"), _chunks(data), "raw"))
    assert started.wait(30)
    svc.stop()
    assert svc.store.get_file("demo", rec.id).state == State.PROCESSING
    assert svc.blobs.blob_path(rec.id).read_bytes() == data

    again = FileService(settings)
    again.start()
    assert again.processor.wait_idle(60)
    assert again.get("demo", rec.name).state == State.ACTIVE
    again.stop()
