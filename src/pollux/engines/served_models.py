"""`--engine-url` / `POLLUX_ENGINE_URL`: catalog entries made from an OpenAI-compatible server's /v1/models.

One entry per served model (engine "openai", every replica URL as its source, the family guessed from the
model's name, the server's dialect from its `owned_by` and `Server` header); the Gemini aliases point at the
first, or at `--engine-model`. A server that is down at
start-up still gets an entry (named after `--engine-model`, or "remote"): its requests answer 503 until it
is up, then the model is learnt on first use.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx

from pollux.catalog import TIERS, Catalog, ModelEntry
from pollux.engines.openai_dialects import recognise
from pollux.engines.remote import replica_urls

if TYPE_CHECKING:
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines")

_FAMILIES = ((re.compile(r"qwen2\.5[-_]?vl", re.I), "qwen2_5_vl"), (re.compile(r"qwen3[-_]?vl", re.I), "qwen3_vl"),
             (re.compile(r"qwen2[-_]?vl", re.I), "qwen2_vl"), (re.compile(r"smolvlm", re.I), "smolvlm"),
             (re.compile(r"llava", re.I), "llava"))


def family_of(model: str) -> str:
    """The prompt/box conventions a model name implies; "" (plain OpenAI conventions) when unknown."""
    return next((family for pattern, family in _FAMILIES if pattern.search(model)), "")


def entry_id(model: str, taken: set[str]) -> str:
    """A catalog id usable in a Gemini model path: the name's last component, lower case, [a-z0-9.-]."""
    base = re.sub(r"[^a-z0-9.\-]+", "-", model.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-.") or "remote"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def served(url: str, api_key: str | None = None, timeout: float = 5.0) -> list[dict]:
    """The server's /v1/models `data` (each has an `id`; vLLM adds `max_model_len`), each with the
    `dialect` its `owned_by` and the server's `Server` header imply."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    r = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=timeout)
    r.raise_for_status()
    models = [m for m in r.json().get("data", []) if isinstance(m, dict) and m.get("id")]
    return [{**m, "dialect": recognise(m.get("owned_by"), r.headers.get("server")).name} for m in models]


def entries_from_server(settings: "Settings", taken: set[str]) -> list[ModelEntry]:
    urls = replica_urls(settings.engine_url.split(",") if settings.engine_url else [])
    key_env = settings.engine_api_key_env
    options_base = {"api_key_env": key_env} if key_env else {}
    models: list[dict] = []
    for url in urls:
        try:
            models = served(url, os.environ.get(key_env) if key_env else None)
            break
        except (httpx.HTTPError, ValueError) as e:
            log.warning("engine %s: GET /models failed (%s)", url, e)
    if not models:
        name = settings.engine_model
        log.warning("no model learnt from %s; serving %s from it once it is up", settings.engine_url, name or "its first")
        options = {**options_base, **({"model": name} if name else {})}
        return [_entry(entry_id(name or "remote", taken), name or "the engine's first model", urls, options,
                       family_of(name or ""), None)]
    out: list[ModelEntry] = []
    for m in models:
        out.append(_entry(entry_id(m["id"], taken | {e.id for e in out}), m["id"], urls,
                          {**options_base, "model": m["id"], "dialect": m["dialect"]}, family_of(m["id"]),
                          m.get("max_model_len")))
    return out


def _entry(model_id: str, served_name: str, urls: list[str], options: dict, family: str,
           context: int | None) -> ModelEntry:
    return ModelEntry(id=model_id, display_name=f"{served_name} (remote)",
                      description=f"{served_name} served by the OpenAI-compatible engine at {', '.join(urls)}.",
                      engine="openai", source=urls[0] if len(urls) == 1 else tuple(urls), family=family,
                      input_token_limit=int(context or 32768), output_token_limit=min(8192, int(context or 8192)),
                      options=options)


def with_engine_url(catalog: Catalog, settings: "Settings") -> Catalog:
    """The catalog plus the engine's models, the Gemini aliases (and the default model) on the chosen one."""
    if not settings.engine_url:
        return catalog
    entries = entries_from_server(settings, set(catalog.entries))
    wanted = settings.engine_model
    chosen = next((e for e in entries if wanted in (e.options.get("model"), e.id)), None) if wanted else None
    if wanted and chosen is None:
        log.warning("--engine-model %s is not among %s; using %s", wanted, [e.options.get("model") for e in entries],
                    entries[0].id)
    chosen = chosen or entries[0]
    settings.default_model = chosen.id
    log.info("Gemini model names answer from %s (%s)", chosen.id, chosen.options.get("model") or settings.engine_url)
    # Explicit aliases of other entries move too: every Gemini name is the engine's now.
    others = [replace(e, aliases=()) for e in catalog.entries.values()]
    return Catalog(others + entries, dict.fromkeys(TIERS, chosen.id))
