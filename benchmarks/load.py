"""Load: N concurrent clients mixing the API's routes against a real `pollux serve --emulator` on loopback.

Each client loops until the time is up, picking per request (weights in ROUTES): files.get, files.list,
an upload (X-Goog resumable start, then one `upload, finalize` chunk of a small PNG), generateContent
over an uploaded image, streamGenerateContent as SSE (read to the end), countTokens. Prints per route:
requests, req/s, p50 / p99 latency and errors (any non-2xx or transport error), the totals, and the
server's peak RSS. Bounded: `--seconds` of load per round plus a per-request timeout. The load runs in
`--rounds` rounds (benchmarks/_rounds.py) and each figure is the median [min-max] over them; the p99
goal is judged on the median only when the rounds agree (otherwise NOISY).

    python benchmarks/load.py [--clients 100] [--seconds 5] [--rounds 3] [--seed 0]

Goal on 2 cores: 100 clients, 0 errors, p99 of files.get <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import _rounds as rounds  # noqa: E402  (benchmarks/, on the path as the script's folder or via upload.py)
from benchmarks.upload import peak_rss_mb  # noqa: E402
from tests.fixtures.server import Server  # noqa: E402

KEY = {"x-goog-api-key": "test-key"}
MODEL = "gemini-2.0-flash"
ROUTES = {"files.get": 30, "files.list": 15, "upload": 15, "generateContent": 20, "stream(SSE)": 15,
          "countTokens": 5}


def png(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 256, 80, 160)).save(buf, format="PNG")
    return buf.getvalue()


def _upload_steps(data: bytes, name: str, mime: str):
    """An X-Goog resumable upload as two requests (start, then one `upload, finalize` chunk); the
    generator gets each response back and returns the file resource."""
    r = yield ("/upload/v1beta/files", {
        **KEY, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(len(data)), "X-Goog-Upload-Header-Content-Type": mime},
        {"json": {"file": {"displayName": name}}})
    r.raise_for_status()
    r = yield (r.headers["x-goog-upload-url"], {"X-Goog-Upload-Command": "upload, finalize",
                                                "X-Goog-Upload-Offset": "0"}, {"content": data})
    r.raise_for_status()
    return r.json()["file"]


async def upload_async(client: httpx.AsyncClient, data: bytes, name: str, mime: str = "image/png") -> dict:
    steps = _upload_steps(data, name, mime)
    request = next(steps)
    while True:
        url, headers, body = request
        response = await client.post(url, headers=headers, **body)
        try:
            request = steps.send(response)
        except StopIteration as done:
            return done.value


def upload(client: httpx.Client, data: bytes, name: str, mime: str = "image/png") -> dict:
    steps = _upload_steps(data, name, mime)
    request = next(steps)
    while True:
        url, headers, body = request
        try:
            request = steps.send(client.post(url, headers=headers, **body))
        except StopIteration as done:
            return done.value


class Load:
    def __init__(self, url: str, files: list[dict], seconds: float, seed: int):
        self.url, self.files, self.seconds = url, files, seconds
        self.rng = random.Random(seed)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def _body(self, file: dict) -> dict:
        return {"contents": [{"parts": [{"text": "What is in this picture?"},
                                        {"fileData": {"fileUri": file["uri"], "mimeType": "image/png"}}]}],
                "generationConfig": {"maxOutputTokens": 24}}

    async def _one(self, client: httpx.AsyncClient, route: str, n: int) -> None:
        file = self.rng.choice(self.files)
        if route == "files.get":
            r = await client.get(f"/v1beta/{file['name']}", headers=KEY)
        elif route == "files.list":
            r = await client.get("/v1beta/files", headers=KEY, params={"pageSize": 20})
        elif route == "upload":
            await upload_async(client, png(n), f"load-{n}")
            return
        elif route == "generateContent":
            r = await client.post(f"/v1beta/models/{MODEL}:generateContent", headers=KEY, json=self._body(file))
        elif route == "countTokens":
            r = await client.post(f"/v1beta/models/{MODEL}:countTokens", headers=KEY, json=self._body(file))
        else:
            async with client.stream("POST", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", headers=KEY,
                                     json=self._body(file)) as r:
                text = "".join([t async for t in r.aiter_text()])
            if r.status_code == 200 and '"error"' in text:
                raise RuntimeError("error chunk in the stream: " + text[-200:])
        r.raise_for_status()

    async def client(self, index: int, deadline: float) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            n = 0
            while time.monotonic() < deadline:
                route = self.rng.choices(list(ROUTES), weights=list(ROUTES.values()))[0]
                n += 1
                start = time.perf_counter()
                try:
                    await self._one(client, route, index * 1_000_000 + n)
                except Exception as e:  # an error is counted, and the client carries on
                    self.errors[route].append(f"{type(e).__name__}: {str(e)[:160]}")
                self.latency[route].append(time.perf_counter() - start)

    async def run(self, clients: int) -> float:
        start = time.monotonic()
        deadline = start + self.seconds
        await asyncio.gather(*(self.client(i, deadline) for i in range(clients)))
        return time.monotonic() - start


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(load: Load, elapsed: float, clients: int, rss_mb: float) -> None:
    print(f"{clients} clients for {elapsed:.1f} s against pollux serve --emulator (loopback)")
    print(f"{'route':<17}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    total = errors = 0
    for route in ROUTES:
        lat = load.latency.get(route, [])
        if not lat:
            continue
        err = len(load.errors.get(route, []))
        total, errors = total + len(lat), errors + err
        print(f"{route:<17}{len(lat):>9}{len(lat) / elapsed:>9.1f}{percentile(lat, 50) * 1000:>9.0f}"
              f"{percentile(lat, 99) * 1000:>9.0f}{err:>8}")
    print(f"{'all':<17}{total:>9}{total / elapsed:>9.1f}{'':>18}{errors:>8}")
    print(f"server peak RSS: {rss_mb:.0f} MB")
    for route, errs in load.errors.items():
        print(f"  {route} errors, first: {errs[0]}")
    gets = load.latency.get("files.get", [])
    if gets:
        p99 = percentile(gets, 99) * 1000
        print(f"files.get p99 {p99:.0f} ms (goal <= 250 ms): {'met' if p99 <= 250 else 'NOT met'}")


async def seed_files(url: str, count: int) -> list[dict]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return [await upload_async(client, png(i), f"seed-{i}") for i in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0, help="load per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=20, help="files uploaded before the load starts")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"POLLUX_FSYNC": "0", "POLLUX_LOG_LEVEL": "warning"}
        with Server(Path(tmp) / "data", env=env) as server:
            files = asyncio.run(seed_files(server.url, a.files))

            def one_round(r: int) -> dict:
                load = Load(server.url, files, a.seconds, a.seed + r)
                elapsed = asyncio.run(load.run(a.clients))
                report(load, elapsed, a.clients, peak_rss_mb(server.proc.pid))
                out = {"req_s": sum(map(len, load.latency.values())) / elapsed,
                       "errors": sum(map(len, load.errors.values()))}
                for route, lat in load.latency.items():
                    out[f"{route} p99_ms"] = percentile(lat, 99) * 1000
                return out

            result = rounds.interleave({f"{a.clients} clients": one_round}, a.rounds, progress=None)
    metrics = [rounds.Metric("req_s", "", True, ".0f"), rounds.Metric("errors", fmt=".0f")] + [
        rounds.Metric(f"{route} p99_ms", fmt=".0f") for route in ROUTES]
    rounds.report(result, metrics, title="mixed load")
    p99 = result.values(f"{a.clients} clients", "files.get p99_ms")
    noisy = len(p99) < rounds.MIN_ROUNDS or rounds.spread(p99) > rounds.MAX_SPREAD
    median = statistics.median(p99) if p99 else float("nan")
    print(rounds.goal(f"files.get p99 <= 250 ms (median of rounds {median:.0f} ms, spread {rounds.spread(p99):.0%})",
                      None if noisy and median > 250 * (1 - rounds.MAX_SPREAD) else median <= 250))


if __name__ == "__main__":
    main()
