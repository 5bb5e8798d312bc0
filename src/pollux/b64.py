"""Base64 for media payloads: pybase64's SIMD codec (50x the standard library's on a 100 KB image).

An inline image is decoded once per request and a data URL encoded once per prepared image; with the
standard library each cost ~0.7 ms per 100 KB, a large part of what Pollux adds to a remote request.
Whatever the standard library's strict decoder accepts stays accepted: pybase64 is stricter about
surplus padding, so its refusals are retried there.
"""

from __future__ import annotations

import base64
import binascii

import pybase64


def decode(text: str) -> bytes:
    """Gemini's `bytes` field: standard or URL-safe alphabet, padding optional. ValueError if not base64."""
    padded = text + "=" * (-len(text) % 4)
    altchars = b"-_" if ("-" in text or "_" in text) else None
    try:
        return pybase64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None


def encode(raw: bytes) -> str:
    return pybase64.b64encode(raw).decode("ascii")
