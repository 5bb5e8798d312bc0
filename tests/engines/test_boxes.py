"""Box conversion per model family on non-square images: native output → Gemini → pixels, IoU >= 0.99."""

from __future__ import annotations

import json

import pytest

from pollux.engines import boxes

SIZES = [(1600, 900), (600, 1000), (777, 333)]  # (width, height), none square
# True boxes as fractions of the image: (x1, y1, x2, y2).
FRACTIONS = [(0.10, 0.20, 0.45, 0.70), (0.50, 0.05, 0.95, 0.40), (0.30, 0.55, 0.62, 0.98)]


def _truth(size, frac):
    w, h = size
    return (frac[0] * w, frac[1] * h, frac[2] * w, frac[3] * h)


def _back(box, size):
    return boxes.to_pixels_xyxy(box, size)


def _cases():
    return [(size, frac) for size in SIZES for frac in FRACTIONS]


@pytest.mark.parametrize("size,frac", _cases())
def test_qwen2_5_vl_absolute_pixels_on_resized_input(size, frac):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    # The prepare step scales the original (seed rule), then Qwen's processor resizes again.
    w, h = size
    rh, rw = smart_resize(h, w, factor=28, min_pixels=56 * 56, max_pixels=1280 * 28 * 28)
    truth = _truth(size, frac)
    native = [round(truth[0] * rw / w), round(truth[1] * rh / h), round(truth[2] * rw / w), round(truth[3] * rh / h)]
    text = '```json\n[\n\t{"bbox_2d": ' + json.dumps(native) + ', "label": "cat"}\n]\n```'
    found = boxes.native_detections(text, "qwen2_5_vl", (rw, rh))
    assert [d.label for d in found] == ["cat"]
    assert boxes.iou(_back(found[0].box, size), truth) >= 0.99


@pytest.mark.parametrize("size,frac", _cases())
def test_qwen2_vl_normalised_1000_with_special_tokens(size, frac):
    truth = _truth(size, frac)
    w, h = size
    x1, y1, x2, y2 = (round(truth[0] / w * 1000), round(truth[1] / h * 1000), round(truth[2] / w * 1000),
                      round(truth[3] / h * 1000))
    text = f"<|object_ref_start|>the dog<|object_ref_end|><|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"
    found = boxes.native_detections(text, "qwen2_vl", size)
    assert found[0].label == "the dog"
    assert boxes.iou(_back(found[0].box, size), truth) >= 0.99


@pytest.mark.parametrize("size,frac", _cases())
def test_qwen3_vl_json_normalised_1000(size, frac):
    truth = _truth(size, frac)
    w, h = size
    native = [round(truth[0] / w * 1000), round(truth[1] / h * 1000), round(truth[2] / w * 1000),
              round(truth[3] / h * 1000)]
    text = json.dumps([{"label": "car", "bbox_2d": native}])
    found = boxes.native_detections(text, "qwen3_vl", size)
    assert found[0].label == "car"
    assert boxes.iou(_back(found[0].box, size), truth) >= 0.99


@pytest.mark.parametrize("size,frac", _cases())
def test_florence2_location_tokens(size, frac):
    truth = _truth(size, frac)
    w, h = size
    locs = [min(999, int(truth[0] / w * 1000)), min(999, int(truth[1] / h * 1000)),
            min(999, int(truth[2] / w * 1000)), min(999, int(truth[3] / h * 1000))]
    text = "piranha" + "".join(f"<loc_{n}>" for n in locs)
    found = boxes.native_detections(text, "florence2", size)
    assert found[0].label == "piranha"
    assert boxes.iou(_back(found[0].box, size), truth) >= 0.99


@pytest.mark.parametrize("size,frac", _cases())
def test_owlv2_padded_square(size, frac):
    # OWLv2 pads bottom/right to a square, then predicts on a 960x960 input.
    truth = _truth(size, frac)
    side = max(size)
    native = [v * 960 / side for v in truth]
    box = boxes.from_owlv2(native, 960, size)
    assert boxes.iou(_back(box, size), truth) >= 0.99


def test_clip_orders_and_bounds():
    assert boxes.clip((-20, 1200, 500, 300)) == (0, 300, 500, 1000)
    assert boxes.from_pixels_xyxy((-5, -5, 2000, 50), (1000, 100)) == (0, 0, 500, 1000)
    assert boxes.from_qwen2_vl((900, 100, 50, 1500)) == (100, 50, 1000, 900)


def test_gemini_answers():
    one = [boxes.Detection("piranha", (100, 200, 300, 400))]
    assert boxes.to_gemini_text(one) == "[100, 200, 300, 400]"
    two = one + [boxes.Detection("fish", (0, 0, 10, 10), image=1)]
    assert boxes.to_gemini_text(two, images=2) == "image 1, piranha: [100, 200, 300, 400]\nimage 2, fish: [0, 0, 10, 10]"
    assert json.loads(boxes.to_json_text(two)) == [{"box_2d": [100, 200, 300, 400], "label": "piranha"},
                                                   {"box_2d": [0, 0, 10, 10], "label": "fish"}]
    schema = {"type": "object", "properties": {"box_2d": {"type": "array"}}}
    assert json.loads(boxes.to_json_text(one, schema)) == {"box_2d": [100, 200, 300, 400]}
    assert boxes.to_gemini_text([]) == "No matching object was found."
