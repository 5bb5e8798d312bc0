"""The File service below HTTP: start-up recovery, sweeping, keys."""

import asyncio

from pollux.files.service import FileService, NewFile
from tests.conftest import png_bytes


async def _chunks(*parts):
    for p in parts:
        yield p


def test_startup_removes_only_proven_garbage_and_keeps_live_sessions(settings):
    svc = FileService(settings)
    svc.start()
    data = png_bytes()
    rec = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(data), "raw"))
    gone = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(data), "raw"))
    live = svc.start_upload("demo", NewFile(mime_type="image/png", size_bytes=len(data)), "resumable")
    asyncio.run(svc.append(live.id, 0, _chunks(data[:10])))
    dead = svc.start_upload("demo", NewFile(mime_type="image/png"), "resumable")
    asyncio.run(svc.append(dead.id, 0, _chunks(b"abc")))
    # A crash in the middle of a delete and of a cancel: rows say garbage, bytes are still there.
    svc.store.delete_file("demo", gone.id)
    svc.store.update_session(dead.id, status="cancelled")
    (svc.blobs.artifacts / "orphan.tmp").mkdir()  # derived data nobody owns
    svc.stop()

    again = FileService(settings)
    again.start()
    assert not again.blobs.blob_path(gone.key).exists() and again.store.tombstoned() == set()
    assert not again.blobs.staging_path(dead.id).exists()
    assert not (again.blobs.artifacts / "orphan.tmp").exists()
    assert again.blobs.blob_path(rec.key).read_bytes() == data
    assert again.session(live.id).received == 10
    assert again.blobs.staging_size(live.id) == 10
    again.stop()


def test_startup_refuses_bytes_the_database_does_not_explain(settings):
    """A blob or staging file with no row, tombstone or session may be the only copy of an upload:
    start-up stops with a pointer to `pollux doctor` and deletes nothing."""
    import pytest

    from pollux.files.store import StorageError

    svc = FileService(settings)
    svc.stop()
    (svc.blobs.blobs / "stray").write_bytes(b"x")
    (svc.blobs.staging / "lost.part").write_bytes(b"y")
    with pytest.raises(StorageError, match="pollux doctor"):
        FileService(settings)
    assert (svc.blobs.blobs / "stray").read_bytes() == b"x"
    assert (svc.blobs.staging / "lost.part").read_bytes() == b"y"


def test_sweep_drops_expired_sessions(settings):
    svc = FileService(settings)
    s = svc.start_upload("demo", NewFile(mime_type="image/png"), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(b"abc")))
    svc.store.update_session(s.id, expire_us=1)
    svc.sweep()
    assert svc.store.get_session(s.id) is None
    assert not svc.blobs.staging_path(s.id).exists()


def test_a_failed_row_insert_is_finished_at_the_next_start(settings, monkeypatch):
    """The row insert fails after the blob was renamed: the session's recorded commit intent lets the
    next start-up insert the row, so the acknowledged bytes are neither lost nor an orphan."""
    svc = FileService(settings)
    data = png_bytes()
    s = svc.start_upload("demo", NewFile(mime_type="image/png"), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(data)))

    def boom(*_a):
        raise RuntimeError("the process dies here")

    monkeypatch.setattr(svc.store, "finish_commit", boom)
    try:
        asyncio.run(svc.finalize(s.id))
    except RuntimeError:
        pass
    assert svc.store.get_session(s.id).status == "committing"
    monkeypatch.undo()
    again = FileService(settings)
    done = asyncio.run(again.finalize(s.id))  # the retried finalize answers the committed file
    assert again.blobs.blob_path(done.key).read_bytes() == data
    assert again.session(s.id).status == "final"


def test_a_finalize_that_failed_midway_is_settled_by_the_retry(settings, monkeypatch):
    """Same failure, no restart: the client's retried finalize finishes the commit."""
    svc = FileService(settings)
    data = png_bytes()
    s = svc.start_upload("demo", NewFile(mime_type="image/png"), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(data)))
    real = svc.store.finish_commit

    def full_disk(*_a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(svc.store, "finish_commit", full_disk)
    import pytest

    from pollux.errors import ResourceExhausted

    with pytest.raises(ResourceExhausted):
        asyncio.run(svc.finalize(s.id))
    monkeypatch.setattr(svc.store, "finish_commit", real)
    done = asyncio.run(svc.finalize(s.id))
    assert svc.blobs.blob_path(done.key).read_bytes() == data and svc.session(s.id).status == "final"


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


def test_an_interrupted_commit_rolls_back_while_its_bytes_are_staged(settings):
    """A crash after the commit intent was recorded but before the rename: the session is resumable again
    and a retried finalize commits it with every check."""
    svc = FileService(settings)
    data = png_bytes()
    s = svc.start_upload("demo", NewFile(mime_type="image/png"), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(data)))
    from pollux.files.records import FileRecord

    rec = FileRecord(id=s.file_id, project="demo", display_name="", mime_type="image/png", size_bytes=len(data),
                     sha256="0" * 64, state="ACTIVE", create_time=s.create_time, update_time=s.create_time,
                     expiration_time=s.expire_time)
    assert svc.store.begin_commit(s.id, rec)  # ... and the process dies here
    svc.stop()
    again = FileService(settings)
    assert again.session(s.id).status == "active" and again.session(s.id).received == len(data)
    done = asyncio.run(again.finalize(s.id))
    assert again.blobs.blob_path(done.key).read_bytes() == data


def test_a_blob_renamed_without_an_intent_goes_back_to_its_session(settings):
    """Data dirs written before commit intents existed: a blob renamed for an active session whose row
    never came is that session's bytes, not an orphan."""
    svc = FileService(settings)
    data = png_bytes()
    s = svc.start_upload("demo", NewFile(mime_type="image/png"), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(data)))
    svc.stop()
    svc.blobs.commit(s.id, s.file_id)  # the old order: rename, then crash before the row
    again = FileService(settings)
    assert again.blobs.staging_size(s.id) == len(data)
    done = asyncio.run(again.finalize(s.id))
    assert again.blobs.blob_path(done.key).read_bytes() == data
