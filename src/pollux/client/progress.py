"""Progress for uploads (a bar per file) and for PROCESSING waits (a spinner).

On a terminal these are Rich live displays. Elsewhere (pipes, CI logs, tests) a live display would
only show its final frame, so each step is printed as a plain line instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)


class ProgressReader(io.RawIOBase):
    """A seekable binary reader that reports bytes as the SDK consumes them.

    google-genai reads one chunk (CHUNK_SIZE) per upload request and only reads the next one after the
    server acknowledged the previous. So the bytes of a read are credited when the next read starts
    (or at `finish()`), which makes the bar follow what the server has received, not what was buffered.
    """

    def __init__(self, raw: io.BufferedIOBase, on_progress: Callable[[int], None]):
        super().__init__()
        self._raw = raw
        self._on_progress = on_progress
        self._pending = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        self._credit()
        data = self._raw.read(size)
        self._pending = len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        self._credit()

    def _credit(self) -> None:
        if self._pending:
            self._on_progress(self._pending)
            self._pending = 0


class TransferDisplay:
    """Upload bars, one task per file; `track(label, total)` returns the advance callback."""

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self._progress: Progress | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=console, transient=False)

    def __enter__(self) -> "TransferDisplay":
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()

    def track(self, label: str, total: int) -> Callable[[int], None]:
        if self._progress:
            progress = self._progress
            task = progress.add_task(label, total=total)
            return lambda n: progress.advance(task, n)
        done = 0
        self.console.print(f"uploading {label}: 0/{total} bytes (0%)", highlight=False)

        def advance(n: int) -> None:
            nonlocal done
            done += n
            percent = 100 * done // total if total else 100
            self.console.print(f"uploading {label}: {done}/{total} bytes ({percent}%)", highlight=False)

        return advance


@contextmanager
def waiting(console: Console, message: str) -> Iterator[None]:
    """A spinner on a terminal; one line elsewhere."""
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        console.print(message, highlight=False)
        yield
