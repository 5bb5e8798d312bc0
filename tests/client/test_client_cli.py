"""The client commands through Typer's CliRunner against a live emulator server."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from media_builders import noisy_png, short_video
from pollux.catalog import Catalog
from pollux.cli import app
from pollux.client import failures
from pollux.client.devserver import free_port

API_KEY = "test-key"  # the live_server fixture's POLLUX_API_KEYS


@pytest.fixture
def cli(live_server, monkeypatch):
    """Run `pollux ARGS...` with the live server and key in the environment; returns the Result."""
    monkeypatch.setenv("POLLUX_BASE_URL", live_server)
    monkeypatch.setenv("POLLUX_API_KEY", API_KEY)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run


def uploaded_name(stdout: str) -> str:
    match = re.search(r"^name:\s+(files/[a-z0-9-]+)$", stdout, re.M)
    assert match, stdout
    return match.group(1)


def test_models_lists_the_catalog(cli):
    result = cli("models")
    assert result.exit_code == 0, result.stderr
    assert "models/gemini-2.0-flash" in result.stdout
    as_json = cli("models", "--json")
    assert as_json.exit_code == 0
    models = json.loads(as_json.stdout)
    assert {"name": "models/gemini-2.0-flash"}.items() <= next(m for m in models if m["name"].endswith("2.0-flash")).items()
    assert all(m["inputTokenLimit"] > 0 for m in models)


def test_upload_reports_progress_per_chunk(cli, tmp_path, monkeypatch):
    import google.genai._api_client as api_client

    monkeypatch.setattr(api_client, "CHUNK_SIZE", 256)  # upload, upload, ..., upload + finalize
    png = noisy_png(tmp_path / "noise.png")
    size = png.stat().st_size
    assert size > 4 * 256

    result = cli("upload", str(png), "--display-name", "noise")
    assert result.exit_code == 0, result.stderr
    steps = [int(m) for m in re.findall(r"uploading noise\.png: (\d+)/%d bytes" % size, result.stderr)]
    # One line at the start, then one per acknowledged chunk, ending at the full size.
    assert steps == [0] + [min(size, 256 * i) for i in range(1, -(-size // 256) + 1)]
    assert "(100%)" in result.stderr
    assert re.search(r"^state:\s+ACTIVE$", result.stdout, re.M)
    assert re.search(r"^display name:\s+noise$", result.stdout, re.M)
    assert re.search(rf"^size:\s+{size} bytes$", result.stdout, re.M)


def test_upload_draws_a_rich_bar_on_a_terminal(cli, tmp_path, monkeypatch):
    import google.genai._api_client as api_client

    monkeypatch.setattr(api_client, "CHUNK_SIZE", 512)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich treats the captured stderr as a terminal
    png = noisy_png(tmp_path / "bar.png", size=(40, 40))
    result = cli("upload", str(png))
    assert result.exit_code == 0, result.stderr
    assert "bar.png" in result.stderr and "━" in result.stderr
    total = f"{png.stat().st_size / 1000:.1f}/{png.stat().st_size / 1000:.1f} kB"
    assert total in result.stderr  # the last frame: everything acknowledged
    assert "uploading bar.png:" not in result.stderr  # no plain lines on a terminal


def test_upload_video_waits_through_processing(cli, tmp_path):
    video = short_video(tmp_path / "clip.mp4")
    result = cli("upload", str(video), "--json")
    assert result.exit_code == 0, result.stderr
    assert "waiting for files/" in result.stderr
    file = json.loads(result.stdout)
    assert file["state"] == "ACTIVE"
    assert file["mimeType"] == "video/mp4"
    assert "videoMetadata" in file


def test_files_list_get_delete(cli, tmp_path):
    name = uploaded_name(cli("upload", str(noisy_png(tmp_path / "a.png", seed=2))).stdout)

    listed = cli("files", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert name in [f["name"] for f in json.loads(listed.stdout)]

    got = cli("files", "get", name)
    assert got.exit_code == 0, got.stderr
    assert uploaded_name(got.stdout) == name

    deleted = cli("files", "delete", name)
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted {name}"

    gone = cli("files", "get", name)
    assert gone.exit_code == failures.NOT_FOUND
    assert gone.stderr.startswith("error: 403 PERMISSION_DENIED: ")


def test_ask_inlines_small_images_and_streams(cli, tmp_path):
    png = noisy_png(tmp_path / "photo.png", seed=3)
    before = cli("files", "list", "--json").stdout

    streamed = cli("ask", str(png), "Describe this image.", "--usage")
    assert streamed.exit_code == 0, streamed.stderr
    assert streamed.stdout.strip()
    assert re.search(r"tokens: prompt \d+, answer \d+, total \d+", streamed.stderr)
    assert cli("files", "list", "--json").stdout == before  # inline: nothing uploaded

    whole = cli("ask", str(png), "Describe this image.", "--no-stream")
    assert whole.exit_code == 0, whole.stderr
    assert whole.stdout == streamed.stdout  # the emulator is deterministic: the chunks add up to the answer


def test_ask_uploads_video_and_big_images(cli, tmp_path):
    video = short_video(tmp_path / "clip.mp4", seconds=2)
    png = noisy_png(tmp_path / "big.png", seed=4)
    result = cli("ask", str(png), str(video), "What happens at 00:01?", "--inline-max", "0", "--no-keep")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()
    assert result.stderr.count("uploading ") >= 2
    assert "kept" not in result.stderr
    assert "big.png" not in cli("files", "list").stdout  # --no-keep deleted both


def test_ask_reuses_an_uploaded_file(cli, tmp_path):
    name = uploaded_name(cli("upload", str(noisy_png(tmp_path / "r.png", seed=5))).stdout)
    result = cli("ask", name, "Describe.")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()


def test_bounding_box_answer(cli, tmp_path):
    result = cli("ask", str(noisy_png(tmp_path / "fish.png")), "Return a bounding box for the piranha. [ymin, xmin, ymax, xmax]")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"\[\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\]", result.stdout), result.stdout


def test_count_tokens(cli, tmp_path):
    text_only = cli("count-tokens", "hello there")
    assert text_only.exit_code == 0, text_only.stderr
    with_image = cli("count-tokens", str(noisy_png(tmp_path / "c.png")), "hello there")
    assert with_image.exit_code == 0, with_image.stderr
    count = lambda r: int(re.fullmatch(r"(\d+) tokens\n", r.stdout).group(1))  # noqa: E731
    assert 0 < count(text_only) < count(with_image)


def test_bad_key_is_one_line(cli):
    result = cli("models", "--api-key", "bad-key")
    assert result.exit_code == failures.AUTH
    assert result.stderr == "error: 400 INVALID_ARGUMENT: API key not valid. Please pass a valid API key.\n"
    assert result.stdout == ""


def test_missing_key(cli, monkeypatch):
    monkeypatch.delenv("POLLUX_API_KEY")
    result = cli("files", "list")
    assert result.exit_code == failures.AUTH
    assert result.stderr.startswith("error: no API key")


def test_unreachable_server(cli):
    result = cli("models", "--base-url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == failures.UNREACHABLE
    assert result.stderr.startswith("error: cannot reach the server")
    assert "Traceback" not in result.stderr


def test_unknown_model(cli):
    result = cli("ask", "-m", "no-such-model", "hi")
    assert result.exit_code == failures.NOT_FOUND
    assert result.stderr.startswith("error: 404 NOT_FOUND: models/no-such-model is not found")


def test_usage_errors(cli, tmp_path):
    assert cli("ask").exit_code == failures.USAGE
    missing = cli("ask", str(tmp_path / "nope.png"), "hi")
    assert missing.exit_code == failures.USAGE
    assert missing.stderr.startswith("error: no such file")
    assert cli("upload", str(tmp_path / "nope.png")).exit_code == failures.USAGE


def test_pull_resolves_alias_downloads_then_converts(monkeypatch, tmp_path):
    from pollux.engines import ov_convert, weights

    calls = []
    monkeypatch.setattr(weights, "pull", lambda entry, settings, progress: calls.append(
        ("download", entry.id, settings.data_dir, progress)) or tmp_path)
    monkeypatch.setattr(ov_convert, "ensure_converted", lambda entry, settings, folder, progress: calls.append(
        ("convert", entry.id, folder)) or tmp_path / "ov")
    result = CliRunner().invoke(app, ["pull", "gemini-2.0-flash", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    model_id = Catalog().resolve("gemini-2.0-flash").entry.id
    assert calls == [("download", model_id, tmp_path, True), ("convert", model_id, tmp_path)]
    assert str(tmp_path / "ov") in result.stdout


def test_pull_routes_whisper_and_grounding_names(monkeypatch, tmp_path):
    from pollux.engines import weights, whisper

    calls = []
    monkeypatch.setattr(whisper, "pull", lambda name, settings: calls.append(("whisper", name)) or tmp_path)
    monkeypatch.setattr(weights, "pull", lambda entry, settings, progress: calls.append(("hf", entry.id)) or tmp_path)
    for name in ("whisper-base", "whisper:small", "owlv2-base"):
        assert CliRunner().invoke(app, ["pull", name, "--data-dir", str(tmp_path)]).exit_code == 0
    assert calls == [("whisper", "base"), ("whisper", "small"), ("hf", "owlv2-base")]


def test_pull_unknown_model():
    result = CliRunner().invoke(app, ["pull", "no-such-model"])
    assert result.exit_code == failures.NOT_FOUND
    assert result.stderr.startswith("error: models/no-such-model is not found")
