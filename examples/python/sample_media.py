"""Small stand-ins for the seed's media: jetpack.jpg, piranha.jpg, firefighter.jpg and GreatRedSpot.mp4.

    python sample_media.py [DIR]     # writes the four files into DIR (default: ./media)

Pillow draws the images; PyAV encodes the video (a red spot drifting over bands, with a tone as audio).
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageDraw

IMAGES = ("jetpack.jpg", "piranha.jpg", "firefighter.jpg")
VIDEO = "GreatRedSpot.mp4"


def jetpack(path: Path) -> None:
    img = Image.new("RGB", (640, 480), "white")
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((240, 120, 400, 360), radius=30, outline="black", width=6, fill="#9fc5e8")  # the pack
    for x in (260, 340):  # two thrusters with flames
        d.rectangle((x, 360, x + 40, 400), fill="gray", outline="black", width=3)
        d.polygon([(x, 400), (x + 40, 400), (x + 20, 460)], fill="orange")
    d.text((250, 40), "JETPACK BACKPACK", fill="black")
    img.save(path, quality=90)


def piranha(path: Path) -> None:
    img = Image.new("RGB", (640, 480), "#cfe8f7")  # water
    d = ImageDraw.Draw(img)
    d.ellipse((200, 180, 440, 320), fill="#b03a2e", outline="black", width=4)  # body
    d.polygon([(440, 250), (520, 190), (520, 310)], fill="#b03a2e", outline="black")  # tail
    d.polygon([(205, 245), (250, 235), (250, 265)], fill="white")  # teeth
    d.ellipse((240, 215, 262, 237), fill="black")  # eye
    img.save(path, quality=90)


def firefighter(path: Path) -> None:
    img = Image.new("RGB", (640, 480), "#f4e3c1")
    d = ImageDraw.Draw(img)
    d.rectangle((80, 200, 260, 420), fill="#888", outline="black", width=3)  # a house
    d.polygon([(60, 200), (170, 110), (280, 200)], fill="#6b3e26")
    for x in (110, 170, 230):  # flames from the roof
        d.polygon([(x - 25, 130), (x + 25, 130), (x, 40)], fill="orangered")
    d.ellipse((420, 180, 480, 240), fill="#e0ac69")  # firefighter's head
    d.rectangle((410, 240, 490, 380), fill="#c0392b")
    d.line((490, 260, 600, 180), fill="black", width=8)  # hose
    img.save(path, quality=90)


def great_red_spot(path: Path, seconds: int = 85, fps: int = 4, size: tuple[int, int] = (192, 108)) -> None:
    """An H.264 + AAC MP4; long enough for the seed's questions about 01:05 and 01:19."""
    import av
    import numpy as np

    width, height = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "30"}
        audio = out.add_stream("aac", rate=16000, layout="mono")
        ys, xs = np.mgrid[0:height, 0:width]
        bands = (np.sin(ys / 6.0)[..., None] * 30 + np.array([200, 170, 130])).clip(0, 255)
        for i in range(seconds * fps):
            t = i / fps
            cx, cy, r = width * (0.2 + 0.6 * t / seconds), height / 2, 12 + 6 * math.sin(t / 5)
            frame = bands.copy()
            frame[(xs - cx) ** 2 + ((ys - cy) * 1.6) ** 2 < r * r] = (190, 40, 30)
            vf = av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(video.encode(vf))
        out.mux(video.encode())
        samples_per_frame = 1024
        for j in range(seconds * 16000 // samples_per_frame):
            n = np.arange(j * samples_per_frame, (j + 1) * samples_per_frame)
            tone = (0.2 * np.sin(2 * np.pi * 220 * n / 16000)).astype(np.float32)[None, :]
            af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = 16000, int(n[0]), Fraction(1, 16000)
            out.mux(audio.encode(af))
        out.mux(audio.encode())


def ensure(directory: Path) -> Path:
    """Create any of the sample files missing from `directory`; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, make in zip(IMAGES + (VIDEO,), (jetpack, piranha, firefighter, great_red_spot)):
        if not (directory / name).exists():
            make(directory / name)
    return directory


if __name__ == "__main__":
    target = ensure(Path(sys.argv[1] if len(sys.argv) > 1 else "media"))
    for name in IMAGES + (VIDEO,):
        print(target / name)
