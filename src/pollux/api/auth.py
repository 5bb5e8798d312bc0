"""API key → project. Keys come from `x-goog-api-key`, `?key=`, or `Authorization: Bearer`.

Stored keys live in the database: async routes look them up from a thread (`project_async`), so a
key check never blocks the event loop; a revoked key stops working at once.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from pollux.errors import ApiKeyInvalid, PermissionDenied
from pollux.files.store import MetadataStore

log = logging.getLogger("pollux.auth")

MISSING_KEY = ("Method doesn't allow unregistered callers (callers without established identity). "
               "Please use API Key or other form of API consumer identity to call this API.")


def key_from(conn: HTTPConnection) -> str | None:
    key = conn.headers.get("x-goog-api-key") or conn.query_params.get("key")
    if not key:
        auth = conn.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    return key or None


class Authenticator:
    def __init__(self, static_keys: dict[str, str], store: MetadataStore):
        self.static_keys = static_keys
        self.store = store

    def project(self, conn: HTTPConnection) -> str:
        """The caller's project (blocking on a stored key: async code uses `project_async`)."""
        key = _key(conn)
        return _answer(self.static_keys.get(key) or self.store.project_for_key(key))

    async def project_async(self, conn: HTTPConnection) -> str:
        key = _key(conn)
        if key in self.static_keys:
            return self.static_keys[key]
        return _answer(await run_in_threadpool(self.store.project_for_key, key))


def _key(conn: HTTPConnection) -> str:
    key = key_from(conn)
    if key is None:
        raise PermissionDenied(MISSING_KEY)
    return key


def _answer(project: str | None) -> str:
    if project is None:
        raise ApiKeyInvalid()
    return project
