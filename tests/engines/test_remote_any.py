"""The remote-engine checks against any engine a user (or a GPU machine) has:

    POLLUX_TEST_ENGINE_URL=http://gpu-box:8000/v1 [POLLUX_TEST_ENGINE_MODEL=name] pytest tests/engines/test_remote_any.py

A real `pollux serve --engine-url` in front of it: images, video frames, streaming, JSON schema, concurrent
streams and a client that hangs up. Real models answer for real; only shape is asserted.
"""

from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import H
from tests.fixtures.openai_servers import image_request, png_b64
from tests.fixtures.server import Server

URL = os.environ.get("POLLUX_TEST_ENGINE_URL")
pytestmark = [pytest.mark.skipif(not URL, reason="set POLLUX_TEST_ENGINE_URL to an OpenAI-compatible server"),
              pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def pollux(tmp_path_factory):
    env = {"POLLUX_ENGINE_URL": URL or ""}
    if os.environ.get("POLLUX_TEST_ENGINE_MODEL"):
        env["POLLUX_ENGINE_MODEL"] = os.environ["POLLUX_TEST_ENGINE_MODEL"]
    with Server(tmp_path_factory.mktemp("pollux"), emulator=False, env=env) as server:
        yield server


def _post(pollux, body, verb="generateContent") -> httpx.Response:
    return httpx.post(f"{pollux.url}/v1beta/models/gemini-2.5-flash:{verb}", json=body, headers=H, timeout=300)


def _stream(pollux, body) -> list[dict]:
    with httpx.stream("POST", f"{pollux.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                      json=body, headers=H, timeout=300) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


def test_image(pollux):
    r = _post(pollux, image_request(image=png_b64(noise=3, size=(320, 240)), maxOutputTokens=32))
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert r.json()["usageMetadata"]["promptTokenCount"] > 0


def test_video_frames(pollux, tmp_path):
    from tests.fixtures.media import write_video

    video = write_video(tmp_path / "v.mp4", seconds=3.0, fps=10, size=(160, 120))
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "video/mp4",
                                                    "data": base64.b64encode(video.read_bytes()).decode()}},
                                    {"text": "What changes between 00:00 and 00:02?"}]}],
            "generationConfig": {"maxOutputTokens": 32}}
    r = _post(pollux, body)
    assert r.status_code == 200, r.text
    assert any(d["modality"] == "VIDEO" for d in r.json()["usageMetadata"]["promptTokensDetails"])


def test_streaming(pollux):
    events = _stream(pollux, image_request(maxOutputTokens=48))
    assert events and events[-1]["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS")
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] >= 1


def test_json_schema(pollux):
    schema = {"type": "OBJECT", "properties": {"colour": {"type": "STRING"}, "count": {"type": "INTEGER"}},
              "required": ["colour", "count"]}
    r = _post(pollux, image_request("Main colour, and how many objects?", responseMimeType="application/json",
                                    responseSchema=schema, maxOutputTokens=200))
    assert r.status_code == 200, r.text
    answer = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert isinstance(answer["colour"], str) and isinstance(answer["count"], int)


def test_concurrent_streams(pollux):
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: _stream(pollux, image_request(maxOutputTokens=32)), range(8)))
    assert all(run and "finishReason" in run[-1]["candidates"][0] for run in runs)


def test_hang_up_mid_stream(pollux):
    with httpx.stream("POST", f"{pollux.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                      json=image_request(maxOutputTokens=512), headers=H, timeout=300) as r:
        next(line for line in r.iter_lines() if line.startswith("data: "))
    assert _post(pollux, image_request(maxOutputTokens=8)).status_code == 200  # the engine is still fine
