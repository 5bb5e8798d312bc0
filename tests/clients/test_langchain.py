"""LangChain `langchain-google-genai` (ChatGoogleGenerativeAI, `base_url`)."""

import pytest

from tests.clients.suite import assert_usage, case, python_driver, run_driver

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def results(clients, server, media, tmp_path_factory):
    return run_driver(python_driver(clients.venv_python, "langchain_cases.py"), server, media,
                      tmp_path_factory.mktemp("langchain") / "results.json")


def test_invoke(results):
    r = case(results, "invoke")
    assert "system: You are a helpful assistant." in r["text"] and "Say hello in French." in r["text"], r["text"]
    assert_usage(r["usage"], "input_tokens", "output_tokens", "total_tokens")
    assert r["model"] == "gemini-3.5-flash"


def test_stream(results):
    r = case(results, "stream")
    assert r["chunks"] >= 2 and "Write a haiku about the sea." in r["text"], r
    assert_usage(r["usage"], "input_tokens", "output_tokens")


def test_image_message(results):
    r = case(results, "image_message")
    assert "(original 400x300)" in r["text"], r["text"]
    assert_usage(r["usage"], "input_tokens", "output_tokens")
    assert r["usage"]["input_tokens"] > 258


def test_structured_output(results):
    r = case(results, "structured_output")
    assert r["type"] == "Recipe" and set(r["value"]) == {"name", "ingredients"}, r


def test_uploaded_file_message(results):
    r = case(results, "uploaded_file_message")
    assert "(original 400x300)" in r["text"] and "What is in this file?" in r["text"], r["text"]
    assert_usage(r["usage"], "input_tokens", "output_tokens")
