"""API key → project. Keys come from `x-goog-api-key`, `?key=`, or `Authorization: Bearer`.

Stored keys live in the database: async routes look them up from a thread (`project_async`), so a
key check never blocks the event loop. A key found there is remembered for `KEY_CACHE_SECONDS`, so a
busy client costs one lookup (and one thread hop) per few seconds, not one per request: a key revoked in
this process stops working at once, one revoked from another (the CLI) within those seconds.
"""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from pollux.errors import ApiKeyInvalid, PermissionDenied
from pollux.files.store import MetadataStore

log = logging.getLogger("pollux.auth")

KEY_CACHE_SECONDS = 5.0
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
        self._known: dict[str, tuple[str, float, int]] = {}  # key → (project, until, the store's key revision)

    def project(self, conn: HTTPConnection) -> str:
        """The caller's project (blocking on a stored key: async code uses `project_async`)."""
        key = _key(conn)
        return _answer(self.static_keys.get(key) or self.store.project_for_key(key))

    async def project_async(self, conn: HTTPConnection) -> str:
        key = _key(conn)
        if key in self.static_keys:
            return self.static_keys[key]
        now, revision = time.monotonic(), self.store.key_revision
        known = self._known.get(key)
        if known and known[1] > now and known[2] == revision:
            return known[0]
        project = await run_in_threadpool(self.store.project_for_key, key)
        if project is not None:
            if len(self._known) > 10_000:  # bounded: keys seen, not keys guessed (misses are not kept)
                self._known.clear()
            self._known[key] = (project, now + KEY_CACHE_SECONDS, revision)
        return _answer(project)


def _key(conn: HTTPConnection) -> str:
    key = key_from(conn)
    if key is None:
        raise PermissionDenied(MISSING_KEY)
    return key


def _answer(project: str | None) -> str:
    if project is None:
        raise ApiKeyInvalid()
    return project
