"""A full disk and a read-only data dir, on a small tmpfs (issue 15, items 8 and 9).

Mounting needs root (CAP_SYS_ADMIN); where it is not allowed these tests skip with the reason.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import png_bytes
from tests.files import uploads as u
from tests.fixtures.server import Server

MB = 1 << 20


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount(path: Path, mode: str) -> None:
    done = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount {mode}: {done.stderr.strip()}")


def _fill(mount: Path, leave: int, name: str = "filler") -> Path:
    """Take all but `leave` bytes of the tmpfs."""
    filler = mount / name
    free = shutil.disk_usage(mount).free
    with open(filler, "wb") as fh:
        fh.truncate(0)
        chunk = b"\0" * MB
        left = max(0, free - leave)
        while left > 0:
            try:
                fh.write(chunk[: min(left, MB)])
                fh.flush()
            except OSError:  # full: that was the point
                break
            left -= min(left, MB)
    return filler


def _envelope(r: httpx.Response, code: int, status: str) -> None:
    assert r.status_code == code, (r.status_code, r.text)
    assert r.json()["error"]["status"] == status


def test_disk_full_during_an_upload_is_a_clear_error_and_the_upload_resumes(tmp_path):
    with tmpfs(tmp_path / "disk", 16) as mount, Server(mount / "data") as server:
        payload = u.fake_video(2 * MB)
        with_a_file = u.fake_video(10_000)
        assert u.send(u.session_url(server.url, len(with_a_file)), 0, with_a_file, finalize=True).status_code == 200
        session = u.session_url(server.url, len(payload))
        assert u.send(session, 0, payload[:200_000]).status_code == 200
        filler = _fill(mount, leave=600_000)
        r = u.send(session, 200_000, payload[200_000:])
        _envelope(r, 429, "RESOURCE_EXHAUSTED")
        assert "storage is full" in r.json()["error"]["message"]
        staged = list((mount / "data" / "staging").glob("*.part"))
        assert [p.stat().st_size for p in staged] == [200_000]  # the failed chunk's bytes are gone, acked ones kept
        q = u.query(session)
        assert q.headers["x-goog-upload-size-received"] == "200000"
        server.stop()  # a full disk does not stop the next start-up either
        full = _fill(mount, leave=0, name="filler2")
        # Not one byte free: start-up needs no write (the schema is at head), so it serves reads and
        # answers writes with the storage-full 429; nothing is lost or half-written.
        with Server(mount / "data", port=server.port) as probe:
            assert len(httpx.get(f"{probe.url}/v1beta/files", headers=u.H).json()["files"]) == 1
            r = httpx.post(f"{probe.url}/upload/v1beta/files", content=with_a_file,
                           headers={**u.H, "X-Goog-Upload-Protocol": "raw", "Content-Type": "video/mp4"})
            _envelope(r, 429, "RESOURCE_EXHAUSTED")
        full.unlink()
        with Server(mount / "data", port=server.port) as again:  # nearly full: it starts and serves
            assert len(httpx.get(f"{again.url}/v1beta/files", headers=u.H).json()["files"]) == 1
            filler.unlink()  # space returns
            r = u.send(session, 200_000, payload[200_000:], finalize=True)
            assert r.status_code == 200, r.text
            assert u.sha_hex(r.json()["file"]) == hashlib.sha256(payload).hexdigest()


def test_processing_that_hits_a_full_disk_is_retried_once_space_returns(tmp_path):
    from tests.fixtures.media import write_video

    video = write_video(tmp_path / "v.mp4", seconds=60, size=(640, 480), fps=5, audio=True).read_bytes()
    env = {"POLLUX_SWEEP_INTERVAL_SECONDS": "0.5", "POLLUX_PROCESSING_WORKERS": "1"}
    with tmpfs(tmp_path / "disk", 16) as mount, Server(mount / "data", env=env) as server:
        filler = _fill(mount, leave=len(video) + 400_000)  # room for the upload, not for its frames and audio
        r = u.send(u.session_url(server.url, len(video)), 0, video, finalize=True)
        assert r.status_code == 200, r.text
        name = r.json()["file"]["name"]
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            state = httpx.get(f"{server.url}/v1beta/{name}", headers=u.H).json()["state"]
            assert state != "FAILED", "a full disk is not the file's fault"
            time.sleep(0.25)
        assert state == "PROCESSING"
        filler.unlink()
        deadline = time.monotonic() + 90
        while state == "PROCESSING" and time.monotonic() < deadline:
            time.sleep(0.25)
            state = httpx.get(f"{server.url}/v1beta/{name}", headers=u.H).json()["state"]
        assert state == "ACTIVE"


def _generate(url: str, file: dict) -> httpx.Response:
    body = {"contents": [{"parts": [{"fileData": {"fileUri": file["uri"], "mimeType": file["mimeType"]}},
                                    {"text": "What is this?"}]}]}
    return httpx.post(f"{url}/v1beta/models/gemini-2.5-flash:generateContent", headers=u.H, json=body, timeout=60)


def test_start_up_on_a_read_only_data_dir_is_a_clean_refusal(tmp_path):
    with tmpfs(tmp_path / "disk", 16) as mount:
        data = mount / "data"
        with Server(data) as server:
            image = png_bytes(64, 48)
            f = u.send(u.session_url(server.url, len(image), mime="image/png"), 0, image, finalize=True).json()["file"]
        _remount(mount, "ro")
        probe = Server(data)
        done = subprocess.run(probe.args, env=probe.env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "not writable" in done.stderr and "Traceback" not in done.stderr, done.stderr
        _remount(mount, "rw")
        with Server(data) as again:  # nothing was lost meanwhile
            assert httpx.get(f"{again.url}/v1beta/{f['name']}", headers=u.H).status_code == 200


NOBODY = 65534


def test_an_unwritable_data_dir_serves_reads_and_refuses_writes_cleanly(tmp_path):
    """The data dir stops being writable under a running server (run as an unprivileged user, since
    root writes anywhere): uploads and deletes answer 503 UNAVAILABLE, reads and prompts keep working."""
    if not shutil.which("setpriv") or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run the server as an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="pollux-ro-", dir="/tmp"))
    try:
        base.chmod(0o755)
        data = base / "data"
        data.mkdir()
        os.chown(data, NOBODY, NOBODY)
        server = Server(data, env={"HOME": str(base)})
        server.args = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] + server.args
        server.start()
        try:
            image = png_bytes(64, 48)
            f = u.send(u.session_url(server.url, len(image), mime="image/png"), 0, image, finalize=True).json()["file"]
            assert _generate(server.url, f).status_code == 200
            subprocess.run(["chmod", "-R", "a-w", str(data)], check=True)
            started = u.start(server.url, 10)
            if started.status_code == 200:  # the open database may still take the row; the bytes cannot land
                started = u.send(started.headers["x-goog-upload-url"], 0, b"0123456789")
            _envelope(started, 503, "UNAVAILABLE")
            assert httpx.get(f"{server.url}/v1beta/{f['name']}", headers=u.H).status_code == 200
            assert httpx.get(f"{server.url}/v1beta/files", headers=u.H).status_code == 200
            answer = _generate(server.url, f)
            assert answer.status_code == 200, answer.text  # reads need no writes
            gone = httpx.delete(f"{server.url}/v1beta/{f['name']}", headers=u.H)
            assert gone.status_code in (200, 503), gone.text
        finally:
            server.stop()
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)])
        shutil.rmtree(base, ignore_errors=True)
