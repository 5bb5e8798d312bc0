"""Media jobs across real processes (issue 13), on SQLite and PostgreSQL: an API-only `pollux serve
--no-workers` takes the upload, separate `pollux worker` processes prepare it; a worker killed with
SIGKILL mid-job has its job finished by another once the lease passes; a SIGSTOPped "zombie" whose
lease was taken over is refused when it wakes up: the live attempt's state and artifacts stand.

The slow job is a post-processing plug-in hook (tests/fixtures/job_hooks.py), no mocking: the
database, the blob folder and the processes are the real ones.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.files import uploads as u
from tests.fixtures.media import write_video
from tests.fixtures.server import Server

pytestmark = pytest.mark.timeout(180)
LEASE = 2.0  # short, so the takeover happens within the test's budget (the default is 15 s)
JOB_ENV = {"POLLUX_JOB_LEASE_SECONDS": str(LEASE), "POLLUX_JOB_POLL_SECONDS": "0.2", "POLLUX_TRANSCRIBE": "0",
           "POLLUX_PROCESSING_HOOKS": "tests.fixtures.job_hooks:marked", "POLLUX_FSYNC": "0"}


class Worker:
    """A `pollux worker` process; its log is kept to check what it did."""

    def __init__(self, data_dir: Path, database_url: str | None, marks: Path, log: Path, **hook_env: str):
        args = [sys.executable, "-m", "pollux.cli", "worker", "--data-dir", str(data_dir), "--workers", "1",
                "--log-level", "info"] + (["--database-url", database_url] if database_url else [])
        env = {**os.environ, **JOB_ENV, "POLLUX_TEST_HOOK_DIR": str(marks), **hook_env}
        self.log = log
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))

    def wait_ready(self, timeout: float = 60) -> None:
        _until(lambda: "job loop(s)" in self.text() or self.proc.poll() is not None, timeout, "the worker to start")
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := cond():
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_node(request, tmp_path_factory):
    """An API-only server over SQLite in its data dir or over a fresh PostgreSQL database (one per module)."""
    base = tmp_path_factory.mktemp(request.param)
    url = request.getfixturevalue("pg_cluster").new_database() if request.param == "postgres" else None
    server = Server(base / "data", env={**JOB_ENV, **({"POLLUX_DATABASE_URL": url} if url else {})})
    server.args.append("--no-workers")
    with server:
        yield server, url


@pytest.fixture
def cluster(api_node, tmp_path):
    """The API node, a factory for workers joining it (all killed after the test) and the hook's marker dir."""
    server, url = api_node
    marks = tmp_path / "marks"
    marks.mkdir()
    workers: list[Worker] = []

    def worker(name: str, **hook_env: str) -> Worker:
        w = Worker(server.data_dir, url, marks, tmp_path / f"{name}.log", **hook_env)
        workers.append(w)
        return w

    yield server, worker, marks
    for w in workers:
        w.kill()  # SIGKILL also ends a stopped process


def _upload_video(server: Server, tmp_path: Path) -> tuple[str, str]:
    data = write_video(tmp_path / "clip.mp4", seconds=2).read_bytes()
    r = u.send(u.session_url(server.url, len(data)), 0, data, finalize=True)
    assert r.status_code == 200, r.text
    f = r.json()["file"]
    assert f["state"] == "PROCESSING"
    return f["name"], f["name"].removeprefix("files/")


def _state(server: Server, name: str) -> dict:
    return httpx.get(f"{server.url}/v1beta/{name}", headers=u.H, timeout=10).json()


def _marked_by(marks: Path, key: str) -> set[int]:
    return {int(p.suffix[1:]) for p in marks.glob(f"{key}.*")}


def _artifacts(data_dir: Path, key: str) -> dict[str, str]:
    root = data_dir / "artifacts"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0].startswith(key)}


def test_a_killed_workers_job_finishes_in_another_worker_within_the_lease(cluster, tmp_path):
    server, worker, marks = cluster
    name, key = _upload_video(server, tmp_path)
    time.sleep(0.5)
    assert _state(server, name)["state"] == "PROCESSING" and not _marked_by(marks, key)  # --no-workers: not here

    doomed = worker("doomed", POLLUX_TEST_HOOK_SECONDS="120")  # would hold the job for two minutes
    _until(lambda: _marked_by(marks, key), 60, "the first worker to reach the slow step")
    survivor = worker("survivor")
    survivor.wait_ready()
    assert _state(server, name)["state"] == "PROCESSING"
    doomed.kill()
    killed = time.monotonic()
    f = _until(lambda: (s := _state(server, name))["state"] != "PROCESSING" and s, 60, "the job to finish elsewhere")
    took = time.monotonic() - killed
    print(f"\n[{key}] kill -9 → ACTIVE in another worker: {took:.2f} s (lease {LEASE} s)")
    assert f["state"] == "ACTIVE" and f["videoMetadata"]["videoDuration"]
    assert _marked_by(marks, key) == {doomed.proc.pid, survivor.proc.pid}
    assert _artifacts(server.data_dir, key)  # the survivor's frames are there for prompts
    body = {"contents": [{"parts": [{"fileData": {"fileUri": f["uri"]}}, {"text": "What happens?"}]}]}
    r = httpx.post(f"{server.url}/v1beta/models/gemini-2.5-flash:generateContent", headers=u.H, json=body, timeout=60)
    assert r.status_code == 200 and "[00:01]" in r.json()["candidates"][0]["content"]["parts"][0]["text"]


def test_a_paused_zombie_workers_late_result_is_refused(cluster, tmp_path):
    server, worker, marks = cluster
    name, key = _upload_video(server, tmp_path)
    # The zombie would refuse the media after its slow step: if its result counted, the file would be FAILED.
    zombie = worker("zombie", POLLUX_TEST_HOOK_SECONDS="4", POLLUX_TEST_HOOK_VERDICT="invalid")
    _until(lambda: _marked_by(marks, key), 60, "the zombie to reach the slow step")
    zombie.proc.send_signal(signal.SIGSTOP)  # paused mid-job: no heartbeat, the lease runs out
    live = worker("live")
    f = _until(lambda: (s := _state(server, name))["state"] != "PROCESSING" and s, 60, "the live worker")
    assert f["state"] == "ACTIVE" and live.proc.pid in _marked_by(marks, key)
    published = _artifacts(server.data_dir, key)
    assert published

    zombie.proc.send_signal(signal.SIGCONT)  # its slow step ends at once, with a FAILED verdict
    _until(lambda: "discarded" in zombie.text(), 30, "the zombie to find its result refused")
    time.sleep(0.5)  # let it finish whatever it would do after the refusal
    assert zombie.proc.poll() is None, zombie.text()  # refused, not crashed
    after = _state(server, name)
    assert after["state"] == "ACTIVE" and "error" not in after
    assert _artifacts(server.data_dir, key) == published  # nothing deleted or rewritten by the zombie


def test_sigterm_drains_a_worker_its_running_job_finishes_first(cluster, tmp_path):
    server, worker, marks = cluster
    name, key = _upload_video(server, tmp_path)
    w = worker("draining", POLLUX_TEST_HOOK_SECONDS="2")
    _until(lambda: _marked_by(marks, key), 60, "the worker to reach the slow step")
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(60) == 0, w.text()
    assert _state(server, name)["state"] == "ACTIVE" and _marked_by(marks, key) == {w.proc.pid}
