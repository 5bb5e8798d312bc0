"""Turning a failing disk into a clear Gemini error: full → RESOURCE_EXHAUSTED, read-only → UNAVAILABLE.

Both come from the OS (OSError errno) or from SQLite, which reports the same conditions in words;
either may sit anywhere in an exception's chain (decoders wrap what they hit).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from pollux.errors import PolluxError, ResourceExhausted, Unavailable

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
_SQLITE_NO_SPACE = ("database or disk is full",)
_SQLITE_NOT_WRITABLE = ("readonly database", "read-only file system", "unable to open database file")

DISK_FULL = ("The server's storage is full: the request's bytes were not kept. Retry later, once space has "
             "been freed.")
NOT_WRITABLE = "The server's storage is not writable at the moment; files can be read but not stored. Retry later."


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
        if isinstance(orig, BaseException) and id(orig) not in seen:
            yield orig
        exc = exc.__cause__ or exc.__context__


def _matches(exc: BaseException, errnos: set[int], words: tuple[str, ...]) -> bool:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in errnos:
            return True
        if type(e).__name__ in ("OperationalError", "DatabaseError") and any(w in str(e).lower() for w in words):
            return True
    return False


def out_of_space(exc: BaseException) -> bool:
    return _matches(exc, _NO_SPACE, _SQLITE_NO_SPACE)


def not_writable(exc: BaseException) -> bool:
    return _matches(exc, _NOT_WRITABLE, _SQLITE_NOT_WRITABLE)


def as_domain(exc: BaseException) -> PolluxError | None:
    """The client-facing error for a storage failure, or None when `exc` is something else."""
    if isinstance(exc, PolluxError):
        return exc
    if out_of_space(exc):
        return ResourceExhausted(DISK_FULL, reason="STORAGE_FULL")
    if not_writable(exc):
        return Unavailable(NOT_WRITABLE, reason="STORAGE_NOT_WRITABLE")
    return None


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Re-raise a full or read-only disk as its domain error; anything else unchanged."""
    try:
        yield
    except PolluxError:
        raise
    except Exception as e:
        domain = as_domain(e)
        if domain is None:
            raise
        raise domain from e
