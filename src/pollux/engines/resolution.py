"""What a model is given per `mediaResolution`: the one table every engine reads.

Prompt assembly resolves each image's effective level once (the part's own override, else
`generationConfig.mediaResolution`) into `Image.resolution`; engines look it up here. `None`
(unspecified) keeps each engine's configured default. ULTRA_HIGH (Gemini 3 per-part) is HIGH here.

- smolvlm: `tiles` × the encoder's tile edge (512 px on the released checkpoints) is the longest
  edge the Idefics3 processor resizes to before cutting tiles (+1 global tile, 64 tokens each on
  the 256M/500M checkpoints): 1024 px at MEDIUM, 2048 px (the checkpoints' default) at HIGH;
  `split=False` sends the global tile only. A video frame is one unsplit tile (the encoder's floor) at
  every level; at LOW `frame_grid: 2` packs four frames into that tile (`frame_grid.py`).
- qwen2_5_vl: pixel caps (28×28 pixels per merged token) for still images and video frames.
- generic: the longest edge the emulator and remote (OpenAI-compatible) engines downscale to,
  and the `detail` an OpenAI image_url part is sent with.
"""

from __future__ import annotations

from typing import Any

LEVELS = ("LOW", "MEDIUM", "HIGH")

TABLE: dict[str, dict[str, dict[str, Any]]] = {
    "smolvlm": {
        "LOW": {"split": False, "tiles": 1, "frame_grid": 2},
        "MEDIUM": {"split": True, "tiles": 2},
        "HIGH": {"split": True, "tiles": 4},
    },
    "qwen2_5_vl": {
        "LOW": {"max_pixels": 256 * 28 * 28, "frame_max_pixels": 64 * 28 * 28},
        "MEDIUM": {"max_pixels": 640 * 28 * 28, "frame_max_pixels": 128 * 28 * 28},
        "HIGH": {"max_pixels": 1280 * 28 * 28, "frame_max_pixels": 256 * 28 * 28},
    },
    "generic": {
        "LOW": {"longest_edge": 512, "frame_longest_edge": 256, "detail": "low"},
        "MEDIUM": {"longest_edge": 1024, "frame_longest_edge": 512, "detail": "high"},
        "HIGH": {"longest_edge": None, "frame_longest_edge": None, "detail": "high"},
    },
}
TABLE["qwen2_vl"] = TABLE["qwen2_5_vl"]


def level(resolution: str | None) -> str | None:
    """"MEDIA_RESOLUTION_LOW" → "LOW"; unspecified → None; ULTRA_HIGH → "HIGH"."""
    if not resolution:
        return None
    name = resolution.removeprefix("MEDIA_RESOLUTION_")
    if name == "ULTRA_HIGH":
        return "HIGH"
    return name if name in LEVELS else None


def settings(family: str, resolution: str | None) -> dict[str, Any] | None:
    """The family's row for this level, or None to keep the engine's default."""
    name = level(resolution)
    return None if name is None else TABLE.get(family, {}).get(name)


def generic_size(size: tuple[int, int], resolution: str | None, frame: bool) -> tuple[int, int]:
    """The size the emulator and remote engines give an image: the prepared size, capped by level."""
    row = settings("generic", resolution)
    edge = row and row["frame_longest_edge" if frame else "longest_edge"]
    w, h = size
    if not edge or max(w, h) <= edge:
        return w, h
    scale = edge / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def generic_image(image: Any, resolution: str | None, frame: bool) -> Any:
    """A PIL image downscaled to `generic_size` (the same object when nothing changes)."""
    size = generic_size(image.size, resolution, frame)
    if size == image.size:
        return image
    from PIL import Image as PILImage

    return image.resize(size, PILImage.Resampling.BICUBIC)
