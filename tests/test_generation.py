"""Where a request is prepared: on the event loop when it is light (text, inline images prepared already, an engine
that counts by arithmetic), in a worker thread otherwise (GenerationService._light)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from pollux.generation import LIGHT_REQUEST_BYTES, GenerationService
from tests.conftest import H, png_bytes


@pytest.fixture
def where(monkeypatch):
    """'loop' or 'thread' for each `_prepare` call, in order."""
    seen: list[str] = []
    real = GenerationService._prepare

    def recording(self, *args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen.append("loop")
        except RuntimeError:  # worker threads run no event loop
            seen.append("thread")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationService, "_prepare", recording)
    return seen


def _image_body(png: bytes, text: str = "What is this?") -> dict:
    return {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}},
                                    {"text": text}]}]}


def test_text_and_a_known_image_are_prepared_on_the_loop(client, where):
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H,
                    json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert r.status_code == 200, r.text
    png = png_bytes(32, 24, (10, 200, 30))
    for _ in range(2):  # first sight decodes the image (a thread); the same bytes again are a cache hit
        r = client.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", headers=H, json=_image_body(png))
        assert r.status_code == 200 and "data: " in r.text, r.text
    assert where == ["loop", "thread", "loop"]
    # The same answer either way (the emulator describes what it was given).
    again = client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H, json=_image_body(png))
    assert where[-1] == "loop"
    assert "image" in again.json()["candidates"][0]["content"]["parts"][0]["text"]


def test_heavy_or_stored_work_goes_to_a_thread(client, where):
    png = png_bytes(16, 16)
    client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H, json=_image_body(png))  # now known
    where.clear()
    # countTokens (a tokenizer or server may count), a long text, and a File API reference all take the hop.
    r = client.post("/v1beta/models/gemini-2.5-flash:countTokens", headers=H, json=_image_body(png))
    assert r.status_code == 200, r.text
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H,
                    json=_image_body(png, "x " * (LIGHT_REQUEST_BYTES // 2 + 1)))
    assert r.status_code in (200, 400), r.text  # past the model's context, maybe: counted in the thread either way
    up = client.post("/upload/v1beta/files", headers={**H, "X-Goog-Upload-Protocol": "raw", "Content-Type": "image/png"},
                     content=png)
    assert up.status_code == 200, up.text
    uri = up.json()["file"]["uri"]
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H, json={"contents": [{"parts": [
        {"fileData": {"fileUri": uri, "mimeType": "image/png"}}, {"text": "and this?"}]}]})
    assert r.status_code == 200, r.text
    assert where == ["thread", "thread", "thread"]


def test_errors_are_the_same_on_the_loop(client, where):
    png = png_bytes(16, 16)
    client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H, json=_image_body(png))
    body = _image_body(png)
    body["contents"][0]["parts"][0]["inlineData"]["mimeType"] = "image/jpeg"  # the bytes are a PNG
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H, json=body)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", r.text
    assert where[-1] == "thread"  # not a known image: refused where it always was
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=H,
                    json={"contents": [{"role": "robot", "parts": [{"text": "hi"}]}]})
    assert r.status_code == 400
