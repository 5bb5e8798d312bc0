"""Pull on first use, as `ollama run` does: a model whose weights are absent is downloaded in the
background the first time a request needs it.

`weights.resolve` asks here once it has looked everywhere local. The first request starts the
download (`weights.pull`, the same one `pollux pull` runs) and, like every request while it runs,
is answered 503 UNAVAILABLE with the download's progress in the message; clients retry, and the
request after the download finished gets the model. A download that fails is reported as the
model being unavailable (naming `pollux pull`) and tried again after `RETRY_SECONDS`.

Off with `pull = false` / `pollux serve --no-pull`, and whenever the Hugging Face Hub is switched
off (`HF_HUB_OFFLINE`): then only `pollux pull` downloads.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pollux.errors import ModelUnavailable, PolluxError, Unavailable

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.pull")

RETRY_SECONDS = 30.0  # after a failed download, requests report the failure this long before trying again
EARLY_FAILURE_SECONDS = 1.0  # the first request waits this long, so an unreachable hub reads as a clear 400


@dataclass
class Download:
    model: str
    source: str
    target: Path
    started: float = field(default_factory=time.monotonic)
    total_bytes: int | None = None  # from the hub's file list; None until known (or when it is not)
    done: threading.Event = field(default_factory=threading.Event)
    folder: Path | None = None  # set when the download finished
    error: str | None = None  # set when it failed
    failed_at: float = 0.0

    def downloaded_bytes(self) -> int:
        """Bytes on disk so far: finished files plus the hub client's `.incomplete` ones."""
        try:
            return sum(p.stat().st_size for p in self.target.rglob("*") if p.is_file())
        except OSError:  # a file renamed while walking: the next poll counts it
            return 0

    def progress(self) -> str:
        done = self.downloaded_bytes()
        seconds = int(time.monotonic() - self.started)
        if self.total_bytes:
            done = min(done, self.total_bytes)
            return (f"{100 * done // self.total_bytes}% ({_mb(done)} of {_mb(self.total_bytes)} MB, "
                    f"{seconds} s so far)")
        return f"{_mb(done)} MB so far ({seconds} s)"


_downloads: dict[str, Download] = {}  # by target folder: one download per model and models_dir
_lock = threading.Lock()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def hub_enabled() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:  # without the hub client there is nothing to pull with
        return False
    return not constants.HF_HUB_OFFLINE


def on_first_use(entry: "ModelEntry", settings: "Settings") -> Path | None:
    """The weights' folder once pulled; None when pulling on first use is off or impossible here.

    Raises `Unavailable` (503, with the progress) while the download runs, `ModelUnavailable` after it
    failed (until `RETRY_SECONDS` have passed)."""
    if not settings.pull or not isinstance(entry.source, str) or not hub_enabled():
        return None
    from pollux.engines.weights import pulled_dir

    target = pulled_dir(entry, settings)
    with _lock:
        current = _downloads.get(str(target))
        if current is not None and current.error and time.monotonic() - current.failed_at > RETRY_SECONDS:
            current = None  # try again
        started = current is None
        if current is None:
            current = Download(entry.id, entry.source, target)
            _downloads[str(target)] = current
            threading.Thread(target=_run, args=(current, entry, settings), name=f"pull-{entry.id}",
                             daemon=True).start()
            log.info("pulling %s from %s on first use", entry.id, entry.source)
    if started:
        current.done.wait(EARLY_FAILURE_SECONDS)
    if current.folder is not None:
        return current.folder
    if current.error is not None:
        raise ModelUnavailable(
            f"The weights of model {entry.id} ({entry.source}) are not on this machine and downloading them on "
            f"first use failed: {current.error}. Run `pollux pull {entry.id}` to retry with a progress bar, or set "
            "the model's source to a local folder.", reason="MODEL_DOWNLOAD_FAILED", metadata={"model": entry.id})
    progress = current.progress()
    raise Unavailable(f"Model {entry.id} is being downloaded from {entry.source} on first use: {progress}. "
                      "Retry shortly (`pollux serve --no-pull` turns this off).",
                      reason="MODEL_DOWNLOADING", metadata={"model": entry.id, "progress": progress})


def _run(download: Download, entry: "ModelEntry", settings: "Settings") -> None:
    from pollux.engines import weights

    try:
        download.total_bytes = _total_bytes(entry)
        download.folder = weights.pull(entry, settings, progress=False)
        log.info("pulled %s on first use (%s MB)", entry.id, _mb(download.downloaded_bytes()))
    except PolluxError as e:
        download.error, download.failed_at = e.message, time.monotonic()
    except Exception as e:  # noqa: BLE001  (a background thread: whatever went wrong is the request's answer)
        download.error, download.failed_at = f"{type(e).__name__}: {e}", time.monotonic()
    finally:
        if download.error:
            log.warning("pulling %s on first use failed: %s", entry.id, download.error)
        download.done.set()


def _total_bytes(entry: "ModelEntry") -> int | None:
    """What the pull will fetch, from the hub's file list (the files `weights.PULL_PATTERNS` select)."""
    from huggingface_hub import HfApi

    from pollux.engines.weights import PULL_PATTERNS

    try:
        info = HfApi().model_info(str(entry.source), revision=entry.revision, files_metadata=True)
    except Exception:  # noqa: BLE001  (progress is shown in bytes alone then; the download reports real errors)
        return None
    sizes = [s.size or 0 for s in info.siblings or []
             if any(fnmatch.fnmatch(s.rfilename, p) for p in PULL_PATTERNS)]
    return sum(sizes) or None
