"""Domain errors. No HTTP here: `pollux.api.errors` maps each class to a Gemini Status once."""

from __future__ import annotations


class PolluxError(Exception):
    """Base of every error a client may see; `message` is shown to the user verbatim."""

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}


class InvalidArgument(PolluxError):
    """The request is malformed or names something unsupported (400 INVALID_ARGUMENT)."""


class ApiKeyInvalid(InvalidArgument):
    def __init__(self) -> None:
        super().__init__("API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")


class PayloadTooLarge(InvalidArgument):
    """A body or upload crossed a size limit; the real service answers 400, not 413."""


class UnsupportedMedia(InvalidArgument):
    """Unsupported MIME type, or content that does not match the declared type."""


class FailedPrecondition(PolluxError):
    """The request is valid but the system is not in a state to serve it (400)."""


class FileNotActive(FailedPrecondition):
    pass


class ModelUnavailable(FailedPrecondition):
    """A model exists in the catalog but cannot run here (weights absent, engine missing)."""


class PermissionDenied(PolluxError):
    """403: missing key, or a file that is foreign, deleted or never existed (all look the same)."""


class NotFound(PolluxError):
    """404: unknown model or route."""


class ResourceExhausted(PolluxError):
    """429: quota crossed."""


class Cancelled(PolluxError):
    """The client went away or cancelled an upload session."""


class Unavailable(PolluxError):
    """503: overloaded or shutting down; clients retry."""


class Internal(PolluxError):
    """500: a bug; the message never leaks internals."""
