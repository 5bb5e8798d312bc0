"""Image TTFT table: tiling x vision-encoder precision for an inline 768x768 photo, nothing cached.

Builds a SmolVLM2-256M-shaped checkpoint (random weights, real sizes; generate_fast.py's builder) and
runs it as the real default catalog entry (`smolvlm2-256m`, its options as shipped: language model
int8, vision encoder `int8-static`, which also keeps the fp32 encoder; only the source replaced). The
conversion measures every encoder candidate (fp32 at f32, fp32 at bf16 where this CPU offers it,
int8-static) against fp32/f32 on held-out real photos (cosine per feature vector, engines/ov_vision.py);
that table is printed first. Then one process per candidate (so its peak RSS is its own; candidates
interleaved in rounds, benchmarks/_rounds.py) asks one question about a real photo
(skimage astronaut, 768x768) at each tiling, from the fewest tiles to the most:

  1 tile   no splitting (MEDIA_RESOLUTION_LOW)
  1024     tiles cut from a 1024-px longest edge (MEDIUM: 2x2 + global)
  1536     1536-px longest edge (3x3 + global)
  2048     2048-px longest edge (HIGH, the checkpoint's own default: 4x4 + global)

printing per setting: tiles encoded, the engine's native prompt tokens, TTFT, encoder seconds and
peak RSS (VmHWM after that tiling: tilings run in increasing order, so it is that tiling's peak),
the ratios to today's default (2048 px, fp32 encoder at OpenVINO's default precision), and the
largest tiling whose TTFT meets the 5 s budget on the fastest candidate within tolerance.
A tiling other than LOW is set as the entry's `default_image_tiles` option sets it (unspecified
mediaResolution). `--api` then also measures the entry as shipped through `pollux serve` (its
default tiling, an inline PNG, streamGenerateContent: TTFT = the first SSE chunk), a new photo
(one pixel changed) per round so nothing is cached. Numbers are printed, never asserted.

Usage: python benchmarks/media_resolution.py [--rounds 3] [--work DIR] [--budget 5] [--api | --api-only]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import _rounds as rounds  # benchmarks/ is the script's folder
from _rss import peak_rss_mb
from generate_fast import build, photo, settings, text_prompt, timed

# name: (mediaResolution, the entry's default_image_tiles)
TILINGS = {"1 tile": ("MEDIA_RESOLUTION_LOW", None), "1024": (None, 2), "1536": (None, 3), "2048": (None, 4)}
MODEL = "smolvlm2-256m"
KEY = "bench-key"
METRICS = [rounds.Metric("tiles", fmt=".0f"), rounds.Metric("native_tokens", fmt=".0f"), rounds.Metric("ttft", "s"),
           rounds.Metric("vision_s", "s"), rounds.Metric("rss_mb", "MB", fmt=".0f")]


def catalog_entry(source: Path):
    """The shipped default entry, only its weights' source replaced by the local build."""
    from dataclasses import replace

    from pollux.catalog import DEFAULT_ENTRIES

    return replace(next(e for e in DEFAULT_ENTRIES if e.id == MODEL), source=str(source))


def prompt(tiling: str, run: int):
    from pollux.prompt_types import Image, Prompt, Text, Turn

    return Prompt([Turn("user", [Image(photo(), (768, 768), source="inline[0]", cache_key=f"p{run}:{tiling}",
                                       resolution=TILINGS[tiling][0]), Text("Describe this image.")])])


def child(work: Path, weights: str, precision: str, run: int) -> dict:
    from pollux.engines import ov_vision
    from pollux.engines.openvino import OpenVINOEngine

    ov_vision.choose = functools.partial(ov_vision.choose, force=(weights, precision))  # this candidate only
    engine = OpenVINOEngine(catalog_entry(work / "smolvlm-256m"), settings(work))
    engine.load()
    timed(engine, text_prompt("Hi"), 2)  # one-time costs are not TTFT
    out: dict = {"vision": engine.info()["vision"]}
    for name, (_, tiles) in TILINGS.items():
        engine.format.options = engine.format.options.model_copy(update={"default_image_tiles": tiles})
        engine.features.clear()
        engine.prefix.clear()
        before = dict(engine.stats)
        first = timed(engine, prompt(name, run), 2)
        out[name] = {"ttft": first["ttft"], "tiles": engine.stats["vision_tiles"] - before["vision_tiles"],
                     "vision_s": engine.stats["vision_seconds"] - before["vision_seconds"],
                     "native_tokens": engine.count_tokens(prompt(name, run)), "rss_mb": peak_rss_mb()}
    return out


def cosine_table(report: dict) -> None:
    from pollux.engines import ov_vision

    tolerance = ov_vision.TOLERANCE
    print(f"\nvision encoder candidates vs {report['reference']} on {report['heldOutTiles']} held-out tiles of "
          f"{', '.join(report['heldOutPhotos'])} (skimage; calibrated on {report.get('calibrationTiles')} tiles of "
          f"other photos); tolerance: mean >= {tolerance['mean']}, min >= {tolerance['min']}")
    for c in report["candidates"]:
        print(f"  {c['weights']}/{c['precision']:<5} cosine mean {c['cosine']['mean']:.5f} min {c['cosine']['min']:.5f}"
              f"  {c['secondsPerTile']:.3f} s/tile  {'within' if ov_vision.within(c['cosine']) else 'OUTSIDE'} tolerance")
    if report.get("fallbackReason"):
        print("  " + report["fallbackReason"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="keep the model and conversion here (reused)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=5.0, help="TTFT budget in seconds for the default")
    parser.add_argument("--api", action="store_true", help="also measure the shipped entry through pollux serve")
    parser.add_argument("--api-only", action="store_true", help="only that")
    parser.add_argument("--child", nargs=3, metavar=("WEIGHTS", "PRECISION", "ROUND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="pollux-bench-res-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        rounds.emit(child(work, args.child[0], args.child[1], int(args.child[2])))
        return
    if args.api_only:
        api_ttft(work, build("256m", work), args.rounds, args.budget)
        return

    from pollux.engines import ov_convert, ov_vision

    source = build("256m", work)
    shipped = catalog_entry(source)
    folder = ov_convert.ensure_converted(shipped, settings(work), source, progress=lambda m: print("  " + m, flush=True))
    report = json.loads((folder / ov_vision.REPORT).read_text())
    cosine_table(report)
    allowed = ov_vision.precisions()
    candidates = [(c["weights"], c["precision"]) for c in report["candidates"] if c["precision"] in allowed]
    runners = {f"{w}/{p}": (lambda r, w=w, p=p: rounds.child(
        [sys.executable, __file__, "--work", str(work), "--child", w, p, str(r)])) for w, p in candidates}
    result = rounds.interleave(runners, args.rounds)

    table = rounds.Rounds([f"{t} {c}" for t in TILINGS for c in runners])  # one row per tiling x candidate
    for c, runs in result.results.items():
        for t in TILINGS:
            table.results[f"{t} {c}"] = [run[t] for run in runs]
    default = f"2048 fp32/{'bf16' if 'bf16' in allowed else 'f32'}"  # today: fp32 IR at OpenVINO's default
    rounds.report(table, METRICS, title=f"SmolVLM2-256M-shaped, OpenVINO {shipped.options['weights']} LM, "
                                        f"inline 768x768 photo, nothing cached")
    rounds.report(table, METRICS[2:4], baseline=default, title="the times again, with per-round ratios")
    auto = ov_vision.choose(folder, shipped.options["vision_weights"], allowed)
    best = f"{auto['weights']}/{auto['precision']}"
    print(f"\nencoder chosen at load here: {best} ({auto.get('fallbackReason', 'the one wanted')})")
    fits = [t for t in TILINGS if table.values(f"{t} {best}", "ttft")
            and max(table.values(f"{t} {best}", "ttft")) <= args.budget]
    print(rounds.goal(f"an inline 768x768 photo's TTFT <= {args.budget:g} s at {fits[-1] if fits else '?'} "
                      f"with {best} (largest tiling within budget in every round)", bool(fits)))
    if args.api:
        api_ttft(work, source, args.rounds, args.budget)
    if args.work is None:
        print(f"\n(model and conversion left in {work}; delete it or pass --work to reuse)")


def api_ttft(work: Path, source: Path, n: int, budget: float) -> None:
    """The shipped entry through `pollux serve`: TTFT of an inline photo, unspecified mediaResolution."""
    import base64
    import io

    import httpx
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from PIL import Image
    from tests.fixtures.server import Server

    catalog = work / "catalog.toml"
    catalog.write_text(f'[[models]]\nid = "{MODEL}"\nsource = "{source}"\n')  # everything else as shipped
    env = {"POLLUX_CATALOG_FILE": str(catalog), "POLLUX_MODELS_DIR": str(settings(work).resolved_models_dir),
           "POLLUX_LOG_LEVEL": "warning", "POLLUX_DEFAULT_MODEL": MODEL}
    url_of = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    with Server(work / "pollux", emulator=False, keys=f"{KEY}:bench", env=env) as server:
        results = []
        with httpx.Client(base_url=server.url, headers={"x-goog-api-key": KEY}, timeout=600) as client:
            for r in range(-1, n):  # round -1 loads the model (not TTFT)
                pixels = np.array(photo())
                pixels[0, 0] = (r * 37) % 256, r % 256, 7  # a new photo: nothing cached
                buf = io.BytesIO()
                Image.fromarray(pixels).save(buf, format="PNG")
                body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(
                    buf.getvalue()).decode()}}, {"text": "Describe this image."}]}],
                        "generationConfig": {"maxOutputTokens": 2, "temperature": 0}}
                started = time.perf_counter()
                first = None
                with client.stream("POST", url_of, json=body) as response:
                    response.raise_for_status()
                    for line in response.iter_lines():
                        if line.startswith("data: ") and first is None:
                            first = time.perf_counter() - started
                if r >= 0 and first is not None:
                    results.append(first)
            runtime = client.get(f"/v1beta/models/{MODEL}").json().get("polluxRuntime", {})
    print(f"\nthrough the API (pollux serve, {MODEL} as shipped, unspecified mediaResolution, load average "
          f"{os.getloadavg()[0]:.1f}): TTFT {rounds.summary(results)} s over {len(results)} requests; encoder "
          f"{runtime.get('vision', {}).get('weights')}/{runtime.get('vision', {}).get('precision')}")
    print(rounds.goal(f"API TTFT <= {budget:g} s for an inline 768x768 photo", bool(results) and max(results) <= budget))


if __name__ == "__main__":
    main()
