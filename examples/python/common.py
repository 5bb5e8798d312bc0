"""What every example shares: the client pointed at Pollux, and where the media comes from.

The only Pollux-specific lines are in `client()`: the official SDK with another base URL and key.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from google import genai
from google.genai import types

import sample_media


def client() -> genai.Client:
    return genai.Client(
        api_key=os.environ["GEMINI_API_KEY"],
        http_options=types.HttpOptions(base_url=os.environ.get("POLLUX_BASE_URL", "http://127.0.0.1:8080"),
                                       api_version="v1beta"),
    )


def media_path() -> Path:
    """MEDIA_PATH if set, else a temp folder filled with the generated sample media."""
    folder = os.environ.get("MEDIA_PATH")
    return Path(folder) if folder else sample_media.ensure(Path(tempfile.gettempdir()) / "pollux-sample-media")


def arg_or_sample(index: int, name: str) -> Path:
    """The example's Nth command-line path, or the sample file `name`."""
    return Path(sys.argv[index]) if len(sys.argv) > index else media_path() / name


POLL_SECONDS = float(os.environ.get("POLL_SECONDS", "10"))  # the seed polls every 10 s


def upload_video(client: genai.Client, path: Path, display_name: str) -> types.File:
    """Upload a video and wait until it is ACTIVE (see video_upload.py for the loop spelled out)."""
    video_file = client.files.upload(file=path, config={"display_name": display_name, "mime_type": "video/mp4"})
    while video_file.state.name == "PROCESSING":
        time.sleep(POLL_SECONDS)
        video_file = client.files.get(name=video_file.name)
    if video_file.state.name == "FAILED":
        raise ValueError(video_file.state.name)
    return video_file
