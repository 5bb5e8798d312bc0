"""Token accounting against hand-computed values from the seed's numbers."""

from __future__ import annotations

import pytest

from pollux.errors import InvalidArgument
from pollux.media import tokens


@pytest.mark.parametrize(
    ("size", "profile", "expected"),
    [
        ((4000, 3000), "gemini-1.5", 258),  # 1.5: flat 258 whatever the size
        ((10, 10), "gemini-1.5", 258),
        ((384, 384), "gemini-2", 258),  # both sides <= 384: one unit
        ((385, 100), "gemini-2", 258),  # ceil(385/768) * ceil(100/768) = 1 tile
        ((768, 768), "gemini-2", 258),
        ((769, 768), "gemini-2", 516),  # 2 x 1 tiles
        ((1024, 1024), "gemini-2", 1032),  # 2 x 2
        ((4000, 3000), "gemini-2", 6 * 4 * 258),  # ceil(5.2)=6, ceil(3.9)=4 -> 6192
        ((3000, 4000), "gemini-2", 6192),
    ],
)
def test_count_image(size, profile, expected):
    assert tokens.count_image(*size, profile=profile) == expected


def test_unknown_profile_is_a_programming_error():
    with pytest.raises(ValueError):
        tokens.count_image(10, 10, "gemini-9")


def test_video_default_one_fps_with_audio():
    # 10 s at 1 fps: 10 frames x (258 + 5 timestamp) = 2630; audio 10 s x 32 = 320.
    assert tokens.count_video(10.0, has_audio=True) == (2630, 320)
    per_second = sum(tokens.count_video(10.0, has_audio=True)) / 10
    assert 263 <= per_second <= 300  # the documented ~263-300 tokens per second


def test_video_without_audio_and_fractional_duration():
    # 12.5 s: frames at 0..12 -> 13 frames.
    assert tokens.count_video(12.5) == (13 * 263, 0)
    assert tokens.count_video_frames(12.0) == 12  # 12.0 is not sampled: [0, 12)


def test_video_clip_and_fps():
    # [2, 6) at 2 fps: grid 2.0, 2.5, ..., 5.5 -> 8 frames; audio 4 s -> 128.
    assert tokens.count_video(60.0, fps=2.0, start=2.0, end=6.0, has_audio=True) == (8 * 263, 128)
    # [1.5, 4) at 1 fps: frames at 2 and 3.
    assert tokens.count_video_frames(60.0, fps=1.0, start=1.5, end=4.0) == 2
    # A clip shorter than one step still gets one frame.
    assert tokens.count_video_frames(60.0, fps=0.1, start=1.0, end=2.0) == 1
    # endOffset past the end is clamped to the duration.
    assert tokens.count_video(5.0, end=100.0, has_audio=True) == (5 * 263, 160)


def test_a_million_tokens_hold_slightly_less_than_an_hour():
    # The seed: "each second of video becomes ~300 tokens, which means a 1M context window
    # can fit slightly less than an hour of video".
    hour = sum(tokens.count_video(3600.0, has_audio=True))
    assert hour == 3600 * 295
    assert hour > 1_048_576
    assert sum(tokens.count_video(59 * 60.0, has_audio=True)) < 1_048_576


@pytest.mark.parametrize(
    ("fps", "start", "end"),
    [(0, None, None), (-1, None, None), (24.5, None, None), (float("nan"), None, None),
     (1, -1, None), (1, 5, 5), (1, 5, 4), (1, 10, None), (1, 20, 30)],
)  # fmt: skip
def test_invalid_video_options(fps, start, end):
    with pytest.raises(InvalidArgument):
        tokens.resolve_clip(10.0, fps, start, end)


def test_fps_bounds_are_inclusive_of_24():
    assert tokens.resolve_clip(10.0, 24, None, None) == (24.0, 0.0, 10.0)
    assert tokens.count_video_frames(1.0, fps=24) == 24


def test_sample_times_grid():
    assert tokens.sample_times(0.0, 3.0, 1.0) == [0.0, 1.0, 2.0]
    assert tokens.sample_times(0.5, 2.0, 2.0) == [0.5, 1.0, 1.5]
    assert tokens.sample_times(0.2, 0.8, 1.0) == [0.2]  # at least one frame


def test_audio_and_text():
    assert tokens.count_audio(10.0) == 320
    assert tokens.count_audio(0.01) == 1  # ceil
    assert tokens.count_audio(0.0) == 0
    assert tokens.count_text_estimate("") == 0
    assert tokens.count_text_estimate("abcd") == 1
    assert tokens.count_text_estimate("abcde") == 2


def test_count_modalities_sums_per_modality():
    totals = tokens.count_modalities(
        texts=["Describe these.", "abcd"],  # 15 chars -> 4, 4 chars -> 1
        images=[(100, 100), (1024, 1024)],  # 258 + 1032
        videos=[tokens.VideoInput(duration=10.0, has_audio=True)],  # 2630 video, 320 audio
        audios=[2.5],  # 80
        profile="gemini-2",
    )
    assert totals == {"TEXT": 5, "IMAGE": 1290, "VIDEO": 2630, "AUDIO": 400}
    assert tokens.modality_details({"TEXT": 5, "IMAGE": 0, "VIDEO": 0, "AUDIO": 1}) == [
        {"modality": "TEXT", "tokenCount": 5},
        {"modality": "AUDIO", "tokenCount": 1},
    ]


def test_count_modalities_with_a_real_tokenizer_and_1_5_profile():
    totals = tokens.count_modalities(
        texts=["a b c"], images=[(4000, 3000)], profile="gemini-1.5", text_counter=lambda t: len(t.split())
    )
    assert totals == {"TEXT": 3, "IMAGE": 258, "VIDEO": 0, "AUDIO": 0}
