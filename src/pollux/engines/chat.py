"""A `Prompt` → a model family's chat text and processor inputs, and its exact native token count.

Each family renders through the checkpoint's own chat template. Video frames are images preceded
by their timestamp; SmolVLM2 gets the wording its video template uses ("Frame from MM:SS:") and
frames unsplit at the encoder's size, while still images keep the processor's tiling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pollux.engines import frame_grid, resolution
from pollux.engines.options import LocalOptions
from pollux.prompt_types import Image, Prompt, Text

Size = tuple[int, int]  # width, height


@dataclass
class Encoded:
    inputs: dict[str, Any]  # tensors for model.forward / prepare_inputs_for_generation
    input_sizes: list[Size] = field(default_factory=list)  # per image: the size the model saw (box conversion)

    @property
    def length(self) -> int:
        return int(self.inputs["input_ids"].shape[1])


@dataclass
class ImageInputs:
    """One image as the processor prepares it for the vision encoder (SmolVLM2 tiles)."""

    pixel_values: Any  # [1, tiles, 3, H, W]
    pixel_attention_mask: Any  # [1, tiles, H, W]
    rows: int  # the tiling chosen (expands the <image> placeholder in the text)
    cols: int


def _is_marker(seg: Any) -> bool:
    return isinstance(seg, Text) and seg.modality == "VIDEO"


class ChatFormat:
    """Shared rendering: Gemini roles → chat roles, text merged, images as placeholders."""

    family = "generic"
    frame_text = "{ts}: "
    grid_text = "{ts} (a grid, left to right, top to bottom): "

    def __init__(self, processor: Any, options: LocalOptions | None = None):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.options = options or LocalOptions()
        self.lock = threading.RLock()  # fast tokenizers are not safe across threads: every use goes through here

    def messages(self, prompt: Prompt) -> list[dict]:
        out: list[dict] = []
        if prompt.system:
            out.append({"role": "system", "content": [{"type": "text", "text": prompt.system}]})
        for turn in prompt.turns:
            content: list[dict] = []
            segments = turn.segments
            for i, seg in enumerate(segments):
                if isinstance(seg, Image):
                    content.append({"type": "image"})
                elif isinstance(seg, Text):
                    text = self._marker(seg, segments[i + 1] if i + 1 < len(segments) else None) \
                        if _is_marker(seg) else seg.text
                    if seg.modality == "VIDEO" and (i == 0 or not _is_frame_run(segments, i)):
                        text = self.video_intro(segments, i) + text
                    if content and content[-1]["type"] == "text" and not _is_marker(seg):
                        content[-1]["text"] += "\n" + text
                    else:
                        content.append({"type": "text", "text": text})
            if not content:
                content.append({"type": "text", "text": ""})
            role = "assistant" if turn.role == "model" else "user"
            if out and out[-1]["role"] == role:  # the templates expect alternating turns
                out[-1]["content"].extend(content)
            else:
                out.append({"role": role, "content": content})
        return out

    def video_intro(self, segments: list, start: int) -> str:
        return ""

    def as_seen(self, prompt: Prompt, pixels: bool = True) -> Prompt:
        """The prompt as the model takes it (SmolVLM2 packs LOW frames into grids); `pixels=False`:
        for counting only."""
        return prompt

    def _marker(self, marker: Text, image: Any) -> str:
        if isinstance(image, Image) and image.covers:  # a grid of frames (frame_grid.py)
            return self.grid_text.format(ts=marker.text)
        return self.frame_text.format(ts=marker.text)

    def text(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        return self.processor.apply_chat_template(self.messages(prompt), add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)

    def encode(self, prompt: Prompt) -> Encoded:
        raise NotImplementedError

    def count(self, prompt: Prompt) -> int:
        raise NotImplementedError

    def count_text(self, text: str) -> int:
        with self.lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        with self.lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    def feature_variant(self, image: Image) -> str:
        """What, beyond the image and the processor settings, changes its vision features (a cache key part)."""
        return "single"

    def _tokenize(self, text: str) -> Any:
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=True)


def _is_frame_run(segments: list, i: int) -> bool:
    """True when the marker at i continues a video already running (a frame or transcript before it)."""
    for seg in reversed(segments[:i]):
        if isinstance(seg, Image):
            return seg.modality == "VIDEO"
        if isinstance(seg, Text) and seg.modality in ("VIDEO", "AUDIO"):
            continue
        return False
    return False


class SmolVLMFormat(ChatFormat):
    """SmolVLM / SmolVLM2 (Idefics3 lineage): <image> expanded per tile, frames as single tiles."""

    family = "smolvlm"
    frame_text = "\nFrame from {ts}:"
    grid_text = "\nFrames from {ts}:"

    def video_intro(self, segments: list, start: int) -> str:
        from datetime import timedelta

        from num2words import num2words

        frames = []
        for seg in segments[start:]:
            if isinstance(seg, Image):
                if seg.modality != "VIDEO":
                    break
                frames.append(seg)
            elif isinstance(seg, Text) and seg.modality == "TEXT":
                break
        last = max(frames[-1].covers or (frames[-1].timestamp or 0,)) if frames else 0
        duration = int(last + 1) if frames else 0
        shown = sum(len(f.covers) or 1 for f in frames)
        grids = max((frame_grid.grid_size(self.family, f) for f in frames if f.covers), default=0)
        packed = (f", {num2words(grids * grids)} to an image in {grids}x{grids} grids read left to right, "
                  "top to bottom" if grids else "")
        return (f"You are provided the following series of {num2words(shown)} frames from a "
                f"{timedelta(seconds=duration)} [H:MM:SS] video{packed}.\n")

    @property
    def _tile(self) -> int:
        """The vision encoder's tile edge (512 px on the released checkpoints)."""
        return int(self.processor.image_processor.max_image_size["longest_edge"])

    def as_seen(self, prompt: Prompt, pixels: bool = True) -> Prompt:
        return frame_grid.pack(prompt, self.family, self._tile, pixels)

    def _splits(self, image: Image) -> bool:
        row = resolution.settings(self.family, image.resolution)
        default = bool(self.processor.image_processor.do_image_splitting)
        return image.modality != "VIDEO" and (row["split"] if row else default)

    def feature_variant(self, image: Image) -> str:
        return "tiles" if self._splits(image) else "single"

    def _image_kwargs(self, image: Image) -> dict[str, Any]:
        """Processor kwargs for this image: splitting, and the longest edge tiles are cut from (the
        level's row; unspecified: the entry's `default_image_tiles`, else the processor's size)."""
        out: dict[str, Any] = {"do_image_splitting": self._splits(image)}
        row = resolution.settings(self.family, image.resolution)
        tiles = row["tiles"] if row else self.options.default_image_tiles
        if image.modality == "VIDEO":
            # One tile, as the checkpoint's video processor sizes frames: not first upscaled to the
            # still-image edge (2048 px) only to be squared down to the tile (0.15 s a frame here).
            out["size"] = {"longest_edge": self._tile}
        elif tiles:
            out["size"] = {"longest_edge": tiles * self._tile}
        return out

    def image_inputs(self, image: Image) -> ImageInputs:
        """The one way an image becomes encoder input, whichever runtime encodes it."""
        out = self.processor.image_processor([[image.image]], **self._image_kwargs(image),
                                             return_row_col_info=True, return_tensors="pt")
        return ImageInputs(out["pixel_values"], out["pixel_attention_mask"], int(out["rows"][0][0]),
                           int(out["cols"][0][0]))

    def _grid(self, image: Image) -> tuple[int, int]:
        """The tiling `image_inputs` would choose, without preparing any pixels (counting)."""
        w, h = image.image.size
        _, r, c = self.processor.image_processor.get_number_of_image_patches(h, w, self._image_kwargs(image))
        split = self._splits(image) and (r, c) != (1, 1)
        return (r, c) if split else (0, 0)

    def token_ids(self, prompt: Prompt, grids: list[tuple[int, int]]) -> Any:
        """The prompt's token ids [1, n], each image's placeholder expanded for its (rows, cols) tiling."""
        with self.lock:
            text = self.text(prompt)
            if grids:
                text = self.processor.expand_text_with_image_tokens(
                    [text], image_rows=[[r for r, _ in grids]], image_cols=[[c for _, c in grids]])[0]
            return self._tokenize(text)

    def encode(self, prompt: Prompt) -> Encoded:
        import torch

        images = prompt.images()
        prepared = [self.image_inputs(image) for image in images]
        inputs: dict[str, Any] = {}
        if prepared:
            inputs["pixel_values"] = torch.cat([p.pixel_values[0] for p in prepared])[None]
            inputs["pixel_attention_mask"] = torch.cat([p.pixel_attention_mask[0] for p in prepared])[None]
        inputs.update(self.token_ids(prompt, [(p.rows, p.cols) for p in prepared]))
        return Encoded(inputs, [im.image.size for im in images])

    def count(self, prompt: Prompt) -> int:
        return int(self.token_ids(prompt, [self._grid(image) for image in prompt.images()])["input_ids"].shape[1])


class QwenVLFormat(ChatFormat):
    """Qwen2-VL / Qwen2.5-VL: native dynamic resolution; images pre-shrunk to the configured pixel caps."""

    family = "qwen2_5_vl"
    frame_text = "\nFrame at {ts}: "

    def _target_size(self, image: Image) -> Size:
        """The image's size after the pixel cap (frames get a smaller cap than still images)."""
        key = "frame_max_pixels" if image.modality == "VIDEO" else "max_pixels"
        row = resolution.settings(self.family, image.resolution)
        configured = getattr(self.options, key) or (448 * 448 if image.modality == "VIDEO" else 1280 * 28 * 28)
        cap = int(row[key] if row else configured)
        w, h = image.image.size
        if w * h <= cap:
            return w, h
        scale = (cap / (w * h)) ** 0.5
        return max(28, int(w * scale)), max(28, int(h * scale))

    def _shrunk(self, image: Image):
        from PIL import Image as PILImage

        size = self._target_size(image)
        return image.image if size == image.image.size else image.image.resize(size, PILImage.Resampling.BICUBIC)

    def encode(self, prompt: Prompt) -> Encoded:
        images = [self._shrunk(im) for im in prompt.images()]
        with self.lock:
            inputs = self.processor(text=[self.text(prompt)], images=images or None, return_tensors="pt")
        inputs = dict(inputs)
        inputs.pop("token_type_ids", None)
        sizes: list[Size] = []
        patch = self.processor.image_processor.patch_size
        for t, h, w in inputs.get("image_grid_thw", []).tolist() if images else []:
            sizes.append((w * patch, h * patch))
        return Encoded(inputs, sizes)

    def count(self, prompt: Prompt) -> int:
        with self.lock:
            return self._count(prompt)

    def _count(self, prompt: Prompt) -> int:
        text = self.text(prompt)
        ip = self.processor.image_processor
        merge = ip.merge_size**2
        pad = self.processor.image_token
        pieces = text.split(pad)
        out = pieces[0]
        for image, piece in zip(prompt.images(), pieces[1:]):
            w, h = self._target_size(image)
            out += pad * (ip.get_number_of_image_patches(h, w, {}) // merge) + piece
        return len(self.tokenizer(out, add_special_tokens=True)["input_ids"])


FORMATS: dict[str, type[ChatFormat]] = {"smolvlm": SmolVLMFormat, "qwen2_5_vl": QwenVLFormat, "qwen2_vl": QwenVLFormat}


def format_for(family: str, processor: Any, options: LocalOptions | None = None) -> ChatFormat:
    cls = FORMATS.get(family)
    if cls is None:
        from pollux.errors import ModelUnavailable

        raise ModelUnavailable(f"The transformers engine has no chat format for model family {family!r}; "
                               f"known: {sorted(FORMATS)}.")
    return cls(processor, options)
