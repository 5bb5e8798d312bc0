"""Operations on real `pollux serve` processes: /metrics, /readyz, JSON logs with a request id, SIGTERM drain."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
from tests.conftest import H, png_bytes
from tests.fixtures.server import Server

GEN = "/v1beta/models/gemini-2.0-flash:generateContent"
BODY = {"contents": [{"parts": [{"text": "Hello there"}]}]}
SLOW_CATALOG = ('[[models]]\nid = "slow"\ndisplay_name = "Slow"\ndescription = "test"\n'
                'engine = "tests.fixtures.slow_engine:SlowEngine"\nsource = "none"\nfamily = "test"\n')


def _metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        sname, _, rest = series.partition("{")
        have = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sname == name and have == want:
            return float(value)
    return 0.0


def test_metrics_count_requests_uploads_and_latency(tmp_path):
    with Server(tmp_path / "data") as server:
        for _ in range(3):
            assert httpx.post(server.url + GEN, headers=H, json=BODY, timeout=30).status_code == 200
        assert httpx.post(server.url + "/v1beta/models/nope:generateContent", headers=H, json=BODY,
                          timeout=30).status_code == 404
        png = png_bytes(32, 32)
        up = httpx.post(server.url + "/upload/v1beta/files", headers={**H, "X-Goog-Upload-Protocol": "raw",
                                                                      "Content-Type": "image/png"},
                        content=png, timeout=30)
        assert up.status_code == 200, up.text
        text = httpx.get(server.url + "/metrics", timeout=30).text
    route = "/{version}/models/{model}:generateContent"
    assert _metric(text, "pollux_http_requests_total", method="POST", route=route, code="200") == 3
    assert _metric(text, "pollux_http_requests_total", method="POST", route=route, code="404") == 1
    assert _metric(text, "pollux_http_request_duration_seconds_count", method="POST", route=route) == 4
    assert _metric(text, "pollux_upload_bytes_total") >= len(png)
    assert _metric(text, "pollux_http_requests_total", method="POST", route="/upload/{version}/files",
                   code="200") == 1
    for name in ("pollux_media_jobs_queued", "pollux_media_oldest_job_age_seconds", "pollux_http_requests_in_flight",
                 "pollux_draining"):
        assert f"\n{name} " in text, name
    assert 'pollux_engine_in_flight{model="smolvlm2-256m"} 0.0' in text
    assert 'pollux_cache_hits_total{cache="prepared_images"}' in text


def test_readyz_names_a_missing_sqlite_database(tmp_path):
    with Server(tmp_path / "data") as server:
        r = httpx.get(server.url + "/readyz", timeout=30)
        assert r.status_code == 200 and r.json() == {"status": "ready", "checks": {
            "database": "ok", "blobs": "ok", "engines": "ok"}}
        db = tmp_path / "data" / "pollux.db"
        db.rename(db.with_suffix(".away"))  # the volume went away (root ignores chmod, so: gone)
        try:
            r = httpx.get(server.url + "/readyz", timeout=30)
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["database"] != "ok" and "unable to open" in checks["database"]
            assert checks["blobs"] == "ok" and checks["engines"] == "ok"
            assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200  # alive, not ready
        finally:
            db.with_suffix(".away").rename(db)
        assert httpx.get(server.url + "/readyz", timeout=30).status_code == 200


def test_readyz_follows_postgresql(tmp_path, pg_cluster):
    """A PostgreSQL of its own, stopped under a running node: /readyz turns 503 naming the database."""
    from tests.fixtures.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    try:
        url = cluster.new_database()
        with Server(tmp_path / "data", env={"POLLUX_DATABASE_URL": url}) as server:
            assert httpx.post(server.url + GEN, headers=H, json=BODY, timeout=30).status_code == 200
            assert httpx.get(server.url + "/readyz", timeout=30).status_code == 200
            cluster.stop()
            r = httpx.get(server.url + "/readyz", timeout=30)
            assert r.status_code == 503 and r.json()["checks"]["database"] != "ok"
            assert r.json()["checks"]["engines"] == "ok"
    finally:
        cluster.stop()


def test_readyz_names_a_missing_blob_store(tmp_path):
    with Server(tmp_path / "data") as server:
        staging = tmp_path / "data" / "staging"
        staging.rename(tmp_path / "staging.away")
        try:
            r = httpx.get(server.url + "/readyz", timeout=30)
            assert r.status_code == 503 and r.json()["checks"]["blobs"] != "ok"
            assert r.json()["checks"]["database"] == "ok"
        finally:
            (tmp_path / "staging.away").rename(staging)


def test_json_logs_carry_the_request_id(tmp_path):
    log = tmp_path / "server.log"
    subprocess.run([sys.executable, "-m", "pollux.cli", "projects", "set-limits", "demo", "--rpm", "2",
                    "--data-dir", str(tmp_path / "data")], check=True, capture_output=True)
    with open(log, "w") as fh:
        server = Server(tmp_path / "data", stderr=fh)
        server.args = [a if a != "warning" else "info" for a in server.args] + ["--log-format", "json"]
        server.start()
        try:
            r = httpx.post(server.url + GEN, headers={**H, "X-Request-Id": "req-42"}, json=BODY, timeout=30)
            assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
            made = httpx.post(server.url + GEN, headers=H, json=BODY, timeout=30).headers["x-request-id"]
            assert len(made) == 32  # generated when the client sends none
            limited = httpx.post(server.url + GEN, headers={**H, "X-Request-Id": "req-43"}, json=BODY, timeout=30)
            assert limited.status_code == 429  # its log line is written from a worker thread
            bad = httpx.get(server.url + "/healthz", headers={"X-Request-Id": "a b\tc"}, timeout=30)
            assert bad.headers["x-request-id"] != "a b\tc"  # not echoed: made afresh
        finally:
            server.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("request_id") == "req-42"]
    assert [line["logger"] for line in mine] == ["uvicorn.access"], lines
    assert any(line["logger"] == "pollux.limits" and line["message"].startswith("rate limited")
               for line in lines if line.get("request_id") == "req-43"), lines
    assert all(line.get("request_id") for line in lines if "gemini-2.0-flash" in line["message"]
               or line["logger"] == "pollux.limits")  # every line of a request carries its id


def test_sigterm_lets_a_stream_finish_and_refuses_new_work(tmp_path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(SLOW_CATALOG)
    server = Server(tmp_path / "data", emulator=False, env={"POLLUX_CATALOG_FILE": str(catalog)}).start()
    events, errors = [], []
    first = threading.Event()

    def stream() -> None:
        try:
            with httpx.stream("POST", f"{server.url}/v1beta/models/slow:streamGenerateContent?alt=sse", headers=H,
                              json={"contents": [{"parts": [{"text": "go"}]}]}, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                        first.set()
        except Exception as e:  # reported by the assertions below
            errors.append(e)
            first.set()

    t = threading.Thread(target=stream)
    t.start()
    try:
        assert first.wait(30)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the drain starts within a moment
            r = httpx.post(server.url + GEN, headers=H, json=BODY, timeout=30)
            if r.status_code == 503:
                break
            time.sleep(0.05)
        assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
        ready = httpx.get(server.url + "/readyz", timeout=30)
        assert ready.status_code == 503 and "draining" in ready.json()["checks"]
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
        t.join(60)
        assert not errors, errors
        assert events[-1]["candidates"][0].get("finishReason") == "STOP"  # the whole stream arrived
        assert len(events) == 201
        # then it stopped by itself (uvicorn re-raises the SIGTERM it caught once shut down cleanly)
        assert server.proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        t.join(1)
        server.stop()
