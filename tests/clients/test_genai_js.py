"""The Node SDK `@google/genai`: cachedContents, the Interactions API and mediaResolution (issue 12)."""

import pytest

from tests.clients.suite import case, run_node_driver

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def results(clients, server, media, tmp_path_factory):
    return run_node_driver("genai_js_cases.mjs", clients.node_dir, server, media,
                           tmp_path_factory.mktemp("genai-js") / "results.json")


def test_caches_round_trip(results):
    r = case(results, "caches_round_trip")
    assert r["name"].startswith("cachedContents/") and r["model"] == "models/gemini-2.5-flash", r
    assert r["total"] >= 1024 and r["gotSame"] and r["listed"] and r["extended"], r
    assert r["text"] and r["cachedTokens"] == r["total"], r
    assert r["afterDelete"] == 403, r


def test_interactions_round_trip(results):
    r = case(results, "interactions_round_trip")
    assert r["id"] and r["status"] == "completed", r
    assert "Name a colour." in r["firstJson"] or "colour" in r["firstJson"].lower(), r["firstJson"]
    assert r["gotId"] and r["afterDelete"] == 404, r


def test_media_resolution(results):
    r = case(results, "media_resolution")
    assert "at LOW" in r["lowText"] and "at HIGH" in r["highText"], r
    assert r["lowTokens"] < r["highTokens"], r
    assert r["bogus"] == 400, r
