"""JSON on the hot paths: orjson, ~10x the standard library on a stream's small events and ~50x on a request body
that carries an image as base64 (which the standard library scans character by character).

A remote engine streams one event per token, each parsed here and re-framed as a Gemini chunk, so this is a
large part of what Pollux adds per request. What orjson refuses and the standard library reads (NaN, lone
surrogates) is retried there, so what is accepted never changes, and integers beyond 64 bits are read as
doubles (as protobuf's JSON reads them); what orjson cannot write (such integers, lone surrogates) is written by
the standard library.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - a pinned dependency; the standard library is the fallback
    orjson = None  # type: ignore[assignment]


def loads(data: bytes | str) -> Any:
    """One JSON value; ValueError when it is not JSON."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return json.dumps(value, separators=(",", ":")).encode()  # ASCII: a lone surrogate is escaped, not an error
