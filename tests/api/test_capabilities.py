"""Capabilities enforced once, above the engines: an engine that does not declare one is never handed a
request needing it; the client gets Gemini's 400 INVALID_ARGUMENT naming the capability and the model."""

from __future__ import annotations

import base64

import pytest

from tests.api.helpers import assert_error, upload
from tests.conftest import H, png_bytes
from tests.fixtures.media import write_video

URL = "/v1beta/models/plain"


@pytest.fixture
def plain(make_client, tmp_path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "plain"\ndisplay_name = "Plain"\ndescription = "declares little"\n'
                       'engine = "tests.fixtures.plain_engine:PlainEngine"\nsource = "none"\nfamily = "test"\n')
    return make_client(emulator=False, catalog_file=catalog)


def _png(w=8, h=8) -> dict:
    return {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png_bytes(w, h)).decode()}}


def _jpeg() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "JPEG")
    return out.getvalue()


def _post(client, body, verb="generateContent", query=""):
    return client.post(f"{URL}:{verb}{query}", headers=H, json=body)


def _capability(r, capability: str) -> str:
    err = assert_error(r, 400, "INVALID_ARGUMENT", f"'{capability}'")
    assert "plain" in err["message"]  # the model named
    return err["message"]


def test_within_its_capabilities_it_answers(plain):
    r = _post(plain, {"contents": [{"parts": [_png(), {"text": "what is it?"}]}]})
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "plain answer (1 image)"


def test_response_schema_without_json_schema_is_refused_not_ignored(plain):
    config = {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {
        "name": {"type": "STRING"}}}}
    r = _post(plain, {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": config})
    assert "responseSchema" in _capability(r, "json_schema")
    json_schema = {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}
    _capability(_post(plain, {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": json_schema}),
                "json_schema")
    plain_json = {"responseMimeType": "application/json"}  # JSON without a schema needs no constraint
    assert _post(plain, {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": plain_json}).status_code == 200


def test_streaming_and_tools_and_mime_and_image_count(plain):
    text = {"contents": [{"parts": [{"text": "hi"}]}]}
    _capability(_post(plain, text, "streamGenerateContent", "?alt=sse"), "streaming")
    assert _post(plain, text, "countTokens").status_code == 200  # counting asks nothing of the engine
    tools = {**text, "tools": [{"functionDeclarations": [{"name": "f", "description": "d"}]}]}
    _capability(_post(plain, tools), "tools")
    f = upload(plain, _jpeg(), mime="image/jpeg")  # a stored file's type is known only once it is fetched
    _capability(_post(plain, {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"]}}, {"text": "?"}]}]}),
                "mime_types")
    _capability(_post(plain, {"contents": [{"parts": [_png(), _png(9, 9), {"text": "?"}]}]}), "max_images")


def test_the_server_wide_image_limit_counts_video_frames_too(make_client, tmp_path):
    client = make_client(max_images_per_request=3)
    url = "/v1beta/models/gemini-2.0-flash:generateContent"
    three = {"contents": [{"parts": [_png(), _png(9, 9), _png(10, 10), {"text": "?"}]}]}
    assert client.post(url, headers=H, json=three).status_code == 200
    video = base64.b64encode(write_video(tmp_path / "v.mp4", seconds=2.0).read_bytes()).decode()
    with_video = {"contents": [{"parts": [_png(), {"inlineData": {"mimeType": "video/mp4", "data": video}},
                                          {"text": "?"}]}]}  # 1 image + 2 frames at 1 fps: fits
    assert client.post(url, headers=H, json=with_video).status_code == 200
    with_video["contents"][0]["parts"].insert(0, _png(11, 11))
    assert_error(client.post(url, headers=H, json=with_video), 400, "INVALID_ARGUMENT", "4; at most 3 are allowed")


def test_the_emulator_declares_what_it_answers(client):
    """The emulator (the conformance suite's engine) keeps answering schemas, streams, video and audio."""
    from pollux.engines.emulator import EmulatorEngine

    caps = EmulatorEngine.capabilities
    assert caps.json_schema and caps.streaming and caps.video and caps.audio
    assert all(caps.accepts(m) for m in ("image/png", "video/mp4", "audio/wav", "audio/mpeg"))
    config = {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {
        "n": {"type": "INTEGER"}}}}
    r = client.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", headers=H,
                    json={"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": config})
    assert r.status_code == 200 and "data: " in r.text
