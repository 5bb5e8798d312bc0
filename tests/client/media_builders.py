"""Small media for the client tests, generated on the fly."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

from PIL import Image


def noisy_png(path: Path, size: tuple[int, int] = (24, 24), seed: int = 1) -> Path:
    """A PNG that does not compress away, so it spans many small upload chunks."""
    rng = random.Random(seed)
    img = Image.new("RGB", size)
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size[0] * size[1])])
    img.save(path)
    return path


def short_video(path: Path, seconds: int = 3, fps: int = 5, codec: str = "libx264") -> Path:
    """A tiny silent video (mp4/H.264 by default; `codec="libvpx"` with a .webm path for VP8)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(seconds * fps):
            frame = np.full((64, 96, 3), (i * 255) // (seconds * fps), dtype=np.uint8)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(vf))
        out.mux(stream.encode())
    return path
