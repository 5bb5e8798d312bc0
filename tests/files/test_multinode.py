"""Several nodes on one PostgreSQL database (and, here, one shared blob dir): housekeeping on one node
at a time, start-up recovery that leaves live nodes' uploads alone, one writer per upload session
across nodes, and a real `pollux serve --database-url` process."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from pollux.files.blobs import LocalBlobStore
from pollux.files.locks import SessionBusy, lock_name
from pollux.files.records import FileRecord
from pollux.files.service import HOUSEKEEPING, FileService, NewFile
from pollux.files.store import from_us, now_us
from tests.conftest import png_bytes


@pytest.fixture
def pg_settings(settings, postgres_url):
    return settings.model_copy(update={"database_url": postgres_url})


@pytest.fixture
def nodes(pg_settings):
    """Factory: a File service on the shared database and data dir (each one stands for a node)."""
    made: list[FileService] = []

    def make(**kw) -> FileService:
        made.append(FileService(pg_settings, **kw))
        return made[-1]

    yield make
    for svc in made:
        svc.stop()
        svc.store.close()


async def _chunks(*parts):
    for p in parts:
        yield p


def _upload_part(svc: FileService, data: bytes, upto: int):
    s = svc.start_upload("demo", NewFile(mime_type="image/png", size_bytes=len(data)), "resumable")
    asyncio.run(svc.append(s.id, 0, _chunks(data[:upto])))
    return s


def _intent(s, data: bytes) -> FileRecord:
    now = from_us(now_us())
    return FileRecord(id=s.file_id, project="demo", display_name="", mime_type="image/png", size_bytes=len(data),
                      sha256="0" * 64, state="ACTIVE", create_time=now, update_time=now,
                      expiration_time=now + timedelta(hours=1))


def test_start_up_leaves_a_live_nodes_commit_alone_and_settles_a_dead_ones(nodes):
    data = png_bytes()
    a = nodes()
    s = _upload_part(a, data, len(data))
    # Node A is in the middle of finalizing: it holds the session's lock and recorded its intent.
    held = a.store.try_lock(lock_name(s.id))
    assert held is not None and a.store.begin_commit(s.id, _intent(s, data))

    nodes()  # node B starts: its recovery must not roll A's commit back under it
    assert a.store.get_session(s.id).status == "committing"

    held.release()  # node A dies (its connection, and so its lock, is gone)
    nodes()  # the next node to start settles it: the bytes are still staged, so back to resumable
    after = a.store.get_session(s.id)
    assert after.status == "active" and after.received == len(data)
    assert asyncio.run(a.finalize(s.id)).size_bytes == len(data)


def test_the_sweep_settles_a_commit_whose_node_died(nodes):
    data = png_bytes()
    a, b = nodes(), nodes()
    s = _upload_part(a, data, len(data))
    held = a.store.try_lock(lock_name(s.id))
    assert a.store.begin_commit(s.id, _intent(s, data))
    b.sweep()
    assert b.store.get_session(s.id).status == "committing"  # node A is alive: left alone
    held.release()  # node A dies
    b.sweep()
    assert b.store.get_session(s.id).status == "active"
    assert asyncio.run(b.finalize(s.id)).size_bytes == len(data)


def test_housekeeping_runs_on_one_node_at_a_time(nodes):
    a, b = nodes(), nodes()
    rec = asyncio.run(a.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(png_bytes()), "raw"))
    a.store.update_file(rec.key, expire_us=1)
    busy = a.store.try_lock(HOUSEKEEPING)  # node A is sweeping
    try:
        assert b.sweep() == 0
        assert b.store.get_file_by_key(rec.key) is not None
    finally:
        busy.release()
    assert b.sweep() == 1
    assert b.store.get_file_by_key(rec.key) is None and not b.blobs.blob_path(rec.key).exists()


def test_a_file_deleted_on_another_node_during_start_up_is_not_unexplained(nodes, pg_settings):
    """Node B lists the blobs, then node A deletes a file (row, bytes, tombstone) before B reads the
    database: one survey sees bytes nothing explains; the second does not, so B starts."""
    a = nodes()
    rec = asyncio.run(a.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(png_bytes()), "raw"))

    class Racing(LocalBlobStore):
        raced = False

        def inventory(self):
            inv = super().inventory()
            if not Racing.raced:
                Racing.raced = True
                a.delete("demo", rec.id)
            return inv

    b = nodes(blobs=Racing(pg_settings.data_dir, fsync=False))
    assert Racing.raced and b.store.get_file_by_key(rec.key) is None


def test_one_writer_per_upload_session_across_nodes(nodes):
    data = png_bytes()
    a, b = nodes(), nodes()
    s = _upload_part(a, data, 10)

    async def scenario():
        async with a._sessions.hold(s.id):  # node A is writing a chunk
            b._sessions.wait_seconds = 0.5
            with pytest.raises(SessionBusy):
                await b.append(s.id, 10, _chunks(data[10:20]))
            b._sessions.wait_seconds = 30
            waiting = asyncio.create_task(b.append(s.id, 10, _chunks(data[10:20])))  # queues behind A
            await asyncio.sleep(0.3)
            assert not waiting.done()
        return (await waiting).received

    assert asyncio.run(scenario()) == 20
    assert a.store.get_session(s.id).received == 20


def test_pollux_serve_on_postgres_round_trip(tmp_path, postgres_url):
    """Two real server processes on one PostgreSQL database: an upload started on one is continued and
    finalized on the other, then got, listed and deleted."""
    from tests.files.uploads import H, send, session_url
    from tests.fixtures.server import Server

    data = png_bytes(64, 64)
    servers = [Server(tmp_path / "data"), Server(tmp_path / "data")]
    for srv in servers:
        srv.args += ["--database-url", postgres_url]
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once, migrating one empty database together
            one, two = pool.map(Server.start, servers)
        upload = session_url(one.url, len(data), mime="image/png", name="files/cross")
        assert send(upload, 0, data[:100]).status_code == 200
        done = send(upload.replace(one.url, two.url), 100, data[100:], finalize=True)  # continued on node two
        assert done.status_code == 200, done.text
        name = done.json()["file"]["name"]
        assert name == "files/cross" and done.json()["file"]["sizeBytes"] == str(len(data))
        got = httpx.get(f"{one.url}/v1beta/{name}", headers=H)
        assert got.status_code == 200 and got.json()["state"] == "ACTIVE"
        listed = httpx.get(f"{two.url}/v1beta/files", headers=H).json()
        assert [f["name"] for f in listed["files"]] == [name]
        assert httpx.delete(f"{two.url}/v1beta/{name}", headers=H).status_code == 200
        assert httpx.get(f"{one.url}/v1beta/{name}", headers=H).status_code == 403
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Server.stop, servers))

