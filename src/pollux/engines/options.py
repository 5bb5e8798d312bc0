"""Per-engine catalog options (`options = { ... }` of a `[[models]]` table), typed and checked when the
catalog loads: a misspelled key or a value of the wrong type is a start-up error naming the model and
the key, never silently ignored. Kept free of heavy imports (the catalog validates with these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pollux.engines import ov_convert

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry


class EngineOptions(BaseModel):
    """The default for engines that declare no options model (third-party engines): anything goes."""

    model_config = ConfigDict(extra="allow", frozen=True)


class LocalOptions(BaseModel):
    """The local vision-language engines (`transformers`, `openvino`: one engine, two runtimes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: Literal["transformers", "openvino"] | None = None  # default: the engine's own
    dtype: Literal["float32", "float16", "bfloat16", "float64"] = "float32"  # torch runtime
    grounding: str = "owlv2-base"  # the grounding model id or folder for box requests
    image_longest_edge: int | None = None  # SmolVLM2: fewer tiles per image (the processor upsizes to 2048 px)
    # SmolVLM2: an unspecified mediaResolution's tiling, in tiles on the longest edge (x the encoder's
    # tile, as resolution.py's rows): the CPU default picked from benchmarks/media_resolution.py.
    default_image_tiles: int | None = None
    max_pixels: int | None = None  # Qwen2.5-VL pixel caps (still images, video frames)
    frame_max_pixels: int | None = None
    # OpenVINO runtime: conversion (a cache key) and memory.
    weights: str = ov_convert.DEFAULT_WEIGHTS
    vision_weights: str = ov_convert.DEFAULT_VISION_WEIGHTS
    sym: bool = False
    group_size: int = ov_convert.DEFAULT_INT4_GROUP
    feature_cache_mb: int = 512
    kv_snapshot_mb: int = 384
    # OpenVINO runtime: which runtime prefills (and decodes) a long prompt (runtimes/prefill_choice.py).
    # "auto": torch for prefills from the crossover measured once per machine (`long_prompt_crossover`
    # fixes it instead, unmeasured); "openvino": never torch; "transformers": torch for prefills from
    # `long_prompt_crossover` positions (unset: every prompt).
    long_prompt_runtime: Literal["auto", "openvino", "transformers"] = "auto"
    long_prompt_crossover: int | None = Field(default=None, ge=1)

    @field_validator("weights", "vision_weights")
    @classmethod
    def _mode(cls, value: str, info: Any) -> str:
        allowed = ov_convert.WEIGHT_MODES if info.field_name == "weights" else ov_convert.VISION_MODES
        if value.lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value.lower()


class RemoteOptions(BaseModel):
    """OpenAI-compatible servers (`openai`: vLLM, SGLang, Ollama, llama.cpp, LM Studio, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None  # the served model's name (default: the first of /v1/models)
    api_key_env: str | None = None  # the environment variable holding the server's key
    max_in_flight: int = 512
    retries: int = 2
    read_timeout: float = 600.0
    connect_timeout: float = 5.0
    extra_body: dict[str, Any] = {}
    max_images: int | None = None
    audio: bool = False  # sends raw audio (others get the transcript)
    tools: bool = True
    image_cache_bytes: int = 256 * 1024 * 1024
    image_tokens: int = 258  # the count estimate per image when the server cannot tokenize
    patch_factor: int = 28  # the server's Qwen2.5-VL resize rule (box conversion)
    min_pixels: int = 56 * 56
    max_pixels: int = 12845056
    dialect: str | None = None  # vllm | sglang | ollama | llamacpp | lmstudio | openai (default: learnt from the server)
    stream_interval_ms: float = 20  # tokens arriving this close to the last chunk sent go with the next one


class EmulatorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


BUILTIN_OPTIONS: dict[str, type[BaseModel]] = {
    "transformers": LocalOptions, "openvino": LocalOptions, "openai": RemoteOptions, "emulator": EmulatorOptions,
}


def options_model(engine: str) -> type[BaseModel]:
    """The options model of an engine by registry name (built-ins without importing them), else its `Options`."""
    found = BUILTIN_OPTIONS.get(engine)
    if found is not None:
        return found
    from pollux.engines.base import engine_class

    try:
        return getattr(engine_class(engine), "Options", EngineOptions)
    except Exception:  # not installed here: the hub reports that when the model is used
        return EngineOptions


def validate(entry: "ModelEntry", model: type[BaseModel] | None = None) -> Any:
    """`entry.options` as its engine's typed options; a ValueError naming the model and the key otherwise."""
    model = model or options_model(entry.engine)
    try:
        return model.model_validate(entry.options)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "options"
            if err["type"] == "extra_forbidden":
                known = ", ".join(sorted(model.model_fields))
                problems.append(f"unknown option {key!r} (the {entry.engine} engine knows: {known})")
            else:
                problems.append(f"option {key!r}: {err['msg']}")
        raise ValueError(f"Model {entry.id!r} in the catalog: {'; '.join(problems)}.") from None
