"""The client-compatibility suite: real clients, pinned and installed by scripts/client-deps.sh, each
driving one `pollux serve --emulator` with only the base URL and key changed.

Each client's driver (tests/clients/drivers/) runs once in the client's own interpreter and records
what every case observed; the tests here assert on those observations, one test per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.fixtures.media import write_audio, write_video
from tests.fixtures.server import Server

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = Path(__file__).resolve().parent / "drivers"
WORK = Path(os.environ.get("CLIENTS_WORK") or ROOT / ".work" / "clients")
# The red rectangle of boxes.png, [x1, y1, x2, y2] in pixels of its 400x300 canvas.
BOX_PIXELS = (100, 60, 200, 180)


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
    d = tmp_path_factory.mktemp("clients-media")
    im = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(im).rectangle([BOX_PIXELS[0], BOX_PIXELS[1], BOX_PIXELS[2] - 1, BOX_PIXELS[3] - 1], fill=(220, 20, 20))
    im.save(d / "boxes.png")
    write_audio(d / "sample.mp3", "mp3", seconds=2.0)
    write_video(d / "sample.mp4", "mp4", seconds=3.0, fps=10, audio=True)
    write_video(d / "long.mp4", "mp4", seconds=90.0, fps=2, size=(96, 64))
    return d


def run_driver(command: list[str], server: Server, media: Path, out: Path, cwd: Path | None = None,
               timeout: float = 300) -> dict:
    """Run one driver (a user's program) and return {case: observations}."""
    r = subprocess.run([*command, server.url, str(media), str(out)], capture_output=True, text=True,
                       timeout=timeout, cwd=cwd, env={**os.environ, "PYTHONPATH": str(DRIVERS)})
    assert out.exists(), f"driver {command} wrote nothing (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(out.read_text())


def python_driver(python: Path | str, name: str) -> list[str]:
    return [str(python), str(DRIVERS / name)]


def case(results: dict, name: str) -> dict:
    """One case's observations; fails with the client's own error when the case raised."""
    assert name in results, f"case {name} did not run (an earlier case crashed the driver?)"
    r = results[name]
    assert r["ok"], f"{name}: {r['error']}\n{r.get('trace', '')}"
    return r


def assert_usage(usage: dict, *keys: str) -> None:
    assert usage, "no usage metadata"
    for k in keys:
        assert isinstance(usage.get(k), int) and usage[k] > 0, f"usage {k} missing or zero: {usage}"


def assert_box_matches(pixels: list[int], tolerance: int = 6) -> None:
    """A drawn box [x1, y1, x2, y2] lands on boxes.png's red rectangle."""
    assert all(abs(a - b) <= tolerance for a, b in zip(pixels, BOX_PIXELS)), (pixels, BOX_PIXELS)


PROJECT_PYTHON = sys.executable  # carries requirements.txt's pinned google-genai
