"""mediaResolution in the token profiles: gemini-3 fixed counts (Gemini 3 developer guide), gemini-2 LOW."""

import pytest

from pollux.media import tokens


@pytest.mark.parametrize("resolution,expected", [
    (None, 1120), ("MEDIA_RESOLUTION_UNSPECIFIED", 1120), ("MEDIA_RESOLUTION_LOW", 280),
    ("MEDIA_RESOLUTION_MEDIUM", 560), ("MEDIA_RESOLUTION_HIGH", 1120), ("MEDIA_RESOLUTION_ULTRA_HIGH", 2240),
])
def test_images_by_resolution_whatever_their_size(resolution, expected):
    assert tokens.count_image(64, 64, "gemini-3", resolution) == expected
    assert tokens.count_image(4000, 3000, "gemini-3", resolution) == expected


def test_video_frames_are_70_by_default_280_at_high():
    frames, audio = tokens.count_video(10.0, has_audio=True, profile="gemini-3")
    assert frames == 10 * (70 + tokens.TIMESTAMP_TOKENS) and audio == 320
    frames, _ = tokens.count_video(10.0, profile="gemini-3", resolution="MEDIA_RESOLUTION_HIGH")
    assert frames == 10 * (280 + tokens.TIMESTAMP_TOKENS)


def test_gemini_2_low_resolution_is_64_per_image_and_frame():
    assert tokens.count_image(1000, 800, "gemini-2", "MEDIA_RESOLUTION_LOW") == 64
    assert tokens.count_image(1000, 800, "gemini-2", "MEDIA_RESOLUTION_MEDIUM") == 4 * 258
    frames, audio = tokens.count_video(10.0, has_audio=True, profile="gemini-2", resolution="MEDIA_RESOLUTION_LOW")
    assert 95 <= (frames + audio) / 10 <= 105  # "about 100 tokens per second at low media resolution"
    assert tokens.count_video(4.0, profile="gemini-1.5", resolution="MEDIA_RESOLUTION_LOW")[0] == 4 * 263
