"""What every route needs, built once per app: settings, services, auth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from pollux.api.auth import Authenticator
from pollux.catalog import Catalog
from pollux.engines.hub import EngineHub
from pollux.files.interaction_store import InteractionStore
from pollux.files.service import FileService
from pollux.generation import GenerationService
from pollux.settings import Settings

if TYPE_CHECKING:
    from pollux.caches import CacheService
    from pollux.limits import RateLimiter

VERSIONS = ("v1beta", "v1", "v1alpha")


@dataclass
class AppContext:
    settings: Settings
    files: FileService
    auth: Authenticator
    catalog: Catalog
    engines: EngineHub
    generation: GenerationService
    interactions: InteractionStore | None = None  # the Interactions API's stored conversations
    caches: "CacheService | None" = None  # cachedContents (pollux.caches)
    limits: "RateLimiter | None" = None  # per-project rate limits (pollux.limits); None: no limits


def ctx(conn: HTTPConnection) -> AppContext:
    return conn.app.state.pollux


def base_url(conn: HTTPConnection) -> str:
    """Where clients reach us: the configured public URL, or the request's own scheme, host and prefix."""
    configured = ctx(conn).settings.public_base_url
    if configured:
        return configured.rstrip("/")
    root = conn.scope.get("root_path", "")
    return f"{conn.url.scheme}://{conn.url.netloc}{root}".rstrip("/")
