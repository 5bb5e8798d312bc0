"""The client-compatibility suite: real clients, pinned and installed by scripts/client-deps.sh, each
driving one `pollux serve --emulator` with only the base URL and key changed.

Each client's driver (tests/clients/drivers/) runs once in the client's own interpreter and records
what every case observed; the tests assert on those observations, one test per case.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.clients.suite import BOX_PIXELS, ROOT
from tests.fixtures.media import write_audio, write_video
from tests.fixtures.server import Server

WORK = Path(os.environ.get("CLIENTS_WORK") or ROOT / ".work" / "clients")


@dataclass(frozen=True)
class Clients:
    venv_python: Path  # google-genai (current), LangChain, LiteLLM
    llamaindex_python: Path
    node_dir: Path


@pytest.fixture(scope="session")
def clients() -> Clients:
    """Install the pinned clients once (idempotent); skip only when no registry can be reached."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / "client-deps.sh")], capture_output=True, text=True,
                       timeout=1200, env={**os.environ, "CLIENTS_WORK": str(WORK)})
    if r.returncode == 75:
        pytest.skip(f"client packages cannot be installed here: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, f"scripts/client-deps.sh failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return Clients(WORK / "venv" / "bin" / "python", WORK / "venv-llamaindex" / "bin" / "python", WORK / "node")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("clients-server")) as s:
        yield s


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """boxes.png (one red rectangle on white), a 2 s mp3, a 3 s mp4 with sound, a 90 s mp4."""
    d = tmp_path_factory.mktemp("clients-media")
    im = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(im).rectangle([BOX_PIXELS[0], BOX_PIXELS[1], BOX_PIXELS[2] - 1, BOX_PIXELS[3] - 1], fill=(220, 20, 20))
    im.save(d / "boxes.png")
    write_audio(d / "sample.mp3", "mp3", seconds=2.0)
    write_video(d / "sample.mp4", "mp4", seconds=3.0, fps=10, audio=True)
    write_video(d / "long.mp4", "mp4", seconds=90.0, fps=2, size=(96, 64))
    return d
