"""google-genai, the current release (clients venv) and requirements.txt's pin (this interpreter)."""

import pytest

from tests.clients.suite import (PROJECT_PYTHON, ROOT, assert_box_matches, assert_usage, case, python_driver,
                                run_driver)

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module", params=["current", "pinned"])
def results(request, server, media, tmp_path_factory):
    # The pinned release is this interpreter's own: it runs even where the clients cannot be installed.
    python = request.getfixturevalue("clients").venv_python if request.param == "current" else PROJECT_PYTHON
    out = tmp_path_factory.mktemp(f"genai-{request.param}") / "results.json"
    return run_driver(python_driver(python, "genai_cases.py"), server, media, out)


def test_runs_the_intended_release(results, request):
    """`current` is the newest release when pinned (tests/clients/pins); `pinned` is requirements.txt's."""
    wanted = {"current": _pin("tests/clients/pins/clients.txt"), "pinned": _pin("requirements.txt")}
    assert case(results, "version")["version"] == wanted[request.node.callspec.params["results"]]


def _pin(path: str) -> str:
    lines = (ROOT / path).read_text().splitlines()
    return next(line.split("==")[1].strip() for line in lines if line.startswith("google-genai=="))


def test_files_upload(results):
    f = case(results, "files_upload")
    assert f["name"].startswith("files/") and f["display_name"] == "socks photo"
    assert f["mime_type"] == "image/png" and f["size_bytes"] > 0 and f["uri"].endswith(f["name"])
    assert f["state"] in ("PROCESSING", "ACTIVE")


def test_files_get_round_trips(results):
    up, got = case(results, "files_upload"), case(results, "files_get")
    assert {k: got[k] for k in ("name", "display_name", "mime_type", "uri", "size_bytes")} == \
        {k: up[k] for k in ("name", "display_name", "mime_type", "uri", "size_bytes")}
    assert got["state"] in ("PROCESSING", "ACTIVE")


def test_files_list_has_upload(results):
    assert case(results, "files_upload")["name"] in case(results, "files_list")["names"]


def test_generate_with_uploaded_image(results):
    r = case(results, "generate_image")
    assert "(original 400x300)" in r["text"], r["text"]
    assert_usage(r["usage"], "prompt_tokens", "output_tokens", "total_tokens")
    assert r["usage"]["prompt_tokens"] > 258  # the image counts
    assert r["model_version"] == "gemini-3.5-flash"  # the name round-trips


def test_generate_with_audio_right_after_upload(results):
    r = case(results, "generate_audio")
    assert r["file"]["mime_type"] == "audio/mpeg"
    assert "audio 2.0 s" in r["text"], r["text"]
    assert_usage(r["usage"], "prompt_tokens", "output_tokens")


def test_generate_with_inline_audio(results):
    r = case(results, "generate_inline_audio")
    assert "audio 2.0 s" in r["text"], r["text"]
    assert_usage(r["usage"], "prompt_tokens", "output_tokens")


def test_count_tokens_audio_right_after_upload(results):
    assert case(results, "count_tokens_audio")["total_tokens"] >= 64  # 2 s at Gemini's 32 tokens a second


def test_generate_with_video_once_active(results):
    r = case(results, "generate_video")
    assert r["file"]["state"] == "ACTIVE" and r["file"]["mime_type"] == "video/mp4"
    assert "[00:00] video frame" in r["text"] and "[00:02] video frame" in r["text"], r["text"]
    assert_usage(r["usage"], "prompt_tokens", "output_tokens")


def test_generate_content_stream(results):
    r = case(results, "generate_stream")
    assert r["chunks"] >= 2 and "image " in r["text"], r
    assert_usage(r["usage"], "prompt_tokens", "output_tokens", "total_tokens")


def test_count_tokens(results):
    r = case(results, "count_tokens")
    assert r["text_tokens"] > 0 and r["image_tokens"] > r["text_tokens"], r


@pytest.mark.parametrize("name", ["gemini-3.5-flash", "gemini-flash-latest", "gemini-3-flash-preview"])
def test_models_get_current_names(results, name):
    m = case(results, "models_get")["models"][name]
    assert "error" not in m, m
    assert m["name"] == f"models/{name}"
    assert m["input_token_limit"] > 0 and m["output_token_limit"] > 0
    assert "generateContent" in m["supported_actions"] and "countTokens" in m["supported_actions"]


def test_json_schema_parsed(results):
    r = case(results, "json_schema")
    assert r["parsed"] and set(r["parsed"][0]) == {"recipe_name", "ingredients"}, r
    assert_usage(r["usage"], "prompt_tokens", "output_tokens")


def test_unsupported_response_modality_is_gemini_400(results):
    r = case(results, "unsupported_modality_is_400")
    assert (r.get("error_code"), r.get("error_status")) == (400, "INVALID_ARGUMENT"), r


def test_long_video_count_fits_input_token_limit(results):
    """What models.get advertises is what the server accepts under the accounting countTokens reports."""
    r = case(results, "long_video_fits")
    assert r["state"] == "ACTIVE"
    assert r["count"] <= r["input_token_limit"], r


def test_boxes_from_system_instruction_sample(results):
    r = case(results, "boxes_system_instruction")
    assert len(r["boxes"]) == 1, r["text"]
    assert_box_matches(r["boxes"][0]["pixels"])
    assert r["boxes"][0]["label"], r["boxes"]


def test_files_delete(results):
    # Gemini answers a deleted (unknown) file with 403 PERMISSION_DENIED, not 404.
    assert case(results, "files_delete")["after_delete"] == "403 PERMISSION_DENIED"
