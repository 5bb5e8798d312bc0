"""Faults no real server produces on demand: a broken answer (→ 500 INTERNAL, the cause logged), a
server error before the first token (→ retried on the next replica), an engine that is not there (→ 503).
A few lines of http.server play the broken engine; everything else is the real app in-process."""

from __future__ import annotations

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import H, png_bytes
from tests.fixtures.server import free_port


class _Engine(BaseHTTPRequestHandler):
    mode = "broken"  # set per server class
    calls = 0

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if not self.path.endswith("/chat/completions"):  # no /tokenize here
            self.send_response(404)
            self.end_headers()
            return
        type(self).calls += 1
        if self.mode == "down":
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "overloaded"}}')
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        if self.mode == "broken":
            self.wfile.write(b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\ndata: {not json\n\n')
        else:
            chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")


def _serve(mode: str):
    handler = type(f"Engine_{mode}", (_Engine,), {"mode": mode, "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler, f"http://127.0.0.1:{server.server_port}/v1"


@pytest.fixture
def engines():
    started = {mode: _serve(mode) for mode in ("broken", "down", "good")}
    yield started
    for server, _, _ in started.values():
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(make_client, tmp_path, engines):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'''
[[models]]
id = "broken"
engine = "openai"
source = "{engines['broken'][2]}"
options = {{ model = "m" }}

[[models]]
id = "flaky"
engine = "openai"
source = ["{engines['down'][2]}", "{engines['good'][2]}"]
options = {{ model = "m" }}

[[models]]
id = "absent"
engine = "openai"
source = "{dead}"
options = {{ model = "m", retries = 1, connect_timeout = 1 }}
''')
    return make_client(emulator=False, catalog_file=catalog)


def _body() -> dict:
    return {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png",
                                                    "data": base64.b64encode(png_bytes(16, 16)).decode()}},
                                    {"text": "hi"}]}]}


def test_malformed_answer_is_internal_with_the_cause_logged(client, caplog):
    with caplog.at_level(logging.ERROR, logger="pollux.engines.remote"):
        r = client.post("/v1beta/models/broken:generateContent", json=_body(), headers=H)
    assert r.status_code == 500 and r.json()["error"]["status"] == "INTERNAL"
    assert "malformed" in r.json()["error"]["message"]
    assert any("not JSON" in rec.getMessage() for rec in caplog.records)


def test_server_error_before_the_first_token_goes_to_the_next_replica(client, engines):
    for _ in range(2):
        r = client.post("/v1beta/models/flaky:generateContent", json=_body(), headers=H)
        assert r.status_code == 200, r.text
        assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "ok"
    assert engines["down"][1].calls == 1  # tried once, then skipped while marked unhealthy
    replicas = client.get("/v1beta/models/flaky", headers=H).json()["polluxRuntime"]["remote"]["replicas"]
    assert [rep["healthy"] for rep in replicas] == [False, True]
    assert "503" in replicas[0]["lastError"]


def test_absent_engine_is_unavailable_naming_it(client):
    r = client.post("/v1beta/models/absent:generateContent", json=_body(), headers=H)
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["status"] == "UNAVAILABLE" and "absent" in err["message"] and "127.0.0.1" in err["message"]
    r = client.post("/v1beta/models/absent:streamGenerateContent?alt=sse", json=_body(), headers=H)
    assert r.status_code == 503, r.text  # before the first token: the stream's own status, as Gemini's 503
    assert r.json()["error"]["status"] == "UNAVAILABLE" and "absent" in r.json()["error"]["message"]


def test_replicas_balanced_by_outstanding_requests(tmp_path):
    from pollux.catalog import ModelEntry
    from pollux.engines.remote import RemoteEngine
    from pollux.settings import Settings

    entry = ModelEntry(id="r", display_name="r", description="", engine="openai", family="",
                       source=("http://a/v1", "http://b/v1", "http://c/v1"), options={"model": "m"})
    engine = RemoteEngine(entry, Settings(data_dir=tmp_path))
    picked = [engine._pick(set()).url for _ in range(6)]  # none released: each goes to the least loaded
    assert sorted(picked) == sorted(["http://a/v1", "http://b/v1", "http://c/v1"] * 2)
    engine._mark(engine.replicas[0], False, "down")
    for replica in engine.replicas:
        replica.outstanding = 0
    assert {engine._pick(set()).url for _ in range(4)} == {"http://b/v1", "http://c/v1"}  # the failing one skipped
    assert engine.info()["remote"]["replicas"][0]["healthy"] is False
