"""First run like the tools people like: `pollux serve` on loopback with no key makes one, prints it once with
the playground's address and stores only its hash; a configured key or a public bind changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pollux.files.store import MetadataStore, hash_key
from pollux.local_key import first_run, is_loopback
from pollux.settings import Settings, load_settings
from tests.fixtures.server import free_port

KEY = re.compile(r"^\s+(px-\S+)$", re.M)


def _serve(data: Path, log: Path, host: str = "127.0.0.1", keys: str = "") -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "POLLUX_API_KEYS": keys, "POLLUX_TRANSCRIBE": "0"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pollux.cli", "serve", "--emulator", "--host", host,
                                 "--port", str(port), "--data-dir", str(data), "--log-level", "warning"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError(log.read_text())


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _models(url: str, key: str | None) -> int:
    return httpx.get(f"{url}/v1beta/models", headers={"x-goog-api-key": key} if key else {}, timeout=10).status_code


def test_first_loopback_start_prints_one_key_once_stored_hashed(tmp_path):
    data = tmp_path / "data"
    proc, url = _serve(data, tmp_path / "first.log")
    try:
        first = (tmp_path / "first.log").read_text()
        keys = KEY.findall(first)
        assert len(keys) == 1, first
        key = keys[0]
        assert f"Playground: {url}/" in first and "pollux keys create" in first
        assert _models(url, key) == 200
        assert _models(url, None) == 403 and _models(url, "px-wrong") == 400
    finally:
        _stop(proc)
    store = MetadataStore.open(load_settings(None, data_dir=str(data)))
    assert store.project_for_key(key) == "default" and len(store.list_keys()) == 1
    stored = b"".join(p.read_bytes() for p in data.glob("pollux.db*"))
    assert key.encode() not in stored and hash_key(key).encode() in stored  # only the hash is kept
    store.close()

    proc, url = _serve(data, tmp_path / "second.log")  # a later start: the same key, nothing printed
    try:
        assert "px-" not in (tmp_path / "second.log").read_text()
        assert _models(url, key) == 200
    finally:
        _stop(proc)


def test_configured_keys_are_left_as_they_are(tmp_path):
    proc, url = _serve(tmp_path / "data", tmp_path / "log", keys="test-key:demo")
    try:
        assert "px-" not in (tmp_path / "log").read_text()
        assert _models(url, "test-key") == 200
    finally:
        _stop(proc)
    store = MetadataStore.open(load_settings(None, data_dir=str(tmp_path / "data")))
    assert store.list_keys() == []
    store.close()


def test_a_public_bind_without_a_key_stays_closed(tmp_path):
    proc, url = _serve(tmp_path / "data", tmp_path / "log", host="0.0.0.0")
    try:
        log = (tmp_path / "log").read_text()
        assert "px-" not in log and "pollux keys create" in log and "refused" in log
        assert _models(url, None) == 403
    finally:
        _stop(proc)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("127.0.0.2", True), ("0.0.0.0", False),
                                            ("192.168.1.4", False), ("example.org", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_a_revoked_key_is_not_replaced_silently(tmp_path):
    settings = Settings(data_dir=tmp_path)
    store = MetadataStore.open(settings)
    made = first_run(settings, store)
    assert made is not None and made.key and not made.warning
    store.revoke_key(made.key[:10])
    assert first_run(settings, store) is None  # the owner revoked it: `pollux keys create` makes the next
    store.close()
