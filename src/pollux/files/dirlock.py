"""Who is using a data dir: a running server holds a shared lock on `<data_dir>/.pollux.lock`;
`pollux doctor` repairs only when it can take the lock exclusively (no server running)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".pollux.lock"


class DirLock:
    def __init__(self, root: Path, exclusive: bool):
        self.fd: int | None = None
        path = Path(root) / LOCK_NAME
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only dir: lock the file if it is there, else hold nothing
            try:
                self.fd = os.open(path, os.O_RDONLY)
            except OSError:
                return
        try:
            fcntl.flock(self.fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError:
            self.release()

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
