"""Races on one upload session and on one project's quota, against a real server (issue 15, items 2, 5, 6, 12)."""

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.files import uploads as u
from tests.fixtures.server import Server

QUOTA = 2_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("races") / "data"
    with Server(data, env={"POLLUX_MAX_PROJECT_BYTES": str(QUOTA)}) as s:
        yield s


def _clear(server) -> None:
    for key in (u.H, u.OTHER):
        for f in httpx.get(f"{server.url}/v1beta/files", params={"pageSize": 100}, headers=key).json().get("files", []):
            httpx.delete(f"{server.url}/v1beta/{f['name']}", headers=key)


def test_two_chunks_at_the_same_offset_never_mix(server):
    """A stalls mid-body at offset 0, B sends a whole chunk at offset 0: exactly one wins, and the
    finalized file's sha256Hash is the hash of the bytes on disk."""
    _clear(server)
    size = 400_000
    a_data, b_data = u.fake_video(size, b"A"), u.fake_video(size, b"B")
    session = u.session_url(server.url, size)
    a_half_sent, release_a = threading.Event(), threading.Event()
    results = {}

    def a_body():
        yield a_data[: size // 2]
        a_half_sent.set()
        release_a.wait(10)
        yield a_data[size // 2:]

    def a():
        results["a"] = u.send(session, 0, a_body())

    def b():
        results["b"] = u.send(session, 0, b_data)

    ta = threading.Thread(target=a)
    ta.start()
    assert a_half_sent.wait(10)
    tb = threading.Thread(target=b)
    tb.start()
    tb.join(1.0)  # B either waits for A (the fix) or races it
    release_a.set()
    ta.join(20)
    tb.join(20)
    codes = sorted([results["a"].status_code, results["b"].status_code])
    assert codes[0] == 200 and 400 <= codes[1] < 500, (results["a"].text, results["b"].text)
    r = u.finalize(session, size)
    assert r.status_code == 200, r.text
    f = r.json()["file"]
    on_disk = u.blob_bytes(server.data_dir, f)
    assert hashlib.sha256(on_disk).hexdigest() == u.sha_hex(f)
    assert on_disk in (a_data, b_data)


def test_concurrent_finalize_calls_answer_one_file(server):
    _clear(server)
    data = u.fake_video(300_000)
    session = u.session_url(server.url, len(data))
    assert u.send(session, 0, data).status_code == 200
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: u.finalize(session, len(data)), range(6)))
    assert all(r.status_code < 500 for r in answers), [r.text for r in answers]
    files = {r.json()["file"]["name"] for r in answers if r.status_code == 200}
    assert len(files) == 1, [r.text for r in answers]
    listed = httpx.get(f"{server.url}/v1beta/files", headers=u.H).json()["files"]
    assert [f["name"] for f in listed] == list(files)
    f = listed[0]
    assert u.blob_bytes(server.data_dir, f) == data and u.sha_hex(f) == hashlib.sha256(data).hexdigest()


def _stored(server) -> int:
    listed = httpx.get(f"{server.url}/v1beta/files", params={"pageSize": 100}, headers=u.H).json().get("files", [])
    return sum(int(f["sizeBytes"]) for f in listed)


def test_concurrent_resumable_uploads_cannot_overshoot_the_quota(server):
    """Four 700 kB uploads against a 2 MB quota, all started before any finishes."""
    _clear(server)
    payloads = [u.fake_video(700_000) for _ in range(4)]
    starts = [u.start(server.url, len(p)) for p in payloads]
    sessions = [(r.headers["x-goog-upload-url"], p) for r, p in zip(starts, payloads, strict=True) if r.status_code == 200]
    refused = [r for r in starts if r.status_code != 200]
    with ThreadPoolExecutor(4) as pool:
        sent = list(pool.map(lambda sp: u.send(sp[0], 0, sp[1], finalize=True), sessions))
    assert all(r.status_code in (200, 429) for r in sent + refused), [r.text for r in sent + refused]
    assert _stored(server) <= QUOTA
    assert any(r.status_code == 429 for r in sent + refused)


def test_concurrent_one_shot_uploads_cannot_overshoot_the_quota(server):
    """Raw uploads declare no size: quota is taken as bytes arrive, in the transaction that checks it."""
    _clear(server)
    payloads = [u.fake_video(700_000) for _ in range(4)]

    def raw(p):
        return httpx.post(f"{server.url}/upload/v1beta/files", headers={**u.H, "X-Goog-Upload-Protocol": "raw",
                                                                        "Content-Type": "video/mp4"},
                          content=(p[i:i + 65536] for i in range(0, len(p), 65536)), timeout=30)

    with ThreadPoolExecutor(4) as pool:
        sent = list(pool.map(raw, payloads))
    assert all(r.status_code in (200, 429) for r in sent), [r.text for r in sent]
    assert _stored(server) <= QUOTA
    assert sum(r.status_code == 200 for r in sent) == 2


def test_a_name_another_project_holds_looks_free(server):
    """No cross-project existence oracle: acme may create files/shared-name although demo holds it,
    and each project sees only its own bytes."""
    _clear(server)
    mine, theirs = u.fake_video(1000, b"demo"), u.fake_video(1000, b"acme")
    first = u.send(u.session_url(server.url, len(mine), name="files/shared-name"), 0, mine, finalize=True)
    assert first.status_code == 200
    again = u.start(server.url, len(mine), name="files/shared-name")
    assert again.status_code == 409  # the project's own name is taken, as on Gemini
    other = u.send(u.session_url(server.url, len(theirs), headers=u.OTHER, name="files/shared-name"), 0, theirs,
                   finalize=True)
    assert other.status_code == 200, other.text
    assert other.json()["file"]["name"] == "files/shared-name"
    demo_view = httpx.get(f"{server.url}/v1beta/files/shared-name", headers=u.H).json()
    acme_view = httpx.get(f"{server.url}/v1beta/files/shared-name", headers=u.OTHER).json()
    assert u.sha_hex(demo_view) == hashlib.sha256(mine).hexdigest()
    assert u.sha_hex(acme_view) == hashlib.sha256(theirs).hexdigest()
    assert u.blob_bytes(server.data_dir, acme_view) == theirs
    assert httpx.delete(f"{server.url}/v1beta/files/shared-name", headers=u.OTHER).status_code == 200
    assert httpx.get(f"{server.url}/v1beta/files/shared-name", headers=u.H).status_code == 200
    _clear(server)
