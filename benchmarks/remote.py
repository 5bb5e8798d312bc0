"""Remote-engine overhead: the same prompts (text + one image) straight to an OpenAI-compatible server and
through `pollux serve` in front of it, at 1, 4 and 16 concurrent clients, interleaved in rounds.

The image is a 640x480 JPEG photo, inline. Both sides stream, at temperature 0 with `ignore_eos` (vLLM) so every answer has the same length. Per
concurrency it prints the median over rounds of: throughput ratio (Pollux / direct, requests/s), p50
latency of each, the added p50 latency, and the same minus Pollux's media preparation of the image
(decode, scale; measured in-process), plus each ratio's spread (min-max over
rounds), and Pollux's own CPU time per request (its process, from /proc: on a CPU-only box every
such millisecond is taken from the engine). Goals (issue 16): throughput >= 90 % of direct, added p50 (excluding media preparation) <= 5 ms.

Usage:
  python benchmarks/remote.py --start vllm            # builds the tiny LLaVA, starts vLLM and Pollux
  python benchmarks/remote.py --engine-url http://gpu-box:8000/v1 [--model NAME]
      [--rounds 3] [--clients 1,4,16] [--requests 8] [--tokens 32] [--image 640x480] [--work DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures starts the servers
sys.path.insert(0, str(ROOT / "src"))

KEY = "bench-key"


def make_jpeg(size: tuple[int, int]) -> bytes:
    """A photo (scikit-image's astronaut) as a JPEG, the common case for an inline image."""
    import numpy as np
    from PIL import Image

    try:
        import skimage.data

        photo = Image.fromarray(skimage.data.astronaut())
    except ImportError:  # a smooth stand-in
        y, x = np.mgrid[0:512, 0:512]
        photo = Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8))
    buf = io.BytesIO()
    photo.resize(size).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def media_prep_ms(jpeg: bytes, runs: int = 20) -> float:
    """Pollux's own per-request work on an inline image: decode, EXIF-rotate, scale (the data URL sent
    upstream is then cached by content, so it is not counted)."""
    from pollux.media import pipeline
    from pollux.settings import Settings

    settings = Settings(data_dir=Path(tempfile.mkdtemp()))
    times = []
    for i in range(runs):
        t = time.perf_counter()
        pipeline.prepare_inline("image/jpeg", jpeg, settings, settings.data_dir / str(i))
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def one_direct(client: httpx.AsyncClient, url: str, model: str, png: bytes, tokens: int) -> float:
    image = "data:image/jpeg;base64," + base64.b64encode(png).decode()
    body = {"model": model, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": tokens,
            "temperature": 0, "seed": 0, "ignore_eos": True,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                                      {"type": "text", "text": "Describe this image."}]}]}
    t = time.perf_counter()
    async with client.stream("POST", url + "/chat/completions", json=body) as r:
        r.raise_for_status()
        async for _ in r.aiter_lines():
            pass
    return time.perf_counter() - t


async def one_pollux(client: httpx.AsyncClient, url: str, model: str, png: bytes, tokens: int) -> float:
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(png).decode()}},
                                    {"text": "Describe this image."}]}],
            "generationConfig": {"maxOutputTokens": tokens, "temperature": 0, "seed": 0}}
    t = time.perf_counter()
    async with client.stream("POST", f"{url}/v1beta/models/{model}:streamGenerateContent?alt=sse", json=body,
                             headers={"x-goog-api-key": KEY}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: ") and '"error"' in line:
                raise RuntimeError(line)
    return time.perf_counter() - t


async def run(kind: str, clients: int, requests: int, call) -> tuple[float, list[float]]:
    """`clients` workers, each sending `requests` requests back to back: (requests/s, latencies)."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def worker():
            for _ in range(requests):
                latencies.append(await call(client))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return clients * requests / elapsed, latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_servers(args, work: Path):
    from tests.fixtures.openai_servers import OpenAIServer, build_llava, ensure_venv

    ensure_venv(args.start)
    model_dir = build_llava(work / "llava")
    engine = OpenAIServer(args.start, model_dir, work / f"{args.start}.log").start(timeout=900)
    return engine, engine.url, engine.model


def start_pollux(engine_url: str, model: str, work: Path):
    from tests.fixtures.server import Server

    catalog = work / "catalog.toml"
    catalog.write_text(f'[[models]]\nid = "bench"\nengine = "openai"\nsource = "{engine_url}"\n'
                       f'input_token_limit = 2048\noptions = {{ model = "{model}", extra_body = {{ ignore_eos = true }} }}\n')
    return Server(work / "pollux", emulator=False, keys=f"{KEY}:bench",
                  env={"POLLUX_CATALOG_FILE": str(catalog), "POLLUX_LOG_LEVEL": "warning"}).start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", choices=["vllm", "tfserve"], help="start this server on the tiny LLaVA")
    ap.add_argument("--engine-url", help="an already running OpenAI-compatible server (…/v1)")
    ap.add_argument("--model", help="the served model name (default: the first of /v1/models)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=8, help="per client per run")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--image", default="640x480")
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    if not (args.start or args.engine_url):
        ap.error("give --start or --engine-url")
    work = args.work or Path(tempfile.mkdtemp(prefix="pollux-remote-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    engine = None
    if args.start:
        engine, url, model = start_servers(args, work)
    else:
        url = args.engine_url.rstrip("/")
        model = args.model or httpx.get(url + "/models", timeout=10).json()["data"][0]["id"]
    pollux = start_pollux(url, model, work)
    png = make_jpeg(tuple(int(v) for v in args.image.split("x")))
    try:
        prep = media_prep_ms(png)
        print(f"engine {url} model {model}; image {args.image} JPEG {len(png) // 1024} KiB; "
              f"Pollux media preparation {prep:.2f} ms (median)")
        direct = lambda c: one_direct(c, url, model, png, args.tokens)  # noqa: E731
        via = lambda c: one_pollux(c, pollux.url, "bench", png, args.tokens)  # noqa: E731
        asyncio.run(run("warm", 2, 2, direct))
        asyncio.run(run("warm", 2, 2, via))
        results: dict[int, list[dict]] = {}
        for r in range(args.rounds):
            for n in (int(x) for x in args.clients.split(",")):
                order = [("direct", direct), ("pollux", via)]
                if r % 2:
                    order.reverse()  # interleaved: neither side always runs first
                row = {}
                for name, call in order:
                    cpu = cpu_seconds(pollux.proc.pid)
                    rps, lat = asyncio.run(run(name, n, args.requests, call))
                    row[name] = (rps, statistics.median(lat))
                    if name == "pollux":
                        row["cpu_ms"] = (cpu_seconds(pollux.proc.pid) - cpu) * 1000 / (n * args.requests)
                results.setdefault(n, []).append(row)
        print(f"\n{'clients':>7} {'thru ratio':>10} {'spread':>13} {'direct p50':>10} {'pollux p50':>10} "
              f"{'added p50':>9} {'excl. prep':>10} {'direct r/s':>10} {'pollux r/s':>10} {'CPU ms/req':>10}")
        summary = {}
        for n, rows in results.items():
            ratios = [row["pollux"][0] / row["direct"][0] for row in rows]
            added = [(row["pollux"][1] - row["direct"][1]) * 1000 for row in rows]
            d50 = statistics.median(row["direct"][1] for row in rows) * 1000
            p50 = statistics.median(row["pollux"][1] for row in rows) * 1000
            med_added = statistics.median(added)
            summary[n] = {"throughput_ratio": statistics.median(ratios), "ratio_min": min(ratios),
                          "ratio_max": max(ratios), "direct_p50_ms": d50, "pollux_p50_ms": p50,
                          "added_p50_ms": med_added, "added_p50_excl_prep_ms": med_added - prep,
                          "direct_rps": statistics.median(row["direct"][0] for row in rows),
                          "pollux_rps": statistics.median(row["pollux"][0] for row in rows),
                          "pollux_cpu_ms_per_request": statistics.median(row["cpu_ms"] for row in rows)}
            s = summary[n]
            print(f"{n:>7} {s['throughput_ratio']:>10.3f} {s['ratio_min']:>6.3f}-{s['ratio_max']:<6.3f} {d50:>10.1f} "
                  f"{p50:>10.1f} {med_added:>9.1f} {med_added - prep:>10.1f} {s['direct_rps']:>10.2f} "
                  f"{s['pollux_rps']:>10.2f} {s['pollux_cpu_ms_per_request']:>10.1f}")
        (work / "remote-bench.json").write_text(json.dumps({"prep_ms": prep, "results": summary}, indent=1))
    finally:
        pollux.stop()
        if engine is not None:
            engine.stop()


if __name__ == "__main__":
    main()
