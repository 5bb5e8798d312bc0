"""Helpers of the client suite: run a driver (a user's program) and read what its cases observed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.server import Server

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = Path(__file__).resolve().parent / "drivers"
PROJECT_PYTHON = sys.executable  # carries requirements.txt's pinned google-genai
# The red rectangle of boxes.png, [x1, y1, x2, y2] in pixels of its 400x300 canvas.
BOX_PIXELS = (100, 60, 200, 180)


def run_driver(command: list[str], server: Server, media: Path, out: Path, cwd: Path | None = None,
               timeout: float = 300) -> dict:
    """Run one driver and return {case: observations}; drivers take BASE_URL MEDIA_DIR OUT_JSON."""
    r = subprocess.run([*command, server.url, str(media), str(out)], capture_output=True, text=True,
                       timeout=timeout, cwd=cwd, env={**os.environ, "PYTHONPATH": str(DRIVERS)})
    assert out.exists(), f"driver {command} wrote nothing (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(out.read_text())


def run_node_driver(name: str, node_dir: Path, server: Server, media: Path, out: Path) -> dict:
    """A node driver from DRIVERS, run from the node folder (ESM resolves bare imports next to the script)."""
    script = node_dir / name
    script.write_bytes((DRIVERS / name).read_bytes())
    return run_driver(["node", str(script)], server, media, out, cwd=node_dir)


def python_driver(python: Path | str, name: str) -> list[str]:
    return [str(python), str(DRIVERS / name)]


def case(results: dict, name: str) -> dict:
    """One case's observations; fails with the client's own error when the case raised."""
    assert name in results, f"case {name} did not run (the driver crashed before it?)"
    r = results[name]
    assert r["ok"], f"{name}: {r['error']}\n{r.get('trace', '')}"
    return r


def assert_usage(usage: dict, *keys: str) -> None:
    assert usage, "no usage metadata"
    for k in keys:
        assert isinstance(usage.get(k), int) and usage[k] > 0, f"usage {k} missing or zero: {usage}"


def assert_box_matches(pixels: list[int], tolerance: int = 6) -> None:
    """A box drawn as [x1, y1, x2, y2] lands on boxes.png's red rectangle."""
    assert len(pixels) == 4 and all(abs(a - b) <= tolerance for a, b in zip(pixels, BOX_PIXELS)), (pixels, BOX_PIXELS)
