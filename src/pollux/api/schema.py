"""Request models: camelCase and snake_case for every field, enum names or numbers, integral floats.

Field names are checked as Gemini checks them: a name that is not in the current Gemini schema is a
400 in Gemini's words ("Unknown name ... Cannot find field."). The schema is read from google-genai's
`types` (installed with Pollux), so every field today's SDKs send is accepted, honoured or not
(those are logged once). Bad enum values are 400s in Gemini's words too.
Responses are built as plain lowerCamelCase dicts in `api/render.py`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel, to_snake
from pydantic_core import PydanticCustomError

from pollux.errors import InvalidArgument

log = logging.getLogger("pollux.api.schema")
_logged: set[tuple[str, str]] = set()


@functools.cache
def sdk_fields(*type_names: str) -> frozenset[str] | None:
    """The snake_case field names of google-genai types (None when google-genai is not importable)."""
    try:
        from google.genai import types
    except ImportError:  # then unknown names are only logged
        return None
    return frozenset(f for name in type_names for f in getattr(types, name).model_fields)


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    # The google-genai types whose fields this message may carry, and wire-only names they lack.
    gemini_types: ClassVar[tuple[str, ...]] = ()
    gemini_extra: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        """proto3 JSON: a null field is the field's default (SDKs send `"stopSequences": null`)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @model_validator(mode="after")
    def _unknown_fields(self):
        if not self.model_extra:
            return self
        known = sdk_fields(*self.gemini_types) if self.gemini_types or self.gemini_extra else None
        if known is not None:
            known = known | self.gemini_extra
        for name in self.model_extra:
            if known is not None and to_snake(name) not in known:
                raise PydanticCustomError("gemini_unknown", "Unknown name {name}", {"name": name})
            if (type(self).__name__, name) not in _logged:  # in the schema, not honoured: say so once
                _logged.add((type(self).__name__, name))
                log.info("accepted but not honoured: %s.%s", type(self).__name__, name)
        return self


_DURATION = re.compile(r"^\s*(-?\d+(\.\d+)?)s\s*$")


def parse_duration(value: Any) -> float | None:
    """Protobuf Duration JSON ("1.5s"), or {seconds, nanos}, or a bare number → seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"invalid duration {value!r}; expected e.g. \"1.5s\"")
    return float(m.group(1))


class Blob(Wire):
    gemini_types = ("Blob",)
    mime_type: str = ""
    data: bytes = b""

    @field_validator("data", mode="before")
    @classmethod
    def _b64(cls, v: Any) -> bytes:
        if isinstance(v, bytes):
            return v
        s = str(v)
        try:
            return base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_" if ("-" in s or "_" in s) else None,
                                    validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("inlineData.data is not valid base64") from None


class FileData(Wire):
    gemini_types = ("FileData",)
    mime_type: str = ""
    file_uri: str


class VideoMetadata(Wire):
    gemini_types = ("VideoMetadata",)
    start_offset: float | None = None
    end_offset: float | None = None
    fps: float | None = None

    @field_validator("start_offset", "end_offset", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return parse_duration(v)


class Part(Wire):
    gemini_types = ("Part",)
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    video_metadata: VideoMetadata | None = None
    thought: bool | None = None
    media_resolution: str | None = None  # v1alpha sends {"level": "MEDIA_RESOLUTION_HIGH"}

    @field_validator("media_resolution", mode="before")
    @classmethod
    def _resolution(cls, v: Any) -> str | None:
        if isinstance(v, dict):
            v = v.get("level")
        return None if v is None else _enum(PART_MEDIA_RESOLUTIONS, v, "Part.MediaResolution.Level")


class Content(Wire):
    gemini_types = ("Content",)
    role: str | None = None
    parts: list[Part] = Field(default_factory=list)


def enum_error(type_name: str, value: Any, suffix: str = "") -> PydanticCustomError:
    """Gemini's "Invalid value at '<path>' (type.googleapis.com/...<Type>), "<value>"" (formatted in `parse`)."""
    shown = value if isinstance(value, str) else repr(value)
    return PydanticCustomError("gemini_enum", "Invalid value {value}", {"type": type_name, "value": shown,
                                                                          "suffix": suffix})


HARM_CATEGORIES = ["HARM_CATEGORY_UNSPECIFIED", "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY",
                   "HARM_CATEGORY_VIOLENCE", "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL",
                   "HARM_CATEGORY_DANGEROUS", "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
                   "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
                   "HARM_CATEGORY_CIVIC_INTEGRITY"]
THRESHOLDS = ["HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
              "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"]


# Names accepted besides the numbered ones (newer values, numbered in protos we do not have).
HARM_CATEGORY_NAMES = HARM_CATEGORIES + ["HARM_CATEGORY_JAILBREAK", "HARM_CATEGORY_IMAGE_HATE",
                                         "HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT", "HARM_CATEGORY_IMAGE_HARASSMENT",
                                         "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT"]
HARM_BLOCK_METHODS = ["HARM_BLOCK_METHOD_UNSPECIFIED", "SEVERITY", "PROBABILITY"]
MEDIA_RESOLUTIONS = ["MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM",
                     "MEDIA_RESOLUTION_HIGH"]
PART_MEDIA_RESOLUTIONS = MEDIA_RESOLUTIONS + ["MEDIA_RESOLUTION_ULTRA_HIGH"]
MODALITIES = ["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"]
THINKING_LEVELS = ["THINKING_LEVEL_UNSPECIFIED", "LOW", "MEDIUM", "HIGH", "MINIMAL"]


def _enum(names: list[str], value: Any, type_name: str, extra: list[str] = (), prefix: str = "",
          suffix: str = "") -> str:
    """An enum given by name (any case) or proto number → its name; else Gemini's invalid-value 400."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and int(value) == value \
            and 0 <= int(value) < len(names):
        return names[int(value)]
    if isinstance(value, str):
        upper = value.upper()
        for candidate in (upper, prefix + upper):
            if candidate in names or candidate in extra:
                return candidate
    raise enum_error(type_name, value, suffix)


class SafetySetting(Wire):
    gemini_types = ("SafetySetting",)
    category: str
    threshold: str = "HARM_BLOCK_THRESHOLD_UNSPECIFIED"
    method: str | None = None

    @field_validator("category", mode="before")
    @classmethod
    def _cat(cls, v: Any) -> str:
        return _enum(HARM_CATEGORIES, v, "HarmCategory", HARM_CATEGORY_NAMES, prefix="HARM_CATEGORY_")

    @field_validator("threshold", mode="before")
    @classmethod
    def _thr(cls, v: Any) -> str:
        return _enum(THRESHOLDS, v, "SafetySetting.HarmBlockThreshold")

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, v: Any) -> str | None:
        return None if v is None else _enum(HARM_BLOCK_METHODS, v, "SafetySetting.HarmBlockMethod")


class ThinkingConfig(Wire):
    gemini_types = ("ThinkingConfig",)
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None

    @field_validator("thinking_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> str | None:
        return None if v is None else _enum(THINKING_LEVELS, v, "ThinkingConfig.ThinkingLevel")


class GenerationConfig(Wire):
    gemini_types = ("GenerationConfig",)
    gemini_extra = frozenset({"image_config", "thinking_config", "response_json_schema"})
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    candidate_count: int | None = Field(None, ge=1, le=8)
    max_output_tokens: int | None = Field(None, ge=1)
    stop_sequences: list[str] = Field(default_factory=list, max_length=5)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_schema: dict | None = None
    response_json_schema: dict | None = Field(None, validation_alias=AliasChoices(
        "responseJsonSchema", "response_json_schema", "_responseJsonSchema"))
    response_logprobs: bool | None = None
    logprobs: int | None = None
    media_resolution: str | None = None
    thinking_config: ThinkingConfig | None = None
    response_modalities: list[str] | None = None

    @field_validator("media_resolution", mode="before")
    @classmethod
    def _resolution(cls, v: Any) -> str | None:
        return None if v is None else _enum(MEDIA_RESOLUTIONS, v, "GenerationConfig.MediaResolution")

    @field_validator("response_modalities", mode="before")
    @classmethod
    def _modalities(cls, v: Any) -> list[str] | None:
        if v is None:
            return None
        return [_enum(MODALITIES, m, "GenerationConfig.Modality", suffix=f"[{i}]") for i, m in enumerate(v)]


REQUEST_FIELDS = frozenset({"model", "contents", "system_instruction", "generation_config", "safety_settings",
                            "tools", "tool_config", "cached_content", "labels", "service_tier", "store",
                            "model_armor_config"})


class GenerateContentRequest(Wire):
    gemini_extra = REQUEST_FIELDS
    model: str | None = None
    contents: list[Content] = Field(default_factory=list)
    system_instruction: Content | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[SafetySetting] = Field(default_factory=list)
    tools: list[Any] | None = None
    tool_config: Any = None
    cached_content: str | None = None

    @field_validator("system_instruction", mode="before")
    @classmethod
    def _bare_string(cls, v: Any) -> Any:
        return {"parts": [{"text": v}]} if isinstance(v, str) else v


class CountTokensRequest(Wire):
    gemini_extra = frozenset({"model", "contents", "generate_content_request", "system_instruction",
                              "generation_config", "tools"})
    contents: list[Content] = Field(default_factory=list)
    generate_content_request: GenerateContentRequest | None = None
    system_instruction: Content | None = None
    generation_config: GenerationConfig | None = None
    tools: list[Any] | None = None

    @field_validator("system_instruction", mode="before")
    @classmethod
    def _bare_string(cls, v: Any) -> Any:
        return {"parts": [{"text": v}]} if isinstance(v, str) else v

    def as_generate(self) -> GenerateContentRequest:
        if self.generate_content_request is not None:
            return self.generate_content_request
        return GenerateContentRequest(contents=self.contents, system_instruction=self.system_instruction,
                                      generation_config=self.generation_config, tools=self.tools)


class FileMetadata(Wire):
    name: str | None = None
    display_name: str = ""
    mime_type: str = ""
    size_bytes: int | None = None


class CreateFileRequest(Wire):
    file: FileMetadata = Field(default_factory=FileMetadata)


def proto_path(loc: tuple) -> str:
    """A pydantic error location as Gemini names it: ('generationConfig', 'x') → generation_config.x,
    ('contents', 0, 'parts', 1) → contents[0].parts[1]."""
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + to_snake(str(p)))
    return out


def parse(model: type[BaseModel], data: Any, api_version: str = "v1beta") -> Any:
    """Validate a decoded JSON body, turning pydantic's errors into one INVALID_ARGUMENT message,
    in Gemini's words for unknown names and bad enum values."""
    if not isinstance(data, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        unknown = [err for err in errors if err["type"] == "gemini_unknown"]
        if unknown:
            lines = []
            for err in unknown[:5]:
                where = proto_path(err["loc"])
                at = f" at '{where}'" if where else ""
                lines.append(f"Unknown name \"{err['ctx']['name']}\"{at}: Cannot find field.")
            raise InvalidArgument("Invalid JSON payload received. " + "\n".join(lines)) from None
        enums = [err for err in errors if err["type"] == "gemini_enum"]
        if enums:
            raise InvalidArgument("\n".join(
                f"Invalid value at '{proto_path(err['loc'])}{err['ctx']['suffix']}' "
                f"(type.googleapis.com/google.ai.generativelanguage.{api_version}.{err['ctx']['type']}), "
                f"\"{err['ctx']['value']}\"" for err in enums[:5])) from None
        problems = []
        for err in errors[:5]:
            where = proto_path(err["loc"])
            problems.append(f"Invalid value at '{where}': {err['msg']}")
        raise InvalidArgument("Invalid JSON payload received. " + "; ".join(problems)) from None


# ---- responseSchema (OpenAPI subset, Gemini flavour) → JSON Schema ----

_TYPES = {"STRING": "string", "NUMBER": "number", "INTEGER": "integer", "BOOLEAN": "boolean", "ARRAY": "array",
          "OBJECT": "object", "NULL": "null", "TYPE_UNSPECIFIED": None}


def openapi_to_json_schema(schema: dict) -> dict:
    """Gemini's `responseSchema` (types in upper case, `nullable`, `propertyOrdering`) → JSON Schema."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        k = to_camel(key) if "_" in key else key
        if k == "type":
            t = _TYPES.get(str(value).upper(), str(value).lower())
            if t:
                out["type"] = t
        elif k == "properties":
            out["properties"] = {n: openapi_to_json_schema(s) for n, s in value.items()}
        elif k == "items":
            out["items"] = openapi_to_json_schema(value)
        elif k == "anyOf":
            out["anyOf"] = [openapi_to_json_schema(s) for s in value]
        elif k in ("required", "enum", "description", "format", "title", "minimum", "maximum", "pattern",
                   "default", "example"):
            out[k] = value
        elif k in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
            out[k] = int(value)
        # nullable is applied below; propertyOrdering only orders output, which our decoder follows anyway
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out
