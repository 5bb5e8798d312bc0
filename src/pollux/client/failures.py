"""One readable error line per failure, and the exit codes the client commands use.

Exit codes:
  0  success
  1  unexpected failure (a bug: please report it)
  2  usage error: bad arguments or options, local file missing (Typer/Click's own code)
  3  the server could not be reached (refused, DNS, timeout)
  4  authentication: no API key, or the server rejected it
  5  not found: unknown file or model (Gemini answers 403 for files it cannot show you)
  6  the server rejected the request (other 4xx: invalid argument, failed precondition, quota)
  7  server error (5xx)
  8  a file failed processing (state FAILED) or did not become ACTIVE in time
  130 interrupted (Ctrl-C)
Set POLLUX_DEBUG=1 to see the traceback instead of the one-line error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from pollux.errors import NotFound, PermissionDenied, PolluxError

OK, UNEXPECTED, USAGE, UNREACHABLE, AUTH, NOT_FOUND, REJECTED, SERVER, FILE_FAILED = range(9)
INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 2 usage, 3 server unreachable, 4 bad or missing API key, 5 file or model not found, "
    "6 request rejected, 7 server error, 8 file processing failed, 1 anything else."
)

_AUTH_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED"}


class ClientFailure(Exception):
    """A failure already phrased for the user, with its exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _transport_errors() -> tuple[type[BaseException], ...]:
    # The SDK may use httpx or its fork httpx2; both raise their own TransportError family.
    found: list[type[BaseException]] = []
    for module in ("httpx", "httpx2"):
        try:
            found.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _reasons(details: Any) -> set[str]:
    try:
        return {d["reason"] for d in details["error"].get("details", []) if isinstance(d, dict)
                and d.get("reason") is not None}
    except (TypeError, KeyError, AttributeError):
        return set()


def classify(exc: BaseException) -> ClientFailure:
    """Turn any exception raised while talking to a server into a ClientFailure."""
    from google.genai import errors

    if isinstance(exc, ClientFailure):
        return exc
    if isinstance(exc, errors.APIError):
        message = " ".join(str(exc.message or "").split()) or "(no message)"
        line = f"{exc.code} {exc.status or 'ERROR'}: {message}"
        code = exc.code or 0
        lowered = message.lower()
        if _reasons(exc.details) & _AUTH_REASONS or code == 401 or "api key" in lowered \
                or "unregistered callers" in lowered:
            return ClientFailure(line, AUTH)
        if code in (403, 404):
            return ClientFailure(line, NOT_FOUND)
        if code >= 500:
            return ClientFailure(line, SERVER)
        return ClientFailure(line, REJECTED)
    if isinstance(exc, PolluxError):  # local work (pull) raises the server's domain errors
        code = NOT_FOUND if isinstance(exc, (NotFound, PermissionDenied)) else REJECTED
        return ClientFailure(exc.message, code)
    if isinstance(exc, _transport_errors()):
        return ClientFailure(f"cannot reach the server: {exc or type(exc).__name__}", UNREACHABLE)
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return ClientFailure(str(exc), USAGE)
    return ClientFailure(f"{type(exc).__name__}: {exc}", UNEXPECTED)


@contextmanager
def reported() -> Iterator[None]:
    """Print failures as `error: ...` on stderr and exit with their code, never a traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        failure = classify(exc)
        typer.echo(f"error: {failure.message}", err=True)
        if os.environ.get("POLLUX_DEBUG"):
            raise
        raise typer.Exit(failure.exit_code) from None
