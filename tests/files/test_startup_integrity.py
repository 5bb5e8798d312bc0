"""Start-up never deletes bytes it cannot prove are garbage (issue 15, item 1), and a clean stop leaves
every row in pollux.db itself (the WAL checkpointed)."""

import shutil
import subprocess
import sys

import httpx
import pytest

from tests.files import uploads as u
from tests.fixtures.server import Server


def _upload_three(url: str) -> list[dict]:
    out = []
    for i in range(3):
        data = u.fake_video(50_000 + i)
        r = u.send(u.session_url(url, len(data)), 0, data, finalize=True)
        out.append(r.json()["file"])
    return out


def _serve_fails(data_dir) -> subprocess.CompletedProcess:
    """`pollux serve` on a data dir it must refuse: it exits by itself, non-zero."""
    probe = Server(data_dir)
    return subprocess.run(probe.args, env=probe.env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A data dir holding three files, stopped cleanly."""
    data = tmp_path_factory.mktemp("stored") / "data"
    with Server(data) as server:
        files = _upload_three(server.url)
    return data, files


def _copy(stored, tmp_path):
    data, files = stored
    dest = tmp_path / "data"
    shutil.copytree(data, dest)
    return dest, files


def test_a_clean_stop_leaves_every_row_in_pollux_db(stored, tmp_path):
    dest, files = _copy(stored, tmp_path)
    for extra in ("pollux.db-wal", "pollux.db-shm"):
        (dest / extra).unlink(missing_ok=True)  # a copy of pollux.db alone
    with Server(dest) as server:
        listed = httpx.get(f"{server.url}/v1beta/files", headers=u.H).json()["files"]
    assert sorted(f["name"] for f in listed) == sorted(f["name"] for f in files)


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated"])
def test_a_lost_database_beside_stored_files_stops_start_up_and_deletes_nothing(stored, tmp_path, damage):
    dest, _ = _copy(stored, tmp_path)
    db = dest / "pollux.db"
    size = db.stat().st_size
    for extra in ("pollux.db-wal", "pollux.db-shm"):
        (dest / extra).unlink(missing_ok=True)
    if damage == "missing":
        db.unlink()
    elif damage == "empty":
        db.write_bytes(b"")
    else:
        with open(db, "r+b") as fh:
            fh.truncate(size // 2)
    blobs = sorted(p.name for p in (dest / "blobs").iterdir())
    done = _serve_fails(dest)
    assert done.returncode != 0
    assert "pollux doctor" in done.stderr or "backup" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in (dest / "blobs").iterdir()) == blobs == sorted(blobs) and len(blobs) == 3


def test_a_lost_wal_after_a_crash_stops_start_up(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    try:
        server_files = _upload_three(server.url)
    finally:
        server.kill()  # no checkpoint: the rows live in the WAL
    (data / "pollux.db-wal").unlink()
    (data / "pollux.db-shm").unlink(missing_ok=True)
    done = _serve_fails(data)
    assert done.returncode != 0 and "pollux doctor" in done.stderr and "Traceback" not in done.stderr
    assert len(list((data / "blobs").iterdir())) == len(server_files)


def test_a_fresh_data_dir_starts(tmp_path):
    with Server(tmp_path / "fresh") as server:
        assert httpx.get(f"{server.url}/v1beta/files", headers=u.H).json() == {}


def test_doctor_names_the_unexplained_bytes(stored, tmp_path):
    dest, _ = _copy(stored, tmp_path)
    (dest / "pollux.db").unlink()
    for extra in ("pollux.db-wal", "pollux.db-shm"):
        (dest / extra).unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "pollux.cli", "doctor", "--data-dir", str(dest)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout.count("no file row, tombstone or upload owns it") == 3
    assert len(list((dest / "blobs").iterdir())) == 3  # listed, never deleted
