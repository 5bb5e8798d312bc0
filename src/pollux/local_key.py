"""The first start without any key: on loopback, one local key is made, shown once, stored hashed.

A server with no key answers every request with Gemini's missing/invalid key errors, which is safe
and useless. On loopback (the machine's owner is the only caller) the first `pollux serve` makes
one key for the "default" project, prints it with the playground's address, and stores only its
hash, as `pollux keys create` does; later starts find a key in the store and print nothing.

Nothing changes where keys are configured (`api_keys` / `POLLUX_API_KEYS`, as the tests and the
conformance suite start servers), and a server bound beyond loopback never makes one by itself: it
stays closed and says how to make a key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pollux.files.store import MetadataStore
    from pollux.settings import Settings

PROJECT = "default"


@dataclass(frozen=True)
class FirstRun:
    key: str | None  # the new key (shown once), or None when none was made
    lines: tuple[str, ...]  # what `pollux serve` prints about it
    warning: bool = False  # the lines go to stderr: the server is reachable but no key exists


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def playground_url(settings: "Settings") -> str:
    host = settings.host if ":" not in settings.host else f"[{settings.host.strip('[]')}]"
    return f"http://{host}:{settings.port}/"


def first_run(settings: "Settings", store: "MetadataStore") -> FirstRun | None:
    """The key made on a first loopback start, a warning for a keyless public bind, or None."""
    if settings.parsed_api_keys() or store.list_keys():  # configured, or a key was made before (even revoked)
        return None
    if not is_loopback(settings.host):
        return FirstRun(None, (
            f"pollux: no API key exists and {settings.host} is not loopback, so none was made: every request "
            "is refused until you create one with `pollux keys create` (or set POLLUX_API_KEYS).",), warning=True)
    key = store.create_key(PROJECT)
    return FirstRun(key, (
        "pollux: no API key was configured, so this one was made for you (shown once; only its hash is stored):",
        "",
        f"    {key}",
        "",
        f"  Playground: {playground_url(settings)}  (paste the key there)",
        "  SDKs: export GEMINI_API_KEY=<the key> and point the client's base URL at this server.",
        "  Lost it? `pollux keys create` makes another; `pollux keys list` shows them (prefixes only).",
    ))
