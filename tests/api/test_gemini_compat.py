"""Today's Gemini code, unchanged: current model names, Gemini's own 400s, box intent in the system
instruction, honest limits (issue 11)."""

import base64
import json

import pytest
from pydantic.alias_generators import to_camel

from tests.api.helpers import assert_error
from tests.conftest import H, png_bytes
from tests.fixtures.media import write_video

TEXT = {"contents": [{"parts": [{"text": "hi"}]}]}


def _post(client, model: str, body: dict, verb="generateContent", version="v1beta"):
    return client.post(f"/{version}/models/{model}:{verb}", headers=H, json=body)


def _text(r) -> str:
    assert r.status_code == 200, r.text
    return r.json()["candidates"][0]["content"]["parts"][0]["text"]


# ---------------------------------------------------------------------------------- names

@pytest.mark.parametrize("model", ["gemini-3.5-flash", "gemini-3.7-flash", "gemini-3-flash-preview",
                                   "gemini-3-pro-preview", "gemini-3.1-flash-lite", "gemini-flash-lite-latest",
                                   "gemini-2.5-flash-preview-09-2025", "gemma-3-27b-it"])
def test_current_names_generate_and_get(client, model):
    r = _post(client, model, TEXT, version="v1")
    assert _text(r) and r.json()["modelVersion"] == model
    m = client.get(f"/v1/models/{model}", headers=H).json()
    assert m["name"] == f"models/{model}" and m["baseModelId"] == model  # echoes the name asked
    assert "generateContent" in m["supportedGenerationMethods"]


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha"])
def test_not_found_names_the_model_as_asked_and_the_version(client, version):
    err = assert_error(_post(client, "gpt-4-preview", TEXT, version=version), 404, "NOT_FOUND")
    assert err["message"].startswith(f"models/gpt-4-preview is not found for API version {version}, or is not "
                                     "supported for generateContent.")
    err = assert_error(client.get(f"/{version}/models/gpt-4-preview", headers=H), 404, "NOT_FOUND")
    assert f"models/gpt-4-preview is not found for API version {version}" in err["message"]


def test_strict_model_names_keep_geminis_exact_404(make_client):
    client = make_client(strict_model_names=True)
    err = assert_error(_post(client, "gpt-4", TEXT, verb="countTokens"), 404, "NOT_FOUND")
    assert err["message"] == ("models/gpt-4 is not found for API version v1beta, or is not supported for countTokens. "
                              "Call ListModels to see the list of available models and their supported methods.")
    assert _post(client, "gemini-3.5-flash", TEXT).status_code == 200


def test_models_of_other_jobs_say_what_pollux_serves(client):
    err = assert_error(_post(client, "gemini-embedding-001", TEXT), 404, "NOT_FOUND", "embedding model")
    assert "Pollux does not serve that kind of model" in err["message"]
    assert_error(client.get("/v1beta/models/imagen-4.0-generate-001", headers=H), 404, "NOT_FOUND",
                 "image generation")


def test_gemini_3_names_count_images_by_media_resolution(client):
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png_bytes(1000, 800)).decode()}}
    body = {"contents": [{"parts": [image]}]}

    def image_tokens(model, config=None, part_resolution=None):
        part = dict(image, **({"mediaResolution": {"level": part_resolution}} if part_resolution else {}))
        b = {"contents": [{"parts": [part]}], **({"generationConfig": config} if config else {})}
        r = _post(client, model, b, verb="countTokens")
        assert r.status_code == 200, r.text
        return {d["modality"]: d["tokenCount"] for d in r.json()["promptTokensDetails"]}["IMAGE"]

    assert image_tokens("gemini-2.5-flash") == 4 * 258  # 768-px tiles
    assert image_tokens("gemini-1.5-flash") == 258
    assert image_tokens("gemini-3.5-flash") == 1120  # HIGH, the default for images
    assert image_tokens("gemini-3.5-flash", {"mediaResolution": "MEDIA_RESOLUTION_LOW"}) == 280
    assert image_tokens("gemini-3.5-flash", {"mediaResolution": "MEDIA_RESOLUTION_LOW"},
                        "MEDIA_RESOLUTION_MEDIUM") == 560  # a part's own setting wins
    assert _post(client, "gemini-3.5-flash", body).status_code == 200


# ---------------------------------------------------------------------------------- Gemini's 400s

@pytest.mark.parametrize("body,message", [
    ({"generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_BOGUS"}},
     "Invalid value at 'generation_config.media_resolution' (type.googleapis.com/google.ai.generativelanguage.v1beta."
     "GenerationConfig.MediaResolution), \"MEDIA_RESOLUTION_BOGUS\""),
    ({"safetySettings": [{"category": "SMELL", "threshold": "BLOCK_NONE"}]},
     "Invalid value at 'safety_settings[0].category' (type.googleapis.com/google.ai.generativelanguage.v1beta."
     "HarmCategory), \"SMELL\""),
    ({"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_SOME"}]},
     "Invalid value at 'safety_settings[0].threshold' (type.googleapis.com/google.ai.generativelanguage.v1beta."
     "SafetySetting.HarmBlockThreshold), \"BLOCK_SOME\""),
    ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "EXTREME"}}},
     "Invalid value at 'generation_config.thinking_config.thinking_level' (type.googleapis.com/google.ai."
     "generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), \"EXTREME\""),
    ({"generationConfig": {"foo": 1}},
     "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field."),
    ({"temperature": 0.5}, "Invalid JSON payload received. Unknown name \"temperature\": Cannot find field."),
    ({"contents": [{"parts": [{"text": "hi", "txet": "typo"}]}]},
     "Invalid JSON payload received. Unknown name \"txet\" at 'contents[0].parts[0]': Cannot find field."),
    ({"generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}},
     "Model does not support the requested response modalities: image"),
    ({"generationConfig": {"responseModalities": ["AUDIO"]}},
     "Model does not support the requested response modalities: audio"),
])
def test_geminis_own_400s(client, body, message):
    err = assert_error(_post(client, "gemini-2.5-flash", {**TEXT, **body}), 400, "INVALID_ARGUMENT")
    assert err["message"] == message


def test_enum_errors_name_the_requests_api_version(client):
    body = {**TEXT, "generationConfig": {"mediaResolution": "NOPE"}}
    err = assert_error(_post(client, "gemini-2.5-flash", body, version="v1"), 400, "INVALID_ARGUMENT")
    assert "google.ai.generativelanguage.v1.GenerationConfig.MediaResolution" in err["message"]


def test_every_field_of_todays_sdk_types_is_accepted(client):
    """Each field google-genai knows, in Gemini's camelCase, set to null: accepted, honoured or not."""
    from google.genai import types

    config = {to_camel(f): None for f in types.GenerationConfig.model_fields}
    config["thinkingConfig"] = {to_camel(f): None for f in types.ThinkingConfig.model_fields}
    part = {to_camel(f): None for f in types.Part.model_fields if f not in ("inline_data", "file_data")}
    part["text"] = "hi"
    body = {"contents": [{"role": "user", "parts": [part]}], "generationConfig": config,
            "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF", "method": "SEVERITY"}],
            "toolConfig": None, "labels": None}
    r = _post(client, "gemini-2.5-flash", body)
    assert r.status_code == 200, r.text
    assert _post(client, "gemini-2.5-flash", {**TEXT, "generationConfig": {"responseModalities": ["TEXT"]}}) \
        .status_code == 200


@pytest.mark.parametrize("model,thinking,message", [
    ("gemini-2.5-pro", {"thinkingBudget": 0}, "Budget 0 is invalid. This model only works in thinking mode."),
    ("gemini-2.5-flash", {"thinkingLevel": "low"}, "Thinking level is not supported for this model."),
    ("gemini-3-pro-preview", {"thinkingLevel": "HIGH", "thinkingBudget": 1024},
     "You can only set only one of thinking budget and thinking level."),
])
def test_thinking_the_named_model_rejects(client, model, thinking, message):
    body = {**TEXT, "generationConfig": {"thinkingConfig": thinking}}
    err = assert_error(_post(client, model, body), 400, "INVALID_ARGUMENT")
    assert err["message"] == message
    assert _post(client, "gemini-2.5-flash", {**TEXT, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}) \
        .status_code == 200


# ---------------------------------------------------------------------------------- box intent

def test_box_request_in_the_system_instruction(client):
    """The cookbook's spatial-understanding call: the format in the system instruction, the object in the prompt."""
    import io

    from PIL import Image

    im = Image.new("RGB", (200, 100), (255, 255, 255))
    im.paste((20, 20, 200), (50, 25, 100, 75))  # the "socks": x 50-100, y 25-75
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    body = {"systemInstruction": {"parts": [{"text": "Return bounding boxes as a JSON array with labels. Never return "
                                                     "masks or code fencing. Limit to 25 objects."}]},
            "contents": [{"parts": [{"inlineData": {"mimeType": "image/png",
                                                    "data": base64.b64encode(buf.getvalue()).decode()}},
                                    {"text": "Show me the positions of the socks"}]}],
            "generationConfig": {"responseMimeType": "application/json"}}
    (box,) = json.loads(_text(_post(client, "gemini-3.5-flash", body)))
    assert box["label"] == "socks"
    assert all(abs(a - b) <= 5 for a, b in zip(box["box_2d"], [250, 250, 750, 500])), box  # resampling blurs edges
    body.pop("generationConfig")  # text answers carry the same boxes, as a JSON block
    text = _text(_post(client, "gemini-3.5-flash", body))
    assert json.dumps([box]) in text
    body["systemInstruction"] = {"parts": [{"text": "Be terse."}]}  # no box request anywhere: no boxes
    assert "box_2d" not in _text(_post(client, "gemini-3.5-flash", body))


# ---------------------------------------------------------------------------------- honest limits

@pytest.fixture
def small_context(make_client, tmp_path):
    """The default model with a 2,000-token context: a 20 s video must be thinned to fit."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "smolvlm2-256m"\ninput_token_limit = 2000\n')
    return make_client(catalog_file=catalog)


def test_thinned_video_is_reported_in_the_body_and_limits_agree(small_context, tmp_path):
    client = small_context
    video = write_video(tmp_path / "clip.mp4", seconds=20.0, fps=5, size=(64, 48)).read_bytes()
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "video/mp4", "data": base64.b64encode(video).decode()}},
                                    {"text": "What happens at 00:13?"}]}]}
    count = _post(client, "gemini-2.5-flash", body, verb="countTokens").json()
    limit = client.get("/v1beta/models/gemini-2.5-flash", headers=H).json()["inputTokenLimit"]
    assert 20 * 263 <= count["totalTokens"] <= limit  # models.get's limit is under the accounting countTokens reports
    r = _post(client, "gemini-2.5-flash", body)
    assert r.status_code == 200, r.text
    (report,) = r.json()["polluxThinning"]
    assert report["source"] == "inline[0]" and report["framesSampled"] == 20
    assert 1 < report["framesUsed"] < 20 and len(report["usedAt"]) == report["framesUsed"]
    assert "00:13" in report["usedAt"] and report["usedAt"][0] == "00:00"  # the mentioned moment is always kept
    assert count["polluxThinning"] == [report]
    frames = [line for line in _text(r).splitlines() if "video frame" in line]
    assert len(frames) == report["framesUsed"]  # what the report says is what the model was given
    stream = client.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", headers=H, json=body)
    last = json.loads([line for line in stream.text.splitlines() if line.startswith("data: ")][-1][6:])
    assert last["polluxThinning"] == [report]


def test_over_the_gemini_limit_is_geminis_400_but_counted(make_client, tmp_path):
    catalog = tmp_path / "tight.toml"
    catalog.write_text('[[models]]\nid = "smolvlm2-256m"\ngemini_input_token_limit = 1000\n')
    client = make_client(catalog_file=catalog)
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png_bytes(1600, 1600)).decode()}}
    body = {"contents": [{"parts": [image, {"text": "hi"}]}]}
    assert client.get("/v1beta/models/gemini-2.5-flash", headers=H).json()["inputTokenLimit"] == 1000
    assert _post(client, "gemini-2.5-flash", body, verb="countTokens").json()["totalTokens"] == 9 * 258 + 1
    err = assert_error(_post(client, "gemini-2.5-flash", body), 400, "INVALID_ARGUMENT")
    total = 9 * 258 + 1
    assert err["message"] == f"The input token count ({total}) exceeds the maximum number of tokens allowed (1000)."
