"""mediaResolution changes what the model sees (issue 12, part 2): the tiny real SmolVLM2 and Qwen2.5-VL
are given fewer image tokens at LOW than at HIGH, in their native count and in the prefill itself; the
remote mapping and the emulator downscale by the same table."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image as PILImage

from pollux.engines import openai_mapping, resolution
from pollux.engines.base import Capabilities
from pollux.engines.emulator import _describe
from pollux.media.prepared import PreparedImage
from pollux.prompt import assemble
from pollux.prompt_types import Image, MediaPart, Prompt, RequestTurn, Text, TextPart, Turn
from tests.engines.prepared import make_video

LOW, MEDIUM, HIGH = "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH"


def at(photo, level):
    return Prompt([Turn("user", [Image(photo, photo.size, resolution=level), Text("What is this?")])])


@pytest.fixture
def qwen_uncapped(qwen_engine):
    """The tiny Qwen with its processor's 16-token cap lifted to the released checkpoints' size, so the
    level's own pixel caps are what bind (as on Qwen2.5-VL, whose processor allows 16384 tokens)."""
    ip = qwen_engine.format.processor.image_processor
    saved = ip.size, ip.max_pixels
    ip.size, ip.max_pixels = {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 16384}, 28 * 28 * 16384
    yield qwen_engine
    ip.size, ip.max_pixels = saved


@pytest.mark.parametrize("name", ["smol_engine", "qwen_uncapped"])
def test_fewer_image_tokens_at_low_in_count_and_prefill(request, name, photos):
    engine = request.getfixturevalue(name)
    photo = photos["astronaut"].resize((1024, 768))
    counts = {level: engine.count_tokens(at(photo, level)) for level in (LOW, MEDIUM, HIGH)}
    assert counts[LOW] < counts[MEDIUM] < counts[HIGH], counts
    for level in (LOW, HIGH):  # the count is what the model is really given
        assert engine.format.encode(at(photo, level)).length == counts[level]


def test_assembly_resolves_the_part_override_else_the_global_level(photos):
    photo = photos["astronaut"]
    turns = [RequestTurn("user", [MediaPart(_prepared(photo), "image/png", "inline[0]", resolution=HIGH),
                                  MediaPart(_prepared(photo), "image/png", "inline[1]"), TextPart("?")])]
    caps = Capabilities(mime_types=frozenset({"image/*"}))
    images = assemble(turns, None, capabilities=caps, media_resolution=LOW).images()
    assert [im.resolution for im in images] == [HIGH, LOW]
    assert images[0].cache_key != images[1].cache_key  # features at one level are not another's
    assert [im.resolution for im in assemble(turns, None, capabilities=caps).images()] == [HIGH, None]


def _prepared(photo):
    return PreparedImage(photo, photo.size, "image/png", "abc")


def test_video_frames_follow_the_level_on_qwen(qwen_uncapped, tmp_path):
    qwen_engine = qwen_uncapped
    video = make_video(tmp_path, seconds=6, size=(640, 480), with_audio=False)
    turns = [RequestTurn("user", [MediaPart(video, "video/mp4", "files/v"), TextPart("?")])]
    caps = qwen_engine.capabilities
    low = assemble(turns, None, capabilities=caps, media_resolution=LOW)
    high = assemble(turns, None, capabilities=caps, media_resolution=HIGH)
    budget = qwen_engine.count_tokens(low)
    assert budget < qwen_engine.count_tokens(high)
    # The frame thinning counts at the level too: in a context that fits every LOW frame, HIGH keeps fewer.
    fit = lambda level: assemble(turns, None, capabilities=caps, media_resolution=level, token_budget=budget,  # noqa: E731
                                 count_tokens=qwen_engine.count_tokens)
    assert not fit(LOW).thinning
    assert len(fit(HIGH).images()) < len(low.images())


def test_remote_mapping_downscales_and_sends_detail(photos):
    photo = photos["astronaut"].resize((1280, 960))
    for level, edge, detail in ((LOW, 512, "low"), (MEDIUM, 1024, "high"), (None, 1280, None)):
        part = next(c for c in openai_mapping.messages(at(photo, level))[0]["content"] if c["type"] == "image_url")
        sent = PILImage.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))
        assert max(sent.size) == edge and part["image_url"].get("detail") == detail


def test_emulator_reports_the_size_given():
    img = PILImage.new("RGB", (1280, 960))
    assert _describe(Image(img, (1280, 960), resolution=LOW)).startswith("image 512x384 at LOW")
    assert _describe(Image(img, (1280, 960))).startswith("image 1280x960 (original")
    frame = Image(PILImage.new("RGB", (768, 432)), (1920, 1080), modality="VIDEO", timestamp=3.0, resolution=LOW)
    assert "video frame 256x144 at LOW" in _describe(frame)
    assert resolution.level("MEDIA_RESOLUTION_ULTRA_HIGH") == "HIGH"


@pytest.fixture
def smol_app(make_client, tmp_path, tiny_smolvlm):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "tiny-smol"\ndisplay_name = "tiny"\ndescription = "tiny"\n'
                       f'engine = "transformers"\nsource = "{tiny_smolvlm}"\nfamily = "smolvlm"\n'
                       'input_token_limit = 32768\noutput_token_limit = 8\n')
    return make_client(emulator=False, catalog_file=catalog, default_model="none")


def test_count_tokens_native_header_and_prefill_follow_the_level(smol_app, photos):
    from tests.conftest import H, ctx_of

    buf = io.BytesIO()
    photos["astronaut"].resize((1024, 768)).save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode()

    def body(level):
        return {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": data}},
                                                        {"text": "What is this?"}]}],
                "generationConfig": {"mediaResolution": level, "maxOutputTokens": 1, "temperature": 0}}

    native = {}
    for level in (LOW, HIGH):
        r = smol_app.post("/v1beta/models/tiny-smol:countTokens", headers=H, json=body(level))
        assert r.status_code == 200, r.text
        native[level] = int(r.headers["x-pollux-native-prompt-tokens"])
    assert native[LOW] < native[HIGH]
    engine = ctx_of(smol_app).engines.get(ctx_of(smol_app).catalog.entries["tiny-smol"])
    seen = []
    encode = engine.format.encode
    engine.format.encode = lambda prompt: seen.append(encode(prompt).length) or encode(prompt)
    try:
        r = smol_app.post("/v1beta/models/tiny-smol:generateContent", headers=H, json=body(LOW))
    finally:
        del engine.format.encode
    assert r.status_code == 200, r.text
    assert seen and seen[-1] == native[LOW]  # the prefill is what countTokens said
    assert r.json()["usageMetadata"]["promptTokensDetails"]  # Gemini-rule counts in the body, native in the header
