"""Video preparation benchmark: Pollux's 1 fps sampler against a decode-every-frame baseline.

Generates (PyAV only, in a temp dir) a 720p30 H.264 video with a speech-like AAC track: x264
`veryfast`, a keyframe every 250 frames (--gop), 3 B-frames (--bframes; x264's default), 4 Mb/s.
Every frame carries its own index as a row of black/white blocks, so the sampled pictures are
checked against their timestamps by content, not only by pts. Then, in interleaved rounds
(benchmarks/_rounds.py: A B C, C B A, ...), each configuration in a fresh child process (wall;
CPU-seconds of the child and its worker processes; peak RSS summed over them, rss_mb, and of the
largest one, rss_max_mb):

  baseline   PyAV, frame threads, every frame decoded, only the sampled frames converted
  sampling   pollux.media.video.prepare_video on a video-only copy (frames -> JPEG artifact)
  before     the same from another source tree (--compare-src, e.g. a checkout of main)
  full       prepare_video on the original: frames + audio (what an upload costs)

Usage: python benchmarks/video_prep.py [--minutes 2] [--rounds 5] [--gop 250] [--compare-src DIR]
Numbers are printed, never asserted; goals: sampling >= 1.4x baseline, >= 20x realtime, no more
CPU-seconds than the baseline, every timestamp within 0.05 s of the baseline's, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import _rounds as rounds  # benchmarks/ is the script's folder
from _rss import tree_peaks_mb

WIDTH, HEIGHT, FPS = 1280, 720, 30
AUDIO_RATE = 48000
CODE_BITS, CODE_BLOCK, CODE_Y = 16, 48, 16  # frame index as 16 blocks of 48 px, top-left


# ---- generation ----


def _texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random shapes (upsampled noise) with a little fine detail, like filmed content."""
    low = rng.integers(40, 216, size=(h // cell + 2, w // cell + 2)).astype(np.float32)
    ys = np.linspace(0, low.shape[0] - 1.001, h)
    xs = np.linspace(0, low.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    smooth = (
        low[y0][:, x0] * (1 - fy) * (1 - fx)
        + low[y0 + 1][:, x0] * fy * (1 - fx)
        + low[y0][:, x0 + 1] * (1 - fy) * fx
        + low[y0 + 1][:, x0 + 1] * fy * fx
    )
    return np.clip(smooth + rng.normal(0, 6, size=(h, w)), 16, 235).astype(np.uint8)


def _speech(start: int, n: int) -> np.ndarray:
    """Voiced 'syllables' (~4 per second) on a wandering pitch, with pauses: speech-like load."""
    t = (start + np.arange(n)) / AUDIO_RATE
    f0 = 140 + 40 * np.sin(2 * math.pi * 0.31 * t) + 15 * np.sin(2 * math.pi * 1.7 * t)
    phase = 2 * math.pi * np.cumsum(f0) / AUDIO_RATE + 2 * math.pi * 140 * start / AUDIO_RATE
    voice = sum(np.sin(k * phase) * (1.0 / k) * (1.5 if 3 <= k <= 5 else 1.0) for k in range(1, 9))
    syllables = np.clip(np.sin(2 * math.pi * 4.1 * t), 0, None) ** 0.6
    pauses = (np.sin(2 * math.pi * 0.23 * t) > -0.7).astype(np.float32)
    noise = np.random.default_rng(start).normal(0, 0.01, n)
    return (0.12 * voice * syllables * pauses + noise).astype(np.float32)


def _slice(track: np.ndarray, start: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    part = track[start:start + n]
    out[:len(part)] = part
    return out


def generate(path: Path, minutes: float, bframes: int = 3, gop: int = 250, audio: np.ndarray | None = None) -> None:
    """`audio`: a mono float32 track at AUDIO_RATE to use instead of the speech-like synthetic one."""
    rng = np.random.default_rng(7)
    canvas_y = _texture(rng, HEIGHT + 400, WIDTH + 800, 40)
    canvas_c = _texture(rng, (HEIGHT + 400) // 2, (WIDTH + 800) // 2, 30)
    frames = int(minutes * 60 * FPS)
    buf = np.empty((HEIGHT * 3 // 2, WIDTH), dtype=np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.bit_rate = 4_000_000
        vs.codec_context.options = {
            "g": str(gop), "keyint_min": str(min(25, gop)), "bf": str(bframes),
            "preset": "veryfast", "maxrate": "4M", "bufsize": "8M",
        }  # fmt: skip
        vs.codec_context.time_base = Fraction(1, FPS)
        aus = out.add_stream("aac", rate=AUDIO_RATE)
        aus.layout = "stereo"
        aus.bit_rate = 128_000
        audio_pos = 0
        t0 = time.perf_counter()
        for i in range(frames):
            dx = int(200 + 180 * math.sin(i / 97)) + (i // 3) % 400
            dy = int(100 + 90 * math.sin(i / 61))
            buf[:HEIGHT] = canvas_y[dy : dy + HEIGHT, dx : dx + WIDTH]
            chroma = canvas_c[dy // 2 : dy // 2 + HEIGHT // 2, dx // 2 : dx // 2 + WIDTH // 2]
            buf[HEIGHT:] = np.concatenate([chroma, chroma[::-1]], axis=0).reshape(HEIGHT // 2, WIDTH)
            bx = (i * 7) % (WIDTH - 200)
            buf[300:420, bx : bx + 160] = 235  # a moving box
            for bit in range(CODE_BITS):
                x = 16 + bit * CODE_BLOCK
                buf[CODE_Y : CODE_Y + CODE_BLOCK, x : x + CODE_BLOCK] = 235 if (i >> bit) & 1 else 16
            frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(vs.encode(frame))
            while audio_pos < (i + 1) * AUDIO_RATE // FPS:
                mono = _speech(audio_pos, 1024) if audio is None else _slice(audio, audio_pos, 1024)
                af = av.AudioFrame.from_ndarray(np.stack([mono, mono]), format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, audio_pos, Fraction(1, AUDIO_RATE)
                out.mux(aus.encode(af))
                audio_pos += 1024
            if i and i % (FPS * 60) == 0:
                print(f"  generated {i // (FPS * 60)} min ({time.perf_counter() - t0:.0f} s)", flush=True)
        out.mux(vs.encode())
        out.mux(aus.encode())


def remux(src: Path, dst: Path, *, audio: bool = False, seconds: float | None = None) -> None:
    """Copy the video stream (and the soundtrack with `audio`) without re-encoding, optionally only
    the packets of the first `seconds` (a cut at any packet: fine for decoding benchmarks)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        streams = [inp.streams.video[0]] + (list(inp.streams.audio[:1]) if audio else [])
        outs = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in inp.demux(streams):
            if packet.dts is None:
                continue
            if seconds is not None and packet.pts is not None and packet.pts * packet.time_base >= seconds:
                continue
            packet.stream = outs[packet.stream.index]
            out.mux(packet)


def video_only_copy(src: Path, dst: Path) -> None:
    remux(src, dst)


# ---- the measured work (child processes) ----


def child(mode: str, src: Path, out: Path) -> None:
    from pollux.settings import Settings

    settings = Settings(max_video_seconds=4 * 3600)
    if mode == "baseline":
        result = baseline(src, out)
    else:
        from pollux.media.video import prepare_video

        video = prepare_video(src, out, settings, lambda: False)
        result = {"duration": video.duration, "frames": [[f.timestamp, str(f.path)] for f in video.frames]}
    peaks = tree_peaks_mb()
    result.update(rss_mb=sum(peaks), rss_max_mb=max(peaks))
    try:
        from pollux.media import workers

        workers.shutdown()  # reaped here, so their CPU-seconds count in this child's
    except ImportError:  # an older tree (--compare-src) has no worker pool
        pass
    (out.parent / f"{out.name}.json").write_text(json.dumps(result))


def baseline(src: Path, out: Path) -> dict:
    """Decode every frame (frame threads, no skipping); convert and save only the 1 fps picks."""
    out.mkdir(parents=True)
    picks: list[list] = []
    with av.open(str(src)) as container:
        duration = container.duration / av.time_base
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        lead = 0.5 / float(stream.average_rate)
        scale = min(1.0, 768 / max(stream.codec_context.width, stream.codec_context.height))
        size = (round(stream.codec_context.width * scale), round(stream.codec_context.height * scale))
        k = 0
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= k - lead:
                path = out / f"{k:06d}.jpg"
                frame.to_image(width=size[0], height=size[1], interpolation="AREA").save(path, quality=90)
                picks.append([frame.time, str(path)])
                k += 1
    return {"duration": duration, "frames": picks}


def runner(mode: str, src: Path, work: Path, pythonpath: str | None, keep: dict) -> callable:
    def run(r: int) -> dict:
        out = work / f"{mode}-{r}"
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        figures = rounds.child([sys.executable, __file__, "--child", "baseline" if mode == "baseline" else "pollux",
                                str(src), str(out)], env=env)  # fmt: skip
        result = json.loads((out.parent / f"{out.name}.json").read_text())
        figures.update(rss_mb=result["rss_mb"], rss_max_mb=result["rss_max_mb"],
                       x_realtime=result["duration"] / figures["wall"])
        keep.setdefault(mode, result)  # the first round's frames are checked below
        return figures

    return run


# ---- checks ----


def read_code(path: str, size: tuple[int, int]) -> int:
    from PIL import Image

    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"), dtype=np.float32)
    scale = im.width / size[0]
    value = 0
    for bit in range(CODE_BITS):
        cx = int((16 + bit * CODE_BLOCK + CODE_BLOCK / 2) * scale)
        cy = int((CODE_Y + CODE_BLOCK / 2) * scale)
        if grey[cy - 3 : cy + 4, cx - 3 : cx + 4].mean() > 128:
            value |= 1 << bit
    return value


def check_frames(result: dict, source_size: tuple[int, int]) -> tuple[int, int, float, float]:
    """(frames, expected, max |pts - k|, max |picture time - k|) in seconds."""
    from pollux.media import tokens

    frames = result["frames"]
    expected = tokens.count_video_frames(result["duration"])
    pts_err = max(abs(t - k) for k, (t, _) in enumerate(frames))
    content_err = max(abs(read_code(p, source_size) / FPS - k) for k, (_, p) in enumerate(frames))
    return len(frames), expected, pts_err, content_err


# ---- main ----


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0, help="length of the generated video (default 2)")
    ap.add_argument("--video", type=Path, help="use this generated file instead of generating one")
    ap.add_argument("--keep", type=Path, help="keep the generated video here (reuse with --video)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--no-full", action="store_true", help="skip the frames + audio configuration")
    ap.add_argument("--compare-src", type=Path, help="also run prepare_video from this src/ folder ('before')")
    ap.add_argument("--bframes", type=int, default=3,
                    help="x264 B-frames (default 3, x264's own default; with b-pyramid one B per group "
                         "is a reference, so 2 gives fewer skippable frames than 3)")  # fmt: skip
    ap.add_argument("--gop", type=int, default=250,
                    help="keyframe interval in frames (default 250; 30 = a phone-style 1 s GOP, which "
                         "Pollux decodes keyframes-only)")  # fmt: skip
    ap.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return

    with tempfile.TemporaryDirectory(prefix="pollux-bench-") as tmp:
        work = Path(tmp)
        src = args.video
        if src is None:
            src = (args.keep or work) / f"bench-720p30-{args.minutes:g}min-bf{args.bframes}-g{args.gop}.mp4"
            src.parent.mkdir(parents=True, exist_ok=True)
            print(f"generating {args.minutes:g} min of 720p30 H.264 + AAC into {src} ...", flush=True)
            t = time.perf_counter()
            generate(src, args.minutes, args.bframes, args.gop)
            print(f"  done in {time.perf_counter() - t:.0f} s, {src.stat().st_size / 1e6:.0f} MB", flush=True)
        silent = work / "video-only.mp4"
        video_only_copy(src, silent)
        with av.open(str(src)) as c:
            duration = c.duration / av.time_base
            size = (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height)

        here = str(Path(__file__).resolve().parents[1] / "src")
        keep: dict[str, dict] = {}
        configs = {"baseline": runner("baseline", silent, work, here, keep),
                   "sampling": runner("sampling", silent, work, here, keep)}
        if args.compare_src:
            configs["before"] = runner("before", silent, work, str(args.compare_src.resolve()), keep)
        if not args.no_full:
            configs["full"] = runner("full", src, work, here, keep)
        result = rounds.interleave(configs, args.rounds)
        print(f"\nvideo: {src.name}, {duration:.1f} s, {size[0]}x{size[1]} @ {FPS} fps, GOP {args.gop}")
        heads = rounds.report(result, [rounds.Metric("wall", "s"), rounds.Metric("cpu", "s"),
                                       rounds.Metric("x_realtime", "x", higher_is_better=True, fmt=".1f"),
                                       rounds.Metric("rss_mb", "MB", fmt=".0f"),
                                       rounds.Metric("rss_max_mb", "MB", fmt=".0f")],
                              baseline="baseline", title="1 fps sampling")  # fmt: skip

        base = keep["baseline"]["frames"]
        worst_vs_base = {}
        for mode in configs:
            n, expected, pts_err, content_err = check_frames(keep[mode], size)
            vs = max((abs(a[0] - b[0]) for a, b in zip(keep[mode]["frames"], base)), default=float("inf"))
            worst_vs_base[mode] = vs if n == len(base) else float("inf")
            ok = n == expected and pts_err <= 0.5 and content_err <= 0.5
            print(f"{mode:<9} frames {n}/{expected}, max |pts - k| {pts_err:.3f} s, max |picture - k| "
                  f"{content_err:.3f} s, max |pts - baseline's| {worst_vs_base[mode]:.3f} s -> "
                  f"{'OK' if ok else 'FAIL'}")  # fmt: skip

        def med(mode: str, key: str) -> float:
            return statistics.median(result.values(mode, key))

        ratio = heads.get(("sampling", "wall"))
        print(rounds.goal("sampling >= 1.4x baseline (wall)", None if ratio is None else ratio >= 1.4))
        print(rounds.goal("sampling >= 20x realtime (median)", med("sampling", "x_realtime") >= 20))
        print(rounds.goal("sampling CPU-s <= baseline's (medians)", med("sampling", "cpu") <= med("baseline", "cpu")))
        print(rounds.goal("timestamps within 0.05 s of the baseline's", worst_vs_base["sampling"] <= 0.05))
        rss = max(med(m, "rss_mb") for m in configs if m in ("sampling", "full"))
        print(rounds.goal("peak RSS < 300 MB (sampling, full; summed over processes)", rss < 300))


if __name__ == "__main__":
    main()
