"""mediaResolution through the official google-genai SDK against a real `pollux serve --emulator`
(issue 12, part 2): the emulator's account shows the size each image is given at, and countTokens /
usageMetadata follow the level on every Gemini profile, the per-part override included."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.fixtures.server import Server

LOW, HIGH = "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_HIGH"


@pytest.fixture(scope="module")
def genai_client(tmp_path_factory):
    from google import genai
    from google.genai import types

    with Server(tmp_path_factory.mktemp("data")) as server:
        yield genai.Client(api_key="test-key",
                           http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))


@pytest.fixture(scope="module")
def png():
    buf = io.BytesIO()
    Image.new("RGB", (1280, 960), (30, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _ask(client, model, contents, level=None):
    from google.genai import types

    config = types.GenerateContentConfig(media_resolution=level) if level else None
    answer = client.models.generate_content(model=model, contents=contents, config=config)
    count = client.models.count_tokens(model=model, contents=contents)  # the SDK sends no generationConfig here
    return answer, count


def _image_tokens(answer) -> int:
    return {d.modality.name: d.token_count for d in answer.usage_metadata.prompt_tokens_details}["IMAGE"]


@pytest.mark.parametrize("model, low, high", [("gemini-2.5-flash", 64, 4 * 258), ("gemini-3-flash-preview", 280, 1120)])
def test_global_level_changes_the_prepared_size_and_the_count(genai_client, png, model, low, high):
    from google.genai import types

    contents = [types.Part.from_bytes(data=png, mime_type="image/png"), "What is this?"]
    at_low, _ = _ask(genai_client, model, contents, types.MediaResolution.MEDIA_RESOLUTION_LOW)
    at_high, _ = _ask(genai_client, model, contents, types.MediaResolution.MEDIA_RESOLUTION_HIGH)
    plain, count = _ask(genai_client, model, contents)
    assert "image 512x384 at LOW (original 1280x960)" in at_low.text
    assert "image 1280x960 at HIGH" in at_high.text
    assert "image 1280x960 (original 1280x960)" in plain.text
    assert (_image_tokens(at_low), _image_tokens(at_high)) == (low, high)
    assert plain.usage_metadata.prompt_token_count == count.total_tokens


def test_per_part_level_overrides_the_global_one(genai_client, png):
    from google.genai import types

    part = types.Part.from_bytes(data=png, mime_type="image/png")
    part.media_resolution = types.PartMediaResolution(level=types.PartMediaResolutionLevel.MEDIA_RESOLUTION_LOW)
    plain = types.Part.from_bytes(data=png, mime_type="image/png")
    answer, count = _ask(genai_client, "gemini-3-flash-preview", [part, plain, "Compare."],
                         types.MediaResolution.MEDIA_RESOLUTION_HIGH)
    first, second = [line for line in answer.text.splitlines() if "image " in line]
    assert "image 512x384 at LOW" in first and "image 1280x960 at HIGH" in second
    assert _image_tokens(answer) == 280 + 1120
    assert count.total_tokens == answer.usage_metadata.prompt_token_count  # the part's own level counts there too
