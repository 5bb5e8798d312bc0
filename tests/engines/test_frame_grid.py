"""MEDIA_RESOLUTION_LOW on SmolVLM2 video (issue 14): four frames to one encoder tile, in the prompt the
model is given, in its native count and in the prefill; other levels, other families and still images
are left as they are."""

from __future__ import annotations

from PIL import Image as PILImage

from pollux.engines import frame_grid
from pollux.prompt import assemble
from pollux.prompt_types import Image, MediaPart, Prompt, RequestTurn, Text, TextPart, Turn
from tests.engines.prepared import make_video

LOW = "MEDIA_RESOLUTION_LOW"
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def frames_prompt(n: int, level: str | None = LOW, speech_after: tuple[int, ...] = ()) -> Prompt:
    segments: list = [Text("Describe it.")]
    for t in range(n):
        im = PILImage.new("RGB", (320, 180), COLOURS[t % len(COLOURS)])
        segments += [Text(f"00:{t:02d}", modality="VIDEO"),
                     Image(im, (1280, 720), modality="VIDEO", timestamp=float(t), source="files/v",
                           cache_key=f"v@{t:.3f}/{level}" if level else f"v@{t:.3f}", resolution=level)]
        if t in speech_after:
            segments.append(Text(f"[00:{t:02d}] words {t}", modality="AUDIO"))
    segments.append(Text("What happens?"))
    return Prompt([Turn("user", segments)])


def test_low_packs_four_frames_a_tile_in_order():
    packed = frame_grid.pack(frames_prompt(6, speech_after=(1, 4)), "smolvlm", 512)
    segs = packed.turns[0].segments
    images = packed.images()
    assert len(images) == 2 and [im.covers for im in images] == [(0.0, 1.0, 2.0, 3.0), (4.0, 5.0)]
    assert all(im.image.size == (512, 512) and im.modality == "VIDEO" for im in images)
    markers = [s.text for s in segs if isinstance(s, Text) and s.modality == "VIDEO"]
    assert markers == ["00:00, 00:01, 00:02, 00:03", "00:04, 00:05"]
    # the transcript said between a grid's frames follows that grid; the question stays last
    kinds = [(type(s).__name__, getattr(s, "modality", "")) for s in segs]
    assert kinds == [("Text", "TEXT"), ("Text", "VIDEO"), ("Image", "VIDEO"), ("Text", "AUDIO"),
                     ("Text", "VIDEO"), ("Image", "VIDEO"), ("Text", "AUDIO"), ("Text", "TEXT")]
    # each frame in its cell, left to right, top to bottom; an unfilled cell stays black
    first, second = images[0].image, images[1].image
    assert [first.getpixel(xy) for xy in ((128, 128), (384, 128), (128, 384), (384, 384))] == COLOURS[:4]
    assert [second.getpixel(xy) for xy in ((128, 128), (384, 128), (128, 384))] == [COLOURS[4], COLOURS[5],
                                                                                   (0, 0, 0)]
    assert images[0].cache_key != images[1].cache_key and images[0].cache_key.startswith("grid2:")


def test_other_levels_families_and_still_images_are_untouched():
    default = frames_prompt(6, level=None)
    assert frame_grid.pack(default, "smolvlm", 512) is default
    high = frames_prompt(6, level="MEDIA_RESOLUTION_HIGH")
    assert frame_grid.pack(high, "smolvlm", 512) is high
    low = frames_prompt(6)
    assert frame_grid.pack(low, "qwen2_5_vl", 512) is low
    photo = PILImage.new("RGB", (640, 480))
    still = Prompt([Turn("user", [Image(photo, photo.size, resolution=LOW), Text("?")])])
    assert frame_grid.pack(still, "smolvlm", 512) is still
    one = frame_grid.pack(frames_prompt(1), "smolvlm", 512)  # a lone frame stays a frame
    assert [im.covers for im in one.images()] == [()]


def test_two_videos_never_share_a_grid():
    a, b = frames_prompt(3), frames_prompt(3)
    for seg in b.turns[0].segments:
        if isinstance(seg, Image):
            seg.source, seg.cache_key = "files/w", "w" + seg.cache_key
    both = Prompt([Turn("user", a.turns[0].segments[:-1] + b.turns[0].segments[1:])])
    covers = [im.covers for im in frame_grid.pack(both, "smolvlm", 512).images()]
    assert covers == [(0.0, 1.0, 2.0), (0.0, 1.0, 2.0)]


def video_turns(tmp_path, seconds=8):
    video = make_video(tmp_path / "g", seconds=seconds, size=(320, 180), with_audio=False)
    video.sha256 = "g" * 64
    return [RequestTurn("user", [MediaPart(video, "video/mp4", "files/g"), TextPart("What happens?")])]


def test_low_gives_the_model_a_quarter_of_the_frame_tokens(smol_engine, tmp_path):
    turns = video_turns(tmp_path)
    caps = smol_engine.capabilities
    default = assemble(turns, None, capabilities=caps)
    low = assemble(turns, None, capabilities=caps, media_resolution=LOW)
    text_only = smol_engine.count_tokens(Prompt([Turn("user", [Text("What happens?")])]))
    n_default, n_low = smol_engine.count_tokens(default), smol_engine.count_tokens(low)
    assert n_low < n_default
    image_token = smol_engine.model.config.image_token_id
    per_tile = smol_engine.format.processor.image_seq_len

    def image_positions(prompt):
        encoded = smol_engine.prepare_prompt(prompt)
        return encoded.length, int((encoded.inputs["input_ids"] == image_token).sum())

    assert image_positions(default) == (n_default, 8 * per_tile)
    assert image_positions(low) == (n_low, 2 * per_tile)  # 8 frames in 2 tiles; the count is what the model gets
    text = smol_engine.format.text(smol_engine._as_seen(low))
    assert "series of eight frames" in text and "four to an image in 2x2 grids" in text
    assert "Frames from 00:00, 00:01, 00:02, 00:03:" in text
    assert n_low > text_only


def test_thinning_counts_the_grids(smol_engine, tmp_path):
    """A context that fits the video only as grids keeps every frame at LOW and thins the default."""
    turns = video_turns(tmp_path)
    caps = smol_engine.capabilities
    budget = smol_engine.count_tokens(assemble(turns, None, capabilities=caps, media_resolution=LOW))
    fit = lambda level: assemble(turns, None, capabilities=caps, media_resolution=level,  # noqa: E731
                                 token_budget=budget, count_tokens=smol_engine.count_tokens)
    assert not fit(LOW).thinning
    assert fit(None).thinning


def test_low_generates_from_the_grids(smol_engine, tmp_path):
    from pollux.engines.base import GenerationParams

    import threading

    low = assemble(video_turns(tmp_path), None, capabilities=smol_engine.capabilities, media_resolution=LOW)
    deltas = list(smol_engine.generate(low, GenerationParams(max_output_tokens=3, temperature=0.0),
                                       threading.Event()))
    assert deltas and deltas[-1].finish_reason


def test_a_frame_is_sized_as_the_checkpoints_video_processor_sizes_it(smol_engine, photos):
    """A frame goes to the tile's size directly (not via the still images' 2048 px edge), as SmolVLM2's
    own video processor prepares frames: the pixels agree but for its BICUBIC against LANCZOS."""
    import numpy as np

    fmt = smol_engine.format
    frame = photos["astronaut"].resize((1280, 720))
    ours = fmt.image_inputs(Image(frame, frame.size, modality="VIDEO", timestamp=0.0)).pixel_values[0, 0]
    video = fmt.processor.video_processor(videos=[np.asarray(frame)[None]], return_tensors="pt")
    theirs = video["pixel_values"][0, 0]
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().mean()) < 0.03  # of a [-1, 1] range
    tile = fmt.processor.image_processor.max_image_size["longest_edge"]
    assert fmt._image_kwargs(Image(frame, frame.size, modality="VIDEO"))["size"] == {"longest_edge": tile}
