"""Two real `pollux serve` processes on one database and one S3 bucket (SeaweedFS): uploads continue on
either node, a node killed mid-chunk loses nothing acknowledged, media processed on one node is used by
the other, and wrong credentials stop start-up with a clear message."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.files import uploads as u
from tests.fixtures.server import Server

KiB, MiB = 1 << 10, 1 << 20


def _node(tmp_path, s3_server, bucket: str, name: str, database_url: str) -> Server:
    """A node with its own data dir (cache), on the shared database and bucket."""
    srv = Server(tmp_path / name, env=s3_server.env())
    srv.args += ["--database-url", database_url, "--blob-url", f"s3://{bucket}/cluster"]
    return srv


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, s3_server, pg_cluster):
    """One pair for the module (starting a node costs seconds) on PostgreSQL, as a real cluster runs; the
    kill test runs last."""
    tmp, bucket = tmp_path_factory.mktemp("cluster"), s3_server.new_bucket(f"pollux-cluster-{os.getpid()}")
    db = pg_cluster.new_database()
    a = _node(tmp, s3_server, bucket, "a", db).start()
    b = _node(tmp, s3_server, bucket, "b", db).start()
    a.bucket = b.bucket = bucket
    yield a, b
    a.stop()
    b.stop()


def _on(node: Server, session: str) -> str:
    """The same session URL, sent to another node (a load balancer would)."""
    return node.url + session[session.index("/upload/"):]


def _files(node: Server) -> list[dict]:
    r = httpx.get(f"{node.url}/v1beta/files", headers=u.H, timeout=30)
    r.raise_for_status()
    return r.json().get("files", [])


def test_upload_started_on_one_node_continues_on_the_other(nodes):
    a, b = nodes
    data = u.fake_video(9 * MiB + 100)
    session = u.session_url(a.url, len(data))
    at = 0
    for i, size in enumerate([256 * KiB, 256 * KiB, 8 * MiB]):  # small chunks, then one of 8 MiB
        r = u.send(_on((a, b)[i % 2], session), at, data[at:at + size])
        assert r.status_code == 200, r.text
        at += size
    assert int(u.query(_on(a, session)).headers["x-goog-upload-size-received"]) == at
    r = u.send(_on(b, session), at, data[at:], finalize=True)
    assert r.status_code == 200, r.text
    f = r.json()["file"]
    assert u.sha_hex(f) == hashlib.sha256(data).hexdigest() and int(f["sizeBytes"]) == len(data)
    assert f["name"] in [x["name"] for x in _files(a)]  # listed on the first node


def test_video_processed_on_one_node_is_used_by_generation_on_the_other(nodes, tmp_path):
    from tests.fixtures.media import write_video

    a, b = nodes
    clip = write_video(tmp_path / "clip.mp4", seconds=2.0, fps=4, size=(64, 48)).read_bytes()
    r = httpx.post(f"{a.url}/upload/v1beta/files", headers={**u.H, "X-Goog-Upload-Protocol": "raw",
                                                            "Content-Type": "video/mp4"}, content=clip, timeout=60)
    assert r.status_code == 200, r.text
    name = r.json()["file"]["name"]
    deadline = time.monotonic() + 60
    while (state := httpx.get(f"{b.url}/v1beta/{name}", headers=u.H, timeout=30).json()["state"]) == "PROCESSING":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert state == "ACTIVE"
    body = {"contents": [{"parts": [{"fileData": {"fileUri": f"{b.url}/v1beta/{name}", "mimeType": "video/mp4"}},
                                    {"text": "what happens?"}]}]}
    r = httpx.post(f"{b.url}/v1beta/models/gemini-2.5-flash:generateContent", headers=u.H, json=body, timeout=60)
    assert r.status_code == 200, r.text
    text = "".join(p.get("text", "") for p in r.json()["candidates"][0]["content"]["parts"])
    assert "video frame" in text  # the frames a's processing published, fetched by b
    key = name.split("/")[1]
    assert (b.data_dir / "cache" / "artifacts" / key / "manifest.json").exists()


def test_multipart_related_upload_on_one_node_is_used_on_the_other(nodes):
    import json

    from tests.conftest import png_bytes

    a, b = nodes
    data, boundary = png_bytes(40, 30), "pollux-boundary"
    body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            + json.dumps({"file": {"mimeType": "image/png", "displayName": "tiny"}})
            + f"\r\n--{boundary}\r\nContent-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--".encode()
    r = httpx.post(f"{b.url}/upload/v1beta/files", headers={**u.H, "X-Goog-Upload-Protocol": "multipart",
                   "Content-Type": f"multipart/related; boundary={boundary}"}, content=body, timeout=60)
    assert r.status_code == 200, r.text
    f = r.json()["file"]
    assert u.sha_hex(f) == hashlib.sha256(data).hexdigest()
    parts = [{"fileData": {"fileUri": f"{a.url}/v1beta/{f['name']}", "mimeType": "image/png"}}, {"text": "what?"}]
    r = httpx.post(f"{a.url}/v1beta/models/gemini-2.5-flash:generateContent", headers=u.H,
                   json={"contents": [{"parts": parts}]}, timeout=60)
    assert r.status_code == 200, r.text  # a decoded the image from its own cached copy of b's blob
    assert (a.data_dir / "cache" / "blobs" / f["name"].split("/")[1]).read_bytes() == data


def test_wrong_credentials_stop_start_up_clearly(tmp_path, s3_server, s3_bucket):
    env = {**os.environ, **s3_server.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    p = subprocess.run([sys.executable, "-m", "pollux.cli", "serve", "--data-dir", str(tmp_path / "d"), "--emulator",
                        "--blob-url", f"s3://{s3_bucket}/x"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "refused the credentials" in p.stderr and "AWS_SECRET_ACCESS_KEY" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_node_killed_mid_chunk_keeps_acknowledged_bytes(nodes, s3_server):
    a, b = nodes
    data = u.fake_video(3 * MiB)
    session = u.session_url(a.url, len(data))
    assert u.send(_on(a, session), 0, data[:MiB]).status_code == 200

    def slow():  # the second chunk: half of it, then the node dies
        yield data[MiB:MiB + 512 * KiB]
        time.sleep(30)
        yield data[MiB + 512 * KiB:2 * MiB]

    def send():
        try:
            u.send(_on(a, session), MiB, slow(), timeout=60)
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    time.sleep(1.5)
    a.kill()
    got = int(u.query(_on(b, session)).headers["x-goog-upload-size-received"])
    assert got == MiB  # the acknowledged chunk survived; the interrupted one was never acknowledged
    r = u.send(_on(b, session), got, data[got:], finalize=True)
    assert r.status_code == 200, r.text
    f = r.json()["file"]
    assert u.sha_hex(f) == hashlib.sha256(data).hexdigest()
    c = s3_server.client()
    blob = c.get_object(Bucket=b.bucket, Key=f"cluster/blobs/{f['name'].split('/')[1]}")["Body"].read()
    assert blob == data
    for other in _files(b):  # no ACTIVE file has bytes other than those it describes
        if other["state"] == "ACTIVE":
            key = other["name"].split("/")[1]
            stored = c.get_object(Bucket=b.bucket, Key=f"cluster/blobs/{key}")["Body"].read()
            assert hashlib.sha256(stored).hexdigest() == u.sha_hex(other)
    t.join(1)


def test_s3_outage_mid_upload_is_a_503_and_keeps_acknowledged_chunks(tmp_path, settings, s3_server, s3_bucket,
                                                                       monkeypatch):
    import asyncio

    import boto3
    from botocore.config import Config

    from pollux.errors import Unavailable
    from pollux.files.service import FileService, NewFile
    from tests.fixtures.server import free_port

    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    svc = FileService(settings.model_copy(update={"blob_url": f"s3://{s3_bucket}/p",
                                                  "s3_endpoint_url": s3_server.endpoint}))

    async def once(data):
        yield data

    data = u.fake_video(600 * KiB)
    s = svc.start_upload("demo", NewFile(mime_type="video/mp4", size_bytes=len(data)), "resumable")
    asyncio.run(svc.append(s.id, 0, once(data[:300 * KiB])))
    dead = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
                        config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    working, svc.blobs.s3 = svc.blobs.s3, dead
    with pytest.raises(Unavailable):
        asyncio.run(svc.append(s.id, 300 * KiB, once(data[300 * KiB:])))
    svc.blobs.s3 = working
    assert svc.session(s.id).status == "active" and svc.session(s.id).received == 300 * KiB
    asyncio.run(svc.append(s.id, 300 * KiB, once(data[300 * KiB:])))
    rec = asyncio.run(svc.finalize(s.id))
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    svc.stop()
