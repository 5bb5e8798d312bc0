"""mediaResolution benchmark: TTFT of an inline 768x768 image at LOW / MEDIUM / HIGH, with token counts.

Builds a SmolVLM2-256M-shaped checkpoint (random weights, real sizes; generate_fast.py's builder), loads
it on the OpenVINO engine (int8, the CPU default; `--engine eager` for transformers), and for each level
asks one question about the same photo with nothing cached (vision features and KV prefix cleared),
printing the first-token time, the engine's native prompt tokens, the tiles encoded, and the Gemini-rule
image count (2.x and 3.x profiles). Video frames are one tile at every level on SmolVLM2 (README table),
so a video's first question is not re-measured here. The levels alternate in rounds
(benchmarks/_rounds.py: LOW MEDIUM HIGH, HIGH MEDIUM LOW, ...); the ratios to MEDIUM (the default)
are medians of per-round ratios, NOISY when the rounds disagree. Numbers are printed, never asserted.

Usage: python benchmarks/media_resolution.py [--engine openvino|eager] [--weights int8] [--work DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _rounds as rounds  # benchmarks/ is the script's folder
from generate_fast import build, convert, entry, photo, settings, text_prompt, timed

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
    parser.add_argument("--rounds", type=int, default=3)
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

    def level_runner(level: str):
        def run(r: int) -> dict:
            if hasattr(engine, "features"):
                engine.features.clear()
                engine.prefix.clear()
            before = dict(getattr(engine, "stats", {}))
            ttft = timed(engine, prompt(level, r), 2)["ttft"]
            tiles = engine.stats["vision_tiles"] - before["vision_tiles"] if before else float("nan")
            return {"ttft": ttft, "tiles": tiles, "native_tokens": engine.count_tokens(prompt(level, 0)),
                    "gemini2": tokens.count_image(768, 768, "gemini-2", level),
                    "gemini3": tokens.count_image(768, 768, "gemini-3", level)}  # fmt: skip

        return run

    result = rounds.interleave({level.removeprefix("MEDIA_RESOLUTION_"): level_runner(level) for level in LEVELS},
                               args.rounds)  # fmt: skip
    rounds.report(result, [rounds.Metric("ttft", "s"), rounds.Metric("native_tokens", fmt=".0f"),
                           rounds.Metric("tiles", fmt=".0f"), rounds.Metric("gemini2", fmt=".0f"),
                           rounds.Metric("gemini3", fmt=".0f")], baseline="MEDIUM",
                  title=f"SmolVLM2-256M-shaped, {args.engine} "
                        f"{args.weights if args.engine != 'eager' else 'fp32'}, inline 768x768 image, nothing cached")

if __name__ == "__main__":
    main()
