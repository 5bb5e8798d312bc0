"""The Vercel AI SDK: `ai` + `@ai-sdk/google` (`baseURL`), a node program."""

import pytest

from tests.clients.suite import assert_usage, case, run_node_driver

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def results(clients, server, media, tmp_path_factory):
    return run_node_driver("ai_sdk_cases.mjs", clients.node_dir, server, media,
                           tmp_path_factory.mktemp("ai-sdk") / "results.json")


def test_generate_text(results):
    r = case(results, "generate_text")
    assert "system: Be brief." in r["text"] and "vegetarian lasagna" in r["text"], r["text"]
    assert r["finishReason"] == "stop"
    assert_usage(r["usage"], "inputTokens", "outputTokens", "totalTokens")


def test_stream_text(results):
    r = case(results, "stream_text")
    assert r["chunks"] >= 2 and "Invent a new holiday" in r["text"], r
    assert r["finishReason"] == "stop"
    assert_usage(r["usage"], "inputTokens", "outputTokens")


def test_image_part(results):
    r = case(results, "image_part")
    assert "(original 400x300)" in r["text"], r["text"]
    assert_usage(r["usage"], "inputTokens", "outputTokens")
    assert r["usage"]["inputTokens"] > 258


def test_output_object(results):
    out = case(results, "output_object")["output"]
    assert set(out["recipe"]) == {"name", "steps"} and isinstance(out["recipe"]["steps"], list), out


def test_uploaded_file(results):
    r = case(results, "uploaded_file")
    assert r["reference"]["google"].split("/files/")[-1], r["reference"]
    assert "(original 400x300)" in r["text"] and "What is in this file?" in r["text"], r["text"]
