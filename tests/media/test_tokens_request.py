"""`tokens.count_request`: the one place a request's Gemini-rule counts are computed (generation and the
API only report them), including which modalities `promptTokensDetails` lists."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from pollux.errors import InvalidArgument
from pollux.media import tokens
from pollux.media.prepared import PreparedAudio, PreparedImage
from pollux.prompt_types import FileRef, FunctionCall, MediaPart, RequestTurn, TextPart, VideoOptions
from tests.engines.prepared import make_video


def _image(w: int, h: int) -> MediaPart:
    return MediaPart(PreparedImage(PILImage.new("RGB", (8, 8)), (w, h), "image/png", "ab" * 32), "image/png", "a")


def test_a_request_is_counted_by_the_rules_per_modality(tmp_path):
    video = MediaPart(make_video(tmp_path / "v", seconds=6, with_audio=True), "video/mp4", "files/v",
                      VideoOptions(start=1.0, end=4.0))
    audio = MediaPart(PreparedAudio(duration=2.5, wav_path=tmp_path / "a.wav", artifact_dir=tmp_path),
                      "audio/wav", "files/a")
    call = FunctionCall("f", {"x": 1})
    turns = [RequestTurn("user", [TextPart("Describe these."), _image(100, 100), _image(1024, 1024), video, audio]),
             RequestTurn("model", [call])]
    totals = tokens.count_request(turns, "abcd", "gemini-2")
    frames, clip_audio = tokens.count_video(6.0, None, 1.0, 4.0, True, "gemini-2")
    assert totals == {"TEXT": 1 + 4 + tokens.count_text_estimate('{"name": "f", "args": {"x": 1}, "id": null}'),
                      "IMAGE": 258 + 1032, "VIDEO": frames, "AUDIO": clip_audio + 80}
    assert frames == 3 * (258 + tokens.TIMESTAMP_TOKENS) and clip_audio == 96
    # mediaResolution: the part's own level first, then the request's
    low = _image(1024, 1024)
    low.resolution = "MEDIA_RESOLUTION_LOW"
    g3 = tokens.count_request([RequestTurn("user", [low, _image(10, 10)])], None, "gemini-3", None,
                              "MEDIA_RESOLUTION_MEDIUM")
    assert g3["IMAGE"] == 280 + 560
    assert tokens.count_request([RequestTurn("user", [TextPart("a b c")])], None, text_counter=lambda t: 99)["TEXT"] == 99


def test_unprepared_media_is_never_guessed():
    with pytest.raises(TypeError, match="prepared media"):
        tokens.count_request([RequestTurn("user", [FileRef("files/x")])], None)


def test_zero_modalities_are_left_out_of_the_details():
    """Gemini lists the modalities the prompt has: an image-only prompt reports IMAGE alone, no TEXT 0."""
    totals = tokens.count_request([RequestTurn("user", [_image(10, 10)])], None)
    assert totals == {"TEXT": 0, "IMAGE": 258, "VIDEO": 0, "AUDIO": 0}
    assert tokens.reported(totals) == {"IMAGE": 258}
    assert tokens.modality_details(totals) == [{"modality": "IMAGE", "tokenCount": 258}]


def test_the_input_limit_check():
    tokens.check_input_limit(10, 10)
    with pytest.raises(InvalidArgument, match=r"input token count \(11\) exceeds the maximum number of tokens "
                                              r"allowed \(10\)"):
        tokens.check_input_limit(11, 10)

