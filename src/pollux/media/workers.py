"""Media worker processes: decoding that uses every core and never holds the server's GIL.

A small pool of long-lived `python -m pollux.media.workers` processes, started on first use and
reused, so an upload pays no interpreter start-up after the first. (Not multiprocessing's
spawn/forkserver: those re-run the parent's main script, which breaks any caller without a
`__main__` guard; not fork: the server has threads.) A job is a module-level function and its
arguments, pickled over the worker's stdin; the result (or the exception) comes back the same way.
Each job runs on a parent thread that only waits on a pipe, so the parent's GIL stays free.

A job cannot call the parent's `cancelled()`; the parent touches a flag file instead, which jobs
poll (`flag_check`).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from pollux.errors import Cancelled
from pollux.media import artifact

POLL_SECONDS = 0.2  # how often the parent asks `cancelled()` while jobs run
IDLE_SECONDS = 120.0  # a worker idle this long exits (its ~50 MB back); the next video starts one again
_pool: Pool | None = None
_lock = threading.Lock()


class BrokenWorker(Exception):
    """A worker process died mid-job (killed, out of memory)."""


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class Pool:
    def __init__(self, size: int, nice: int = 5):
        self.size = size
        self.nice = nice  # settings.media_worker_nice: > 0 lets requests go first when the cores are busy
        self._closed = False
        self._threads = ThreadPoolExecutor(size, thread_name_prefix="pollux-media")
        self._idle: list[tuple[subprocess.Popen, float]] = []  # (worker, idle since), most recent last
        self._lock = threading.Lock()
        threading.Thread(target=self._reap, name="pollux-media-reaper", daemon=True).start()

    def submit(self, fn: Callable, *args) -> Future:
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        return self._threads.submit(self._run, payload)

    def _run(self, payload: bytes):
        proc = self._checkout()
        try:
            _send(proc.stdin, payload)
            ok, value = pickle.loads(_recv(proc.stdout))
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            proc.kill()
            proc.wait()
            raise BrokenWorker(f"a media worker process died ({exc or type(exc).__name__})") from None
        with self._lock:
            self._idle.append((proc, time.monotonic()))
        if not ok:
            raise value
        return value

    def _checkout(self) -> subprocess.Popen:
        with self._lock:
            while self._idle:
                proc, _ = self._idle.pop()
                if proc.poll() is None:
                    return proc
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the parent's imports
        return subprocess.Popen([sys.executable, "-m", "pollux.media.workers", str(self.nice)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env, close_fds=True)  # fmt: skip

    def _reap(self) -> None:
        while not self._closed:
            time.sleep(IDLE_SECONDS / 4)
            now = time.monotonic()
            with self._lock:
                old = [p for p, since in self._idle if now - since > IDLE_SECONDS]
                self._idle = [(p, since) for p, since in self._idle if now - since <= IDLE_SECONDS]
            _stop(old)

    def close(self) -> None:
        self._closed = True
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        _stop([p for p, _ in idle])


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.stdin is not None:
            proc.stdin.close()  # the worker's loop ends at EOF
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pool(nice: int = 5) -> Pool:
    """The shared pool: one process per core for video segments, plus one for a soundtrack (its
    niceness is the first caller's: one server has one setting)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = Pool(cores() + 1, nice)
        return _pool


def shutdown() -> None:
    """Stop the idle workers (they also exit on their own when this process ends: stdin closes)."""
    global _pool
    with _lock:
        old, _pool = _pool, None
    if old is not None:
        old.close()


def _send(pipe, data: bytes) -> None:
    pipe.write(len(data).to_bytes(8, "little") + data)
    pipe.flush()


def _recv(pipe) -> bytes:
    head = pipe.read(8)
    if len(head) < 8:
        raise EOFError("the worker closed its pipe")
    n = int.from_bytes(head, "little")
    data = pipe.read(n)
    if len(data) < n:
        raise EOFError("the worker closed its pipe")
    return data


def flag_check(flag: Path) -> Callable[[], bool]:
    """A job's `cancelled()`: has the parent touched `flag`?"""
    return flag.exists


def gather(futures: Sequence[Future], cancelled: Callable[[], bool], flag: Path) -> list:
    """The jobs' results in order. On `cancelled()` the flag is touched and, once every job has
    stopped, Cancelled is raised; a job's error is raised after the others were told to stop."""
    pending = set(futures)
    stop = False
    while pending:
        done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
        failed = any(f.exception() is not None for f in done)
        if not stop and (failed or cancelled()):
            stop = True
            flag.touch()  # every other job stops at its next check; nothing is left writing
            for f in pending:
                f.cancel()
    if stop and cancelled():
        raise Cancelled(artifact.CANCELLED_MESSAGE)
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    real = [e for e in errors if not isinstance(e, Cancelled)]  # not the stops the flag caused
    if real or errors:
        raise (real or errors)[0]  # type: ignore[misc]  # futures' exceptions
    if any(f.cancelled() for f in futures):
        raise Cancelled(artifact.CANCELLED_MESSAGE)
    return [f.result() for f in futures]


def _die_with_parent() -> None:
    """A server killed with SIGKILL must not leave decoders running (Linux: PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent was already gone before the call
        os._exit(1)


def _serve(nice: int) -> None:
    """The worker's loop: jobs in on stdin, results out on the original stdout; prints go to stderr."""
    _die_with_parent()
    if nice:
        try:
            os.nice(nice)
        except (AttributeError, OSError):
            pass
    jobs, results = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print in a job must not corrupt the protocol
    while True:
        try:
            payload = _recv(jobs)
        except EOFError:
            return
        try:
            fn, args = pickle.loads(payload)
            reply = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            reply = (False, exc)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable exception still reports its message
            data = pickle.dumps((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}"[:2000] or str(exc))))
        _send(results, data)


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
