"""The metadata store on SQLite and on PostgreSQL: the same answers, and on PostgreSQL the same
integrity when several nodes (here: several stores, each its own engine and pool) write at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from pollux.errors import InvalidArgument
from pollux.files.records import FileRecord, UploadSession
from pollux.files.store import MetadataStore, from_us, now_us


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pollux.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def stores(store_url):
    """Factory: a store on the test's database. On PostgreSQL each one stands for a node (its own engine
    and pool); SQLite has one server process per database, so there every call answers that one store
    (its writers are threads)."""
    made: list[MetadataStore] = []

    def make() -> MetadataStore:
        if not made or not store_url.startswith("sqlite"):
            made.append(MetadataStore(store_url))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _session(project: str = "demo", file_id: str = "f1", sid: str | None = None) -> UploadSession:
    now = from_us(now_us())
    return UploadSession(id=sid or f"s-{file_id}-{project}", project=project, file_id=file_id, display_name="",
                         mime_type="image/png", declared_size=None, received=0, protocol="resumable",
                         status="active", create_time=now, expire_time=now + timedelta(hours=1))


def _file(file_id: str, project: str = "demo", size: int = 10) -> FileRecord:
    now = from_us(now_us())
    return FileRecord(id=file_id, project=project, display_name="d", mime_type="image/png", size_bytes=size,
                      sha256="0" * 64, state="ACTIVE", create_time=now, update_time=now,
                      expiration_time=now + timedelta(hours=1))


def _run_together(*fns):
    """Start every fn at once (a barrier), each in its own thread; their results in order."""
    barrier = threading.Barrier(len(fns))
    out: list = [None] * len(fns)

    def run(i, fn):
        barrier.wait()
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_files_sessions_and_keys_round_trip(stores):
    store = stores()
    assert store.revision == "0002_round2"
    rec = _file("abc")
    rec.error = None
    store.insert_file(rec)
    got = store.get_file("demo", "abc")
    assert got is not None and got.key == "abc" and got.size_bytes == 10 and got.meta == {}
    assert store.get_file("acme", "abc") is None
    assert store.update_file("abc", state="FAILED", error={"message": "no"}, meta={"a": 1})
    got = store.get_file_by_key("abc")
    assert got.state == "FAILED" and got.error == {"message": "no"} and got.meta == {"a": 1}
    for i in range(3):
        store.insert_file(_file(f"p{i}"))
    page = store.list_files("demo", 2, None, now_us())
    assert len(page) == 2
    rest = store.list_files("demo", 10, (int(page[-1].create_time.timestamp() * 1e6), page[-1].id), now_us())
    assert {r.id for r in page + rest} == {"abc", "p0", "p1", "p2"} and len(page + rest) == 4
    assert store.project_usage("demo") == 40
    assert store.delete_file("demo", "abc") == "abc" and store.tombstoned() == {"abc"}
    assert store.delete_file("demo", "abc") is None
    key = store.create_key("demo")
    assert store.project_for_key(key) == "demo"
    assert store.revoke_key(key[:10]) and store.project_for_key(key) is None
    assert [k["revoked"] for k in store.list_keys()] == [True]


def test_quota_holds_when_nodes_reserve_at_once(stores):
    """Eight uploads on two nodes each ask for 40 of the project's 100 bytes at the same moment:
    at most two get them, never three."""
    nodes = [stores(), stores()]
    sessions = [_session(file_id=f"q{i}") for i in range(8)]
    for i, s in enumerate(sessions):
        nodes[i % 2].insert_session(s)
    answers = _run_together(*[lambda i=i, s=s: nodes[i % 2].reserve(s.id, "demo", 40, 100)
                              for i, s in enumerate(sessions)])
    granted = [a for a in answers if a is None]
    assert len(granted) == 2
    assert nodes[0].project_usage("demo") == 80


def test_a_declared_size_is_checked_against_the_quota_across_nodes(stores):
    from pollux.files.store import QuotaRefused

    nodes = [stores(), stores()]

    def start(i):
        try:
            nodes[i % 2].insert_session(_session(file_id=f"d{i}"), reserve=60, limit=100)
            return "ok"
        except QuotaRefused:
            return "refused"

    assert sorted(_run_together(*[lambda i=i: start(i) for i in range(6)])) == ["ok"] + ["refused"] * 5


def test_a_proposed_name_is_taken_once_across_nodes(stores):
    from pollux.files.store import NameTaken

    nodes = [stores(), stores()]

    def start(i):
        try:
            nodes[i % 2].insert_session(_session(file_id="same", sid=f"n{i}"), unique_name=True)
            return "ok"
        except NameTaken:
            return "taken"

    assert sorted(_run_together(*[lambda i=i: start(i) for i in range(4)])) == ["ok", "taken", "taken", "taken"]


def test_commits_of_one_id_in_two_projects_get_two_storage_keys(stores):
    """Another project's file may hold the same name: the blob keys are global, so two commits in
    flight on two nodes must not pick the same key."""
    a, b = stores(), stores()
    s1, s2 = _session("demo", "shared"), _session("acme", "shared")
    a.insert_session(s1)
    b.insert_session(s2)
    r1, r2 = _file("shared", "demo"), _file("shared", "acme")
    assert _run_together(lambda: a.begin_commit(s1.id, r1), lambda: b.begin_commit(s2.id, r2)) == [True, True]
    assert r1.key != r2.key and "shared" in (r1.key, r2.key)
    a.finish_commit(s1.id, r1)
    b.finish_commit(s2.id, r2)
    assert a.get_file("demo", "shared").key == r1.key and a.get_file("acme", "shared").key == r2.key


def test_the_acknowledged_offset_moves_once(stores):
    """Two nodes acknowledge a chunk at the same offset: one wins, the other learns it lost."""
    a, b = stores(), stores()
    s = _session()
    a.insert_session(s)
    assert sorted(_run_together(lambda: a.advance_session(s.id, 0, 5), lambda: b.advance_session(s.id, 0, 7))) \
        == [False, True]
    assert a.get_session(s.id).received in (5, 7)
    assert a.begin_commit(s.id, _file("f1"))
    assert not b.advance_session(s.id, a.get_session(s.id).received, 99)  # no chunk lands on a committing session


def test_a_file_deleted_on_two_nodes_at_once_is_deleted_once(stores):
    a, b = stores(), stores()
    a.insert_file(_file("gone"))
    answers = _run_together(lambda: a.delete_file("demo", "gone"), lambda: b.delete_file("demo", "gone"))
    assert sorted(map(str, answers)) == ["None", "gone"]


def test_cluster_locks(stores, store_url):
    a, b = stores(), stores()
    held = a.try_lock("housekeeping")
    assert held is not None
    if store_url.startswith("sqlite"):
        assert b.try_lock("housekeeping") is not None  # one process per SQLite database: always granted
        with b.cluster_lock("housekeeping") as got:
            assert got
        return
    assert b.try_lock("housekeeping") is None
    assert b.try_lock("other") is not None
    with b.cluster_lock("housekeeping", wait=0.1) as got:
        assert not got
    held.release()
    held.release()  # idempotent
    with b.cluster_lock("housekeeping") as got:
        assert got
        assert a.try_lock("housekeeping") is None
    # A node that dies holding a lock: its connection closes and the database frees the lock.
    dying = a.try_lock("upload:s1")
    dying._conn.invalidate()
    dying._conn = None
    with b.cluster_lock("upload:s1", wait=10) as got:
        assert got


def test_text_the_database_cannot_store_is_bad_input(stores, store_url):
    store = stores()
    s = _session()
    s.display_name = "nul\x00here"
    if store_url.startswith("sqlite"):
        store.insert_session(s)  # SQLite stores any string
        return
    with pytest.raises(InvalidArgument):
        store.insert_session(s)
    assert store.get_session(s.id) is None


def test_the_pool_is_sized_by_settings(store_url, tmp_path):
    from pollux.settings import Settings

    settings = Settings(data_dir=tmp_path / "d", database_url=store_url, database_pool_size=3, database_max_overflow=2)
    store = MetadataStore.open(settings)
    try:
        if store_url.startswith("postgresql"):
            assert store.engine.pool.size() == 3 and store.engine.pool._max_overflow == 2
        else:
            assert store.engine.pool.size() == 5  # SQLAlchemy's own default: SQLite is left as it was
    finally:
        store.close()
