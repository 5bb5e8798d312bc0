"""Video frames packed n×n into one encoder tile, where a family's mediaResolution row asks for it.

A SmolVLM2 frame is already one 512 px tile (64 tokens) at the default level, the encoder's floor, so
`MEDIA_RESOLUTION_LOW` could change nothing for it. Its row sets `frame_grid: 2` instead: four
consecutive frames, each squared to a quarter of the tile, go through the encoder as one image (16
tokens a frame, a quarter of the encoder's work and of the prompt), the way Gemini's LOW spends about
a quarter of the tokens per frame. The processor squares an unsplit image to the tile anyway, so each
cell sees its frame as a single frame would, at half the edge.

The packing is the model's view of the prompt (`SmolVLMFormat.as_seen`, which `LocalEngine` applies wherever a prompt enters):
prompt assembly, thinning (which counts through the engine) and the Gemini-rule accounting are unchanged.
Transcript lines that fell between a grid's frames follow the grid.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pollux.engines import resolution
from pollux.prompt_types import Image, Prompt, Segment, Text, Turn


def grid_size(family: str, image: Image) -> int:
    """Frames per grid edge for this frame (1: not packed)."""
    if image.modality != "VIDEO":
        return 1
    row = resolution.settings(family, image.resolution)
    return int(row.get("frame_grid", 1)) if row else 1


def pack(prompt: Prompt, family: str, tile: int, pixels: bool = True) -> Prompt:
    """`prompt` with each run of frames that `grid_size` packs replaced by grids (the same object
    when nothing is packed). `pixels=False` puts a blank tile in each grid: enough for counting."""
    if not any(grid_size(family, im) > 1 for im in prompt.images()):
        return prompt
    turns = [Turn(t.role, _pack_segments(t.segments, family, tile, pixels)) for t in prompt.turns]
    return dataclasses.replace(prompt, turns=turns)


def _pack_segments(segments: list[Segment], family: str, tile: int, pixels: bool) -> list[Segment]:
    out: list[Segment] = []
    group: list[tuple[Text, Image]] = []  # the markers and frames of the grid being filled
    held: list[Segment] = []  # transcript lines seen inside it: they follow the grid
    n = 1

    def flush() -> None:
        nonlocal group, held
        if group:
            out.extend(_grid(group, n, tile, pixels) if len(group) > 1 else [group[0][0], group[0][1]])
            out.extend(held)
        group, held = [], []

    i = 0
    while i < len(segments):
        seg = segments[i]
        nxt = segments[i + 1] if i + 1 < len(segments) else None
        if _is_marker(seg) and isinstance(nxt, Image) and grid_size(family, nxt) > 1:
            if group and not _same_run(group[-1][1], nxt):
                flush()
            n = grid_size(family, nxt)
            group.append((seg, nxt))  # type: ignore[arg-type]
            if len(group) == n * n:
                flush()
            i += 2
            continue
        if group and isinstance(seg, Text) and seg.modality == "AUDIO":
            held.append(seg)
        else:
            flush()
            out.append(seg)
        i += 1
    flush()
    return out


def _is_marker(seg: Any) -> bool:
    return isinstance(seg, Text) and seg.modality == "VIDEO"


def _same_run(a: Image, b: Image) -> bool:
    return a.source == b.source and a.resolution == b.resolution


def _grid(group: list[tuple[Text, Image]], n: int, tile: int, pixels: bool) -> list[Segment]:
    from PIL import Image as PILImage

    frames = [image for _, image in group]
    canvas = PILImage.new("RGB", (tile, tile))
    if pixels:
        cell = tile // n
        for k, frame in enumerate(frames):
            row, col = divmod(k, n)
            canvas.paste(frame.image.convert("RGB").resize((cell, cell), PILImage.Resampling.LANCZOS),
                         (col * cell, row * cell))
    keys = [f.cache_key for f in frames]
    first = frames[0]
    image = dataclasses.replace(
        first, image=canvas,
        covers=tuple(f.timestamp or 0.0 for f in frames), encoded=None,
        cache_key=f"grid{n}:" + "+".join(keys) if pixels and all(keys) else None)  # type: ignore[arg-type]
    marker = Text(", ".join(m.text for m, _ in group), modality="VIDEO")
    return [marker, image]
