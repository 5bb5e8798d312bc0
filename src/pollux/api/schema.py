"""Request models: camelCase and snake_case for every field, enum names or numbers, integral floats.

Field names are checked as Gemini checks them: a name that is not in the current Gemini schema is a
400 in Gemini's words ("Unknown name ... Cannot find field."). The schema is read from google-genai's
`types` (installed with Pollux), so every field today's SDKs send is accepted, honoured or not
(those are logged once). Bad enum values are 400s in Gemini's words too.
Responses are built as plain lowerCamelCase dicts in `api/render.py`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel, to_snake
from pydantic_core import PydanticCustomError

from pollux import b64
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
        try:
            return b64.decode(str(v))
        except ValueError:
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


def _enum(names: list[str], value: Any, type_name: str, extra: Sequence[str] = (), prefix: str = "",
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


_INT32_MAX = 2**31 - 1


class GenerationConfig(Wire):
    gemini_types = ("GenerationConfig",)
    gemini_extra = frozenset({"image_config", "thinking_config", "response_json_schema"})
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=_INT32_MAX)  # int32 fields in Gemini's schema: a bigger
    candidate_count: int | None = Field(None, ge=1, le=8)  # number is its 400, and torch's seed overflows
    max_output_tokens: int | None = Field(None, ge=1, le=_INT32_MAX)
    stop_sequences: list[str] = Field(default_factory=list, max_length=5)
    seed: int | None = Field(None, ge=-_INT32_MAX - 1, le=_INT32_MAX)
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

    # Checked here (InvalidArgument passes through pydantic untouched) so a bad schema never reaches an engine.
    @field_validator("response_schema", mode="after")
    @classmethod
    def _response_schema(cls, v: dict | None) -> dict | None:
        if v is not None:
            openapi_to_json_schema(v)
        return v

    @field_validator("response_json_schema", mode="after")
    @classmethod
    def _response_json_schema(cls, v: dict | None) -> dict | None:
        return None if v is None else checked_json_schema(v)


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


WireModel = TypeVar("WireModel", bound=BaseModel)


def parse(model: type[WireModel], data: Any, api_version: str = "v1beta") -> WireModel:
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


# ---- responseSchema (Gemini's Schema message) → JSON Schema, validated at the edge ----
# Engines (emulator included) get a schema that is known to be well formed, so a malformed one is a 400
# naming the field here, never an exception inside an engine.

_TYPE_NAMES = ["TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"]
_INT64_MAX = 2**63 - 1
# The fields of google.ai.generativelanguage.v1beta.Schema (camelCase) and how each is read.
_SCHEMA_FIELDS = {
    "type": "type", "format": "string", "title": "string", "description": "string", "nullable": "bool",
    "enum": "strings", "maxItems": "count", "minItems": "count", "properties": "schema_map", "required": "strings",
    "minProperties": "count", "maxProperties": "count", "minLength": "count", "maxLength": "count",
    "pattern": "string", "example": "value", "anyOf": "schemas", "propertyOrdering": "strings", "default": "value",
    "items": "schema", "minimum": "double", "maximum": "double",
}
RESPONSE_SCHEMA_PATH = "generation_config.response_schema"
RESPONSE_JSON_SCHEMA_PATH = "generation_config.response_json_schema"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _invalid(path: str, expected: str, value: Any) -> InvalidArgument:
    import json

    try:
        shown = json.dumps(value)[:100]
    except (TypeError, ValueError):
        shown = repr(value)[:100]
    return InvalidArgument(f"Invalid JSON payload received. Invalid value at '{path}' ({expected}), {shown}")


def _count(value: Any, path: str) -> int:
    """An int64 field (a JSON number or a decimal string, as protobuf JSON allows); a size, so not negative."""
    n: Any = value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
        n = int(value)
    if isinstance(n, float) and n.is_integer() and abs(n) <= _INT64_MAX:
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _INT64_MAX:
        raise _invalid(path, "TYPE_INT64, not negative", value)
    return n


def _double(value: Any, path: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _invalid(path, "TYPE_DOUBLE", value) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise _invalid(path, "TYPE_DOUBLE", value)
    return value


def _strings(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(path, "a list of TYPE_STRING", value)
    return value


def _type(value: Any, path: str) -> str | None:
    name = None
    if isinstance(value, str):
        name = value.upper()
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_TYPE_NAMES):
        name = _TYPE_NAMES[value]
    if name not in _TYPE_NAMES:
        raise _invalid(path, "type.googleapis.com/google.ai.generativelanguage.v1beta.Type", value)
    return None if name == "TYPE_UNSPECIFIED" else name.lower()


def openapi_to_json_schema(schema: Any, path: str = RESPONSE_SCHEMA_PATH) -> dict:
    """Gemini's `responseSchema` (types in upper case, `nullable`, `propertyOrdering`) → JSON Schema.

    Every field is checked as the Schema message defines it; a bad one is an InvalidArgument naming its path
    (`generation_config.response_schema.properties[a].min_items`), as Gemini's own 400 does.
    """
    if not isinstance(schema, dict):
        raise _invalid(path, "type.googleapis.com/google.ai.generativelanguage.v1beta.Schema", schema)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        k = to_camel(key) if "_" in key else key
        kind = _SCHEMA_FIELDS.get(k)
        where = f"{path}.{_snake(k)}"
        if kind is None:
            raise InvalidArgument(f"Invalid JSON payload received. Unknown name {key!r} at '{path}': "
                                  "Cannot find field.")
        if value is None:
            continue  # protobuf JSON: null means "not set"
        if kind == "type":
            t = _type(value, where)
            if t:
                out["type"] = t
        elif kind == "schema_map":
            if not isinstance(value, dict):
                raise _invalid(where, "a map of type.googleapis.com/google.ai.generativelanguage.v1beta.Schema",
                               value)
            out["properties"] = {n: openapi_to_json_schema(s, f"{where}[{n}]") for n, s in value.items()}
        elif kind == "schema":
            out["items"] = openapi_to_json_schema(value, where)
        elif kind == "schemas":
            if not isinstance(value, list) or not value:
                raise _invalid(where, "a non-empty list of Schema", value)
            out["anyOf"] = [openapi_to_json_schema(s, f"{where}[{i}]") for i, s in enumerate(value)]
        elif kind == "count":
            out[k] = _count(value, where)
        elif kind == "double":
            out[k] = _double(value, where)
        elif kind == "strings":
            values = _strings(value, where)
            if k == "enum" and not values:
                raise _invalid(where, "a non-empty list of TYPE_STRING", value)
            if k != "propertyOrdering":  # it only orders output, which our decoder follows anyway
                out[k] = values
        elif kind == "string":
            if not isinstance(value, str):
                raise _invalid(where, "TYPE_STRING", value)
            out[k] = value
        elif kind == "bool":
            if not isinstance(value, bool):
                raise _invalid(where, "TYPE_BOOL", value)
        else:  # "value": any JSON (example, default)
            out[k] = value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return checked_json_schema(out, path)


def checked_json_schema(schema: Any, path: str = RESPONSE_JSON_SCHEMA_PATH) -> dict:
    """A JSON Schema checked against the 2020-12 meta-schema (regex patterns compiled too), with boolean
    sub-schemas spelled as objects so every engine can walk it. InvalidArgument names the bad spot."""
    import jsonschema

    if not isinstance(schema, dict):
        raise _invalid(path, "a JSON Schema object", schema)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        raise InvalidArgument(f"Invalid JSON payload received. Invalid JSON Schema at '{where}': "
                              f"{e.message[:200]}") from None
    _check_refs(schema, path)
    out = _objects_only(schema)
    if _forced_values(out) > MAX_FORCED_VALUES:
        raise InvalidArgument("The specified schema produces a constraint that has too many states for serving. "
                              f"Typical causes are long array length limits (especially when nested): at least "
                              f"{MAX_FORCED_VALUES:,} values would be needed to satisfy '{path}'.")
    return out


def _check_refs(schema: dict, path: str) -> None:
    """Every `$ref` must point inside the schema (engines cannot fetch remote ones)."""
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    resolver = Registry().with_resource("", DRAFT202012.create_resource(schema)).resolver()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    raise InvalidArgument(f"Invalid JSON payload received. Invalid JSON Schema at '{path}': "
                                          f"$ref {ref[:100]!r} does not resolve within the schema.") from None
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


MAX_FORCED_VALUES = 100_000  # JSON values an answer must hold at least; Gemini also refuses "too many states"


def _forced_values(schema: dict) -> int:
    """A lower bound of the values any answer needs (every listed property counts: engines emit them all)."""
    if "enum" in schema or "const" in schema:
        return 1
    if schema.get("anyOf"):
        return min(_forced_values(s) for s in schema["anyOf"])
    n = 1
    props = schema.get("properties")
    if isinstance(props, dict):
        for sub in props.values():
            n += _forced_values(sub)
            if n > MAX_FORCED_VALUES:
                return n
    items = schema.get("items")
    min_items = schema.get("minItems", 0)
    if isinstance(min_items, int) and min_items > 0:
        per_item = _forced_values(items) if isinstance(items, dict) else 1
        n += min(min_items, MAX_FORCED_VALUES + 1) * per_item
    return n


_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames")


def _objects_only(schema: Any) -> dict:
    """`true` → `{}` and `false` → `{"not": {}}` wherever a sub-schema goes (depth is bounded by the reader)."""
    if isinstance(schema, bool):
        return {} if schema else {"not": {}}
    out = dict(schema)
    for k in _SUBSCHEMA_MAPS:
        if isinstance(out.get(k), dict):
            out[k] = {n: _objects_only(s) for n, s in out[k].items()}
    for k in _SUBSCHEMA_LISTS:
        if isinstance(out.get(k), list):
            out[k] = [_objects_only(s) for s in out[k]]
    for k in _SUBSCHEMAS:
        if k in out and k != "additionalProperties" and isinstance(out[k], (dict, bool)):
            out[k] = _objects_only(out[k])
    if isinstance(out.get("enum"), list) and not out["enum"]:
        raise InvalidArgument("Invalid JSON payload received. A JSON Schema 'enum' needs at least one value.")
    return out
