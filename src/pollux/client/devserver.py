"""Start a throwaway `pollux serve --emulator` in a subprocess (tests, examples, demos)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def emulator_server(data_dir: Path, api_keys: str = "test-key:demo", startup_timeout: float = 60.0,
                    log_path: Path | None = None) -> Iterator[str]:
    """Yield the base URL of a fresh emulator server; stop it afterwards."""
    port = free_port()
    # No speech-to-text model on a throwaway server, unless the caller's environment asks for it.
    env = {"POLLUX_TRANSCRIBE": "0", **os.environ, "POLLUX_API_KEYS": api_keys}
    log = open(log_path or data_dir / "server.log", "wb")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "pollux.cli", "serve", "--emulator", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base_url, startup_timeout, log.name)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_until_up(proc: subprocess.Popen, base_url: str, timeout: float, log_name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pollux serve exited with {proc.returncode}; see {log_name}:\n"
                               + Path(log_name).read_text(errors="replace")[-4000:])
        try:
            # Any HTTP answer (even 4xx for a missing key) means the server is listening.
            httpx.get(f"{base_url}/v1beta/models", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"pollux serve did not answer within {timeout}s; see {log_name}")
