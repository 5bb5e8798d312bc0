"""A client that goes away mid-stream cancels its generation (seen from a real server process)."""

import time

import httpx

from tests.fixtures.server import Server


def test_dropped_stream_cancels_generation(tmp_path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "slow"\ndisplay_name = "Slow"\ndescription = "test"\n'
                       'engine = "tests.fixtures.slow_engine:SlowEngine"\nsource = "none"\nfamily = "test"\n')
    marker = tmp_path / "marker"
    env = {"POLLUX_CATALOG_FILE": str(catalog), "SLOW_ENGINE_MARKER": str(marker)}
    with Server(tmp_path / "data", emulator=False, env=env) as server:
        with httpx.stream("POST", f"{server.url}/v1beta/models/slow:streamGenerateContent?alt=sse",
                          headers={"x-goog-api-key": "test-key"},
                          json={"contents": [{"parts": [{"text": "go"}]}]}, timeout=30) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # one event, then hang up
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = marker.read_text()
        assert text.startswith("cancelled"), text
        assert int(text.split()[1]) < 100


def test_hanging_up_before_the_first_token_cancels_generation(tmp_path):
    """The first chunk is awaited before the response starts (so an early failure gets its HTTP status): a client
    that goes away meanwhile (a long prefill) cancels it there."""
    import socket

    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "slow"\ndisplay_name = "Slow"\ndescription = "test"\n'
                       'engine = "tests.fixtures.slow_engine:SlowEngine"\nsource = "none"\nfamily = "test"\n')
    marker = tmp_path / "marker"
    env = {"POLLUX_CATALOG_FILE": str(catalog), "SLOW_ENGINE_MARKER": str(marker), "SLOW_ENGINE_FIRST_DELAY": "30"}
    with Server(tmp_path / "data", emulator=False, env=env) as server:
        body = b'{"contents": [{"parts": [{"text": "go"}]}]}'
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1beta/models/slow:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: x\r\n"
                         b"x-goog-api-key: test-key\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
            time.sleep(1.0)  # the engine is in its first-token wait
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists() and marker.read_text() == "cancelled before the first token"


def test_count_tokens_does_not_queue_behind_a_running_generation(tmp_path):
    """The hub holds no per-model lock: countTokens (and loading) answer while a stream on the same model runs."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "slow"\ndisplay_name = "Slow"\ndescription = "test"\n'
                       'engine = "tests.fixtures.slow_engine:SlowEngine"\nsource = "none"\nfamily = "test"\n')
    marker = tmp_path / "marker"  # written by the engine when its generation ends
    env = {"POLLUX_CATALOG_FILE": str(catalog), "SLOW_ENGINE_MARKER": str(marker)}
    headers = {"x-goog-api-key": "test-key"}
    body = {"contents": [{"parts": [{"text": "go"}]}]}
    with Server(tmp_path / "data", emulator=False, env=env) as server:
        with httpx.stream("POST", f"{server.url}/v1beta/models/slow:streamGenerateContent?alt=sse",
                          headers=headers, json=body, timeout=30) as r:
            assert r.status_code == 200
            lines = r.iter_lines()  # kept open: closing the iterator would hang up
            while not next(lines).startswith("data: "):
                pass  # the generation is running
            counted = httpx.post(f"{server.url}/v1beta/models/slow:countTokens", headers=headers, json=body,
                                 timeout=30)
            assert counted.status_code == 200 and counted.json()["totalTokens"] >= 1
            assert not marker.exists(), "countTokens waited for the generation: " + marker.read_text()
