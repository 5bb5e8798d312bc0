"""Remote-engine overhead: the same prompts (text + one image) straight to an OpenAI-compatible server and
through `pollux serve` in front of it, at 1, 4 and 16 concurrent clients, interleaved in rounds.

The image is a 640x480 JPEG photo, inline: the same one every request (Pollux prepares it once, by content
hash), or with --distinct-images a different one each time (one pixel changed; both sides get the same
sequence), which shows the first-sight cost. Both sides stream, at temperature 0 with `ignore_eos`
(vLLM) so every answer has the same length. The load generator is Pollux's lean HTTP/1.1 client
(engines/http_stream.py) on both sides, with the request bodies built once, so the CPU it takes from Pollux's
CPUs is small. Each round runs direct and Pollux back to back (the order alternating by round) at each
concurrency. Per concurrency it prints the median over rounds and the
min-max of:
  thru ratio     Pollux / direct requests/s (NOISY when its spread is over benchmarks/_rounds.MAX_SPREAD)
  client added   Pollux p50 - direct p50 latency, per round (what a client sees, media preparation included)
  server added   Pollux's own account, from its /metrics (pollux_remote_added_seconds): the p50 of
                 arrival -> upstream request sent (media preparation excluded) plus the upstream's last
                 byte -> the response's last byte; `before` / `after` those two parts; `media` its media
                 preparation per request (mean)
  CPU ms/req     Pollux's own CPU time per request (its process, /proc): on a shared CPU every such
                 millisecond is taken from the engine; and the engine's per request on each side (its whole
                 process group, with --start or --engine-pgid)
Goals (issue 16): throughput >= 90 % of direct, added p50 (excluding media preparation) <= 5 ms.

Configurations (what each option means):
  --pin (default with --start on 2+ CPUs): the engine (every thread of its process group) runs on the first
      half of the CPUs, Pollux and this load generator on the rest. The engine then has the same CPUs whether
      the requests come straight or through Pollux, as it would on its own GPU box: the comparison measures what
      Pollux adds, not how much CPU it takes from an engine sharing its cores. The default because that is the
      deployment the goal is about (Pollux in front of a GPU server). --no-pin lets everything share every CPU:
      the worst case, where each Pollux CPU millisecond slows the engine.
  --model-size tiny (default) | small: the tiny LLaVA of the tests (< 1 MB; the engine's work per request is a
      few ms, far less than any real VLM's, so Pollux's fixed cost looks large) or a larger random-weight
      LLaVA (224 px images = 256 image tokens, 6-layer 512-wide Llama, ~30 M parameters) whose per-request
      engine time (~0.1-0.3 s on CPU) is closer to a real VLM's on a GPU.

Usage:
  python benchmarks/remote.py --start vllm            # builds the tiny LLaVA, starts vLLM and Pollux
  python benchmarks/remote.py --engine-url http://gpu-box:8000/v1 [--model NAME]
      [--engine-pgid PGID] [--rounds 3] [--clients 1,4,16] [--requests 8] [--tokens 32] [--image 640x480]
      [--distinct-images] [--no-pin] [--model-size small] [--work DIR]
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

import _rounds as rounds  # benchmarks/ is the script's folder
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


def direct_body(model: str, jpeg: bytes, tokens: int) -> bytes:
    image = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    return json.dumps({"model": model, "stream": True, "stream_options": {"include_usage": True},
                       "max_tokens": tokens, "temperature": 0, "seed": 0, "ignore_eos": True,
                       "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                                                 {"type": "text", "text": "Describe this image."}]}]
                       }).encode()


def pollux_body(jpeg: bytes, tokens: int) -> bytes:
    return json.dumps({"contents": [{"parts": [{"inlineData": {"mimeType": "image/jpeg",
                                                               "data": base64.b64encode(jpeg).decode()}},
                                               {"text": "Describe this image."}]}],
                       "generationConfig": {"maxOutputTokens": tokens, "temperature": 0, "seed": 0}}).encode()


class Side:
    """One way to the engine: where requests go, with which headers, and each request's body (built once for
    the same image; per request, on both sides alike, with --distinct-images)."""

    def __init__(self, url: str, headers: dict[str, str], body, images):
        self.url, self.headers, self.body, self.images = httpx.URL(url), headers, body, images
        self._same: bytes | None = None

    def next_body(self) -> bytes:
        if self.images is None:
            return self._same if self._same is not None else self._build()
        return self.body(next(self.images))

    def _build(self) -> bytes:
        self._same = self.body(None)
        return self._same


async def one(client, side: Side) -> float:
    """One streamed request, read to its end: (seconds). The load generator is Pollux's own lean HTTP/1.1 client
    (engines/http_stream.py) on both sides, so its CPU (which shares Pollux's CPUs) is small and the same."""
    body = side.next_body()
    t = time.perf_counter()
    resp = await client.post(side.url, body)
    try:
        if resp.status_code >= 400:
            raise RuntimeError(f"HTTP {resp.status_code}: {(await resp.aread())[:300]!r}")
        async for data in resp.aiter_bytes():
            if b'{"error"' in data:
                raise RuntimeError(data[:300])
    finally:
        await resp.aclose()
    return time.perf_counter() - t


async def run(side: Side, clients: int, requests: int) -> tuple[float, list[float]]:
    """`clients` workers, each sending `requests` requests back to back: (requests/s, latencies)."""
    from pollux.engines.http_stream import StreamClient

    latencies: list[float] = []
    client = StreamClient(httpx.Timeout(600.0), side.headers, max_idle=clients + 4)

    async def worker():
        for _ in range(requests):
            latencies.append(await one(client, side))

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(clients)))
    finally:
        await client.aclose()
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


SMALL_LLAVA = {"vision": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                              image_size=224, projection_dim=256),
               "text": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8,
                            num_key_value_heads=4)}


def split_cpus(cpus: set[int]) -> tuple[set[int], set[int]]:
    """(the engine's CPUs, Pollux's and the load generator's): the first half and the rest."""
    ordered = sorted(cpus)
    half = max(1, len(ordered) // 2)
    return set(ordered[:half]), set(ordered[half:])


def pin_group(pgid: int, cpus: set[int]) -> int:
    """Every thread of every process in a process group onto `cpus` (vLLM binds its own threads at start-up,
    so the inherited affinity is not enough); how many threads were moved."""
    moved = 0
    for task in Path("/proc").glob("[0-9]*/task/[0-9]*"):
        try:
            if int((task / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            os.sched_setaffinity(int(task.name), cpus)
            moved += 1
        except (OSError, ValueError, IndexError):
            continue
    return moved


def start_servers(args, work: Path, engine_cpus: set[int] | None):
    from tests.fixtures.openai_servers import OpenAIServer, build_llava, ensure_venv

    ensure_venv(args.start)
    model_dir = (build_llava(work / "llava-small", **SMALL_LLAVA) if args.model_size == "small"
                 else build_llava(work / "llava"))
    mine = os.sched_getaffinity(0)
    if engine_cpus:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, sorted(engine_cpus)))
        os.sched_setaffinity(0, engine_cpus)  # inherited by the server and the processes it starts
    try:
        engine = OpenAIServer(args.start, model_dir, work / f"{args.start}.log").start(timeout=900)
    finally:
        os.sched_setaffinity(0, mine)
    return engine, engine.url, engine.model


def start_pollux(engine_url: str, model: str, work: Path):
    from tests.fixtures.server import Server

    catalog = work / "catalog.toml"
    catalog.write_text(f'[[models]]\nid = "bench"\nengine = "openai"\nsource = "{engine_url}"\n'
                       f'input_token_limit = 4096\noptions = {{ model = "{model}", extra_body = {{ ignore_eos = true }} }}\n')
    return Server(work / "pollux", emulator=False, keys=f"{KEY}:bench",
                  env={"POLLUX_CATALOG_FILE": str(catalog), "POLLUX_LOG_LEVEL": "warning"}).start()


def scrape(url: str) -> dict[str, float]:
    """Pollux's added-time histograms (bucket counts, sums, counts), from /metrics."""
    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(("pollux_remote_added_seconds", "pollux_remote_media_preparation_seconds")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def histogram_p50(before: dict, after: dict, phase: str) -> float:
    """The median (ms) of one phase's observations between two scrapes: the bucket the middle falls in,
    interpolated linearly (buckets are 0.25-1 ms wide below 5 ms)."""
    buckets = []
    for name, value in after.items():
        if name.startswith("pollux_remote_added_seconds_bucket") and f'phase="{phase}"' in name:
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), value - before.get(name, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= total / 2:
            if le == float("inf"):
                return lower * 1000
            share = (total / 2 - below) / max(count - below, 1e-9)
            return (lower + (le - lower) * share) * 1000
        lower, below = le, count
    return float("nan")


def media_mean_ms(before: dict, after: dict) -> float:
    key = "pollux_remote_media_preparation_seconds_"
    count = after.get(key + "count", 0) - before.get(key + "count", 0)
    return (after.get(key + "sum", 0) - before.get(key + "sum", 0)) * 1000 / count if count else float("nan")


def cell(values: list[float], fmt: str = ".1f") -> str:
    return rounds.summary(values, fmt) if values else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", choices=["vllm", "tfserve"], help="start this server on a random-weight LLaVA")
    ap.add_argument("--engine-url", help="an already running OpenAI-compatible server (…/v1)")
    ap.add_argument("--model", help="the served model name (default: the first of /v1/models)")
    ap.add_argument("--model-size", choices=["tiny", "small"], default="tiny", help="with --start: see above")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                    help="engine and Pollux on separate CPUs (default: on with --start and 2+ CPUs)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=8, help="per client per run")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--image", default="640x480")
    ap.add_argument("--distinct-images", action="store_true", help="a different image every request")
    ap.add_argument("--engine-pgid", type=int, help="with --engine-url: the local engine's process group, to "
                    "measure its CPU per request (and pin it)")
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    if not (args.start or args.engine_url):
        ap.error("give --start or --engine-url")
    work = args.work or Path(tempfile.mkdtemp(prefix="pollux-remote-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cpus = os.sched_getaffinity(0)
    pin = (args.start is not None or args.engine_pgid is not None) and len(cpus) >= 2 if args.pin is None else args.pin
    engine_cpus, pollux_cpus = split_cpus(cpus) if pin else (None, None)
    engine = None
    if args.start:
        engine, url, model = start_servers(args, work, engine_cpus)
    else:
        url = args.engine_url.rstrip("/")
        model = args.model or httpx.get(url + "/models", timeout=10).json()["data"][0]["id"]
    pgid = engine.proc.pid if engine is not None else args.engine_pgid  # started in its own session: pid == pgid
    if pollux_cpus:
        os.sched_setaffinity(0, pollux_cpus)  # Pollux (started next) and this load generator
    pollux = start_pollux(url, model, work)
    photo = make_jpeg(tuple(int(v) for v in args.image.split("x")))
    clients = [int(x) for x in args.clients.split(",")]
    needed = 8 + 2 * args.rounds * sum(clients) * args.requests
    jpegs = jpeg_variants(photo, needed if args.distinct_images else 20)
    try:
        if engine_cpus and pgid is not None:
            moved = pin_group(pgid, engine_cpus)
            print(f"pinned: the engine ({moved} threads) on CPUs {sorted(engine_cpus)}, Pollux and the clients on "
                  f"{sorted(pollux_cpus or ())}")
        else:
            print(f"not pinned: everything shares CPUs {sorted(cpus)}")
        prep = media_prep_ms(jpegs, repeat=not args.distinct_images)
        print(f"engine {url} model {model} ({args.model_size if args.start else 'external'}); image {args.image} JPEG "
              f"{len(photo) // 1024} KiB, {'a different one each request' if args.distinct_images else 'the same every request'}; "
              f"Pollux media preparation {prep:.2f} ms (in-process median, {'first sight' if args.distinct_images else 'repeat'})")
        image_of = lambda jpeg: photo if jpeg is None else jpeg  # noqa: E731
        distinct = (lambda: iter(jpegs)) if args.distinct_images else (lambda: None)  # noqa: E731
        sides = {"direct": Side(url + "/chat/completions", {},
                                lambda j: direct_body(model, image_of(j), args.tokens), distinct()),
                 "pollux": Side(f"{pollux.url}/v1beta/models/bench:streamGenerateContent?alt=sse",
                                {"x-goog-api-key": KEY}, lambda j: pollux_body(image_of(j), args.tokens), distinct())}
        asyncio.run(run(sides["direct"], 2, 2))
        asyncio.run(run(sides["pollux"], 2, 2))
        results: dict[int, list[dict]] = {}
        loads = []
        for r in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for n in clients:
                row: dict = {}
                for name in rounds.order(["direct", "pollux"], r):  # interleaved: neither side always runs first
                    metrics = scrape(pollux.url) if name == "pollux" else {}  # outside the CPU window: /metrics costs
                    cpu, engine_cpu = cpu_seconds(pollux.proc.pid), group_cpu_seconds(pgid)
                    rps, lat = asyncio.run(run(sides[name], n, args.requests))
                    row[name] = (rps, statistics.median(lat))
                    row[f"{name}_engine_cpu_ms"] = (group_cpu_seconds(pgid) - engine_cpu) * 1000 / (n * args.requests)
                    if name == "pollux":
                        row["cpu_ms"] = (cpu_seconds(pollux.proc.pid) - cpu) * 1000 / (n * args.requests)
                        now = scrape(pollux.url)
                        for phase in ("total", "before", "after"):
                            row[f"server_{phase}"] = histogram_p50(metrics, now, phase)
                        row["server_media"] = media_mean_ms(metrics, now)
                results.setdefault(n, []).append(row)
                print(f"round {r + 1} clients {n}: ratio {row['pollux'][0] / row['direct'][0]:.3f}, client added p50 "
                      f"{(row['pollux'][1] - row['direct'][1]) * 1000:.1f} ms, server added p50 "
                      f"{row['server_total']:.2f} ms, Pollux CPU {row['cpu_ms']:.1f} ms/req", flush=True)
        loads.append(os.getloadavg()[0])
        report(results, prep, loads, args, work, pin)
    finally:
        pollux.stop()
        if engine is not None:
            engine.stop()


def report(results: dict[int, list[dict]], prep: float, loads: list[float], args, work: Path, pin: bool) -> None:
    print(f"\n{args.rounds} interleaved rounds, {os.cpu_count()} CPUs, {'pinned' if pin else 'not pinned'}, "
          f"model {args.model_size}; load average (1 min) at each round's start and the end: "
          f"{', '.join(f'{v:.1f}' for v in loads)}; median [min-max] over rounds")
    cols = ["clients", "thru ratio", "direct r/s", "pollux r/s", "direct p50 ms", "client added ms",
            "server added ms", "before/after ms", "media ms", "Pollux CPU ms/req", "engine CPU ms/req d/p"]
    lines, summary, noisy = [], {}, []
    for n, rows in results.items():
        ratios = [row["pollux"][0] / row["direct"][0] for row in rows]
        added = [(row["pollux"][1] - row["direct"][1]) * 1000 for row in rows]
        values = lambda key: [row[key] for row in rows if row[key] == row[key]]  # noqa: E731
        med = lambda key: statistics.median(values(key)) if values(key) else float("nan")  # noqa: E731
        ratio, text = rounds.headline(ratios)
        if ratio is None:
            noisy.append(n)
        summary[n] = {"throughput_ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                      "ratio_spread": rounds.spread(ratios), "noisy": ratio is None,
                      "direct_rps": statistics.median(row["direct"][0] for row in rows),
                      "pollux_rps": statistics.median(row["pollux"][0] for row in rows),
                      "direct_p50_ms": statistics.median(row["direct"][1] for row in rows) * 1000,
                      "pollux_p50_ms": statistics.median(row["pollux"][1] for row in rows) * 1000,
                      "client_added_p50_ms": statistics.median(added), "client_added_min": min(added),
                      "client_added_max": max(added), "server_added_p50_ms": med("server_total"),
                      "server_before_p50_ms": med("server_before"), "server_after_p50_ms": med("server_after"),
                      "server_media_ms": med("server_media"), "pollux_cpu_ms_per_request": med("cpu_ms"),
                      "engine_cpu_ms_per_request_direct": med("direct_engine_cpu_ms"),
                      "engine_cpu_ms_per_request_pollux": med("pollux_engine_cpu_ms")}
        s = summary[n]
        lines.append([str(n), cell(ratios, ".3f") + (" NOISY" if ratio is None else ""), f"{s['direct_rps']:.2f}",
                      f"{s['pollux_rps']:.2f}", f"{s['direct_p50_ms']:.1f}", cell(added), cell(values("server_total"), ".2f"),
                      f"{s['server_before_p50_ms']:.2f}/{s['server_after_p50_ms']:.2f}", f"{s['server_media_ms']:.2f}",
                      cell(values("cpu_ms")),
                      f"{s['engine_cpu_ms_per_request_direct']:.1f}/{s['engine_cpu_ms_per_request_pollux']:.1f}"])
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    print("  ".join(f"{c:>{w}}" for c, w in zip(cols, widths)))
    for line in lines:
        print("  ".join(f"{c:>{w}}" for c, w in zip(line, widths)))
    print(f"(in-process media preparation {prep:.2f} ms; client added includes it, server added excludes it)")
    ok_ratio = None if noisy else all(s["throughput_ratio"] >= 0.9 for s in summary.values())
    print(rounds.goal("throughput >= 90 % of direct at every concurrency", ok_ratio))
    print(rounds.goal("server-side added p50 (excluding media preparation) <= 5 ms",
                      all(s["server_added_p50_ms"] <= 5 for s in summary.values())))
    print(rounds.goal("client-side added p50 minus media preparation <= 5 ms", None if noisy else
                      all(s["client_added_p50_ms"] - prep <= 5 for s in summary.values())))
    if noisy:
        print(f"NOISY at {noisy} clients: the throughput ratio's spread over rounds is wider than "
              f"{rounds.MAX_SPREAD:.0%} of its median; rerun with more rounds or on a quieter machine.")
    (work / "remote-bench.json").write_text(json.dumps({"prep_ms": prep, "distinct_images": args.distinct_images,
                                                        "pinned": pin, "model_size": args.model_size,
                                                        "load_averages": loads, "results": summary}, indent=1))


if __name__ == "__main__":
    main()
