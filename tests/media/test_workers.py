"""The media worker pool (media/workers.py): real worker processes, errors and deaths come back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pollux.errors import Cancelled, InvalidArgument
from pollux.media import workers


def square_noisily(x: int) -> tuple[int, int]:
    print("a stray print must not corrupt the reply")  # noqa: T201
    return x * x, os.getpid()


def refuse(message: str) -> None:
    raise InvalidArgument(message)


def die() -> None:
    os._exit(3)


def wait_for_flag(flag: str) -> str:
    check = workers.flag_check(Path(flag))
    while not check():
        time.sleep(0.01)
    raise Cancelled("stopped by the flag")


def test_jobs_run_in_other_processes_and_are_reused():
    pool = workers.pool()
    first = pool.submit(square_noisily, 7).result(timeout=60)
    again = pool.submit(square_noisily, 8).result(timeout=60)
    assert first[0] == 49 and again[0] == 64
    assert first[1] != os.getpid() and again[1] != os.getpid()


def test_a_job_error_is_raised_in_the_parent():
    with pytest.raises(InvalidArgument, match="not a video"):
        workers.pool().submit(refuse, "not a video").result(timeout=60)


def test_a_dead_worker_is_reported_and_replaced():
    with pytest.raises(workers.BrokenWorker):
        workers.pool().submit(die).result(timeout=60)
    assert workers.pool().submit(square_noisily, 3).result(timeout=60)[0] == 9


def test_gather_stops_the_other_jobs_when_one_fails(tmp_path: Path):
    flag = tmp_path / "stop"
    pool = workers.pool()
    futures = [pool.submit(wait_for_flag, str(flag)), pool.submit(refuse, "bad frame")]
    with pytest.raises(InvalidArgument, match="bad frame"):  # the real error, not the stop it caused
        workers.gather(futures, lambda: False, flag)
    assert flag.exists()


def test_gather_cancels(tmp_path: Path):
    flag = tmp_path / "stop"
    futures = [workers.pool().submit(wait_for_flag, str(flag))]
    with pytest.raises(Cancelled):
        workers.gather(futures, lambda: True, flag)


def test_idle_workers_exit(monkeypatch):
    monkeypatch.setattr(workers, "IDLE_SECONDS", 0.4)
    pool = workers.Pool(1)
    try:
        pid = pool.submit(square_noisily, 2).result(timeout=60)[1]
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists()  # reaped: the parent waited for it
        assert pool.submit(square_noisily, 5).result(timeout=60)[0] == 25  # a new one starts
    finally:
        pool.close()


def niceness() -> int:
    return os.nice(0)


def test_workers_run_at_the_configured_niceness():
    pool = workers.Pool(1, nice=3)
    try:
        assert pool.submit(niceness).result(timeout=60) == os.nice(0) + 3
    finally:
        pool.close()


def note_pid_and_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def test_a_busy_worker_dies_with_its_parent(tmp_path: Path):
    import subprocess
    import sys

    note = tmp_path / "pid"
    script = ("from pollux.media import workers; import tests.media.test_workers as t; "
              f"workers.pool().submit(t.note_pid_and_sleep, {str(note)!r}).result()")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 60
        while not note.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = int(note.read_text())
    finally:
        parent.kill()  # like kill -9 of the server: no shutdown code runs
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _state(worker) not in ("gone", "Z"):
        time.sleep(0.1)
    assert _state(worker) in ("gone", "Z")  # not still decoding for nobody


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
