"""Prompt assembly: order, roles, system, images, video frames with MM:SS and transcript, thinning, budget."""

from __future__ import annotations

import re

import pytest
from PIL import Image as PILImage

from pollux.engines.base import Capabilities
from pollux.errors import InvalidArgument
from pollux.media.prepared import PreparedAudio, PreparedImage
from pollux.prompt import assemble, mentioned_seconds, mmss
from pollux.prompt_types import Audio, FileRef, Image, MediaPart, Prompt, RequestTurn, Text, TextPart, VideoOptions
from tests.engines.prepared import make_video, write_wav

ALL = Capabilities(mime_types=frozenset({"image/*", "video/*", "audio/*"}), video=True)

TRANSCRIPT = [{"start": 0.2, "end": 1.8, "text": "hello there"},
              {"start": 3.1, "end": 4.6, "text": "look at the ball"},
              {"start": 5.5, "end": 7.0, "text": "goodbye"}]


def _image(w=64, h=48):
    return PreparedImage(PILImage.new("RGB", (w, h), (10, 20, 30)), (w * 4, h * 4), "image/png", "ab" * 32)


def _count(prompt: Prompt) -> int:
    """A stand-in tokenizer: 100 per image, 1 per word."""
    total = len((prompt.system or "").split())
    for turn in prompt.turns:
        for seg in turn.segments:
            total += 100 if isinstance(seg, Image) else len(seg.text.split()) if isinstance(seg, Text) else 0
    return total


def _video_part(tmp_path, seconds=8, options=None, audio=True):
    video = make_video(tmp_path / "v", seconds=seconds, with_audio=audio)
    return MediaPart(video, "video/mp4", "files/vid", options)


def test_contents_roles_system_and_images_in_order():
    turns = [RequestTurn("user", [TextPart("What is this?"), MediaPart(_image(), "image/png", "inline[0]")]),
             RequestTurn("model", [TextPart("A square.")]),
             RequestTurn("user", [MediaPart(_image(30, 90), "image/png", "files/b"), TextPart("And this?")])]
    prompt = assemble(turns, "Answer briefly.", capabilities=ALL)
    assert prompt.system == "Answer briefly."
    assert [t.role for t in prompt.turns] == ["user", "model", "user"]
    first = prompt.turns[0].segments
    assert isinstance(first[0], Text) and first[0].text == "What is this?"
    assert isinstance(first[1], Image) and first[1].original_size == (256, 192) and first[1].source == "inline[0]"
    assert first[1].modality == "IMAGE" and first[1].cache_key
    assert isinstance(prompt.turns[2].segments[0], Image) and prompt.turns[2].segments[0].image.size == (30, 90)
    assert prompt.last_user_text() == "And this?"


def test_video_frames_with_timestamps_and_interleaved_transcript(tmp_path):
    turns = [RequestTurn("user", [_video_part(tmp_path), TextPart("Summarize this video.")])]
    prompt = assemble(turns, None, capabilities=ALL, transcribe=lambda audio: TRANSCRIPT)
    segs = prompt.turns[0].segments
    markers = [s.text for s in segs if isinstance(s, Text) and s.modality == "VIDEO"]
    assert markers == [mmss(t) for t in range(8)] == ["00:00", "00:01", "00:02", "00:03", "00:04", "00:05",
                                                      "00:06", "00:07"]
    frames = [s for s in segs if isinstance(s, Image)]
    assert [f.timestamp for f in frames] == [float(t) for t in range(8)]
    assert all(f.modality == "VIDEO" and f.source == "files/vid" for f in frames)
    # Each marker comes right before its frame; speech follows the frame whose second it starts in.
    flat = [(type(s).__name__, getattr(s, "text", getattr(s, "timestamp", None))) for s in segs]
    at = flat.index(("Text", "00:03"))
    assert flat[at + 1] == ("Image", 3.0)
    assert flat[at + 2] == ("Text", "Speech [00:03-00:04]: look at the ball")
    speech = [s for s in segs if isinstance(s, Text) and s.modality == "AUDIO"]
    assert len(speech) == 3
    assert segs[-1].text == "Summarize this video."


def test_clip_limits_frames_and_transcript(tmp_path):
    part = _video_part(tmp_path, options=VideoOptions(start=3.0, end=6.0))
    prompt = assemble([RequestTurn("user", [part])], None, capabilities=ALL, transcribe=lambda a: TRANSCRIPT)
    frames = [s.timestamp for s in prompt.images()]
    assert frames == [3.0, 4.0, 5.0]
    speech = [s.text for s in prompt.turns[0].segments if isinstance(s, Text) and s.modality == "AUDIO"]
    assert speech == ["Speech [00:03-00:04]: look at the ball", "Speech [00:05-00:07]: goodbye"]


def test_thinning_fits_budget_and_keeps_mentioned_moments(tmp_path):
    part = _video_part(tmp_path, seconds=30, audio=False)
    ask = TextPart("What happens at 00:13 and at 0:00:27?")
    turns = [RequestTurn("user", [part, ask])]
    full = _count(assemble(turns, None, capabilities=ALL))
    assert full > 30 * 100
    prompt = assemble(turns, None, capabilities=ALL, token_budget=1000, count_tokens=_count)
    kept = [im.timestamp for im in prompt.images()]
    assert _count(prompt) <= 1000
    assert 13.0 in kept and 27.0 in kept
    assert 5 <= len(kept) <= 9  # about budget/100 frames, spread over the whole video
    assert kept[0] == 0.0 and kept[-1] >= 27.0
    gaps = [b - a for a, b in zip(kept, kept[1:])]
    assert max(gaps) <= 8
    # The frames are real (loaded), not stand-ins: each differs from the first.
    assert all(im.image.tobytes() != prompt.images()[0].image.tobytes() for im in prompt.images()[1:])


def test_thinning_keeps_transcript_of_dropped_frames(tmp_path):
    part = _video_part(tmp_path, seconds=8)
    prompt = assemble([RequestTurn("user", [part])], None, capabilities=ALL, token_budget=350,
                      count_tokens=_count, transcribe=lambda a: TRANSCRIPT)
    assert len(prompt.images()) < 8
    speech = [s.text for s in prompt.turns[0].segments if isinstance(s, Text) and s.modality == "AUDIO"]
    assert len(speech) == 3


def test_budget_error_states_both_numbers(tmp_path):
    part = _video_part(tmp_path, seconds=10, audio=False)
    turns = [RequestTurn("user", [part, TextPart("What is at 00:02, 00:04, 00:06 and 00:08?")])]
    with pytest.raises(InvalidArgument) as err:
        assemble(turns, None, capabilities=ALL, token_budget=250, count_tokens=_count)
    # Five frames must stay (four mentioned moments and the first), 100 tokens each: cannot fit 250.
    assert re.search(r"input token count \(5\d\d\).*allowed \(250\).*from 10 to 5 frames", err.value.message)
    with pytest.raises(InvalidArgument, match=r"\(201\).*\(200\)"):
        assemble([RequestTurn("user", [MediaPart(_image(), "image/png", "a"), MediaPart(_image(), "image/png", "b"),
                                       TextPart("x")])], None, capabilities=ALL, token_budget=200, count_tokens=_count)


def test_audio_file_is_its_transcript_and_raw_audio_when_taken(tmp_path):
    import numpy as np

    wav = write_wav(tmp_path / "a.wav", np.zeros(16000 * 8, dtype=np.float32))
    audio = PreparedAudio(duration=8.0, wav_path=wav, artifact_dir=tmp_path)
    turns = [RequestTurn("user", [MediaPart(audio, "audio/wav", "files/aud"), TextPart("Transcribe it.")])]
    prompt = assemble(turns, None, capabilities=ALL, transcribe=lambda a: TRANSCRIPT)
    text = prompt.turns[0].segments[0]
    assert isinstance(text, Text) and text.modality == "AUDIO"
    assert "Speech [00:00-00:01]: hello there" in text.text and "goodbye" in text.text
    with_audio = assemble(turns, None, capabilities=Capabilities(mime_types=frozenset({"audio/*"}), audio=True),
                          transcribe=lambda a: TRANSCRIPT)
    assert isinstance(with_audio.turns[0].segments[0], Audio)
    assert with_audio.turns[0].segments[0].samples.shape == (16000 * 8,)


def test_assembly_takes_only_prepared_media():
    """Media is fetched and checked against the engine above assembly (tests/test_capabilities.py)."""
    with pytest.raises(TypeError, match="prepared media"):
        assemble([RequestTurn("user", [FileRef("files/abc")])], None, capabilities=ALL)


def test_mentioned_seconds():
    assert mentioned_seconds("What are the examples at 01:05 and 01:19 for?") == [65, 79]
    assert mentioned_seconds("at 1:02:03, not 12345 or 3.5") == [3723]
    assert mentioned_seconds("no times here") == []


# ---------------------------------------------------------------------------------- box intent

SPATIAL_SYSTEM = ("Return bounding boxes as a JSON array with labels. Never return masks or code fencing. "
                  "Limit to 25 objects.")


def _box_prompt(system, text, mime="text/plain", schema=None):
    turns = [RequestTurn("user", [MediaPart(_image(), "image/png", "files/img"), TextPart(text)])]
    return assemble(turns, system, capabilities=ALL, response_mime_type=mime, response_schema=schema)


@pytest.mark.parametrize("system,text,mime,expected", [
    (SPATIAL_SYSTEM, "Show me the positions of the socks", "text/plain", (("socks",), True, True)),
    (SPATIAL_SYSTEM, "Detect the 2d bounding boxes of the cupcakes (with label as topping)", "text/plain",
     (("cupcakes",), True, True)),
    (None, "Return a bounding box for the piranha. \n [ymin, xmin, ymax, xmax]", "text/plain",
     (("piranha",), False, False)),
    (None, "Give me bounding boxes of all the cats and the dogs", "application/json", (("cats", "dogs"), True, True)),
    ("Answer with box_2d for every object the user names.", "the red cup", "text/plain", (("object",), True, True)),
])
def test_box_intent_from_system_instruction_and_user_turn(system, text, mime, expected):
    boxes = _box_prompt(system, text, mime).boxes
    assert (boxes.phrases, boxes.many, boxes.json) == expected


def test_no_box_intent_without_a_box_request():
    assert _box_prompt("Be terse.", "Show me the positions of the socks").boxes is None
    assert _box_prompt(None, "Describe this image.").boxes is None
    schema = {"type": "array", "items": {"type": "object", "properties": {"box_2d": {"type": "array"}}}}
    assert _box_prompt(None, "Where is the cup?", "application/json", schema).boxes.phrases == ("cup",)


def test_the_same_intent_reaches_the_emulator_and_a_real_engine(tmp_path, monkeypatch):
    """One BoxRequest, read by the emulator and by the transformers engine's box path (its grounding
    model stubbed with a recorder: the engine's own code decides what it asks the grounder)."""
    from pollux.catalog import ModelEntry
    from pollux.engines import grounding
    from pollux.engines.base import GenerationParams
    from pollux.engines.boxes import Detection
    from pollux.engines.emulator import EmulatorEngine
    from pollux.engines.transformers import TransformersEngine
    from pollux.settings import Settings

    prompt = _box_prompt(SPATIAL_SYSTEM, "Show me the positions of the socks")
    entry = ModelEntry(id="m", display_name="m", description="", engine="transformers", source=str(tmp_path),
                       family="smolvlm")
    settings = Settings(data_dir=tmp_path)
    asked = []

    class Recorder:
        def detect(self, image, names, *, many=False, image_index=0):
            asked.append((tuple(names), many))
            return [Detection(names[0], (100, 200, 300, 400), image=image_index)]

    monkeypatch.setattr(grounding, "grounder_for", lambda name, s: Recorder())
    answer = TransformersEngine(entry, settings)._box_answer(prompt, GenerationParams(), None)
    assert asked == [(prompt.boxes.phrases, prompt.boxes.many)] == [(("socks",), True)]
    assert answer == '[{"box_2d": [100, 200, 300, 400], "label": "socks"}]'  # JSON, as the system asked
    emulated = EmulatorEngine(entry, settings).answer(prompt, GenerationParams())
    assert '"label": "socks"' in emulated and '"box_2d"' in emulated
