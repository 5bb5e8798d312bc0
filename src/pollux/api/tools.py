"""Function calling on the wire: `tools.functionDeclarations`, `toolConfig`, and `functionCall` /
`functionResponse` parts, read into engine-neutral form (and function calls written back)."""

from __future__ import annotations

from typing import Any

from pollux.api.schema import openapi_to_json_schema
from pollux.errors import InvalidArgument
from pollux.prompt_types import FunctionCall, FunctionResponse


def _get(d: dict, camel: str, snake: str) -> Any:
    return d.get(camel, d.get(snake))


def declarations(tools: list[Any] | None) -> list[dict] | None:
    """`tools` → [{name, description, parameters (JSON Schema)}]; other tool kinds are refused by name."""
    if not tools:
        return None
    out: list[dict] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidArgument(f"tools[{i}] must be an object.")
        for key in tool:
            if key not in ("functionDeclarations", "function_declarations"):
                raise InvalidArgument(f"tools[{i}].{key} is not supported by Pollux; only functionDeclarations are.")
        for j, fn in enumerate(_get(tool, "functionDeclarations", "function_declarations") or []):
            if not isinstance(fn, dict) or not fn.get("name"):
                raise InvalidArgument(f"tools[{i}].functionDeclarations[{j}].name is required.")
            schema = _get(fn, "parametersJsonSchema", "parameters_json_schema")
            if schema is None and fn.get("parameters") is not None:
                schema = openapi_to_json_schema(fn["parameters"])
            out.append({"name": fn["name"], "description": fn.get("description") or "",
                        "parameters": schema or {"type": "object", "properties": {}}})
    return out or None


def tool_config(raw: Any) -> dict | None:
    """`toolConfig.functionCallingConfig` → {mode, allowed_function_names}."""
    if not isinstance(raw, dict):
        return None
    cfg = _get(raw, "functionCallingConfig", "function_calling_config") or {}
    mode = str(cfg.get("mode") or "AUTO").upper()
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise InvalidArgument(f"Invalid toolConfig.functionCallingConfig.mode {cfg.get('mode')!r}; use AUTO, ANY, "
                              "NONE or VALIDATED.")
    return {"mode": "AUTO" if mode == "MODE_UNSPECIFIED" else mode,
            "allowed_function_names": list(_get(cfg, "allowedFunctionNames", "allowed_function_names") or [])}


def function_part(extra: dict, where: str) -> FunctionCall | FunctionResponse | None:
    """A part's `functionCall` / `functionResponse` (kept by the lenient schema as unknown fields)."""
    call = _get(extra, "functionCall", "function_call")
    if isinstance(call, dict):
        if not call.get("name"):
            raise InvalidArgument(f"{where}.functionCall.name is required.")
        return FunctionCall(call["name"], dict(call.get("args") or {}), call.get("id"))
    result = _get(extra, "functionResponse", "function_response")
    if isinstance(result, dict):
        if not result.get("name"):
            raise InvalidArgument(f"{where}.functionResponse.name is required.")
        return FunctionResponse(result["name"], dict(result.get("response") or {}), result.get("id"))
    return None


def call_parts(calls: list[FunctionCall] | None) -> list[dict]:
    out = []
    for c in calls or []:
        body: dict = {"name": c.name, "args": c.args}
        if c.id:
            body["id"] = c.id
        out.append({"functionCall": body})
    return out
