"""Request models: camelCase and snake_case for every field, enum names or numbers, integral floats.

Unknown fields are kept and logged, not fatal (the SDKs add fields faster than we do).
Responses are built as plain lowerCamelCase dicts in `api/render.py`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from pollux.errors import InvalidArgument

log = logging.getLogger("pollux.api.schema")


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    @model_validator(mode="after")
    def _log_unknown(self):
        if self.model_extra:
            log.info("ignoring unknown field(s) in %s: %s", type(self).__name__, sorted(self.model_extra))
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
    mime_type: str = ""
    file_uri: str


class VideoMetadata(Wire):
    start_offset: float | None = None
    end_offset: float | None = None
    fps: float | None = None

    @field_validator("start_offset", "end_offset", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return parse_duration(v)


class Part(Wire):
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    video_metadata: VideoMetadata | None = None
    thought: bool | None = None
    media_resolution: Any = None


class Content(Wire):
    role: str | None = None
    parts: list[Part] = Field(default_factory=list)


HARM_CATEGORIES = ["HARM_CATEGORY_UNSPECIFIED", "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY",
                   "HARM_CATEGORY_VIOLENCE", "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL",
                   "HARM_CATEGORY_DANGEROUS", "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
                   "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
                   "HARM_CATEGORY_CIVIC_INTEGRITY"]
THRESHOLDS = ["HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
              "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"]


def _enum(names: list[str], value: Any, field: str) -> str:
    if isinstance(value, bool):
        raise ValueError(f"invalid {field}")
    if isinstance(value, (int, float)) and int(value) == value and 0 <= int(value) < len(names):
        return names[int(value)]
    if isinstance(value, str):
        upper = value.upper()
        for candidate in (upper, f"HARM_CATEGORY_{upper}"):
            if candidate in names:
                return candidate
    raise ValueError(f"invalid value for {field}: {value!r}")


class SafetySetting(Wire):
    category: str
    threshold: str = "HARM_BLOCK_THRESHOLD_UNSPECIFIED"

    @field_validator("category", mode="before")
    @classmethod
    def _cat(cls, v: Any) -> str:
        return _enum(HARM_CATEGORIES, v, "category")

    @field_validator("threshold", mode="before")
    @classmethod
    def _thr(cls, v: Any) -> str:
        return _enum(THRESHOLDS, v, "threshold")


class GenerationConfig(Wire):
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
    media_resolution: Any = None
    thinking_config: dict | None = None
    response_modalities: list[Any] | None = None


class GenerateContentRequest(Wire):
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


def parse(model: type[BaseModel], data: Any) -> Any:
    """Validate a decoded JSON body, turning pydantic's errors into one INVALID_ARGUMENT message."""
    if not isinstance(data, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"])
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
