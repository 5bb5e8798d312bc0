"""A failing disk becomes a clear Gemini error whatever layer reports it (issue 15, items 8 and 9)."""

import errno
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from pollux.errors import InvalidArgument, ResourceExhausted, Unavailable
from pollux.files.storage_errors import as_domain, storage_errors


def _wrapped(inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as e:
            raise RuntimeError("a decoder wrapped it") from e
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("exc, kind", [
    (OSError(errno.ENOSPC, "No space left on device"), ResourceExhausted),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), ResourceExhausted),
    (OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")), ResourceExhausted),
    (OSError(errno.EROFS, "Read-only file system"), Unavailable),
    (PermissionError(errno.EACCES, "Permission denied"), Unavailable),
    (OperationalError("UPDATE", {}, sqlite3.OperationalError("attempt to write a readonly database")), Unavailable),
    (_wrapped(OSError(errno.ENOSPC, "No space left on device")), ResourceExhausted),
])
def test_storage_failures_map_to_their_status(exc, kind):
    with pytest.raises(kind) as raised:
        with storage_errors():
            raise exc
    assert raised.value.reason in ("STORAGE_FULL", "STORAGE_NOT_WRITABLE")


def test_other_errors_pass_unchanged():
    assert as_domain(ValueError("x")) is None
    with pytest.raises(FileNotFoundError):
        with storage_errors():
            raise FileNotFoundError("gone")
    with pytest.raises(InvalidArgument):
        with storage_errors():
            raise InvalidArgument("bad")
