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
first (measured once unless --eager-video-twice). Numbers are printed, never asserted. Goals on a
2-core machine: decode >= 3x eager at int8; TTFT uploaded <= 0.5 s; video Q2 <= 10% of Q1; peak RSS
no higher than eager's.

Usage: python benchmarks/generate_fast.py [--sizes 256m,500m] [--weights fp32,fp16,int8,int4]
       [--video-seconds 90] [--tokens 96] [--work DIR] [--eager-video-twice]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _rss import peak_rss_mb  # benchmarks/ is the script's folder

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


def entry(size: str, source: Path, weights: str, engine: str = "openvino"):
    from pollux.catalog import ModelEntry

    return ModelEntry(id=f"bench-smolvlm-{size}", display_name=size, description="benchmark", engine=engine,
                      source=str(source), family="smolvlm", input_token_limit=8192, output_token_limit=2048,
                      options={"weights": weights})


def settings(work: Path):
    from pollux.settings import Settings

    return Settings(data_dir=work / "data", transcribe=False)


def convert(size: str, source: Path, weights: str, work: Path) -> float:
    from pollux.engines import ov_convert

    e = entry(size, source, weights)
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

def report(rows: list[dict], conversions: dict) -> None:
    def f(v, spec=".2f"):
        return "-" if v is None or v != v else format(v, spec)

    for size in dict.fromkeys(r["size"] for r in rows):
        group = [r for r in rows if r["size"] == size]
        eager = next((r for r in group if r["engine"] == "eager"), None)
        print(f"\nSmolVLM2-{size.upper()}-shaped (random weights), {os.cpu_count()} CPU cores")
        print(f"{'engine':<16}{'vision/tile s':>14}{'TTFT inline s':>15}{'TTFT upload s':>15}{'decode tok/s':>14}"
              f"{'video Q1 s':>12}{'video Q2 s':>12}{'Q2/Q1':>8}{'peak RSS MB':>13}")
        for r in group:
            name = "eager fp32" if r["engine"] == "eager" else f"openvino {r['weights']}"
            print(f"{name:<16}{f(r['vision_per_tile']):>14}{f(r['ttft_inline']):>15}{f(r['ttft_uploaded']):>15}"
                  f"{f(r['decode'], '.1f'):>14}{f(r['video_q1'], '.1f'):>12}{f(r['video_q2'], '.2f'):>12}"
                  f"{f(r['video_q2'] / r['video_q1'], '.1%'):>8}{f(r['peak_rss_mb'], '.0f'):>13}")
        if eager:
            print("ratios vs eager (higher is better; RSS: fast/eager, lower is better)")
            for r in group:
                if r is eager:
                    continue
                print(f"  openvino {r['weights']:<5} decode x{r['decode'] / eager['decode']:.2f}  "
                      f"TTFT inline x{eager['ttft_inline'] / r['ttft_inline']:.2f}  "
                      f"TTFT uploaded x{eager['ttft_uploaded'] / r['ttft_uploaded']:.1f}  "
                      f"video Q2 x{eager['video_q2'] / r['video_q2']:.1f}  "
                      f"RSS {r['peak_rss_mb'] / eager['peak_rss_mb']:.2f}  "
                      f"(conversion {conversions.get((size, r['weights']), 0):.0f} s, "
                      f"uploaded-image background {r.get('background_s', 0):.1f} s)")
        frames = group[0].get("video_frames")
        print(f"video: {frames} frames, {group[0].get('video_tokens')} prompt tokens; "
              f"image prompt: {next((r.get('tiles') for r in group if r.get('tiles')), '?')} tiles")
        for r in group:
            for note in ("uploaded_note", "video_note"):
                if r.get(note):
                    print(f"  note ({r['engine']}): {r[note]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256m,500m")
    parser.add_argument("--weights", default="fp32,fp16,int8,int4")
    parser.add_argument("--video-seconds", type=int, default=90)
    parser.add_argument("--tokens", type=int, default=96)
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
        print("RESULT " + json.dumps(result), flush=True)
        return

    rows, conversions = [], {}
    for size in args.sizes.split(","):
        source = build(size, work)
        for weights in args.weights.split(","):
            conversions[(size, weights)] = convert(size, source, weights, work)
            print(f"converted {size} {weights} in {conversions[(size, weights)]:.0f} s", flush=True)
        for engine_name, weights in [("eager", "fp32")] + [("openvino", w) for w in args.weights.split(",")]:
            cmd = [sys.executable, __file__, "--work", str(work), "--video-seconds", str(args.video_seconds),
                   "--tokens", str(args.tokens), "--child", size, engine_name, weights]
            if args.eager_video_twice:
                cmd.append("--eager-video-twice")
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{size} {engine_name} {weights} failed:\n{proc.stderr[-3000:]}", flush=True)
                continue
            rows.append(json.loads(line[len("RESULT "):]))
            print(f"ran {size} {engine_name} {weights} in {time.perf_counter() - t:.0f} s: {line[7:]}", flush=True)
    report(rows, conversions)
    if args.work is None:
        print(f"\n(models and conversions left in {work}; delete it or pass --work to reuse)")


if __name__ == "__main__":
    main()
