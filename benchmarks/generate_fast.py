"""Fast-engine benchmark: transformers eager fp32 against the OpenVINO engine at each weight setting.

Builds (in a work dir, random weights, real sizes) SmolVLM2-256M- and 500M-shaped checkpoints with
tests/fixtures/tiny_models.py, converts them once per weight setting (conversion time printed), then
runs every configuration in its own process (so peak RSS is that configuration's alone):

  vision/tile   encoder seconds per 512x512 tile (768x768 photo: 4x4 tiles + the global image)
  TTFT inline   one image + a short question, nothing cached (image given inline)
  TTFT uploaded the image was uploaded first: its features (and, OpenVINO, its prompt prefix) were
                computed in the background before the question; the background time is printed too
  decode        tokens/s after the first token (greedy), the mean of two image questions
  video Q1/Q2   a 90 s video (1 frame/s, 640x360) asked twice: the first question computes the frames'
                features; the second reuses features and the prompt's KV prefix
  peak RSS      the process's maximum resident memory

Eager has no caches: its "uploaded" TTFT is its inline TTFT and its second video question repeats the
first (measured once unless --eager-video-twice). The configurations run in interleaved rounds
(benchmarks/_rounds.py: eager, int8, ..., then the reverse order), each in a fresh process; the ratios
to eager are the medians of the per-round ratios, and a ratio whose rounds disagree prints NOISY
instead of a figure. Numbers are printed, never asserted. Goals on a 2-core machine: decode >= 3x
eager at int8; TTFT uploaded <= 0.5 s; video Q2 <= 10% of Q1; peak RSS no higher than eager's.

The defaults finish in minutes on 2 cores; the full table is
  --sizes 256m,500m --weights fp32,fp16,int8,int4 --video-seconds 90 --tokens 96 (hours on 2 cores).

Usage: python benchmarks/generate_fast.py [--sizes 256m] [--weights int8] [--rounds 3]
       [--video-seconds 20] [--tokens 16] [--work DIR] [--eager-video-twice]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import _rounds as rounds  # benchmarks/ is the script's folder
from _rss import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures builds the models; src is installed (pip install -e .)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

QUESTION = "Describe this image."
QUESTION_2 = "What is the person holding?"
VIDEO_Q1 = "What happens in this video?"
VIDEO_Q2 = "What colour is the square at the end?"


# ---------------------------------------------------------------------------------- setup (parent)

def build(size: str, work: Path) -> Path:
    from tests.fixtures.tiny_models import build_smolvlm, build_smolvlm_500m

    folder = work / f"smolvlm-{size}"
    if (folder / "config.json").is_file():
        return folder
    t = time.perf_counter()
    build_smolvlm_500m(folder) if size == "500m" else build_smolvlm(folder, tiny=False)
    print(f"built a SmolVLM2-{size.upper()}-shaped model in {time.perf_counter() - t:.0f} s", flush=True)
    return folder


def entry(size: str, source: Path, weights: str, engine: str = "openvino", **options):
    from pollux.catalog import ModelEntry

    return ModelEntry(id=f"bench-smolvlm-{size}", display_name=size, description="benchmark", engine=engine,
                      source=str(source), family="smolvlm", input_token_limit=8192, output_token_limit=2048,
                      options={"weights": weights, **options})


def settings(work: Path):
    from pollux.settings import Settings

    return Settings(data_dir=work / "data", transcribe=False)


def convert(size: str, source: Path, weights: str, work: Path, **options) -> float:
    from pollux.engines import ov_convert

    e = entry(size, source, weights, **options)
    if ov_convert.is_complete(ov_convert.converted_dir(e, settings(work), source)):
        return 0.0
    t = time.perf_counter()
    ov_convert.ensure_converted(e, settings(work), source, progress=lambda m: print("  " + m, flush=True))
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------- one configuration (child)

def photo():
    import skimage.data
    from PIL import Image

    return Image.fromarray(skimage.data.astronaut()).resize((768, 768), Image.Resampling.BICUBIC)


def image_prompt(question: str | None, key: str):
    from pollux.prompt_types import Image, Prompt, Text, Turn

    segments = [Image(photo(), (768, 768), source="files/photo", cache_key=key)]
    if question:
        segments.append(Text(question))
    return Prompt([Turn("user", segments)])


def text_prompt(text: str):
    from pollux.prompt_types import Prompt, Text, Turn

    return Prompt([Turn("user", [Text(text)])])


def video_prompt(engine, video, question: str):
    from pollux.prompt import assemble
    from pollux.prompt_types import MediaPart, RequestTurn, TextPart

    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/video"), TextPart(question)])]
    return assemble(turns, None, capabilities=engine.capabilities, token_budget=engine.entry.input_token_limit,
                    count_tokens=engine.count_tokens)


def timed(engine, prompt, tokens: int) -> dict:
    """TTFT (first delta) and decode rate (tokens after the first / time after the first)."""
    from pollux.engines.base import GenerationParams

    start = time.perf_counter()
    first = last = None
    n_first = n_last = 0
    for delta in engine.generate(prompt, GenerationParams(max_output_tokens=tokens, temperature=0.0),
                                 threading.Event()):
        now = time.perf_counter()
        if first is None:
            first, n_first = now, delta.output_tokens or 1
        last, n_last = now, delta.output_tokens or n_last
    rate = (n_last - n_first) / (last - first) if last and last > first and n_last > n_first else float("nan")
    return {"ttft": first - start, "decode": rate, "tokens": n_last}


def child(size: str, engine_name: str, weights: str, source: Path, work: Path, video_seconds: int, tokens: int,
          eager_video_twice: bool) -> dict:
    from tests.engines.prepared import make_video

    out: dict = {"size": size, "engine": engine_name, "weights": weights}
    t = time.perf_counter()
    if engine_name == "eager":
        from pollux.engines.transformers import TransformersEngine

        engine = TransformersEngine(entry(size, source, "fp32", "transformers"), settings(work))
    else:
        from pollux.engines.openvino import OpenVINOEngine

        engine = OpenVINOEngine(entry(size, source, weights), settings(work))
    engine.load()
    out["load_s"] = time.perf_counter() - t
    out["rss_stages"] = {"loaded": peak_rss_mb()}
    timed(engine, text_prompt("Hi"), 2)  # one-time costs (lazy imports, first inference) are not TTFT

    if engine_name == "eager":
        out["vision_per_tile"] = eager_vision_per_tile(engine)
        run = timed(engine, image_prompt(QUESTION, "photo"), tokens)
        again = timed(engine, image_prompt(QUESTION_2, "photo"), tokens)  # decode measured twice, as below
        out.update(ttft_inline=run["ttft"], decode=(run["decode"] + again["decode"]) / 2, decode_runs=[
            run["decode"], again["decode"]], ttft_uploaded=run["ttft"], uploaded_note="no cache")
    else:
        before = dict(engine.stats)
        run = timed(engine, image_prompt(QUESTION, "inline-photo"), tokens)
        tiles = engine.stats["vision_tiles"] - before["vision_tiles"]
        out["vision_per_tile"] = (engine.stats["vision_seconds"] - before["vision_seconds"]) / max(1, tiles)
        out.update(ttft_inline=run["ttft"], decode=run["decode"], tiles=tiles)
        engine.features.clear()
        engine.prefix.clear()
        t = time.perf_counter()
        engine.precompute(lambda: image_prompt(None, "uploaded-photo"))  # what the upload hook does
        engine.background.wait_idle()
        out["background_s"] = time.perf_counter() - t
        again = timed(engine, image_prompt(QUESTION_2, "uploaded-photo"), tokens)
        out["ttft_uploaded"] = again["ttft"]
        out["decode_runs"] = [out["decode"], again["decode"]]
        out["decode"] = (out["decode"] + again["decode"]) / 2
    out["rss_stages"]["image"] = peak_rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "video", seconds=video_seconds, size=(640, 360), with_audio=False)
        video.sha256 = "b" * 64
        q1 = video_prompt(engine, video, VIDEO_Q1)
        out["video_frames"] = len(q1.images())
        out["video_tokens"] = engine.count_tokens(q1)
        out["video_q1"] = timed(engine, q1, 2)["ttft"]
        out["rss_stages"]["video_q1"] = peak_rss_mb()
        if engine_name == "eager" and not eager_video_twice:
            out["video_q2"], out["video_note"] = out["video_q1"], "no cache: Q2 repeats Q1 (measured once)"
        else:
            out["video_q2"] = timed(engine, video_prompt(engine, video, VIDEO_Q2), 2)["ttft"]
    out["peak_rss_mb"] = peak_rss_mb()
    if engine_name != "eager":
        out["stats"] = dict(engine.stats)
    return out


def eager_vision_per_tile(engine) -> float:
    import torch

    encoded = engine.format.encode(image_prompt(QUESTION, "photo"))
    pixels, mask = encoded.inputs["pixel_values"], encoded.inputs["pixel_attention_mask"]
    with torch.inference_mode():
        engine.model.model.get_image_features(pixels[:, :1], mask[:, :1])  # warm-up
        t = time.perf_counter()
        engine.model.model.get_image_features(pixels, mask)
    return (time.perf_counter() - t) / pixels.shape[1]


# ---------------------------------------------------------------------------------- report

METRICS = [rounds.Metric("vision_per_tile", "s"), rounds.Metric("ttft_inline", "s"),
           rounds.Metric("ttft_uploaded", "s"), rounds.Metric("decode", "tok/s", True, ".1f"),
           rounds.Metric("video_q1", "s", fmt=".1f"), rounds.Metric("video_q2", "s"),
           rounds.Metric("peak_rss_mb", "MB", fmt=".0f")]


def config_name(engine_name: str, weights: str) -> str:
    return "eager fp32" if engine_name == "eager" else f"openvino {weights}"


def report(size: str, result: rounds.Rounds, conversions: dict) -> None:
    heads = rounds.report(result, METRICS, baseline="eager fp32",
                          title=f"SmolVLM2-{size.upper()}-shaped (random weights)")
    first = next((r[0] for r in result.results.values() if r), {})
    print(f"video: {first.get('video_frames')} frames, {first.get('video_tokens')} prompt tokens; image prompt: "
          f"{next((r[0].get('tiles') for r in result.results.values() if r and r[0].get('tiles')), '?')} tiles; "
          f"conversions: " + ", ".join(f"{w} {t:.0f} s" for (sz, w), t in conversions.items() if sz == size))
    for name in result.names:
        runs = result.results[name]
        q2q1 = [r["video_q2"] / r["video_q1"] for r in runs if r.get("video_q1")]
        print(f"  {name}: video Q2/Q1 {rounds.summary(q2q1, '.1%')}; uploaded-image background "
              f"{rounds.summary([r.get('background_s', 0.0) for r in runs], '.1f')} s")
        for note in ("uploaded_note", "video_note"):
            if runs and runs[0].get(note):
                print(f"    note: {runs[0][note]}")
        if name != "eager fp32":
            ratio = heads.get((name, "decode"))
            print("  " + rounds.goal(f"{name} decode >= 3x eager", None if ratio is None else ratio >= 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256m")
    parser.add_argument("--weights", default="int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--video-seconds", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--work", type=Path, default=None, help="keep models and conversions here (reused)")
    parser.add_argument("--eager-video-twice", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "ENGINE", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="pollux-bench-fast-"))
    work.mkdir(parents=True, exist_ok=True)

    if args.child:
        size, engine_name, weights = args.child
        result = child(size, engine_name, weights, work / f"smolvlm-{size}", work, args.video_seconds, args.tokens,
                       args.eager_video_twice)
        rounds.emit(result)
        return

    conversions = {}
    for size in args.sizes.split(","):
        source = build(size, work)
        for weights in args.weights.split(","):
            conversions[(size, weights)] = convert(size, source, weights, work)
            print(f"converted {size} {weights} in {conversions[(size, weights)]:.0f} s", flush=True)
        configs = {}
        for engine_name, weights in [("eager", "fp32")] + [("openvino", w) for w in args.weights.split(",")]:
            cmd = [sys.executable, __file__, "--work", str(work), "--video-seconds", str(args.video_seconds),
                   "--tokens", str(args.tokens), "--child", size, engine_name, weights]
            if args.eager_video_twice:
                cmd.append("--eager-video-twice")
            configs[config_name(engine_name, weights)] = lambda _r, cmd=cmd: rounds.child(cmd)
        report(size, rounds.interleave(configs, args.rounds), conversions)
    if args.work is None:
        print(f"\n(models and conversions left in {work}; delete it or pass --work to reuse)")


if __name__ == "__main__":
    main()
