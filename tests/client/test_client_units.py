"""Client pieces that need no server: progress crediting, error classification, MIME types."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from google.genai import errors, types

from pollux.client import failures
from pollux.client.media import mime_type_of, wait_until_active
from pollux.client.progress import ProgressReader


def test_progress_reader_credits_a_chunk_when_the_next_is_read():
    credited: list[int] = []
    reader = ProgressReader(io.BytesIO(b"x" * 10), credited.append)
    assert reader.read(4) == b"xxxx" and credited == []  # chunk 1 read, not yet acknowledged
    assert reader.read(4) == b"xxxx" and credited == [4]
    assert reader.read(4) == b"xx" and credited == [4, 4]
    reader.finish()
    assert credited == [4, 4, 2]


def test_progress_reader_is_what_the_sdk_accepts():
    reader = ProgressReader(io.BytesIO(b"abcdef"), lambda n: None)
    assert isinstance(reader, io.IOBase) and not hasattr(reader, "mode")
    reader.seek(0, io.SEEK_END)
    assert reader.tell() == 6
    reader.seek(0)
    assert reader.read(3) == b"abc"


def api_error(code: int, status: str, message: str, reason: str | None = None) -> errors.APIError:
    body = {"error": {"code": code, "status": status, "message": message,
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}] if reason else []}}
    cls = errors.ClientError if code < 500 else errors.ServerError
    return cls(code, body)


@pytest.mark.parametrize("exc, code, line", [
    (api_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"),
     failures.AUTH, "400 INVALID_ARGUMENT: API key not valid. Please pass a valid API key."),
    (api_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."), failures.AUTH, None),
    (api_error(403, "PERMISSION_DENIED", "You do not have permission to access the File x or it may not exist."),
     failures.NOT_FOUND, None),
    (api_error(404, "NOT_FOUND", "models/x is not found"), failures.NOT_FOUND, "404 NOT_FOUND: models/x is not found"),
    (api_error(400, "FAILED_PRECONDITION", "not ACTIVE"), failures.REJECTED, None),
    (api_error(429, "RESOURCE_EXHAUSTED", "slow down"), failures.REJECTED, None),
    (api_error(503, "UNAVAILABLE", "busy"), failures.SERVER, "503 UNAVAILABLE: busy"),
    (httpx.ConnectError("refused"), failures.UNREACHABLE, "cannot reach the server: refused"),
    (ValueError("boom"), failures.UNEXPECTED, "ValueError: boom"),
])
def test_classify(exc, code, line):
    failure = failures.classify(exc)
    assert failure.exit_code == code
    if line:
        assert failure.message == line


def test_mime_types_use_geminis_names():
    assert mime_type_of(Path("a.JPG")) == "image/jpeg"
    assert mime_type_of(Path("a.mov")) == "video/mov"
    assert mime_type_of(Path("a.wav")) == "audio/wav"
    with pytest.raises(failures.ClientFailure):
        mime_type_of(Path("a.unknownext"))


class FakeFiles:
    def __init__(self, states):
        self.states = list(states)

    def get(self, name):
        return types.File(name=name, state=self.states.pop(0))


class FakeClient:
    def __init__(self, states):
        self.files = FakeFiles(states)


def test_wait_until_active_polls_with_backoff():
    slept: list[float] = []
    client = FakeClient(["PROCESSING", "PROCESSING", "PROCESSING", "ACTIVE"])
    done = wait_until_active(client, types.File(name="files/v", state="PROCESSING"), sleep=slept.append)
    assert done.state.name == "ACTIVE"
    assert slept == sorted(slept) and len(slept) == 4


def test_wait_until_active_reports_failed():
    client = FakeClient(["FAILED"])
    with pytest.raises(failures.ClientFailure) as caught:
        wait_until_active(client, types.File(name="files/v", state="PROCESSING"), sleep=lambda s: None)
    assert caught.value.exit_code == failures.FILE_FAILED
