"""Hostile images: corrupt files are refused everywhere, and huge declared sizes cannot take the memory."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pollux.errors import InvalidArgument, Unavailable
from pollux.media import decode_budget
from pollux.media.decode_budget import DecodeBudget
from pollux.media.images import prepare_image
from pollux.settings import Settings
from tests.api.helpers import assert_error, chunk, resumable_start, session_path
from tests.conftest import KEYS, H, ctx_of


@pytest.fixture
def settings(tmp_path):
    """The API tests' settings (tests/media/conftest.py's have no keys), for `client` / `make_client`."""
    return Settings(data_dir=tmp_path / "data", api_keys=KEYS, emulator=True, transcribe=False,
                    sweep_interval_seconds=3600, fsync=False)


def corrupted(data: bytes, start: int = 200, end: int = 1200, seed: int = 1) -> bytes:
    """Bytes start..end replaced by random ones (the reproduction in issue 15)."""
    rng = random.Random(seed)
    out = bytearray(data)
    for i in range(start, min(end, len(out))):
        out[i] = rng.randrange(256)
    return bytes(out)


def smooth(fmt: str, size=(640, 480)) -> bytes:
    x = np.linspace(0, 255, size[0])
    y = np.linspace(0, 255, size[1])
    arr = np.stack([np.tile(x, (size[1], 1)), np.tile(y[:, None], (1, size[0])), np.full(size[::-1], 128.0)], -1)
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def bomb_png(width: int, height: int, color_type: int = 2) -> bytes:
    """A valid PNG declaring width x height, built row by row (never holding the pixels): ~KBs per Mpixel."""
    bands = {0: 1, 2: 3}[color_type]

    def chunk_(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compressobj(9)
    row = b"\x00" + b"\x7f" * (width * bands)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk_(b"IHDR", ihdr) + chunk_(b"IDAT", idat) + chunk_(b"IEND", b"")


CORRUPT = {"image/png": corrupted(smooth("PNG")), "image/webp": corrupted(smooth("WEBP"))}


# ---- corrupt files ----

@pytest.mark.parametrize("mime", sorted(CORRUPT))
def test_pillow_refuses_them_and_so_do_we(mime, settings):
    with pytest.raises(OSError), Image.open(io.BytesIO(CORRUPT[mime])) as im:
        im.load()
    with pytest.raises(InvalidArgument, match="truncated or corrupt"):
        prepare_image(CORRUPT[mime], mime, settings)


def test_a_corrupt_png_is_not_saved_by_its_exif():
    """getexif() decodes a PNG's pixels itself; once that failed (and was swallowed) load() passes."""
    with Image.open(io.BytesIO(CORRUPT["image/png"])) as im:
        with pytest.raises(OSError):
            im.getexif()
        im.load()  # Pillow now thinks the image is loaded: the decode must come first
    with pytest.raises(InvalidArgument):
        prepare_image(CORRUPT["image/png"], "image/png", Settings())


@pytest.mark.parametrize("mime", sorted(CORRUPT))
def test_corrupt_upload_is_refused_not_active(client, mime):
    data = CORRUPT[mime]
    path = session_path(resumable_start(client, len(data), mime))
    assert_error(chunk(client, path, data, 0), 400, "INVALID_ARGUMENT", "corrupt")
    assert client.get("/v1beta/files", headers=H).json() == {}
    assert list(ctx_of(client).files.blobs.blobs.iterdir()) == []


@pytest.mark.parametrize("mime", sorted(CORRUPT))
def test_corrupt_inline_image_is_a_400(client, mime):
    body = {"contents": [{"parts": [{"text": "what is this?"}, {"inlineData": {
        "mimeType": mime, "data": base64.b64encode(CORRUPT[mime]).decode()}}]}]}
    for verb in ("generateContent", "countTokens"):
        r = client.post(f"/v1beta/models/gemini-2.0-flash:{verb}", headers=H, json=body)
        assert_error(r, 400, "INVALID_ARGUMENT", "corrupt")


def test_intact_images_still_pass(client):
    for mime, fmt in (("image/png", "PNG"), ("image/webp", "WEBP")):
        data = smooth(fmt)
        path = session_path(resumable_start(client, len(data), mime))
        r = chunk(client, path, data, 0)
        assert r.status_code == 200 and r.json()["file"]["state"] == "ACTIVE", r.text


# ---- the decode budget ----

def _hold(budget: DecodeBudget, pixels: int, started: threading.Event, release: threading.Event):
    def run():
        with budget.reserve(pixels, None):
            started.set()
            release.wait(10)

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(5)
    return t


def test_budget_caps_pixels_in_flight_then_answers_unavailable():
    budget = DecodeBudget(max_decodes=4, max_pixels=100)
    release = threading.Event()
    holder = _hold(budget, 80, threading.Event(), release)
    with budget.reserve(20, 0):  # fits beside it
        assert budget.pixels == 100
    with pytest.raises(Unavailable, match="busy decoding"):
        with budget.reserve(21, 0.05):
            pass
    assert budget.pixels == 80 and budget.active == 1
    release.set()
    holder.join()
    with budget.reserve(100, 0):
        pass
    assert budget.pixels == 0 and budget.active == 0


def test_budget_caps_concurrent_decodes():
    budget = DecodeBudget(max_decodes=1, max_pixels=10**9)
    release = threading.Event()
    holder = _hold(budget, 1, threading.Event(), release)
    with pytest.raises(Unavailable):
        with budget.reserve(1, 0.05):
            pass
    release.set()
    holder.join()


def test_an_image_bigger_than_the_budget_runs_alone():
    budget = DecodeBudget(max_decodes=4, max_pixels=10)
    with budget.reserve(1000, 0):
        assert budget.pixels == 1000


def test_queue_is_first_come_first_served_and_background_jobs_wait():
    budget = DecodeBudget(max_decodes=4, max_pixels=100)
    release = threading.Event()
    holder = _hold(budget, 100, threading.Event(), release)
    order: list[str] = []

    def waiter(name: str, pixels: int):
        with decode_budget.patient():
            with budget.reserve(pixels, 0.01):  # patient: the 0.01 s limit does not apply
                order.append(name)

    big = threading.Thread(target=waiter, args=("big", 90))
    big.start()
    while not budget._queue:
        time.sleep(0.01)
    small = threading.Thread(target=waiter, args=("small", 1))
    small.start()
    while len(budget._queue) < 2:
        time.sleep(0.01)
    release.set()
    for t in (holder, big, small):
        t.join(10)
    assert order == ["big", "small"]  # the small one did not overtake the big one


def test_inline_image_waiting_too_long_is_a_503(make_client):
    client = make_client(max_decode_pixels=100, max_concurrent_decodes=1, decode_wait_seconds=0.05)
    budget = decode_budget.budget_for(ctx_of(client).settings)
    release = threading.Event()
    holder = _hold(budget, 1, threading.Event(), release)
    try:
        body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(
            smooth("PNG", (32, 32))).decode()}}]}]}
        r = client.post("/v1beta/models/gemini-2.0-flash:generateContent", headers=H, json=body)
        assert_error(r, 503, "UNAVAILABLE", "busy decoding")
    finally:
        release.set()
        holder.join()
    r = client.post("/v1beta/models/gemini-2.0-flash:generateContent", headers=H, json=body)
    assert r.status_code == 200, r.text


def test_huge_declared_size_is_refused_before_any_decode(make_client):
    client = make_client(max_image_pixels=50_000_000)
    data = bomb_png(20000, 20000, color_type=0)  # 400 M pixels in ~400 KB
    path = session_path(resumable_start(client, len(data)))
    assert_error(chunk(client, path, data, 0), 400, "INVALID_ARGUMENT", "too large")


# ---- memory: six huge images at once, measured in a fresh process ----

_RSS_CHILD = r"""
import json, sys, threading
from pollux.media.images import prepare_image
from pollux.settings import Settings

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

data = open(sys.argv[1], "rb").read()
settings = Settings(**json.loads(sys.argv[2]))
base = hwm()
errors = []
def run():
    try:
        prepare_image(data, "image/png", settings)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=run) for _ in range(int(sys.argv[3]))]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"base_mib": base, "peak_mib": hwm(), "errors": errors}))
"""


def peak_rss_of_concurrent_decodes(png: Path, settings: dict, copies: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(png), json.dumps(settings), str(copies)],
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_six_huge_pngs_at_once_cost_about_one_decode(tmp_path):
    side = 6000  # 36 M pixels: 103 MiB as RGB, in a ~100 KB file
    png = tmp_path / "big.png"
    png.write_bytes(bomb_png(side, side))
    one = peak_rss_of_concurrent_decodes(png, {}, 1)
    six = peak_rss_of_concurrent_decodes(png, {"max_decode_pixels": side * side}, 6)
    grown_one, grown_six = (r["peak_mib"] - r["base_mib"] for r in (one, six))
    print(f"\n{png.stat().st_size // 1024} KB PNG declaring {side}x{side}: one decode +{grown_one:.0f} MiB peak RSS, "
          f"six at once under the budget +{grown_six:.0f} MiB")
    assert one["errors"] == six["errors"] == []
    assert grown_six < 1.5 * grown_one  # without the budget six at once took ~5.5x one


def test_a_worker_thread_made_patient_waits_past_the_limit():
    from concurrent.futures import ThreadPoolExecutor

    budget = DecodeBudget(max_decodes=1, max_pixels=10)
    release = threading.Event()
    holder = _hold(budget, 1, threading.Event(), release)

    def job():
        with budget.reserve(1, 0.01):
            return "decoded"

    with ThreadPoolExecutor(1, initializer=decode_budget.make_thread_patient) as pool:
        future = pool.submit(job)
        time.sleep(0.1)  # ten times its limit
        assert not future.done()
        release.set()
        assert future.result(10) == "decoded"
    holder.join()
