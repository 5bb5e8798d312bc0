"""Shared fixtures for the media tests; the media itself is built by tests/fixtures/media.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # so `tests.fixtures` imports however pytest is started
    sys.path.insert(0, str(_ROOT))

from pollux.settings import Settings  # noqa: E402


@pytest.fixture
def settings() -> Settings:
    return Settings(max_video_seconds=60.0)
