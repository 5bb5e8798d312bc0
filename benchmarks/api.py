"""API speed with and without media work: text-only generateContent under `hey`, idle and while a video decodes.

Starts a real `pollux serve --emulator` on loopback (and, with --compare-src, a second one running
another source tree, e.g. a checkout of main: "before"), then in interleaved rounds
(benchmarks/_rounds.py) runs Debian's `hey` (a Go HTTP load generator, so the client costs little
and no Python GIL of its own) against `POST /v1beta/models/...:generateContent` with a short text
prompt, per server:

  idle c1 / idle c50      1 and 50 concurrent clients, nothing else running
  decode c1 / decode c50  the same, started right after a video upload is finalized; only the
                          requests *issued while the file was PROCESSING* count (hey's CSV gives
                          each request's start offset; a poller notes when the file turned ACTIVE)

Printed per configuration: req/s, p50 and p99 (ms), median [min-max] over rounds; for the decode runs
also the PROCESSING time and the CPU-seconds the server process itself spent from the upload to
ACTIVE (requests plus any decoding done on its own threads; worker processes not counted); and the per-round
ratio of req/s during decode to idle. Goals: about 1,400 req/s with one client and 1,600 with 50
(issue 14's figures on 2 cores), and p99 of a text request <= 50 ms while a video decodes.

Usage: python benchmarks/api.py [--rounds 3] [--seconds 3] [--video FILE [--clip 30] | --minutes 0.5]
       [--compare-src DIR] [--hey /usr/bin/hey]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _rounds as rounds  # benchmarks/ is the script's folder
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.load import KEY, MODEL, upload  # noqa: E402
from tests.fixtures.server import Server  # noqa: E402
from video_prep import generate, remux  # noqa: E402

BODY = json.dumps({"contents": [{"parts": [{"text": "Say hello."}]}], "generationConfig": {"maxOutputTokens": 8}})
P99_GOAL_MS = 50.0


def hey(exe: str, url: str, clients: int, seconds: float) -> list[tuple[float, float, int]]:
    """(offset s, latency s, status) of every request `hey` made."""
    cmd = [exe, "-z", f"{seconds}s", "-c", str(clients), "-m", "POST", "-T", "application/json",
           "-H", f"x-goog-api-key: {KEY['x-goog-api-key']}", "-d", BODY, "-o", "csv",
           f"{url}/v1beta/models/{MODEL}:generateContent"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rows = []
    for row in csv.DictReader(io.StringIO(out)):
        rows.append((float(row["offset"]), float(row["response-time"]), int(row["status-code"])))
    return rows


def figures(rows: list[tuple[float, float, int]], window: float) -> dict:
    """req/s, p50/p99 ms and errors over the requests started within `window` seconds."""
    kept = [r for r in rows if r[0] < window]
    if len(kept) < 2:
        return {"requests": len(kept)}
    lat = sorted(r[1] * 1000 for r in kept)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"req_s": len(kept) / window, "p50_ms": q[49], "p99_ms": q[98], "requests": len(kept),
            "errors": sum(1 for r in kept if r[2] != 200)}  # fmt: skip


class Upload:
    """Upload a video and note (polling files.get) how long after finalize it turned ACTIVE."""

    def __init__(self, url: str, video: bytes, name: str):
        self.url, self.video, self.name = url, video, name
        self.active_after: float | None = None

    def start(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            self.file = upload(client, self.video, self.name, "video/mp4")
        self.finalized = time.monotonic()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while True:
                state = client.get(f"/v1beta/{self.file['name']}", headers=KEY).json().get("state")
                if state != "PROCESSING":
                    self.active_after = time.monotonic() - self.finalized
                    self.state = state
                    return
                time.sleep(0.1)

    def wait(self) -> float:
        self._thread.join(timeout=600)
        return self.active_after or float("nan")


def own_cpu_s(pid: int) -> float:
    """User+system CPU-seconds of the process itself (its threads, not its child processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runner(exe: str, server: Server, clients: int, seconds: float, video: bytes | None) -> callable:
    def run(r: int) -> dict:
        if video is None:
            return figures(hey(exe, server.url, clients, seconds), seconds)
        job = Upload(server.url, video, f"bench-{r}-{clients}")
        cpu0 = own_cpu_s(server.proc.pid)
        job.start()
        started = time.monotonic()
        rows = hey(exe, server.url, clients, seconds)
        lag = started - job.finalized  # hey's offsets count from its own start
        processing = job.wait()
        if job.state != "ACTIVE":
            raise RuntimeError(f"the video upload ended {job.state}")
        window = min(seconds, processing - lag)
        out = figures(rows, window)
        out.update(processing_s=processing, window_s=window, server_cpu_s=own_cpu_s(server.proc.pid) - cpu0)
        return out

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="hey's run per configuration and round")
    ap.add_argument("--video", type=Path, help="the video to upload (default: generate --minutes of 720p)")
    ap.add_argument("--minutes", type=float, default=0.5, help="length of the generated video (default 0.5)")
    ap.add_argument("--clip", type=float, default=30.0,
                    help="upload only the first seconds of --video (default 30: a decode outlasts hey's run)")
    ap.add_argument("--compare-src", type=Path, help="also serve this src/ folder ('before')")
    ap.add_argument("--clients", default="1,50", help="concurrent clients, comma-separated (default 1,50)")
    ap.add_argument("--hey", default=shutil.which("hey") or "/usr/bin/hey")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    clients = [int(c) for c in a.clients.split(",")]
    if not Path(a.hey).exists():
        raise SystemExit("needs `hey` (Debian: apt-get install hey)")
    with tempfile.TemporaryDirectory(prefix="pollux-bench-api-") as tmp:
        work = Path(tmp)
        path = a.video
        if path is None:
            path = work / "video.mp4"
            print(f"generating {a.minutes:g} min of 720p30 H.264 ...", flush=True)
            generate(path, a.minutes)
        elif a.clip:
            remux(path, work / "clip.mp4", audio=True, seconds=a.clip)
            path = work / "clip.mp4"
        video = path.read_bytes()
        trees = {"": str(ROOT / "src")}
        if a.compare_src:
            trees["before "] = str(a.compare_src.resolve())
        env = {"POLLUX_FSYNC": "0", "POLLUX_LOG_LEVEL": "warning", "POLLUX_MAX_VIDEO_SECONDS": "3600"}
        servers = {label: Server(work / f"data{i}", env={**env, "PYTHONPATH": src})
                   for i, (label, src) in enumerate(trees.items())}  # fmt: skip
        try:
            for s in servers.values():
                s.start()
                figures(hey(a.hey, s.url, 4, 1.0), 1.0)  # warm-up: first requests pay lazy imports
            configs = {}
            for label, s in servers.items():
                for state in ("idle", "decode"):
                    for c in clients:
                        configs[f"{label}{state} c{c}"] = runner(a.hey, s, c, a.seconds,
                                                                 video if state == "decode" else None)  # fmt: skip
            result = rounds.interleave(configs, a.rounds)
        finally:
            for s in servers.values():
                s.stop()
    print(f"\ntext-only generateContent on the emulator, hey -z {a.seconds:g}s; video {path.name} "
          f"({len(video) / 1e6:.0f} MB)")
    rounds.report(result, [rounds.Metric("req_s", "", higher_is_better=True, fmt=".0f"),
                           rounds.Metric("p50_ms", "ms"), rounds.Metric("p99_ms", "ms", fmt=".1f"),
                           rounds.Metric("processing_s", "s", fmt=".1f"), rounds.Metric("server_cpu_s", "s", fmt=".1f"),
                           rounds.Metric("errors", "", fmt=".0f")],
                  title="API")  # fmt: skip
    for label in servers:
        for c in clients:
            ratios = result.ratios(f"{label}decode c{c}", f"{label}idle c{c}", rounds.Metric("req_s",
                                   higher_is_better=True))  # fmt: skip
            print(f"  {label}c{c}: req/s during decode / idle: {rounds.headline(ratios)[1]}")
        p99 = result.values(f"{label}decode c{clients[0]}", "p99_ms")
        worst = max(p99, default=float("nan"))
        print(rounds.goal(f"{label}p99 of a text request while a video decodes <= {P99_GOAL_MS:g} ms "
                          f"({clients[0]} client(s), worst round {worst:.1f} ms)", worst <= P99_GOAL_MS if p99 else None))


if __name__ == "__main__":
    main()
