"""Runs a driver's cases inside the client's own interpreter and writes what each observed as JSON.

A driver is user code for one client; each `case_*` function returns what it saw (texts, states,
usage) and the pytest side asserts on it. An exception is recorded, not raised, so one broken case
does not hide the others. Usage: python DRIVER.py BASE_URL MEDIA_DIR OUT_JSON [CASE ...]
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable


class Context:
    def __init__(self, base_url: str, media: Path):
        self.base_url, self.media, self.key = base_url, media, "test-key"
        self.shared: dict[str, Any] = {}  # what one case leaves for a later one (an uploaded file)


def run(cases: dict[str, Callable[[Context], dict]]) -> None:
    base_url, media, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    wanted = sys.argv[4:] or list(cases)
    ctx = Context(base_url, media)
    results: dict[str, dict] = {}
    for name in wanted:
        started = time.monotonic()
        try:
            results[name] = {"ok": True, **cases[name](ctx)}
        except Exception as exc:  # noqa: BLE001 - every failure is data for the test
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                             "trace": traceback.format_exc()[-3000:]}
        results[name]["seconds"] = round(time.monotonic() - started, 2)
        out.write_text(json.dumps(results, indent=1, default=str))


def wait_active(get: Callable[[], Any], state_of: Callable[[Any], str], timeout: float = 60) -> Any:
    """The docs' loop for video: poll files.get until the file leaves PROCESSING."""
    deadline = time.monotonic() + timeout
    f = get()
    while state_of(f) == "PROCESSING" and time.monotonic() < deadline:
        time.sleep(0.5)
        f = get()
    return f
