"""LiteLLM's `gemini/` provider (`api_base`)."""

import pytest

from tests.clients.suite import assert_usage, case, python_driver, run_driver

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def results(clients, server, media, tmp_path_factory):
    return run_driver(python_driver(clients.venv_python, "litellm_cases.py"), server, media,
                      tmp_path_factory.mktemp("litellm") / "results.json")


def test_completion(results):
    r = case(results, "completion")
    assert "system: Be brief." in r["text"] and "Write a short poem about the sea." in r["text"], r["text"]
    assert r["finish_reason"] == "stop"
    assert_usage(r["usage"], "prompt_tokens", "completion_tokens", "total_tokens")


def test_streaming(results):
    r = case(results, "streaming")
    assert r["chunks"] >= 2 and "Count to three." in r["text"], r
    assert_usage(r["usage"], "prompt_tokens", "completion_tokens")


def test_json_schema_response_format(results):
    assert set(case(results, "json_schema")["value"]) == {"name", "ingredients"}


def test_image(results):
    r = case(results, "image")
    assert "(original 400x300)" in r["text"] and "What's in this image?" in r["text"], r["text"]
    assert_usage(r["usage"], "prompt_tokens", "completion_tokens")
    assert r["usage"]["prompt_tokens"] > 258
