"""Rate limits across two real `pollux serve` nodes sharing one database, and the google-genai SDK's view of
the 429 (its error object, its retry)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import H
from tests.fixtures.server import Server

GEN = "/v1beta/models/gemini-2.0-flash:generateContent"
BODY = {"contents": [{"parts": [{"text": "Hello there"}]}]}


def set_limits(database_url: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pollux.cli", "projects", "set-limits", *args, "--database-url",
                    database_url], check=True, capture_output=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


def _nodes(tmp_path, database_url: str, window: int):
    env = {"POLLUX_DATABASE_URL": database_url, "POLLUX_RATE_LIMIT_WINDOW_SECONDS": str(window)}
    return Server(tmp_path / "a", env=env), Server(tmp_path / "b", env=env)


def test_limits_hold_across_two_nodes(tmp_path, database_url):
    window = 3600  # one window for the whole test (it waits out a boundary that is seconds away)
    set_limits(database_url, "demo", "--rpm", "4")
    a, b = _nodes(tmp_path, database_url, window)
    with a, b:
        if time.time() % window > window - 20:
            time.sleep(window - time.time() % window + 0.5)
        codes = [httpx.post(node.url + GEN, headers=H, json=BODY, timeout=30).status_code
                 for node in (a, b, a, b, a, b)]
        assert codes == [200, 200, 200, 200, 429, 429]  # four in all, whichever node took them
        other = httpx.post(b.url + GEN, headers={"x-goog-api-key": "other-key"}, json=BODY, timeout=30)
        assert other.status_code == 200  # another project's budget
        r = httpx.post(a.url + GEN, headers=H, json=BODY, timeout=30)
        violation = r.json()["error"]["details"][0]["violations"][0]
        assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel" and violation["quotaValue"] == "4"
        shown = subprocess.run([sys.executable, "-m", "pollux.cli", "projects", "show", "demo", "--database-url",
                                database_url], check=True, capture_output=True, text=True).stdout
        assert "rpm=4" in shown and "gemini-2.0-flash  rpm=4" in shown  # 4 counted, the refused ones not


def _client(server, **http):
    from google import genai
    from google.genai import types

    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=server.url, api_version="v1beta",
                                                                            **http))


def test_google_genai_sees_the_details_and_its_retry_gets_through(tmp_path):
    from google.genai import errors, types

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    set_limits(url, "demo", "--rpm", "1")
    window = 3
    a, b = _nodes(tmp_path, url, window)
    with a, b:
        plain, other_node = _client(a), _client(b)  # kept: a dropped Client closes its connection pool
        time.sleep(window - time.time() % window + 0.05)  # start of a window: the next call is refused
        assert plain.models.generate_content(model="gemini-2.0-flash", contents="hi").text
        with pytest.raises(errors.ClientError) as caught:
            other_node.models.generate_content(model="gemini-2.0-flash", contents="hi")
        e = caught.value
        assert e.code == 429 and e.status == "RESOURCE_EXHAUSTED"
        kinds = {d["@type"]: d for d in e.details["error"]["details"]}
        retry = kinds["type.googleapis.com/google.rpc.RetryInfo"]["retryDelay"]
        assert retry.endswith("s") and 1 <= int(retry[:-1]) <= window
        assert kinds["type.googleapis.com/google.rpc.QuotaFailure"]["violations"][0]["quotaDimensions"] == {
            "location": "global", "model": "gemini-2.0-flash"}
        # The SDK's own retry (HttpRetryOptions: 429 is one of its retryable codes) gets through once the
        # window has passed. google-genai 3.3 backs off exponentially and does not read RetryInfo; a caller
        # that waits exactly retryDelay (below) needs one retry.
        retrying = _client(b, retry_options=types.HttpRetryOptions(attempts=6, initial_delay=0.5, max_delay=2,
                                                                   jitter=0.1))
        assert retrying.models.generate_content(model="gemini-2.0-flash", contents="hi").text
        with pytest.raises(errors.ClientError) as again:
            plain.models.generate_content(model="gemini-2.0-flash", contents="hi")
        delay = next(d for d in again.value.details["error"]["details"] if d["@type"].endswith("RetryInfo"))
        time.sleep(float(delay["retryDelay"][:-1]))
        assert plain.models.generate_content(model="gemini-2.0-flash", contents="hi").text
