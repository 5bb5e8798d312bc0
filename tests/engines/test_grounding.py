"""Box requests: what is asked, and OWLv2 grounding (tiny random weights, real code path)."""

from __future__ import annotations

import threading

import pytest

from pollux.engines import boxes, grounding


@pytest.mark.parametrize("text,expected", [
    ("Return a bounding box for the piranha. \n [ymin, xmin, ymax, xmax]", ["piranha"]),
    ("Give me bounding boxes of all the cats and the dogs in the image.", ["cats", "dogs"]),
    ("Detect the red car, the bicycle and a traffic light.", ["red car", "bicycle", "traffic light"]),
    ("Where is the coffee cup? Answer with box_2d in JSON.", ["coffee cup"]),
    ("Draw a box around each person", ["person"]),
    ("bounding box please", ["object"]),
])
def test_phrases(text, expected):
    assert grounding.phrases(text) == expected


def test_is_box_request_and_json():
    assert grounding.is_box_request("Return a bounding box for the piranha. \n [ymin, xmin, ymax, xmax]")
    assert grounding.is_box_request("Draw a box around each person")
    assert not grounding.is_box_request("Describe this image.")
    assert not grounding.is_box_request("Detect the language of the sign.")  # "detect" alone asks for text
    assert grounding.is_box_request("Which objects?", {"type": "array", "items": {"properties": {"box_2d": {}}}})
    assert grounding.wants_json("Return box_2d for the cup", "text/plain")
    assert grounding.wants_json("Return a bounding box", "application/json")
    assert not grounding.wants_json("Return a bounding box for the cup", "text/plain")
    assert grounding.wants_many("boxes for every cat") and not grounding.wants_many("a box for the cat")


def test_owlv2_boxes_match_transformers_post_processing(tiny_owlv2, engine_settings, photos):
    import torch

    grounder = grounding.grounder_for(str(tiny_owlv2), engine_settings)
    image = photos["chelsea"]  # 180x240: OWLv2 pads it to 240x240
    found = grounder.detect(image, ["cat"])
    assert len(found) == 1 and found[0].label == "cat"
    # The same box as transformers' own post-processing scaled to the padded square, then clipped.
    inputs = grounder.processor(text=[["cat"]], images=image, return_tensors="pt")
    with torch.inference_mode():
        outputs = grounder.model(**inputs)
    side = max(image.size)
    ref = grounder.processor.post_process_grounded_object_detection(outputs, threshold=0.0,
                                                                    target_sizes=[(side, side)])[0]
    best = int(ref["scores"].argmax())
    assert found[0].box == boxes.from_pixels_xyxy(ref["boxes"][best].tolist(), image.size)
    many = grounder.detect(image, ["cat", "dog"], many=True, threshold=0.0)
    assert {d.label for d in many} == {"cat", "dog"}
    assert all(0 <= d.box[0] <= d.box[2] <= 1000 and 0 <= d.box[1] <= d.box[3] <= 1000 for d in many)


def test_missing_grounding_model_names_pollux_pull(tiny_smolvlm, tmp_path, monkeypatch, photos):
    from huggingface_hub import constants

    from pollux.catalog import ModelEntry
    from pollux.engines.base import GenerationParams
    from pollux.engines.transformers import TransformersEngine
    from pollux.errors import ModelUnavailable
    from pollux.prompt_types import BoxRequest, Image, Prompt, Text, Turn
    from pollux.settings import Settings

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    entry = ModelEntry(id="smol", display_name="smol", description="", engine="transformers",
                       source=str(tiny_smolvlm), family="smolvlm")
    engine = TransformersEngine(entry, Settings(data_dir=tmp_path))
    prompt = Prompt([Turn("user", [Image(photos["coffee"], (300, 200)), Text("Return a bounding box for the cup.")])],
                    boxes=BoxRequest(("cup",)))
    with pytest.raises(ModelUnavailable, match=r"grounding model.*`pollux pull owlv2-base`"):
        list(engine.generate(prompt, GenerationParams(), threading.Event()))
