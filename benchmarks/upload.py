"""Upload ingest speed: a 1 GiB X-Goog resumable upload over loopback into `pollux serve`.

Prints Pollux's ingest MB/s next to this machine's limit measured in the same run: hashlib
SHA-256 over the same bytes plus a plain file write of them (one thread: what any "receive,
hash, store" path must do). Also prints the server's peak RSS, to show memory stays flat.

    python benchmarks/upload.py [--mib 1024] [--fsync]
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
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--fsync", action="store_true", help="fsync before the file becomes visible (the default in "
                                                          "production; costs one disk flush per upload)")
    a = ap.parse_args()
    if not shutil.which("curl"):
        sys.exit("curl is needed")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        payload = tmp / "payload.bin"
        make_payload(payload, a.mib)
        limits, ingests, rss = [], [], []
        env = {"POLLUX_FSYNC": "1" if a.fsync else "0", "POLLUX_MAX_FILE_BYTES": str(4 << 30),
               "POLLUX_PROCESSING_WORKERS": "1"}
        with Server(tmp / "data", env=env) as server:
            for _ in range(a.runs):
                limits.append(limit_mb_s(payload, tmp / "copy.bin"))
                mb_s, body = upload_mb_s(server, payload)
                assert '"state"' in body, body
                ingests.append(mb_s)
            rss.append(peak_rss_mb(server.proc.pid))
        best_limit, best_ingest = max(limits), max(ingests)
        print(f"payload: {a.mib} MiB, fsync={'on' if a.fsync else 'off'}, runs={a.runs}")
        print(f"machine limit (sha256 + write, same bytes): {best_limit:8.0f} MB/s   runs: "
              + ", ".join(f"{x:.0f}" for x in limits))
        print(f"pollux resumable ingest over loopback:      {best_ingest:8.0f} MB/s   runs: "
              + ", ".join(f"{x:.0f}" for x in ingests))
        print(f"ratio: {best_ingest / best_limit:.2f} of the limit (goal >= 0.80)")
        print(f"server peak RSS: {max(rss):.0f} MB (flat: the body is never buffered whole)")


if __name__ == "__main__":
    main()
