"""Remote-engine overhead: the same prompts (text + one image) straight to an OpenAI-compatible server and
through `pollux serve` in front of it, at 1, 4 and 16 concurrent clients, interleaved in rounds.

The image is a 640x480 JPEG photo, inline: the same one every request (Pollux prepares it once, by content
hash), or with --distinct-images a different one each time (one pixel changed; both sides get the same
sequence), which shows the first-sight cost. Both sides stream, at temperature 0 with `ignore_eos`
(vLLM) so every answer has the same length. Each round runs direct and Pollux back to back (the order
alternating by round) at each concurrency. Per concurrency it prints the median over rounds of: the
throughput ratio (Pollux / direct, requests/s) and its spread (min-max over rounds, flagged when wider
than 20 % of the median), the p50 latency of each, the added p50 (per round, then the median) and the same
minus Pollux's media preparation (decode, scale: measured in-process, first sight or repeat as the run
does), Pollux's own CPU time per request (its process, from /proc: on a CPU-only box every such
millisecond is taken from the engine) and the engine's CPU time per request on each side (its whole
process group, with --start). Goals (issue 16): throughput >= 90 % of direct, added p50 (excluding media
preparation) <= 5 ms.

Usage:
  python benchmarks/remote.py --start vllm            # builds the tiny LLaVA, starts vLLM and Pollux
  python benchmarks/remote.py --engine-url http://gpu-box:8000/v1 [--model NAME]
      [--engine-pgid PGID] [--rounds 3] [--clients 1,4,16] [--requests 8] [--tokens 32] [--image 640x480]
      [--distinct-images] [--work DIR]
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


def jpeg_variants(jpeg: bytes, count: int) -> list[bytes]:
    """`count` different JPEGs of the same photo (one pixel changed in each)."""
    from PIL import Image

    base = Image.open(io.BytesIO(jpeg)).convert("RGB")
    out = []
    for i in range(count):
        im = base.copy()
        im.putpixel((i % im.width, i // im.width % im.height), (i % 256, 255 - i % 256, 0))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def media_prep_ms(jpegs: list[bytes], repeat: bool) -> float:
    """Pollux's own per-request work on an inline image, median: decode, EXIF-rotate, scale and the data URL
    sent upstream at first sight; at a repeat (the same bytes again) only the content hash and two cache hits."""
    from pollux.engines.openai_mapping import DataURLCache
    from pollux.media import pipeline
    from pollux.prompt_types import Image
    from pollux.settings import Settings

    settings = Settings(data_dir=Path(tempfile.mkdtemp()))
    urls = DataURLCache()
    times = []
    for i, jpeg in enumerate(jpegs[:20]):
        for _ in range(2 if repeat else 1):
            t = time.perf_counter()
            p = pipeline.prepare_inline("image/jpeg", jpeg, settings, settings.data_dir / str(i))
            urls(Image(p.image, p.original_size, cache_key=f"{p.sha256}:{p.image.size}"))
            elapsed = (time.perf_counter() - t) * 1000
        times.append(elapsed)
    return statistics.median(times)


async def one_direct(client: httpx.AsyncClient, url: str, model: str, png: bytes, tokens: int) -> float:
    image = "data:image/jpeg;base64," + base64.b64encode(png).decode()  # as a client would: encoded per request
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


def group_cpu_seconds(pgid: int | None) -> float:
    """CPU time of every live process in a process group (vLLM: the API server, engine core and workers)."""
    if pgid is None:
        return 0.0
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


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
    ap.add_argument("--distinct-images", action="store_true", help="a different image every request")
    ap.add_argument("--engine-pgid", type=int, help="with --engine-url: the local engine's process group, to "
                    "measure its CPU per request")
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
    photo = make_jpeg(tuple(int(v) for v in args.image.split("x")))
    clients = [int(x) for x in args.clients.split(",")]
    needed = 8 + 2 * args.rounds * sum(clients) * args.requests
    jpegs = jpeg_variants(photo, needed if args.distinct_images else 20)
    pgid = engine.proc.pid if engine is not None else args.engine_pgid  # started in its own session: pid == pgid
    try:
        prep = media_prep_ms(jpegs, repeat=not args.distinct_images)
        print(f"engine {url} model {model}; image {args.image} JPEG {len(photo) // 1024} KiB, "
              f"{'a different one each request' if args.distinct_images else 'the same every request'}; "
              f"Pollux media preparation {prep:.2f} ms (median, {'first sight' if args.distinct_images else 'repeat'})")
        images = {"direct": iter(jpegs), "pollux": iter(jpegs)}  # the same sequence on both sides

        def image(side: str) -> bytes:
            return next(images[side]) if args.distinct_images else photo

        direct = lambda c: one_direct(c, url, model, image("direct"), args.tokens)  # noqa: E731
        via = lambda c: one_pollux(c, pollux.url, "bench", image("pollux"), args.tokens)  # noqa: E731
        asyncio.run(run("warm", 2, 2, direct))
        asyncio.run(run("warm", 2, 2, via))
        results: dict[int, list[dict]] = {}
        for r in range(args.rounds):
            for n in clients:
                order = [("direct", direct), ("pollux", via)]
                if r % 2:
                    order.reverse()  # interleaved: neither side always runs first
                row = {}
                for name, call in order:
                    cpu, engine_cpu = cpu_seconds(pollux.proc.pid), group_cpu_seconds(pgid)
                    rps, lat = asyncio.run(run(name, n, args.requests, call))
                    row[name] = (rps, statistics.median(lat))
                    row[f"{name}_engine_cpu_ms"] = (group_cpu_seconds(pgid) - engine_cpu) * 1000 / (n * args.requests)
                    if name == "pollux":
                        row["cpu_ms"] = (cpu_seconds(pollux.proc.pid) - cpu) * 1000 / (n * args.requests)
                results.setdefault(n, []).append(row)
                print(f"round {r + 1} clients {n}: ratio {row['pollux'][0] / row['direct'][0]:.3f}, added p50 "
                      f"{(row['pollux'][1] - row['direct'][1]) * 1000:.1f} ms, Pollux CPU {row['cpu_ms']:.1f} ms/req",
                      flush=True)
        print(f"\n{'clients':>7} {'thru ratio':>10} {'spread':>13} {'direct p50':>10} {'pollux p50':>10} "
              f"{'added p50':>9} {'spread':>13} {'excl. prep':>10} {'direct r/s':>10} {'pollux r/s':>10} "
              f"{'CPU ms/req':>10} {'engine CPU ms/req d/p':>21}")
        summary = {}
        wide = []
        for n, rows in results.items():
            ratios = [row["pollux"][0] / row["direct"][0] for row in rows]
            added = [(row["pollux"][1] - row["direct"][1]) * 1000 for row in rows]
            d50 = statistics.median(row["direct"][1] for row in rows) * 1000
            p50 = statistics.median(row["pollux"][1] for row in rows) * 1000
            med_added = statistics.median(added)
            med = lambda key: statistics.median(row[key] for row in rows)  # noqa: E731
            summary[n] = {"throughput_ratio": statistics.median(ratios), "ratio_min": min(ratios),
                          "ratio_max": max(ratios), "direct_p50_ms": d50, "pollux_p50_ms": p50,
                          "added_p50_ms": med_added, "added_min": min(added), "added_max": max(added),
                          "added_p50_excl_prep_ms": med_added - prep,
                          "direct_rps": statistics.median(row["direct"][0] for row in rows),
                          "pollux_rps": statistics.median(row["pollux"][0] for row in rows),
                          "pollux_cpu_ms_per_request": med("cpu_ms"),
                          "engine_cpu_ms_per_request_direct": med("direct_engine_cpu_ms"),
                          "engine_cpu_ms_per_request_pollux": med("pollux_engine_cpu_ms")}
            s = summary[n]
            if (max(ratios) - min(ratios)) > 0.2 * statistics.median(ratios):
                wide.append(n)
            print(f"{n:>7} {s['throughput_ratio']:>10.3f} {s['ratio_min']:>6.3f}-{s['ratio_max']:<6.3f} {d50:>10.1f} "
                  f"{p50:>10.1f} {med_added:>9.1f} {min(added):>6.1f}-{max(added):<6.1f} {med_added - prep:>10.1f} "
                  f"{s['direct_rps']:>10.2f} {s['pollux_rps']:>10.2f} {s['pollux_cpu_ms_per_request']:>10.1f} "
                  f"{s['engine_cpu_ms_per_request_direct']:>10.1f}/{s['engine_cpu_ms_per_request_pollux']:<10.1f}")
        if wide:
            print(f"\nThe throughput ratio's spread over rounds is wider than 20 % of its median at {wide} clients: "
                  "the machine's load changed between runs; these medians are not a measurement to rely on "
                  "(run more rounds, or on a quiet machine).")
        (work / "remote-bench.json").write_text(json.dumps({"prep_ms": prep, "distinct_images": args.distinct_images,
                                                            "results": summary}, indent=1))
    finally:
        pollux.stop()
        if engine is not None:
            engine.stop()


if __name__ == "__main__":
    main()
