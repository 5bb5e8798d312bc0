"""A live `pollux serve --emulator` for this folder's tests (started once per session)."""

from __future__ import annotations

import pytest

from pollux.client.devserver import emulator_server

API_KEY = "test-key"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> str:
    """Base URL of an emulator server with POLLUX_API_KEYS="test-key:demo" and a fresh data dir."""
    with emulator_server(tmp_path_factory.mktemp("pollux-data")) as base_url:
        yield base_url
