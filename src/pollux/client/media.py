"""Local media: MIME types, and upload / wait-until-ACTIVE through the SDK's Files API."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from pathlib import Path

from pollux.client.failures import FILE_FAILED, USAGE, ClientFailure
from pollux.client.progress import ProgressReader

# Gemini's own spellings where Python's table differs or lacks the type.
_MIME_BY_SUFFIX = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".heic": "image/heic", ".heif": "image/heif",
    ".mp4": "video/mp4", ".mpeg": "video/mpeg", ".mpg": "video/mpg", ".mov": "video/mov", ".avi": "video/avi",
    ".flv": "video/x-flv", ".webm": "video/webm", ".wmv": "video/wmv", ".3gp": "video/3gpp",
    ".wav": "audio/wav", ".mp3": "audio/mp3", ".aiff": "audio/aiff", ".aif": "audio/aiff", ".aac": "audio/aac",
    ".ogg": "audio/ogg", ".oga": "audio/ogg", ".flac": "audio/flac",
}

POLL_FIRST_S, POLL_MAX_S = 0.25, 2.0


def mime_type_of(path: Path) -> str:
    mime = _MIME_BY_SUFFIX.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    if not mime:
        raise ClientFailure(f"cannot tell the MIME type of {path}: pass --mime-type", USAGE)
    return mime


def upload(client, path: Path, *, advance: Callable[[int], None], display_name: str | None = None,
           mime_type: str | None = None):
    """Resumable upload through the SDK, reporting progress per acknowledged chunk; returns the File."""
    from google.genai import types

    config = types.UploadFileConfig(display_name=display_name or path.name, mime_type=mime_type or mime_type_of(path))
    with open(path, "rb") as raw:
        reader = ProgressReader(raw, advance)
        uploaded = client.files.upload(file=reader, config=config)
        reader.finish()
    return uploaded


def is_processing(file) -> bool:
    return _state(file) == "PROCESSING"


def wait_until_active(client, file, *, timeout: float | None = None, sleep: Callable[[float], None] = time.sleep):
    """Poll files.get until the file leaves PROCESSING; FAILED (or the timeout) is a ClientFailure."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = POLL_FIRST_S
    while is_processing(file):
        if deadline is not None and time.monotonic() >= deadline:
            raise ClientFailure(f"{file.name} is still PROCESSING after {timeout:g}s", FILE_FAILED)
        sleep(delay)
        delay = min(delay * 2, POLL_MAX_S)
        file = client.files.get(name=file.name)
    if _state(file) != "ACTIVE":
        reason = getattr(getattr(file, "error", None), "message", None) or "no reason given"
        raise ClientFailure(f"{file.name} is {_state(file)}: {reason}", FILE_FAILED)
    return file


def _state(file) -> str | None:
    state = getattr(file, "state", None)
    return getattr(state, "value", state)
