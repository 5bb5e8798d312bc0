"""Every example (Python with google-genai, Node with @google/generative-ai) runs against a live emulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PY_DIR, NODE_DIR = EXAMPLES / "python", EXAMPLES / "node"
PY_HELPERS = {"common.py", "sample_media.py"}
NODE_HELPERS = {"config.mjs", "video.mjs"}
PY_SCRIPTS = sorted(p.name for p in PY_DIR.glob("*.py") if p.name not in PY_HELPERS)
NODE_SCRIPTS = sorted(p.name for p in NODE_DIR.glob("*.mjs") if p.name not in NODE_HELPERS)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    sys.path.insert(0, str(PY_DIR))
    try:
        import sample_media
    finally:
        sys.path.remove(str(PY_DIR))
    return sample_media.ensure(tmp_path_factory.mktemp("media"))


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_every_seed_section_has_an_example():
    wanted = {"upload_image", "file_metadata", "inline_images", "multiple_images", "bounding_box", "video_upload",
              "video_summary_quiz", "video_timestamps", "video_transcription", "list_files", "delete_file"}
    assert {Path(s).stem for s in PY_SCRIPTS} == wanted
    assert {Path(s).stem for s in NODE_SCRIPTS} == wanted - {"inline_images"}  # one Node script does both


@pytest.mark.parametrize("script", PY_SCRIPTS)
def test_python_example(script, live_server, media):
    env = {"POLLUX_BASE_URL": live_server, "GEMINI_API_KEY": "test-key", "MEDIA_PATH": str(media),
           "POLL_SECONDS": "0.2"}
    done = run([sys.executable, script], PY_DIR, env)
    assert done.stdout.strip()


def test_python_bounding_box_draws_pixels(live_server, media, tmp_path):
    env = {"POLLUX_BASE_URL": live_server, "GEMINI_API_KEY": "test-key", "MEDIA_PATH": str(media)}
    out = tmp_path / "boxes.png"
    done = run([sys.executable, "bounding_box.py", str(media / "piranha.jpg"), "--draw", str(out)], PY_DIR, env)
    assert "-> pixels x " in done.stdout
    assert out.stat().st_size > 0


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The pinned SDK installed in examples/node (npm install once; skip if node or the registry is missing)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    sdk = NODE_DIR / "node_modules" / "@google" / "generative-ai"
    if not sdk.is_dir():
        try:
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, timeout=300,
                           check=True)
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"npm install failed (offline?): {exc}")
    return sdk


@pytest.mark.parametrize("script", NODE_SCRIPTS)
def test_node_example(script, live_server, media, node_modules):
    env = {"POLLUX_BASE_URL": live_server, "API_KEY": "test-key", "MEDIA_PATH": str(media), "POLL_MS": "200"}
    done = run(["node", script], NODE_DIR, env)
    assert done.stdout.strip()
