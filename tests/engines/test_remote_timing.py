"""What Pollux adds in front of a remote engine, measured where it happens (pollux.request_timing): the
Server-Timing header and the pollux_remote_added_seconds histogram, against a real HTTP server speaking
vLLM's dialect (tests/fixtures/openai_servers.DialectServer). Consistency only, never wall-clock values."""

from __future__ import annotations

import json
import re

import pytest

from tests.fixtures.openai_servers import DialectServer, image_request, png_b64

H = {"x-goog-api-key": "test-key"}


@pytest.fixture
def upstream():
    with DialectServer("vllm", tokens=6) as s:
        yield s


@pytest.fixture
def client(make_client, tmp_path, upstream):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[[models]]\nid = "remote"\nengine = "openai"\nsource = "{upstream.url}"\n'
                       'options = { model = "tiny-vlm" }\n')
    return make_client(emulator=False, catalog_file=catalog)


def timings(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        m = re.fullmatch(r"\s*([a-z]+);dur=([0-9.]+)\s*", part)
        assert m, header
        out[m.group(1)] = float(m.group(2))
    return out


def metric(client, name: str, labels: str = "") -> float:
    text = client.get("/metrics").text
    line = next((ln for ln in text.splitlines() if ln.startswith(name + (f"{{{labels}}}" if labels else " "))), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


def test_server_timing_parts_sum_to_at_most_the_total(client, upstream):
    r = client.post("/v1beta/models/remote:generateContent", json=image_request(image=png_b64(noise=3)), headers=H)
    assert r.status_code == 200, r.text
    t = timings(r.headers["server-timing"])
    assert set(t) == {"media", "pre", "engine", "post", "total"}
    assert t["media"] > 0  # a first-sight image is decoded and encoded for the server
    assert t["media"] + t["pre"] + t["engine"] + t["post"] <= t["total"] + 0.01  # rounded to µs each
    assert t["engine"] > 0 and len(upstream.chat_requests()) == 1


def test_streamed_answer_observes_each_phase_once(client):
    phases = ("before", "after", "total")
    counts = {p: metric(client, "pollux_remote_added_seconds_count", f'phase="{p}"') for p in phases}
    media = metric(client, "pollux_remote_media_preparation_seconds_count")
    r = client.post("/v1beta/models/remote:streamGenerateContent?alt=sse", json=image_request(), headers=H)
    assert r.status_code == 200
    assert [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")][-1]["candidates"][0][
        "finishReason"] == "STOP"
    assert set(timings(r.headers["server-timing"])) == {"media", "total"}  # the header leaves before the upstream
    for p in phases:
        assert metric(client, "pollux_remote_added_seconds_count", f'phase="{p}"') == counts[p] + 1
    assert metric(client, "pollux_remote_media_preparation_seconds_count") == media + 1
    total = metric(client, "pollux_remote_added_seconds_sum", 'phase="total"')
    parts = sum(metric(client, "pollux_remote_added_seconds_sum", f'phase="{p}"') for p in ("before", "after"))
    assert total == pytest.approx(parts)


def test_requests_without_a_remote_engine_add_no_observation(make_client):
    client = make_client()  # the emulator engine
    before = metric(client, "pollux_remote_added_seconds_count", 'phase="total"')
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent",
                    json={"contents": [{"parts": [{"text": "hi"}]}]}, headers=H)
    assert r.status_code == 200
    assert set(timings(r.headers["server-timing"])) == {"media", "total"}
    assert metric(client, "pollux_remote_added_seconds_count", 'phase="total"') == before
