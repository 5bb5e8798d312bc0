"""Shared fixtures for the media tests; the media itself is built by tests/fixtures/media.py."""

from __future__ import annotations

import pytest

from pollux.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(max_video_seconds=60.0, max_audio_seconds=60.0)
