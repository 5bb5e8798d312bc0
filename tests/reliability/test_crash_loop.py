"""kill -9 under concurrent uploads, again and again; after each crash the invariants hold (issue 15, items 1, 3, 4):
no ACTIVE file with wrong bytes, no lost acknowledged upload, no orphans or dangling rows (`pollux doctor`
finds nothing), every session resumable or answering with its file."""

import hashlib
import io
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.files import uploads as u
from tests.fixtures.server import Server

KILLS = 7
UPLOADERS = 4


def _png(rng: random.Random) -> bytes:
    from PIL import Image

    side = rng.randrange(200, 360)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Upload:
    payload: bytes
    mime: str
    session: str
    acked: int = 0  # bytes the server acknowledged with a 200
    file: dict | None = None  # the file a finalize answered with
    extra: dict = field(default_factory=dict)


def _upload_until_killed(url: str, rng: random.Random, ledger: list[Upload], lock: threading.Lock,
                         stop: threading.Event, finalizing: threading.Event) -> None:
    while not stop.is_set():
        image = rng.random() < 0.5
        payload = _png(rng) if image else u.fake_video(rng.randrange(150_000, 600_000))
        mime = "image/png" if image else "video/mp4"
        try:
            up = Upload(payload, mime, u.session_url(url, len(payload), mime=mime))
        except httpx.HTTPError:
            return
        with lock:
            ledger.append(up)
        cuts = sorted({rng.randrange(1, len(payload)) for _ in range(2)}) + [len(payload)]
        offset = 0
        try:
            for i, cut in enumerate(cuts):
                last = i == len(cuts) - 1
                together = last and rng.random() < 0.5
                if together:
                    finalizing.set()
                r = u.send(up.session, offset, payload[offset:cut], finalize=together)
                if r.status_code != 200:
                    raise AssertionError(f"chunk refused: {r.status_code} {r.text}")
                offset = cut
                up.acked = cut
                if "file" in (r.content and r.json() or {}):
                    up.file = r.json()["file"]
            if up.file is None:
                finalizing.set()
                r = u.finalize(up.session, offset)
                if r.status_code != 200:
                    raise AssertionError(f"finalize refused: {r.status_code} {r.text}")
                up.file = r.json()["file"]
        except httpx.HTTPError:
            return  # the server died under us


def _doctor(data_dir, *flags) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pollux.cli", "doctor", "--data-dir", str(data_dir), *flags],
                          capture_output=True, text=True, timeout=120)


def _check_and_resume(url: str, data_dir, ledger: list[Upload]) -> dict:
    seen = {"finished before the kill": 0, "committed, answer not delivered": 0, "resumed": 0}
    for up in ledger:
        want = hashlib.sha256(up.payload).hexdigest()
        q = u.query(up.session)
        assert q.status_code == 200, (q.status_code, q.text, up.file)  # never 404 while the session lives
        status, received = q.headers["x-goog-upload-status"], int(q.headers["x-goog-upload-size-received"])
        if up.file is not None:
            assert status == "final", "an acknowledged file's session must answer with its file"
        first_look = not up.extra.get("checked")
        up.extra["checked"] = True
        if first_look and up.file is None:
            seen["resumed" if status == "active" else "committed, answer not delivered"] += 1
        if status == "active":
            assert up.acked <= received <= len(up.payload), (up.acked, received)
            r = u.send(up.session, received, up.payload[received:], finalize=True)
        else:
            r = u.finalize(up.session, received)  # a retried finalize answers the committed file
        assert r.status_code == 200, r.text
        f = r.json()["file"]
        if up.file is not None:
            assert f["name"] == up.file["name"]
        assert u.sha_hex(f) == want
        if first_look and up.file is not None:
            seen["finished before the kill"] += 1
        got = httpx.get(f"{url}/v1beta/{f['name']}", headers=u.H)
        assert got.status_code == 200 and u.sha_hex(got.json()) == want
        up.file = f
    listed = []
    token = None
    while True:
        page = httpx.get(f"{url}/v1beta/files", params={"pageSize": 100, **({"pageToken": token} if token else {})},
                         headers=u.H).json()
        listed += page.get("files", [])
        token = page.get("nextPageToken")
        if not token:
            break
    assert sorted(f["name"] for f in listed) == sorted(up.file["name"] for up in ledger)  # no loss, no duplicate
    return seen


def test_kill_9_loop_under_concurrent_uploads(tmp_path):
    rng = random.Random(15)
    data = tmp_path / "data"
    port = None
    ledger: list[Upload] = []
    totals: dict[str, int] = {}
    for round_ in range(KILLS):
        server = Server(data, port=port, env={"POLLUX_FSYNC": "1"}).start()
        port = server.port
        try:
            for k, v in _check_and_resume(server.url, data, ledger).items():  # what the previous crash left
                totals[k] = totals.get(k, 0) + v
            stop, lock, fresh, finalizing = threading.Event(), threading.Lock(), [], threading.Event()
            threads = [threading.Thread(target=_upload_until_killed,
                                        args=(server.url, random.Random(rng.random()), fresh, lock, stop, finalizing))
                       for _ in range(UPLOADERS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.4, 1.2))
            if round_ % 2:  # every other kill lands while a finalize is in flight: the commit window
                finalizing.clear()
                finalizing.wait(2)
                time.sleep(rng.uniform(0, 0.03))
        finally:
            server.kill()
        stop.set()
        for t in threads:
            t.join(30)
        ledger += fresh
        found = _doctor(data, "--dry-run")
        assert found.returncode == 0, f"round {round_}: {found.stdout}{found.stderr}"
    with Server(data, port=port) as server:
        for k, v in _check_and_resume(server.url, data, ledger).items():
            totals[k] = totals.get(k, 0) + v
    print(f"{KILLS} kills, {len(ledger)} uploads: {totals}")
    assert len(ledger) >= KILLS  # the loop really uploaded under every kill
    done = _doctor(data)
    assert done.returncode == 0 and "0 problem(s)" in done.stdout, done.stdout
