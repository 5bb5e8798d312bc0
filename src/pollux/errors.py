"""Domain errors. No HTTP here: `pollux.api.errors` maps each class to a Gemini Status once."""

from __future__ import annotations


class PolluxError(Exception):
    """Base of every error a client may see; `message` is shown to the user verbatim."""

    status = "UNKNOWN"  # the google.rpc.Code name

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}


class InvalidArgument(PolluxError):
    """The request is malformed or names something unsupported (400 INVALID_ARGUMENT)."""

    status = "INVALID_ARGUMENT"


class ApiKeyInvalid(InvalidArgument):
    def __init__(self) -> None:
        super().__init__("API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")


class PayloadTooLarge(InvalidArgument):
    """A body or upload crossed a size limit; the real service answers 400, not 413."""


class UnsupportedMedia(InvalidArgument):
    """Unsupported MIME type, or content that does not match the declared type."""


class FailedPrecondition(PolluxError):
    """The request is valid but the system is not in a state to serve it (400)."""

    status = "FAILED_PRECONDITION"


class FileNotActive(FailedPrecondition):
    pass


class ModelUnavailable(FailedPrecondition):
    """A model exists in the catalog but cannot run here (weights absent, engine missing)."""


class PermissionDenied(PolluxError):
    """403: missing key, or a file that is foreign, deleted or never existed (all look the same)."""

    status = "PERMISSION_DENIED"


class NotFound(PolluxError):
    """404: unknown model or route."""

    status = "NOT_FOUND"


class ResourceExhausted(PolluxError):
    """429: quota crossed."""

    status = "RESOURCE_EXHAUSTED"


class Cancelled(PolluxError):
    """The client went away or cancelled an upload session."""

    status = "CANCELLED"


class Unavailable(PolluxError):
    """503: overloaded or shutting down; clients retry."""

    status = "UNAVAILABLE"


class Internal(PolluxError):
    """500: a bug; the message never leaks internals."""

    status = "INTERNAL"


class AlreadyExists(PolluxError):
    """409: a client-proposed file name is taken."""

    status = "ALREADY_EXISTS"


# google.rpc.Code numbers, for Status objects stored in resources (File.error).
RPC_CODES = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
             "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
             "ABORTED": 10, "INTERNAL": 13, "UNAVAILABLE": 14, "UNAUTHENTICATED": 16}


def rpc_status(e: PolluxError) -> dict:
    """The google.rpc.Status of an error, as stored in a resource."""
    return {"code": RPC_CODES.get(e.status, 2), "message": e.message}
