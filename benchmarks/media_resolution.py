"""mediaResolution benchmark: TTFT of an inline 768x768 image at LOW / MEDIUM / HIGH, with token counts.

Builds a SmolVLM2-256M-shaped checkpoint (random weights, real sizes; generate_fast.py's builder), loads
it on the OpenVINO engine (int8, the CPU default; `--engine eager` for transformers), and for each level
asks one question about the same photo with nothing cached (vision features and KV prefix cleared),
printing the first-token time, the engine's native prompt tokens, the tiles encoded, and the Gemini-rule
image count (2.x and 3.x profiles). Video frames are one tile at every level on SmolVLM2 (README table),
so a video's first question is not re-measured here. Numbers are printed, never asserted.

Usage: python benchmarks/media_resolution.py [--engine openvino|eager] [--weights int8] [--work DIR] [--runs 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from generate_fast import build, convert, entry, photo, settings, text_prompt, timed  # benchmarks/ is on the path

LEVELS = ("MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH")


def prompt(level: str, run: int):
    from pollux.prompt_types import Image, Prompt, Text, Turn

    return Prompt([Turn("user", [Image(photo(), (768, 768), source="inline[0]", cache_key=f"p{run}:{level}",
                                       resolution=level), Text("Describe this image.")])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="openvino", choices=["openvino", "eager"])
    parser.add_argument("--weights", default="int8")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="pollux-bench-res-"))).resolve()
    source = build("256m", work)
    from pollux.media import tokens

    if args.engine == "eager":
        from pollux.engines.transformers import TransformersEngine

        engine = TransformersEngine(entry("256m", source, "fp32", "transformers"), settings(work))
    else:
        from pollux.engines.openvino import OpenVINOEngine

        convert("256m", source, args.weights, work)
        engine = OpenVINOEngine(entry("256m", source, args.weights), settings(work))
    engine.load()
    timed(engine, text_prompt("Hi"), 2)  # one-time costs are not TTFT
    print(f"SmolVLM2-256M-shaped, {args.engine} {args.weights if args.engine != 'eager' else 'fp32'}, "
          f"inline 768x768 image, nothing cached; median of {args.runs}")
    print(f"{'level':8} {'TTFT s':>8} {'native tokens':>14} {'tiles':>6} {'gemini-2':>9} {'gemini-3':>9}")
    for level in LEVELS:
        ttfts, tiles = [], 0
        for run in range(args.runs):
            if hasattr(engine, "features"):
                engine.features.clear()
                engine.prefix.clear()
            before = dict(getattr(engine, "stats", {}))
            ttfts.append(timed(engine, prompt(level, run), 2)["ttft"])
            tiles = engine.stats["vision_tiles"] - before["vision_tiles"] if before else 0
        print(f"{level.removeprefix('MEDIA_RESOLUTION_'):8} {statistics.median(ttfts):8.2f} "
              f"{engine.count_tokens(prompt(level, 0)):14d} {tiles or '-':>6} "
              f"{tokens.count_image(768, 768, 'gemini-2', level):9d} {tokens.count_image(768, 768, 'gemini-3', level):9d}",
              flush=True)


if __name__ == "__main__":
    main()
