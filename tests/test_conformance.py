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


def test_all_sdks_pass_on_a_cluster(tmp_path, pg_cluster, s3_server):
    """The distributed topology: two API-only nodes (`--no-workers`) and one `pollux worker`, on one
    PostgreSQL database and one S3 bucket (SeaweedFS), behind a round-robin balancer; every SDK passes."""
    import sys

    from tests.fixtures.balancer import RoundRobin

    db, bucket = pg_cluster.new_database(), s3_server.new_bucket(f"pollux-conf-{os.getpid()}")
    shared = ["--database-url", db, "--blob-url", f"s3://{bucket}/conformance"]
    nodes = [Server(tmp_path / name, env=s3_server.env()) for name in ("a", "b")]
    for node in nodes:
        node.args += shared + ["--no-workers"]
    worker = subprocess.Popen([sys.executable, "-m", "pollux.cli", "worker", "--data-dir", str(tmp_path / "w"),
                               "--log-level", "warning", *shared], env={**os.environ, **s3_server.env(),
                                                                         "POLLUX_TRANSCRIBE": "0"})
    balancer = None
    try:
        for node in nodes:
            node.start()
        balancer = RoundRobin([n.port for n in nodes]).start()
        r = subprocess.run(["bash", str(SHARED / "run_all.sh"), balancer.url],
                           env={**os.environ, "HARNESS_WORK": _work()}, capture_output=True, text=True, timeout=1500)
        logs = "\n".join(p.read_text() for p in (Path(_work()) / "logs").glob("*.out"))
        assert r.stdout.strip().splitlines()[-1] == "5 passed, 0 failed", r.stdout + r.stderr + logs
        assert all(balancer.served), f"each node should have served the SDKs: {balancer.served}"
        assert worker.poll() is None, "the media worker died"
    finally:
        if balancer is not None:
            balancer.stop()
        for node in nodes:
            node.stop()
        worker.terminate()
        worker.wait(30)
