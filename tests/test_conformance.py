"""The four official Gemini SDKs against a real `pollux serve --emulator` (shared/conformance)."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.server import Server

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
pytestmark = [pytest.mark.conformance,
              pytest.mark.skipif(not (SHARED / "run_all.sh").exists(), reason="shared/conformance not found")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("conformance")) as s:
        yield s


def _work() -> str:
    return os.environ.get("HARNESS_WORK") or str(Path(__file__).resolve().parents[1] / ".work" / "harness")


def test_all_sdks_pass(server):
    r = subprocess.run(["bash", str(SHARED / "run_all.sh"), server.url], env={**os.environ, "HARNESS_WORK": _work()},
                       capture_output=True, text=True, timeout=1500)
    logs = "\n".join(p.read_text() for p in (Path(_work()) / "logs").glob("*.out"))
    assert r.stdout.strip().splitlines()[-1] == "5 passed, 0 failed", r.stdout + r.stderr + logs


def test_google_genai_multi_chunk_upload(server):
    """py google-genai with 64-byte chunks: upload → upload → … → upload, finalize."""
    work = Path(_work())
    python = work / "venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("the harness venv is made by test_all_sdks_pass")
    r = subprocess.run([str(python), str(SHARED / "py_genai_driver.py"), server.url, str(work / "tiny.png"),
                        "--small-chunks"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout
