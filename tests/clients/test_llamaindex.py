"""LlamaIndex's Google GenAI LLM (`llama-index-llms-google-genai`, `http_options`), in its own venv."""

import pytest

from tests.clients.suite import assert_usage, case, python_driver, run_driver

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def results(clients, server, media, tmp_path_factory):
    return run_driver(python_driver(clients.llamaindex_python, "llamaindex_cases.py"), server, media,
                      tmp_path_factory.mktemp("llamaindex") / "results.json")


def test_constructor_fetches_default_model(results):
    r = case(results, "construct")
    assert r["default_model"] == "gemini-3.7-flash" and r["model"] == r["default_model"]
    assert r["num_output"] > 0 and r["context_window"] > r["num_output"]


def test_complete(results):
    r = case(results, "complete")
    assert "Paul Graham is" in r["text"], r["text"]
    assert_usage(r["usage"], "prompt_tokens", "completion_tokens", "total_tokens")


def test_stream_complete(results):
    r = case(results, "stream_complete")
    assert r["chunks"] >= 2 and "lighthouse" in r["text"] and r["deltas"] == r["text"], r


def test_chat_with_image(results):
    r = case(results, "chat_image")
    assert "(original 400x300)" in r["text"] and "Describe the image" in r["text"], r["text"]
    assert_usage(r["usage"], "prompt_tokens", "total_tokens")


def test_structured_predict(results):
    r = case(results, "structured_predict")
    assert r["type"] == "Song" and set(r["value"]) == {"name", "artist"}, r


def test_chat_with_image_via_file_api(results):
    r = case(results, "chat_image_via_file_api")
    assert "(original 400x300)" in r["text"], r["text"]
