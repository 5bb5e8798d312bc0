"""How files and models are printed: aligned fields for people, `--json` for scripts."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table


def _rest(model) -> dict:
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("sdkHttpResponse", None)
    return data


def as_json(model) -> str:
    """The REST shape (lowerCamelCase) of an SDK object, without the SDK's HTTP bookkeeping."""
    return json.dumps(_rest(model), indent=2)


def as_json_list(models) -> str:
    return json.dumps([_rest(m) for m in models], indent=2)


def _value(v) -> str:
    return str(getattr(v, "value", v))


def file_fields(file) -> list[tuple[str, str]]:
    fields = [
        ("name", file.name), ("display name", file.display_name), ("mime type", file.mime_type),
        ("size", f"{file.size_bytes} bytes" if file.size_bytes is not None else None),
        ("state", _value(file.state) if file.state else None), ("uri", file.uri),
        ("created", file.create_time.isoformat() if file.create_time else None),
        ("expires", file.expiration_time.isoformat() if file.expiration_time else None),
        ("sha256", file.sha256_hash),
    ]
    video = file.video_metadata or {}
    duration = video.get("videoDuration") or video.get("video_duration")
    if duration is not None:
        fields.append(("video duration", str(duration)))
    if file.error is not None:
        fields.append(("error", f"{file.error.code} {file.error.message}"))
    return [(k, str(v)) for k, v in fields if v is not None]


def print_file(console: Console, file) -> None:
    width = max(len(k) for k, _ in file_fields(file)) + 2
    for key, value in file_fields(file):
        console.print(f"{key + ':':<{width}}{value}", highlight=False, soft_wrap=True)


def files_table(files) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("name", "display name", "mime type", "size", "state", "expires"):
        table.add_column(column, no_wrap=column in ("name", "state"), overflow="fold")
    for f in files:
        table.add_row(f.name, f.display_name or "", f.mime_type or "", str(f.size_bytes or 0),
                      _value(f.state) if f.state else "", f.expiration_time.isoformat() if f.expiration_time else "")
    return table


def models_table(models) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("input tokens", justify="right")
    table.add_column("output tokens", justify="right")
    table.add_column("display name", overflow="fold")
    for m in models:
        table.add_row(m.name or "", str(m.input_token_limit or ""), str(m.output_token_limit or ""),
                      m.display_name or "")
    return table
