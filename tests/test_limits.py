"""Per-project rate limits (pollux.limits): Gemini's 429 body, what counts, and the shared counters."""

from __future__ import annotations

import threading
import time

import pytest

from pollux.files.limits_store import Charge, Limits, LimitStore
from pollux.files.store import MetadataStore
from pollux.limits import day_window
from tests.conftest import H, OTHER, ctx_of

URL = "/v1beta/models/gemini-2.0-flash"
BODY = {"contents": [{"parts": [{"text": "Hello there"}]}]}  # 3 Gemini-rule tokens


def _limit(client, **kw) -> None:
    c = ctx_of(client)
    model = kw.pop("model", "*")
    c.limits.store.set_limits(Limits("demo", model, **kw))
    c.limits._loaded = float("-inf")  # re-read now, not after rate_limit_refresh_seconds


def test_no_limits_is_todays_behaviour(client):
    for _ in range(5):
        assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 200


def test_rpm_answers_geminis_429(client):
    _limit(client, rpm=2)
    for _ in range(2):
        assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 200
    r = client.post(f"{URL}:generateContent", headers=H, json=BODY)
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["code"] == 429 and err["status"] == "RESOURCE_EXHAUSTED"
    assert err["message"].startswith("You exceeded your current quota")
    assert "generate_requests_per_model, limit: 2, model: gemini-2.0-flash" in err["message"]
    failure, help_, retry = err["details"]
    assert failure["@type"] == "type.googleapis.com/google.rpc.QuotaFailure"
    assert failure["violations"] == [{
        "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
        "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"}, "quotaValue": "2"}]
    assert help_["@type"] == "type.googleapis.com/google.rpc.Help"
    assert help_["links"][0]["url"] == "https://ai.google.dev/gemini-api/docs/rate-limits"
    assert retry["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    delay = int(retry["retryDelay"].removesuffix("s"))
    assert 1 <= delay <= 60 and r.headers["retry-after"] == str(delay)


def test_stream_is_refused_before_it_starts(client):
    _limit(client, rpm=1)
    assert client.post(f"{URL}:streamGenerateContent?alt=sse", headers=H, json=BODY).status_code == 200
    r = client.post(f"{URL}:streamGenerateContent?alt=sse", headers=H, json=BODY)
    assert r.status_code == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_per_project_per_model_and_count_tokens_free(client):
    _limit(client, rpm=1)
    assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 200
    for _ in range(3):  # countTokens has its own quota at Gemini: not charged here
        assert client.post(f"{URL}:countTokens", headers=H, json=BODY).status_code == 200
    assert client.post(f"{URL}:generateContent", headers=OTHER, json=BODY).status_code == 200  # another project
    other_model = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert client.post(other_model, headers=H, json=BODY).status_code == 200  # "*" is per model
    assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 429


def test_model_row_overrides_the_default(client):
    _limit(client, rpm=1)
    _limit(client, model="gemini-2.0-flash", rpm=3)
    assert [client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code for _ in range(4)] == \
        [200, 200, 200, 429]


def test_tpm_counts_input_tokens_and_refused_requests_cost_nothing(client):
    _limit(client, tpm=7)
    assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 200  # 3
    big = {"contents": [{"parts": [{"text": "x" * 40}]}]}  # 10 tokens: 13 > 7
    r = client.post(f"{URL}:generateContent", headers=H, json=big)
    assert r.status_code == 429
    v = r.json()["error"]["details"][0]["violations"][0]
    assert v["quotaId"] == "GenerateContentPaidTierInputTokensPerModelPerMinute" and v["quotaValue"] == "7"
    assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 200  # 6: the 10 were not kept
    assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 429  # 9 > 7


def test_rpd_retry_is_the_pacific_midnight(client):
    _limit(client, rpd=1)
    assert client.post(f"{URL}:generateContent", headers=H, json=BODY).status_code == 200
    r = client.post(f"{URL}:generateContent", headers=H, json=BODY)
    assert r.status_code == 429
    failure, _, retry = r.json()["error"]["details"]
    assert failure["violations"][0]["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel"
    start, end = day_window(time.time())
    assert abs(int(retry["retryDelay"][:-1]) - (end - time.time())) < 5


def test_day_window_is_a_pacific_day():
    start, end = day_window(1_764_590_400)  # 2025-12-01 12:00 UTC = 04:00 PST
    assert start == 1_764_576_000 and end - start == 86400  # 08:00 UTC
    summer_start, summer_end = day_window(1_751_371_200)  # 2025-07-01 12:00 UTC (PDT)
    assert summer_start == 1_751_353_200 and summer_end - summer_start == 86400


@pytest.fixture(params=["sqlite", "postgresql"])
def limit_store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'pollux.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = MetadataStore(url)
    yield LimitStore(store)
    store.engine.dispose()


def test_consume_is_atomic_under_concurrency(limit_store):
    """Eight threads race for a budget of 20: exactly 20 admitted, the counter ends at 20."""
    admitted = []

    def worker():
        for _ in range(10):
            if not limit_store.consume("p", "m", [Charge("rpm", 0, 1, 20), Charge("rpd", 0, 1, 1000)]):
                admitted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 20
    assert sorted(limit_store.usage("p", 0)) == [("m", "rpd", 0, 20), ("m", "rpm", 0, 20)]


def test_limits_round_trip_and_sweep(limit_store):
    limit_store.set_limits(Limits("p", "*", rpm=5))
    limit_store.set_limits(Limits("p", "*", tpm=9))  # replaces the row
    assert limit_store.all_limits() == [Limits("p", "*", None, 9, None)]
    limit_store.consume("p", "m", [Charge("tpm", 100, 3, 9)])
    limit_store.consume("p", "m", [Charge("tpm", 200, 3, 9)])
    assert limit_store.sweep(150) == 1 and limit_store.usage("p", 0) == [("m", "tpm", 200, 3)]
    assert limit_store.clear_limits("p") == 1 and limit_store.all_limits() == []


def test_interactions_count_against_the_same_limits(client):
    _limit(client, rpm=1, model="gemini-3-flash-preview")
    body = {"model": "gemini-3-flash-preview", "input": "Hello there"}
    assert client.post("/v1beta/interactions", headers=H, json=body).status_code == 200
    r = client.post("/v1beta/interactions", headers=H, json=body)
    assert r.status_code == 429 and r.json()["error"]["details"][0]["violations"][0]["quotaDimensions"] == {
        "location": "global", "model": "gemini-3-flash-preview"}
    gen = "/v1beta/models/gemini-3-flash-preview:generateContent"
    assert client.post(gen, headers=H, json=BODY).status_code == 429  # one budget for both APIs
