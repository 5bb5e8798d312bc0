"""The reference engine: vision-language models (SmolVLM2, Qwen2.5-VL) on the torch runtime.

It is the local engine (`local.py`) with torch (transformers) underneath unless `options.runtime`
says otherwise. Catalog entry options (`options.LocalOptions`): `dtype` (float32), `grounding`
(grounding model id or folder, default owlv2-base), `image_longest_edge` (SmolVLM2 tiling),
`max_pixels` / `frame_max_pixels` (Qwen2.5-VL).
"""

from __future__ import annotations

from pollux.engines.local import NATIVE_GROUNDING, LocalEngine
from pollux.engines.runtimes import TORCH

__all__ = ["NATIVE_GROUNDING", "TransformersEngine"]


class TransformersEngine(LocalEngine):
    name = "transformers"
    default_runtime = TORCH
