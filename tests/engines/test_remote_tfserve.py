"""The remote engine against a second implementation: `transformers serve` (its own venv, transformers 5)
on the tiny random LLaVA. Replicas (one dead), streaming, video frames + transcript, the local estimate
where a server has no /tokenize, and an engine that is absent when Pollux starts."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import pytest
from PIL import Image as PILImage

from tests.conftest import H, png_bytes
from tests.fixtures.openai_servers import OpenAIServer, build_llava, ensure_venv
from tests.fixtures.server import Server, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return build_llava(tmp_path_factory.mktemp("llava") / "llava")


@pytest.fixture(scope="module")
def tfserve(llava, tmp_path_factory):
    ensure_venv("tfserve")
    with OpenAIServer("tfserve", llava, tmp_path_factory.mktemp("tfserve-log") / "tfserve.log").start() as server:
        yield server


@pytest.fixture(scope="module")
def dead_url():
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture(scope="module")
def pollux(tfserve, dead_url, tmp_path_factory):
    data = tmp_path_factory.mktemp("pollux")
    catalog = data / "catalog.toml"
    catalog.write_text(f'''[[models]]
id = "tf-llava"
engine = "openai"
source = ["{dead_url}", "{tfserve.url}"]
aliases = ["gemini-2.0-flash"]
input_token_limit = 2048
options = {{ model = "{tfserve.model}", connect_timeout = 2 }}
''')
    with Server(data, emulator=False, env={"POLLUX_CATALOG_FILE": str(catalog)}) as server:
        yield server


def _body(max_tokens=12, **extra) -> dict:
    image = base64.b64encode(png_bytes(80, 60)).decode()
    return {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": image}},
                                    {"text": "Describe this image."}]}],
            "generationConfig": {"maxOutputTokens": max_tokens, **extra}}


def test_image_through_replicas_skipping_the_dead_one(pollux, dead_url, tfserve):
    for _ in range(3):
        r = httpx.post(f"{pollux.url}/v1beta/models/gemini-2.0-flash:generateContent", json=_body(), headers=H,
                       timeout=120)
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["candidates"][0]["content"]["parts"][0]["text"], str)
    assert r.headers["x-pollux-native-token-source"] == "server"  # the prompt's count in the server's usage
    counted = httpx.post(f"{pollux.url}/v1beta/models/gemini-2.0-flash:countTokens", json=_body(), headers=H, timeout=60)
    assert counted.headers["x-pollux-native-token-source"] == "estimate"  # no /tokenize on this server
    replicas = httpx.get(f"{pollux.url}/v1beta/models/tf-llava", headers=H).json()["polluxRuntime"]["remote"]["replicas"]
    health = {rep["url"]: rep for rep in replicas}
    assert health[dead_url]["healthy"] is False and "refused" in health[dead_url]["lastError"]
    assert health[tfserve.url]["healthy"] is True
    assert all(rep["outstanding"] == 0 for rep in replicas)


def test_streaming_sse(pollux):
    with httpx.stream("POST", f"{pollux.url}/v1beta/models/tf-llava:streamGenerateContent?alt=sse",
                      json=_body(24), headers=H, timeout=120) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert len(events) >= 2
    assert events[-1]["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS")
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] >= 1


def test_video_frames_and_transcript_direct(tfserve, tmp_path):
    """The engine itself (thread-side `generate`) with a video prompt as prompt.py builds it."""
    from pollux.catalog import ModelEntry
    from pollux.engines.base import GenerationParams
    from pollux.engines.remote import RemoteEngine
    from pollux.prompt_types import Image, Prompt, Text, Turn
    from pollux.settings import Settings

    entry = ModelEntry(id="tf", display_name="tf", description="", engine="openai", source=tfserve.url, family="",
                       options={"model": tfserve.model})
    engine = RemoteEngine(entry, Settings(data_dir=tmp_path))
    segments = []
    for t, grey in ((0.0, 40), (1.0, 200)):
        segments += [Text(f"00:0{int(t)}", modality="VIDEO"),
                     Image(PILImage.new("RGB", (64, 48), (grey,) * 3), (640, 480), modality="VIDEO", timestamp=t),
                     Text(f"Speech [00:0{int(t)}-00:0{int(t) + 1}]: hello {int(t)}", modality="AUDIO")]
    prompt = Prompt([Turn("user", segments + [Text("What is said at 00:01?")])])
    deltas = list(engine.generate(prompt, GenerationParams(max_output_tokens=8), threading.Event()))
    assert deltas[-1].finish_reason in ("STOP", "MAX_TOKENS") and deltas[-1].output_tokens >= 1
    assert engine.info()["remote"]["replicas"][0]["healthy"] is True


def test_engine_absent_at_start_up(tfserve, llava, tmp_path):
    """Pollux starts without its engine: 503 naming it; once the engine is up, the same request answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with Server(tmp_path / "p", emulator=False, env={"POLLUX_ENGINE_URL": url}) as pollux:
        r = httpx.post(f"{pollux.url}/v1beta/models/gemini-2.5-flash:generateContent", json=_body(), headers=H,
                       timeout=60)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["status"] == "UNAVAILABLE" and url in r.json()["error"]["message"]
        with OpenAIServer("tfserve", llava, tmp_path / "late.log", port=port).start():
            r = httpx.post(f"{pollux.url}/v1beta/models/gemini-2.5-flash:generateContent", json=_body(), headers=H,
                           timeout=120)
            assert r.status_code == 200, r.text
