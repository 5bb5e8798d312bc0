"""`pollux doctor` checks bytes against hashes and the database, repairs only what is proven;
`pollux backup DIR` makes a copy a fresh server starts from."""

import asyncio
import subprocess
import sys

import httpx
from typer.testing import CliRunner

from pollux.cli import app as cli
from pollux.files.records import State
from pollux.files.service import FileService, NewFile
from tests.conftest import png_bytes
from tests.files import uploads as u
from tests.fixtures.server import Server


async def _chunks(data):
    yield data


def _upload(svc, color):
    return asyncio.run(svc.upload_stream("demo", NewFile(mime_type="image/png"), _chunks(png_bytes(color=color)), "raw"))


def _doctor(settings, *flags):
    return CliRunner().invoke(cli, ["doctor", "--data-dir", str(settings.data_dir), *flags])


def test_doctor_finds_and_repairs_only_what_it_can_prove(settings):
    svc = FileService(settings)
    corrupt, missing, deleted, fine = (_upload(svc, (i * 40, 0, 0)) for i in range(4))
    svc.store.delete_file("demo", deleted.id)  # a crash right after the row went: bytes + tombstone remain
    svc.stop()
    blob = svc.blobs.blob_path(corrupt.key)
    raw = bytearray(blob.read_bytes())
    raw[-20] ^= 0xFF
    blob.write_bytes(bytes(raw))
    svc.blobs.blob_path(missing.key).unlink()
    (svc.blobs.blobs / "mystery").write_bytes(b"?")
    (svc.blobs.artifacts / "stray").mkdir()

    dry = _doctor(settings, "--dry-run")
    assert dry.exit_code == 1, dry.output
    assert f"files/{corrupt.id}" in dry.output and "do not match their SHA-256" in dry.output
    assert f"files/{missing.id}" in dry.output and "bytes are missing" in dry.output
    assert "blob mystery" in dry.output
    assert svc.blobs.blob_path(deleted.key).exists() and (svc.blobs.artifacts / "stray").exists()  # dry: untouched

    done = _doctor(settings)
    assert done.exit_code == 1, done.output
    assert "summary: 2 ACTIVE file(s) verified, 2 unusable" in done.output
    assert not svc.blobs.blob_path(deleted.key).exists() and not (svc.blobs.artifacts / "stray").exists()
    assert (svc.blobs.blobs / "mystery").read_bytes() == b"?"  # unexplained bytes are never deleted
    states = {r.id: r.state for r in svc.store.all_files()}
    assert states == {corrupt.id: State.FAILED, missing.id: State.FAILED, fine.id: State.ACTIVE}

    (svc.blobs.blobs / "mystery").unlink()
    clean = _doctor(settings)
    assert clean.exit_code == 0, clean.output
    assert "0 problem(s)" in clean.output


def test_doctor_only_checks_while_a_server_uses_the_data_dir(settings):
    svc = FileService(settings)
    rec = _upload(svc, (1, 2, 3))
    svc.store.delete_file("demo", rec.id)
    running = _doctor(settings)
    assert "checking only" in running.output
    assert svc.blobs.blob_path(rec.key).exists()
    svc.stop()
    assert _doctor(settings).exit_code == 0 and not svc.blobs.blob_path(rec.key).exists()


def test_backup_of_a_running_server_starts_a_fresh_server_with_the_same_files(tmp_path):
    data, dest = tmp_path / "data", tmp_path / "backup"
    with Server(data) as server:
        names = []
        for i in range(3):
            payload = u.fake_video(40_000 + i)
            names.append(u.send(u.session_url(server.url, len(payload)), 0, payload, finalize=True).json()["file"]["name"])
        open_session = u.session_url(server.url, 1000)
        assert u.send(open_session, 0, u.fake_video(500)).status_code == 200  # an upload in flight
        done = subprocess.run([sys.executable, "-m", "pollux.cli", "backup", str(dest), "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "backed up 3 file(s)" in done.stdout
    again = subprocess.run([sys.executable, "-m", "pollux.cli", "backup", str(dest), "--data-dir", str(data)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr
    with Server(dest) as restored:
        listed = httpx.get(f"{restored.url}/v1beta/files", headers=u.H).json()["files"]
        assert sorted(f["name"] for f in listed) == sorted(names)
    checked = subprocess.run([sys.executable, "-m", "pollux.cli", "doctor", "--data-dir", str(dest)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout
    assert "0 unusable" in checked.stdout and "0 problem(s)" in checked.stdout
