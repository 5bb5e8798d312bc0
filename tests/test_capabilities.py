"""`pollux.capabilities` on its own: one rule per capability, each refusal naming it and the model."""

from __future__ import annotations

import numpy as np
import pytest

from pollux.capabilities import check_media, check_request
from pollux.catalog import ModelEntry
from pollux.engines.base import Capabilities, GenerationParams
from pollux.errors import InvalidArgument, UnsupportedMedia
from pollux.media.prepared import PreparedAudio
from pollux.prompt_types import FunctionCall, MediaPart, RequestTurn, TextPart
from pollux.settings import Settings
from tests.engines.prepared import write_wav
from tests.fixtures.plain_engine import PlainEngine


def _engine(caps: Capabilities) -> PlainEngine:
    entry = ModelEntry(id="m", display_name="m", description="", engine="plain", source="none", family="test")
    engine = PlainEngine(entry, Settings())
    engine.capabilities = caps
    return engine


def test_audio_needs_the_audio_capability_or_transcription(tmp_path):
    wav = write_wav(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32))
    turns = [RequestTurn("user", [MediaPart(PreparedAudio(duration=0.1, wav_path=wav, artifact_dir=tmp_path),
                                            "audio/wav", "files/a")])]
    listens = _engine(Capabilities(mime_types=frozenset({"audio/*"}), audio=True))
    deaf = _engine(Capabilities(mime_types=frozenset({"audio/*"}), audio=False))
    check_media(turns, listens, "gemini-x", transcribes=False, max_images_per_request=10)
    check_media(turns, deaf, "gemini-x", transcribes=True, max_images_per_request=10)  # its transcript is text
    with pytest.raises(UnsupportedMedia, match=r"gemini-x.*'audio'.*transcription is off") as err:
        check_media(turns, deaf, "gemini-x", transcribes=False, max_images_per_request=10)
    assert err.value.metadata == {"capability": "audio", "model": "gemini-x"}
    with pytest.raises(UnsupportedMedia, match="'mime_types'"):
        check_media(turns, _engine(Capabilities(mime_types=frozenset({"image/*"}))), "gemini-x", transcribes=True,
                    max_images_per_request=10)


def test_request_level_capabilities():
    engine = _engine(Capabilities())
    text = [RequestTurn("user", [TextPart("hi")])]
    check_request(text, GenerationParams(), engine, "gemini-x", "streamGenerateContent")  # streams by default
    with pytest.raises(InvalidArgument, match="'json_schema'"):
        check_request(text, GenerationParams(response_schema={"type": "object"}), engine, "gemini-x")
    with pytest.raises(InvalidArgument, match="'tools'"):  # a functionCall part in the history needs tools too
        check_request([RequestTurn("model", [FunctionCall("f", {})])], GenerationParams(), engine, "gemini-x")
    schema_engine = _engine(Capabilities(json_schema=True, streaming=False))
    check_request(text, GenerationParams(response_schema={"type": "object"}), schema_engine, "gemini-x")
    with pytest.raises(InvalidArgument, match="'streaming'"):
        check_request(text, GenerationParams(), schema_engine, "gemini-x", "streamGenerateContent")
