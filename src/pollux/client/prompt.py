"""Turn `[FILE...] PROMPT` into Gemini contents: small images inline, other media through the Files API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from pollux.client.failures import USAGE, ClientFailure
from pollux.client.media import is_processing, mime_type_of, upload, wait_until_active
from pollux.client.progress import TransferDisplay, waiting

DEFAULT_INLINE_MAX = 4 * 1024 * 1024  # bytes; Gemini caps a whole inline request at 20 MB
_FILE_NAME = re.compile(r"files/[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")


@dataclass
class Prepared:
    contents: list
    uploaded: list = field(default_factory=list)  # Files this call created (the caller may delete them)


def prepare(client, sources: list[str], prompt: str, *, inline_max: int, err: Console,
            wait_timeout: float | None = None) -> Prepared:
    from google.genai import types

    kinds = [_classify(s) for s in sources]
    parts: dict[int, types.Part] = {}
    to_upload: list[tuple[int, Path]] = []
    for i, (kind, value) in enumerate(kinds):
        if kind == "local" and mime_type_of(value).startswith("image/") and value.stat().st_size <= inline_max:
            parts[i] = types.Part.from_bytes(data=value.read_bytes(), mime_type=mime_type_of(value))
        elif kind == "local":
            to_upload.append((i, value))

    prepared = Prepared(contents=[])
    remote: dict[int, Any] = {}  # google.genai File objects
    if to_upload:
        with TransferDisplay(err) as display:
            for i, path in to_upload:
                remote[i] = upload(client, path, advance=display.track(path.name, path.stat().st_size))
                prepared.uploaded.append(remote[i])
    for i, (kind, value) in enumerate(kinds):
        if kind == "remote":
            remote[i] = client.files.get(name=value)
    for i, file in sorted(remote.items()):
        if is_processing(file):
            with waiting(err, f"waiting for {file.name} ({file.display_name or file.mime_type}) to be processed"):
                file = wait_until_active(client, file, timeout=wait_timeout)
        else:
            file = wait_until_active(client, file)  # checks ACTIVE (a FAILED file is an error)
        parts[i] = types.Part.from_uri(file_uri=file.uri, mime_type=file.mime_type)
    # Media first, then the question: Gemini's advice for single-image and single-video prompts.
    prepared.contents = [parts[i] for i in range(len(sources))] + [prompt]
    return prepared


def _classify(source: str) -> tuple[str, Any]:  # a Path for "local", a files/NAME for "remote"
    path = Path(source)
    if path.is_file():
        return "local", path
    if not path.exists() and _FILE_NAME.fullmatch(source):
        return "remote", source
    raise ClientFailure(f"no such file: {source} (give a local path or an uploaded files/NAME)", USAGE)
