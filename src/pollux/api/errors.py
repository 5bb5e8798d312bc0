"""The one place where domain errors become Gemini's `{"error": {code, message, status, details}}`."""

from __future__ import annotations

import logging
import math

from starlette.requests import Request
from starlette.responses import JSONResponse

from pollux.errors import PolluxError
from pollux.limits import DOCS, QUOTAS, RateLimited

log = logging.getLogger("pollux.api")

HTTP_CODES = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def status_body(code: int, status: str, message: str, reason: str | None = None, metadata: dict | None = None) -> dict:
    error: dict = {"code": code, "message": message, "status": status}
    details = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com", **(metadata or {})}})
        details.append({"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                        "message": message})
    if details:
        error["details"] = details
    return {"error": error}


def error_body(e: PolluxError) -> tuple[int, dict]:
    code = HTTP_CODES.get(e.status, 500)
    body = status_body(code, e.status, e.message, e.reason, e.metadata)
    if isinstance(e, RateLimited):
        body["error"]["details"] = quota_details(e)
    return code, body


def quota_details(e: RateLimited) -> list[dict]:
    """Gemini's 429 details: which quotas were crossed (QuotaFailure), where they are explained (Help), and
    when to come back (RetryInfo, whole seconds as Gemini sends them; retry logic reads it)."""
    violations = [{"quotaMetric": QUOTAS[v.metric][0], "quotaId": QUOTAS[v.metric][1],
                   "quotaDimensions": {"location": "global", "model": v.model}, "quotaValue": str(v.limit)}
                  for v in e.violations]
    return [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
            {"@type": "type.googleapis.com/google.rpc.Help",
             "links": [{"description": "Learn more about Gemini API quotas", "url": DOCS}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{math.ceil(e.retry_seconds)}s"}]


def error_response(e: PolluxError, headers: dict | None = None) -> JSONResponse:
    code, body = error_body(e)
    if isinstance(e, RateLimited):  # plain HTTP clients (and google-genai's Interactions client) read this one
        headers = {**(headers or {}), "Retry-After": str(math.ceil(e.retry_seconds))}
    return JSONResponse(body, status_code=code, headers=headers)


async def handle_pollux_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PolluxError)
    return error_response(exc)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_body(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                                    "the Pollux issue tracker."), status_code=500)
