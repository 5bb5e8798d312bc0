"""The Gemini docs' curl upload sample, run as it is written (real `curl` processes, bash)."""

import json
import shutil
import subprocess

import pytest

from tests.clients.suite import DRIVERS, assert_usage

pytestmark = [pytest.mark.clients,
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]


@pytest.fixture(scope="module")
def run_dir(server, media, tmp_path_factory):
    out = tmp_path_factory.mktemp("curl")
    r = subprocess.run(["bash", str(DRIVERS / "curl_upload.sh"), server.url, str(media), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def _json(path):
    text = path.read_text()
    assert text.strip(), f"{path.name} is empty"
    return json.loads(text)


def test_resumable_start_with_single_quoted_body(run_dir):
    """Gemini's front end reads the docs' single-quoted JSON: 200, an upload url, the display name kept."""
    headers = (run_dir / "upload-header.tmp").read_text()
    assert headers.split()[1] == "200", headers + (run_dir / "start.json").read_text()
    assert (run_dir / "upload_url.txt").read_text().strip().startswith("http")


def test_upload_finalize_keeps_display_name(run_dir, media):
    f = _json(run_dir / "file_info.json")["file"]
    assert f["displayName"] == "TEXT" and f["mimeType"] == "image/png", f
    assert f["name"].startswith("files/") and f["state"] in ("PROCESSING", "ACTIVE")
    assert int(f["sizeBytes"]) == (media / "boxes.png").stat().st_size


def test_generate_content_with_file_uri(run_dir):
    r = _json(run_dir / "response.json")
    assert "candidates" in r, r
    text = "".join(p.get("text", "") for p in r["candidates"][0]["content"]["parts"])
    assert "(original 400x300)" in text and "instruments in this photo" in text, text
    assert_usage({k: r["usageMetadata"].get(k) for k in ("promptTokenCount", "candidatesTokenCount")},
                 "promptTokenCount", "candidatesTokenCount")
