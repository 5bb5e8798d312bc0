"""Bounding boxes in Gemini's convention, converted from each model family's native output.

Gemini: [ymin, xmin, ymax, xmax], integers 0-1000 relative to the original image (a 1000x1000
version of it). Native conventions:
- Qwen2.5-VL: absolute pixels [x1, y1, x2, y2] on its *resized* input (the size the processor chose).
- Qwen2-VL and Qwen3-VL: [x1, y1, x2, y2] normalised to 0-1000.
- Florence-2: <loc_N> tokens, N in 0..999 quantisation bins, x1 y1 x2 y2 order.
- OWLv2: absolute pixels [x1, y1, x2, y2] on the image padded (bottom/right) to a square.
Relative coordinates survive the prepare step's aspect-preserving scaling, so boxes found on the
prepared image are boxes on the original.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

GeminiBox = tuple[int, int, int, int]  # ymin, xmin, ymax, xmax in 0..1000
Size = tuple[int, int]  # width, height


@dataclass
class Detection:
    label: str
    box: GeminiBox
    score: float | None = None
    image: int = 0  # which image of the prompt (0-based)


def _clamp(v: float) -> int:
    return int(min(1000, max(0, round(v))))


def clip(box: Sequence[float]) -> GeminiBox:
    """Clip to 0..1000 and order each axis (min before max)."""
    ymin, xmin, ymax, xmax = (_clamp(v) for v in box)
    return (min(ymin, ymax), min(xmin, xmax), max(ymin, ymax), max(xmin, xmax))


def from_pixels_xyxy(box: Sequence[float], size: Size) -> GeminiBox:
    """Absolute [x1, y1, x2, y2] on an image of `size` → Gemini."""
    x1, y1, x2, y2 = box
    w, h = size
    return clip((y1 / h * 1000, x1 / w * 1000, y2 / h * 1000, x2 / w * 1000))


def to_pixels_xyxy(box: Sequence[float], size: Size) -> tuple[float, float, float, float]:
    """Gemini box → absolute [x1, y1, x2, y2] on an image of `size` (the seed's recipe)."""
    ymin, xmin, ymax, xmax = box
    w, h = size
    return (xmin / 1000 * w, ymin / 1000 * h, xmax / 1000 * w, ymax / 1000 * h)


def from_qwen2_5_vl(bbox_2d: Sequence[float], input_size: Size) -> GeminiBox:
    """Qwen2.5-VL: pixels on the resized input (image_grid_thw * patch_size)."""
    return from_pixels_xyxy(bbox_2d, input_size)


def from_qwen2_vl(bbox: Sequence[float]) -> GeminiBox:
    """Qwen2-VL / Qwen3-VL: 0-1000 [x1, y1, x2, y2]."""
    x1, y1, x2, y2 = bbox
    return clip((y1, x1, y2, x2))


from_qwen3_vl = from_qwen2_vl


def from_florence2(locs: Sequence[int]) -> GeminiBox:
    """Florence-2 <loc_x1><loc_y1><loc_x2><loc_y2>: bin N covers [N, N+1)/1000; take bin centres."""
    x1, y1, x2, y2 = (n + 0.5 for n in locs)
    return clip((y1, x1, y2, x2))


def from_owlv2(box: Sequence[float], padded_side: float, image_size: Size) -> GeminiBox:
    """OWLv2 boxes scaled to `padded_side` (the square the image was padded to) → Gemini on the image."""
    x1, y1, x2, y2 = box
    w, h = image_size
    return from_pixels_xyxy((x1 * max(w, h) / padded_side, y1 * max(w, h) / padded_side,
                             x2 * max(w, h) / padded_side, y2 * max(w, h) / padded_side), image_size)


# ---------------------------------------------------------------------------------- native text parsing

_NUM = r"-?\d+(?:\.\d+)?"
_BBOX_2D = re.compile(r'"?bbox_2d"?\s*:\s*\[\s*(' + _NUM + r')\s*,\s*(' + _NUM + r')\s*,\s*(' + _NUM + r')\s*,\s*('
                      + _NUM + r')\s*\]')
_LABEL_AFTER = re.compile(r'^[^{}]*?"label"\s*:\s*"([^"]*)"')
_LABEL_BEFORE = re.compile(r'"label"\s*:\s*"([^"]*)"[^{}]*$')
_QWEN2_BOX = re.compile(r"(?:<\|object_ref_start\|>(.*?)<\|object_ref_end\|>)?\s*<\|box_start\|>\s*\(\s*(" + _NUM
                        + r")\s*,\s*(" + _NUM + r")\s*\)\s*,\s*\(\s*(" + _NUM + r")\s*,\s*(" + _NUM
                        + r")\s*\)\s*<\|box_end\|>")
_FLORENCE = re.compile(r"([^<]*)((?:<loc_\d+>){4})")


def parse_bbox_2d(text: str) -> list[tuple[str, list[float]]]:
    """Qwen2.5-VL / Qwen3-VL JSON answers: every {"bbox_2d": [...], "label": "..."}."""
    out = []
    for m in _BBOX_2D.finditer(text):
        label = _LABEL_AFTER.search(text[m.end():]) or _LABEL_BEFORE.search(text[:m.start()])
        out.append((label.group(1) if label else "", [float(g) for g in m.groups()]))
    return out


def parse_qwen2_vl(text: str) -> list[tuple[str, list[float]]]:
    """Qwen2-VL special-token boxes: <|object_ref_start|>cat<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>."""
    return [((m.group(1) or "").strip(), [float(g) for g in m.groups()[1:]]) for m in _QWEN2_BOX.finditer(text)]


def parse_florence2(text: str) -> list[tuple[str, list[int]]]:
    """Florence-2 grounding text: "label<loc_a><loc_b><loc_c><loc_d>..."."""
    out = []
    for m in _FLORENCE.finditer(text):
        locs = [int(n) for n in re.findall(r"<loc_(\d+)>", m.group(2))]
        out.append((m.group(1).strip(), locs))
    return out


def native_detections(text: str, family: str, input_size: Size, image: int = 0) -> list[Detection]:
    """Parse a family's native grounding answer into Gemini-convention detections."""
    if family == "qwen2_5_vl":
        return [Detection(label, from_qwen2_5_vl(b, input_size), image=image) for label, b in parse_bbox_2d(text)]
    if family in ("qwen2_vl",):
        return [Detection(label, from_qwen2_vl(b), image=image) for label, b in parse_qwen2_vl(text)]
    if family in ("qwen3_vl",):
        return [Detection(label, from_qwen3_vl(b), image=image) for label, b in parse_bbox_2d(text)]
    if family == "florence2":
        return [Detection(label, from_florence2(b), image=image) for label, b in parse_florence2(text)]
    return []


# ---------------------------------------------------------------------------------- Gemini answers

def box_text(box: GeminiBox) -> str:
    return "[" + ", ".join(str(v) for v in box) + "]"


def to_gemini_text(detections: Sequence[Detection], images: int = 1) -> str:
    """Plain-text answer: one box alone as "[ymin, xmin, ymax, xmax]", otherwise one labelled line each."""
    if not detections:
        return "No matching object was found."
    if len(detections) == 1 and images == 1:
        return box_text(detections[0].box)
    lines = []
    for d in detections:
        where = f"image {d.image + 1}, " if images > 1 else ""
        lines.append(f"{where}{d.label}: {box_text(d.box)}".strip())
    return "\n".join(lines)


def to_box_2d(detections: Sequence[Detection], fields: Sequence[str] = ("box_2d", "label")) -> list[dict]:
    """Gemini's JSON convention: [{"box_2d": [ymin, xmin, ymax, xmax], "label": "..."}]."""
    out = []
    for d in detections:
        item: dict = {}
        for name in fields:
            if name == "box_2d":
                item["box_2d"] = list(d.box)
            elif name == "label":
                item["label"] = d.label
        out.append(item)
    return out


def to_json_text(detections: Sequence[Detection], schema: dict | None = None) -> str:
    """JSON answer shaped by a responseSchema when it asks for an object or an array of box_2d items."""
    if schema and schema.get("type") == "object":
        props = schema.get("properties", {})
        if "box_2d" in props:
            items = to_box_2d(detections[:1], [k for k in props if k in ("box_2d", "label")])
            return json.dumps(items[0] if items else {})
        for name, sub in props.items():  # {"objects": [{"box_2d":..., "label":...}]}
            if sub.get("type") == "array":
                fields = [k for k in (sub.get("items") or {}).get("properties", {}) if k in ("box_2d", "label")]
                return json.dumps({name: to_box_2d(detections, fields or ("box_2d", "label"))})
    if schema and schema.get("type") == "array":
        fields = [k for k in (schema.get("items") or {}).get("properties", {}) if k in ("box_2d", "label")]
        return json.dumps(to_box_2d(detections, fields or ("box_2d", "label")))
    return json.dumps(to_box_2d(detections))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
