"""Domain records → Gemini JSON (lowerCamelCase, int64 as strings, RFC 3339 times)."""

from __future__ import annotations

import base64
from datetime import datetime

from pollux.catalog import ModelEntry
from pollux.files.records import FileRecord, State


def rfc3339(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def duration(seconds: float) -> str:
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return f"{text}s"


def file_json(rec: FileRecord, base_url: str) -> dict:
    out: dict = {
        "name": rec.name,
        "mimeType": rec.mime_type,
        "sizeBytes": str(rec.size_bytes),
        "createTime": rfc3339(rec.create_time),
        "updateTime": rfc3339(rec.update_time),
        "expirationTime": rfc3339(rec.expiration_time),
        # proto bytes → base64; like the real service we encode the hex digest (clients treat it as opaque)
        "sha256Hash": base64.b64encode(rec.sha256.encode()).decode(),
        "uri": f"{base_url.rstrip('/')}/v1beta/{rec.name}",
        "state": rec.state,
        "source": rec.source,
    }
    if rec.display_name:
        out["displayName"] = rec.display_name
    if rec.state == State.FAILED and rec.error:
        out["error"] = rec.error
    if rec.video_duration is not None:
        out["videoMetadata"] = {"videoDuration": duration(rec.video_duration)}
    return out


def model_json(entry: ModelEntry, name: str, info: dict | None = None) -> dict:
    out = {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": entry.version,
        "displayName": entry.display_name if name == entry.id else f"{name} (served by {entry.display_name})",
        "description": entry.description,
        # Under the Gemini accounting countTokens reports; video frames are thinned to fit the local context.
        "inputTokenLimit": entry.gemini_input_token_limit,
        "outputTokenLimit": entry.output_token_limit,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "topK": 64,
    }
    out["polluxContextTokens"] = entry.input_token_limit  # extension: the local model's own context
    if info:
        out["polluxRuntime"] = info  # extension: which local model, engine, loaded, memory
    return out
