"""The model catalog: local model entries and the Gemini aliases that resolve to them.

The alias a request used also picks the Gemini token-accounting profile (1.5: flat 258 per image;
2.x and later: 768-px tiles), so `countTokens` answers as the named Gemini model would.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pollux.errors import NotFound


@dataclass(frozen=True)
class ModelEntry:
    id: str
    display_name: str
    description: str
    engine: str  # registry name: transformers | openvino | openai | emulator | third-party
    source: str | tuple[str, ...]  # Hugging Face repo id or a local directory; openai: base URL(s)
    family: str  # smolvlm | qwen2_5_vl | ... (chat template quirks, box conversion)
    revision: str | None = None
    aliases: tuple[str, ...] = ()
    input_token_limit: int = 8192
    output_token_limit: int = 2048
    options: dict[str, Any] = field(default_factory=dict)  # engine-specific (dtype, weights: int8, ...)
    version: str = "001"


@dataclass(frozen=True)
class Resolved:
    """A request's model name resolved: the entry, the name to echo back, the token profile."""

    entry: ModelEntry
    requested: str  # as the client named it, without "models/"
    token_profile: str  # gemini-1.5 | gemini-2


GEMINI_ALIASES = (
    "gemini-1.5-flash", "gemini-1.5-flash-8b", "gemini-1.5-pro", "gemini-2.0-flash", "gemini-2.0-flash-lite",
    "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-pro-vision", "gemini-flash-latest",
    "gemini-pro-latest",
)

DEFAULT_ENTRIES = (
    ModelEntry(
        id="smolvlm2-256m", display_name="SmolVLM2 256M Video Instruct",
        description="Small vision-language model for images and video; the default on CPU.",
        engine="openvino", source="HuggingFaceTB/SmolVLM2-256M-Video-Instruct", family="smolvlm",
        aliases=GEMINI_ALIASES, input_token_limit=8192, output_token_limit=2048, options={"weights": "int8"},
    ),
    ModelEntry(
        id="smolvlm2-500m", display_name="SmolVLM2 500M Video Instruct",
        description="SmolVLM2 500M: better answers, twice the cost of 256M.",
        engine="openvino", source="HuggingFaceTB/SmolVLM2-500M-Video-Instruct", family="smolvlm",
        input_token_limit=8192, output_token_limit=2048, options={"weights": "int8"},
    ),
    ModelEntry(
        id="smolvlm2-2.2b", display_name="SmolVLM2 2.2B Instruct",
        description="SmolVLM2 2.2B: the strongest SmolVLM2.",
        engine="transformers", source="HuggingFaceTB/SmolVLM2-2.2B-Instruct", family="smolvlm",
        input_token_limit=8192, output_token_limit=2048,
    ),
    ModelEntry(
        id="qwen2.5-vl-3b", display_name="Qwen2.5-VL 3B Instruct",
        description="Qwen2.5-VL 3B: the quality choice, native grounding.",
        engine="transformers", source="Qwen/Qwen2.5-VL-3B-Instruct", family="qwen2_5_vl",
        input_token_limit=32768, output_token_limit=8192,
    ),
    ModelEntry(
        id="qwen2.5-vl-7b", display_name="Qwen2.5-VL 7B Instruct",
        description="Qwen2.5-VL 7B: best answers; wants a GPU.",
        engine="transformers", source="Qwen/Qwen2.5-VL-7B-Instruct", family="qwen2_5_vl",
        input_token_limit=32768, output_token_limit=8192,
    ),
)

_VERSION_SUFFIX = re.compile(r"-(latest|\d{3}|exp(-\d+)?|preview(-[\w-]+)?)$")


class Catalog:
    def __init__(self, entries: tuple[ModelEntry, ...] | list[ModelEntry] = DEFAULT_ENTRIES):
        self.entries: dict[str, ModelEntry] = {e.id: e for e in entries}
        self.aliases: dict[str, str] = {}
        for e in entries:
            for alias in e.aliases:
                self.aliases[alias] = e.id  # the last entry that claims an alias wins (catalog files remap)

    @classmethod
    def from_file(cls, path: Path | None) -> "Catalog":
        """DEFAULT_ENTRIES, with `[[models]]` tables of a TOML file added or replacing by id."""
        entries = {e.id: e for e in DEFAULT_ENTRIES}
        if path:
            with open(path, "rb") as fh:
                for raw in tomllib.load(fh).get("models", []):
                    raw = dict(raw)
                    raw["aliases"] = tuple(raw.get("aliases", ()))
                    base = entries.get(raw["id"])
                    if base is None:
                        raw = entry_defaults(raw)
                    entries[raw["id"]] = replace(base, **raw) if base else ModelEntry(**raw)
        # An alias belongs to the last entry that claims it.
        return cls(list(entries.values()))

    def names(self) -> list[str]:
        """Every name models.list shows: entries, then Gemini aliases."""
        return list(self.entries) + [a for a in self.aliases if a not in self.entries]

    def resolve(self, name: str) -> Resolved:
        requested = name.removeprefix("models/").removeprefix("tunedModels/")
        base = requested
        for candidate in (requested, _VERSION_SUFFIX.sub("", requested)):
            if candidate in self.entries:
                return Resolved(self.entries[candidate], requested, _profile(candidate))
            if candidate in self.aliases:
                return Resolved(self.entries[self.aliases[candidate]], requested, _profile(candidate))
            base = candidate
        raise NotFound(
            f"models/{base} is not found for API version v1beta, or is not supported for generateContent. "
            "Call ListModels to see the list of available models and their supported methods."
        )


def _profile(name: str) -> str:
    return "gemini-1.5" if name.startswith(("gemini-1.", "gemini-pro-vision")) else "gemini-2"


def entry_defaults(raw: dict) -> dict:
    """A new entry's optional fields: a list `source` is replicas; `family` may be absent (plain conventions)."""
    out = {"display_name": raw.get("id", ""), "description": "", "family": "", **raw}
    if isinstance(out.get("source"), list):
        out["source"] = tuple(out["source"])
    return out
