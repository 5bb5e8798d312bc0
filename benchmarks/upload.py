"""Upload ingest speed: a 1 GiB X-Goog resumable upload over loopback into `pollux serve`.

Prints Pollux's ingest MB/s next to this machine's limit measured in the same run: hashlib
SHA-256 over the same bytes plus a plain file write of them (one thread: what any "receive,
hash, store" path must do). The two alternate in rounds (benchmarks/_rounds.py), and the headline
is the median of the per-round ratios (NOISY when they disagree). Also prints the server's peak
RSS, to show memory stays flat.

    python benchmarks/upload.py [--mib 256] [--rounds 5] [--fsync]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rounds as rounds  # noqa: E402
from tests.fixtures.server import Server  # noqa: E402

BLOCK = 8 << 20


def make_payload(path: Path, mib: int) -> None:
    # An MP4 `ftyp` box first, so the bytes sniff as the declared video/mp4 (processing then fails: fine here).
    block = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom((64 << 20) - 24)
    with open(path, "wb") as fh:
        left = mib << 20
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def limit_mb_s(path: Path, out: Path) -> float:
    """SHA-256 + plain write of the same bytes, one thread (the ceiling for a Python ingest path)."""
    h = hashlib.sha256()
    start = time.perf_counter()
    with open(path, "rb") as src, open(out, "wb") as dst:
        while block := src.read(BLOCK):
            h.update(block)
            dst.write(block)
    elapsed = time.perf_counter() - start
    out.unlink()
    return path.stat().st_size / elapsed / 1e6


def upload_mb_s(server: Server, path: Path) -> tuple[float, str]:
    size = path.stat().st_size
    r = httpx.post(f"{server.url}/upload/v1beta/files", headers={
        "x-goog-api-key": "test-key", "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size), "X-Goog-Upload-Header-Content-Type": "video/mp4"},
        json={"file": {"displayName": "bench"}})
    session = r.headers["x-goog-upload-url"]
    start = time.perf_counter()
    # curl streams the file (-T) with little client CPU; one `upload, finalize` request like a big SDK chunk.
    out = subprocess.run(["curl", "-s", "-X", "POST", "-T", str(path), "-H", "X-Goog-Upload-Command: upload, finalize",
                          "-H", "X-Goog-Upload-Offset: 0", "-H", "Expect:", session],
                         capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    return size / elapsed / 1e6, out


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fsync", action="store_true", help="fsync before the file becomes visible (the default in "
                                                          "production; costs one disk flush per upload)")
    a = ap.parse_args()
    if not shutil.which("curl"):
        sys.exit("curl is needed")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        payload = tmp / "payload.bin"
        make_payload(payload, a.mib)
        env = {"POLLUX_FSYNC": "1" if a.fsync else "0", "POLLUX_MAX_FILE_BYTES": str(4 << 30),
               "POLLUX_PROCESSING_WORKERS": "1"}
        with Server(tmp / "data", env=env) as server:

            def ingest(_r: int) -> dict:
                mb_s, body = upload_mb_s(server, payload)
                assert '"state"' in body, body
                return {"mb_s": mb_s}

            result = rounds.interleave({"limit (sha256 + write)": lambda _r: {"mb_s": limit_mb_s(payload, tmp / "c")},
                                        "pollux ingest": ingest}, a.rounds)  # fmt: skip
            rss = peak_rss_mb(server.proc.pid)
        print(f"\npayload: {a.mib} MiB, fsync={'on' if a.fsync else 'off'}; resumable upload over loopback")
        heads = rounds.report(result, [rounds.Metric("mb_s", "MB/s", higher_is_better=True, fmt=".0f")],
                              baseline="limit (sha256 + write)", title="upload")
        ratio = heads.get(("pollux ingest", "mb_s"))
        print(rounds.goal("ingest >= 0.80 of the limit", None if ratio is None else ratio >= 0.80))
        print(f"server peak RSS: {rss:.0f} MB (flat: the body is never buffered whole)")


if __name__ == "__main__":
    main()
