"""The JobStore and the Processor on a real database, SQLite and PostgreSQL: claims are exclusive, leases
pass, only the latest attempt commits, failures retry with backoff and then FAIL the file."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

from pollux.files.jobs import DONE, GONE, SUPERSEDED, JobStore
from pollux.files.records import FileRecord, State
from pollux.files.service import FileService, NewFile
from pollux.files.store import MetadataStore, from_us, now_us
from tests.files.test_service import _chunks


@pytest.fixture(params=["sqlite", "postgres"])
def db_settings(request, settings):
    """The test's settings on SQLite (in the data dir) or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return settings
    return settings.model_copy(update={"database_url": request.getfixturevalue("postgres_url")})


def _file(store: MetadataStore, key: str, state: str = State.PROCESSING, mime: str = "video/mp4") -> None:
    t = from_us(now_us())
    store.insert_file(FileRecord(id=key, project="demo", display_name="", mime_type=mime, size_bytes=1,
                                 sha256="0" * 64, state=state, create_time=t, update_time=t,
                                 expiration_time=t + timedelta(hours=1)))


@pytest.fixture
def js(db_settings):
    store = MetadataStore.open(db_settings)
    yield store, JobStore(store)
    store.close()


def test_a_claim_takes_one_due_job_and_bumps_its_attempt(js):
    store, jobs = js
    for key in ("a", "b"):
        _file(store, key)
        jobs.enqueue(key)
        jobs.enqueue(key)  # idempotent
    first, second = jobs.claim("w1", 30), jobs.claim("w2", 30)
    assert {first.key, second.key} == {"a", "b"} and first.attempt == second.attempt == 1
    assert jobs.claim("w3", 30) is None  # both held
    assert jobs.get(first.key)["owner"] == "w1"


def test_an_expired_lease_is_claimed_again_and_the_old_attempt_is_fenced(js):
    store, jobs = js
    _file(store, "v")
    jobs.enqueue("v")
    zombie = jobs.claim("zombie", 0.3)
    assert jobs.claim("live", 30) is None  # the lease holds
    time.sleep(0.4)
    live = jobs.claim("live", 30)
    assert live.key == "v" and live.attempt == 2 and live.failures == 1  # the vanished holder counted
    assert not jobs.renew(zombie, 30) and not jobs.holds(zombie) and jobs.holds(live)
    assert jobs.complete(zombie, state=State.FAILED, error={"code": 3, "message": "late"}) == SUPERSEDED
    assert store.get_file_by_key("v").state == State.PROCESSING  # the zombie changed nothing
    assert jobs.complete(live, state=State.ACTIVE, meta={"hasAudio": False}) == DONE
    rec = store.get_file_by_key("v")
    assert rec.state == State.ACTIVE and rec.meta == {"hasAudio": False} and jobs.get("v") is None


def test_completing_the_job_of_a_deleted_file_reports_it_gone(js):
    store, jobs = js
    _file(store, "d")
    jobs.enqueue("d")
    job = jobs.claim("w", 30)
    store.delete_file("demo", "d")
    assert jobs.complete(job, state=State.ACTIVE) == GONE and jobs.get("d") is None


def test_concurrent_claimers_never_share_a_job(js):
    store, jobs = js
    keys = [f"k{i}" for i in range(24)]
    for key in keys:
        _file(store, key)
        jobs.enqueue(key)
    got: list[str] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        while (job := jobs.claim(f"w{n}", 30)) is not None:
            with lock:
                got.append(job.key)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == sorted(keys)  # each exactly once


def test_start_up_adopts_processing_files_without_a_job(js):
    store, jobs = js
    _file(store, "old")  # e.g. a database from before the jobs table
    _file(store, "done", state=State.ACTIVE)
    assert jobs.adopt_orphans() == 1 and jobs.adopt_orphans() == 0
    assert jobs.claim("w", 30).key == "old" and jobs.get("done") is None


def test_retries_back_off_then_the_file_fails_with_the_error(db_settings, tmp_path):
    settings = db_settings.model_copy(update={"job_retry_seconds": 0.3, "job_max_attempts": 3})
    svc = FileService(settings)
    calls: list[float] = []

    def flaky(rec, prepared, _settings):
        calls.append(time.monotonic())
        raise RuntimeError("the speech model crashed")

    svc.processor.hooks.append(flaky)
    svc.start()
    rec = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="video/mp4"), _chunks(_video(tmp_path)), "raw"))
    deadline = time.monotonic() + 60
    while svc.get("demo", rec.name).state == State.PROCESSING and time.monotonic() < deadline:
        time.sleep(0.05)
    done = svc.get("demo", rec.name)
    svc.stop()
    assert done.state == State.FAILED and "the speech model crashed" in done.error["message"]
    assert len(calls) == 3  # every attempt ran, none after the last
    assert calls[1] - calls[0] >= 0.3 and calls[2] - calls[1] >= 0.6  # never sooner than the doubling backoff
    assert svc.processor.jobs.get(rec.key) is None


def test_a_job_whose_file_was_deleted_before_its_claim_is_dropped(db_settings):
    svc = FileService(db_settings)
    _file(svc.store, "gone")
    svc.processor.jobs.enqueue("gone")
    svc.store.delete_file("demo", "gone")
    svc.start()
    assert svc.processor.wait_idle(30)
    assert svc.processor.jobs.get("gone") is None
    svc.stop()


def _video(tmp_path) -> bytes:
    from tests.fixtures.media import write_video

    return write_video(tmp_path / "v.mp4", seconds=1).read_bytes()


def _upload_held(svc: FileService, tmp_path) -> FileRecord:
    """Start `svc` with a hook that holds each job until it is cancelled; upload a video; return once it is held."""
    started = threading.Event()

    def slow(rec, prepared, _settings):
        started.set()
        while not svc.processor.is_cancelled(rec.key):
            time.sleep(0.02)

    svc.processor.hooks.append(slow)
    svc.start()
    rec = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="video/mp4"), _chunks(_video(tmp_path)), "raw"))
    assert started.wait(30)
    return rec


def test_a_stop_gives_the_running_job_back_unfailed(db_settings, tmp_path):
    svc = FileService(db_settings)
    rec = _upload_held(svc, tmp_path)
    svc.stop()
    job = svc.processor.jobs.get(rec.key)
    assert job["owner"] is None and job["failures"] == 0 and job["lease_until_us"] <= now_us()


def test_workers_zero_claims_nothing_and_the_old_setting_name_still_counts(settings):
    assert settings.resolved_workers == 2
    assert settings.model_copy(update={"processing_workers": 1}).resolved_workers == 1
    assert settings.model_copy(update={"processing_workers": 1, "workers": 3}).resolved_workers == 3
    svc = FileService(settings.model_copy(update={"workers": 0}))
    svc.start()
    _file(svc.store, "idle")
    svc.processor.submit("idle")
    time.sleep(0.3)
    assert svc.processor.jobs.get("idle")["attempt"] == 0 and svc.get("demo", "idle").state == State.PROCESSING
    svc.stop()


def test_an_upload_here_starts_processing_at_once_not_at_the_next_poll(settings, tmp_path):
    """The embedded server wakes its own loops: with an hour between polls the video is still prepared."""
    svc = FileService(settings.model_copy(update={"job_poll_seconds": 3600}))
    svc.start()
    time.sleep(0.2)  # the loops are asleep in their poll wait
    rec = asyncio.run(svc.upload_stream("demo", NewFile(mime_type="video/mp4"), _chunks(_video(tmp_path)), "raw"))
    assert svc.processor.wait_idle(60)
    assert svc.get("demo", rec.name).state == State.ACTIVE
    svc.stop()


def test_a_file_deleted_through_another_node_cancels_its_job_at_the_next_heartbeat(db_settings, tmp_path):
    svc = FileService(db_settings.model_copy(update={"job_lease_seconds": 0.6}))
    rec = _upload_held(svc, tmp_path)
    other_node = MetadataStore(svc.store.url)  # its delete does not reach this process's cancel()
    assert other_node.delete_file("demo", rec.id) == rec.key
    assert svc.processor.wait_idle(30)
    assert svc.processor.jobs.get(rec.key) is None and not svc.blobs.blob_path(rec.key).exists()
    other_node.close()
    svc.stop()


def test_a_restart_on_the_same_machine_frees_the_dead_processes_jobs_at_once(js):
    """After a crash the restarted server need not wait out its predecessor's lease; a live holder keeps its job."""
    import os
    import socket
    import subprocess
    import sys

    store, jobs = js
    for key in ("dead", "live"):
        _file(store, key)
        jobs.enqueue(key)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    dead = jobs.claim(f"{host}:{gone.stdout.strip()}/pollux-media-0", 30)
    live = jobs.claim(f"{host}:{os.getpid()}/pollux-media-1", 30)
    from pollux.files.processing import _alive

    assert jobs.expire_dead_holders(host, _alive) == 1  # the exited process's job only
    again = jobs.claim("restarted", 30)
    assert again.key == dead.key and again.attempt == 2 and jobs.holds(live)
