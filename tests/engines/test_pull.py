"""Pull on first use (engines/pull.py): a model whose weights are absent is downloaded from the hub the first
time a request needs it, requests meanwhile answer 503 UNAVAILABLE with the progress, then the model answers.
The hub is a real HTTP server (tests/fixtures/fake_hub.py) that `huggingface_hub` reaches through HF_ENDPOINT."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.fixtures.fake_hub import FakeHub
from tests.fixtures.server import Server, free_port

REPO = "pollux-tests/tiny-smolvlm"
BODY = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 3}}
H = {"x-goog-api-key": "test-key"}


def _server(tmp_path, hub_url: str, *flags: str) -> Server:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[[models]]\nid = "tiny"\ndisplay_name = "Tiny"\ndescription = "pulled on first use"\n'
                       f'engine = "transformers"\nsource = "{REPO}"\nfamily = "smolvlm"\n')
    env = {"POLLUX_CATALOG_FILE": str(catalog), "HF_ENDPOINT": hub_url, "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_XET": "1", "TRANSFORMERS_OFFLINE": "1"}
    server = Server(tmp_path / "data", emulator=False, env=env)
    server.args += list(flags)
    return server


def _ask(server: Server) -> httpx.Response:
    return httpx.post(f"{server.url}/v1beta/models/tiny:generateContent", headers=H, json=BODY, timeout=120)


def test_absent_weights_are_pulled_on_first_use_503_with_progress_then_answered(tmp_path, tiny_smolvlm):
    with FakeHub({REPO: tiny_smolvlm}) as hub, _server(tmp_path, hub.url) as server:
        hub.gate.clear()  # the weights stop halfway: the download stays in progress
        first = _ask(server)
        assert first.status_code == 503, first.text
        error = first.json()["error"]
        assert error["status"] == "UNAVAILABLE" and "being downloaded" in error["message"], error
        assert re.search(r"\d+% \(\d+\.\d of \d+\.\d MB", error["message"]), error["message"]
        deadline = time.monotonic() + 30  # half the weights arrive: the progress moves past 0%
        while re.search(r": 0% ", (r := _ask(server)).json()["error"]["message"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 503 and not re.search(r": 0% ", r.json()["error"]["message"]), r.text
        hub.gate.set()
        deadline = time.monotonic() + 120
        while (r := _ask(server)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert r.status_code == 200, r.text
        assert r.json()["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS")
        assert (tmp_path / "data" / "models" / "tiny" / ".pollux-pull.json").is_file()
        assert sum(f"/{REPO}/resolve/" in q and q.startswith("GET") for q in hub.requests) >= 2


@pytest.mark.parametrize("case", ["no-pull", "unreachable"])
def test_without_pulling_the_error_names_pollux_pull(tmp_path, tiny_smolvlm, case):
    with FakeHub({REPO: tiny_smolvlm}) as hub:
        url = hub.url if case == "no-pull" else f"http://127.0.0.1:{free_port()}"  # nothing listens there
        with _server(tmp_path, url, *(["--no-pull"] if case == "no-pull" else [])) as server:
            r = _ask(server)
            error = r.json()["error"]
            assert r.status_code == 400 and error["status"] == "FAILED_PRECONDITION", r.text
            assert "`pollux pull tiny`" in error["message"]
            if case == "no-pull":
                assert hub.requests == []  # the hub is never asked
            else:
                assert "downloading them on first use failed" in error["message"]
