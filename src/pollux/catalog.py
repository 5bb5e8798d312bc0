"""The model catalog: local model entries, and Gemini model names resolved to them by rule.

A Gemini name (`gemini-<version>-<tier>[-preview|-exp|-latest|-NNN...]`, `gemini-flash-latest`,
`gemma-*`, ...) resolves by its tier (flash-lite / flash / pro, mapped to local entries by the
catalog file's `[gemini_tiers]` table) and its version family picks the Gemini token-accounting
profile (1.5: flat 258 per image; 2.x: 768-px tiles; 3.x: media-resolution caps), so `countTokens`
answers as the named Gemini model would. Names of models that do other jobs (embeddings, image,
music or speech generation, Live) are refused with a message saying what Pollux serves.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pollux.engines import options as engine_options
from pollux.errors import InvalidArgument, NotFound

GEMINI_CONTEXT = 1_048_576  # what Gemini's flash and pro models take (and what video thinning lets through)


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
    input_token_limit: int = 8192  # the local model's own context (native tokens)
    output_token_limit: int = 2048
    # The ceiling on the Gemini-rule count the server accepts, reported as `inputTokenLimit`: video frames
    # are thinned to fit the local context, so the Gemini count of a video prompt can be far above it.
    gemini_input_token_limit: int = GEMINI_CONTEXT
    options: dict[str, Any] = field(default_factory=dict)  # engine-specific (dtype, weights: int8, ...)
    version: str = "001"


@dataclass(frozen=True)
class Resolved:
    """A request's model name resolved: the entry, the name to echo back, the named Gemini model."""

    entry: ModelEntry
    requested: str  # as the client named it, without "models/"
    token_profile: str  # gemini-1.5 | gemini-2 | gemini-3
    tier: str | None = None  # flash-lite | flash | pro | gemma, for Gemini names
    version: str | None = None  # "2.5", "3", "3.5", "latest", ... for Gemini names


TIERS = ("flash-lite", "flash", "pro", "gemma")
DEFAULT_MODEL = "smolvlm2-256m"

# Shown by models.list next to the local entries (every other name of these forms resolves too).
LISTED_GEMINI_NAMES = (
    "gemini-1.5-flash", "gemini-1.5-flash-8b", "gemini-1.5-pro", "gemini-2.0-flash", "gemini-2.0-flash-lite",
    "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-3-flash-preview", "gemini-3-pro-preview",
    "gemini-3.1-flash-lite", "gemini-3.5-flash", "gemini-flash-latest", "gemini-flash-lite-latest",
    "gemini-pro-latest", "gemini-pro-vision",
)

DEFAULT_ENTRIES = (
    ModelEntry(
        id="smolvlm2-256m", display_name="SmolVLM2 256M Video Instruct",
        description="Small vision-language model for images and video; the default on CPU.",
        engine="openvino", source="HuggingFaceTB/SmolVLM2-256M-Video-Instruct", family="smolvlm",
        input_token_limit=8192, output_token_limit=2048,
        # Encoder int8 (weights and activations) where within tolerance of fp32; an unspecified
        # mediaResolution tiles from a 1024-px edge (2x2+1, MEDIUM's tiling): the most that keeps an
        # inline 768x768 photo's first token within 5 s on 2 cores (benchmarks/media_resolution.py).
        options={"weights": "int8", "vision_weights": "int8-static", "default_image_tiles": 2},
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


# Other jobs: (pattern, what the model does). Checked before the tier rule: "gemini-2.5-flash-image" is no flash.
OTHER_JOBS = (
    (re.compile(r"(^|-)embedding(-|$)|^text-embedding|^text-multilingual-embedding"), "an embedding model"),
    (re.compile(r"^imagen-|(^gemini-.*-image(-|$))"), "an image generation model"),
    (re.compile(r"^veo-"), "a video generation model"),
    (re.compile(r"^lyria"), "a music generation model"),
    (re.compile(r"-tts(-|$)"), "a text-to-speech model"),
    (re.compile(r"(^|-)live(-|$)|native-audio"), "a Live API (bidirectional streaming) model"),
    (re.compile(r"^aqa$"), "an attributed question answering model"),
)
SERVED = "Pollux serves generateContent, streamGenerateContent and countTokens over text, images, video and audio"

_HINT = (" (Pollux resolves gemini-<version>-<flash-lite|flash|pro> names, with -preview, -exp, -latest or -NNN "
         "suffixes, and its own model ids.)")
_VERSION = r"(?P<version>\d+(?:\.\d+)?)"
_TIER = r"(?P<tier>flash-lite|flash-8b|flash|pro|ultra)"
# -preview, -preview-MM-YYYY, -preview-MM-DD, -exp, -exp-MMDD, -latest, -NNN, -thinking-exp-01-21, -vision, ...
_SUFFIX = r"(?P<suffix>(?:-(?:preview|exp|experimental|latest|thinking|vision|customtools|\d{2,4}))*)"
_GEMINI = re.compile(rf"^gemini-{_VERSION}-{_TIER}{_SUFFIX}$")
_GEMINI_LATEST = re.compile(rf"^gemini-(?P<tier>flash-lite|flash|pro)-latest{_SUFFIX}$")
_GEMINI_1 = re.compile(rf"^gemini-(?:1\.0-)?pro(?:-vision)?{_SUFFIX}$")  # gemini-pro, gemini-1.0-pro-vision-latest
_GEMINI_EXP = re.compile(r"^gemini-exp-\d{4}$")  # gemini-exp-1206: an experimental pro
_LEARNLM = re.compile(rf"^learnlm-{_VERSION}-{_TIER}{_SUFFIX}$")
_GEMMA = re.compile(r"^gemma-\d")
_VERSION_SUFFIX = re.compile(r"-(latest|\d{3}|exp(-\d+)?|preview(-[\w-]+)?)$")
_LOOSE_TIER = re.compile(r"-(flash-lite|flash|pro)(?=-|$)")
_LOOSE_VERSION = re.compile(r"-(\d+(?:\.\d+)?)(?=-|$)")


def profile_for(version: str) -> str:
    """The token profile of a Gemini version family: 1.x → gemini-1.5, 2.x → gemini-2, 3 and later → gemini-3."""
    if version == "latest":
        return "gemini-3"
    major = int(version.split(".")[0])
    return "gemini-1.5" if major <= 1 else "gemini-2" if major == 2 else "gemini-3"


def gemini_name(name: str, loose: bool = False) -> tuple[str, str] | None:
    """(tier, version) of a Gemini-form model name, or None. `loose` also takes any gemini-* name
    naming a tier (e.g. "gemini-2.5-flash-preview-computer")."""
    if m := _GEMINI.match(name) or _LEARNLM.match(name):
        tier = {"flash-8b": "flash-lite", "ultra": "pro"}.get(m["tier"], m["tier"])
        return tier, m["version"]
    if m := _GEMINI_LATEST.match(name):
        return m["tier"], "latest"
    if _GEMINI_1.match(name):
        return "pro", "1.0"
    if _GEMINI_EXP.match(name):
        return "pro", "2.0"
    if _GEMMA.match(name):
        return "gemma", "2.0"
    if loose and name.startswith("gemini-") and (t := _LOOSE_TIER.search(name)):
        v = _LOOSE_VERSION.search(name[: t.start() + 1])
        return t.group(1), v.group(1) if v else "latest"
    return None


def not_found(requested: str, api_version: str = "v1beta", method: str = "generateContent", hint: str = "") -> NotFound:
    """Gemini's own NOT_FOUND, naming the model exactly as asked and the request's API version."""
    return NotFound(f"models/{requested} is not found for API version {api_version}, or is not supported for "
                    f"{method}. Call ListModels to see the list of available models and their supported methods."
                    + hint)


class Catalog:
    def __init__(self, entries: tuple[ModelEntry, ...] | list[ModelEntry] = DEFAULT_ENTRIES,
                 tiers: dict[str, str] | None = None):
        self.entries: dict[str, ModelEntry] = {e.id: e for e in entries}
        self.aliases: dict[str, str] = {}
        for e in entries:
            for alias in e.aliases:
                self.aliases[alias] = e.id  # the last entry that claims an alias wins (catalog files remap)
        first = DEFAULT_MODEL if DEFAULT_MODEL in self.entries else next(iter(self.entries), DEFAULT_MODEL)
        self.tiers = dict.fromkeys(TIERS, first)
        self.tiers.update(tiers or {})
        if "gemma" not in (tiers or {}):
            self.tiers["gemma"] = self.tiers["flash"]
        unknown = {t: i for t, i in self.tiers.items() if i not in self.entries}
        if unknown or set(self.tiers) - set(TIERS):
            raise ValueError(f"[gemini_tiers] must map {', '.join(TIERS)} to catalog ids; got {self.tiers}")

    @classmethod
    def from_file(cls, path: Path | None) -> "Catalog":
        """DEFAULT_ENTRIES, with `[[models]]` tables of a TOML file added or replacing by id, and its
        `[gemini_tiers]` table (flash-lite / flash / pro / gemma → entry id) mapping Gemini names."""
        entries = {e.id: e for e in DEFAULT_ENTRIES}
        tiers: dict[str, str] = {}
        if path:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
            for raw in data.get("models", []):
                raw = dict(raw)
                raw["aliases"] = tuple(raw.get("aliases", ()))
                base = entries.get(raw["id"])
                if base is None:
                    raw = entry_defaults(raw)
                entries[raw["id"]] = entry = replace(base, **raw) if base else ModelEntry(**raw)
                try:
                    engine_options.validate(entry)
                except ValueError as e:  # a misspelled option would otherwise be ignored without a word
                    raise ValueError(f"{path}: {e}") from None
            tiers = dict(data.get("gemini_tiers", {}))
        # An alias belongs to the last entry that claims it.
        return cls(list(entries.values()), tiers)

    def names(self) -> list[str]:
        """Every name models.list shows: entries, their aliases, then the usual Gemini names."""
        names = list(self.entries) + [a for a in self.aliases if a not in self.entries]
        return names + [n for n in LISTED_GEMINI_NAMES if n not in names]

    def resolve(self, name: str, *, api_version: str = "v1beta", method: str = "generateContent",
                strict: bool = False) -> Resolved:
        """A model name → its entry. Entry ids and explicit aliases first (with a version suffix
        stripped: "-001", "-latest", "-preview-..."), then the Gemini naming rule. `strict` takes only
        names of the documented forms and answers anything else with Gemini's exact 404."""
        requested = name.removeprefix("models/").removeprefix("tunedModels/")
        for job, what in OTHER_JOBS:
            if job.search(requested):
                if strict:
                    raise not_found(requested, api_version, method)
                raise NotFound(f"models/{requested} is {what}; Pollux does not serve that kind of model. "
                               f"{SERVED}. Call ListModels to see the models it serves.")
        for candidate in dict.fromkeys((requested, _VERSION_SUFFIX.sub("", requested))):
            entry_id = candidate if candidate in self.entries else self.aliases.get(candidate)
            if entry_id:
                named = gemini_name(candidate, loose=True)
                profile = profile_for(named[1]) if named else "gemini-2"
                return Resolved(self.entries[entry_id], requested, profile, *(named or (None, None)))
        named = gemini_name(requested, loose=not strict)
        if named is None:
            raise not_found(requested, api_version, method, "" if strict else _HINT)
        tier, version = named
        return Resolved(self.entries[self.tiers[tier]], requested, profile_for(version), tier, version)


def entry_defaults(raw: dict) -> dict:
    """A new entry's optional fields: a list `source` is replicas; `family` may be absent (plain conventions)."""
    out = {"display_name": raw.get("id", ""), "description": "", "family": "", **raw}
    if isinstance(out.get("source"), list):
        out["source"] = tuple(out["source"])
    return out


# Thinking budgets each Gemini model takes: (lowest, highest, 0 allowed). -1 (dynamic) is always allowed.
_BUDGETS = {"pro": (128, 32768, False), "flash": (1, 24576, True), "flash-lite": (512, 24576, True)}
_PRO_LEVELS = ("LOW", "MEDIUM", "HIGH")


def check_thinking(model: Resolved, budget: int | None, level: str | None) -> None:
    """Gemini's 400s for a thinkingConfig the named Gemini model rejects (Pollux's own model ids take
    anything: thinking is not honoured by the local engines either way). 2.5 takes budgets in a
    per-tier range (Pro cannot turn thinking off); 3.x takes thinkingLevel or a budget, not both;
    1.x and 2.0 do not think; thinkingLevel is Gemini 3 only."""
    level = None if level in (None, "THINKING_LEVEL_UNSPECIFIED") else level
    if model.version is None or (budget is None and level is None):
        return
    thinks = model.token_profile == "gemini-3" or model.version.startswith("2.5")
    if level is not None:
        if model.token_profile != "gemini-3":
            raise InvalidArgument("Thinking level is not supported for this model.")
        if budget is not None:
            raise InvalidArgument("You can only set only one of thinking budget and thinking level.")
        if model.tier == "pro" and level not in _PRO_LEVELS:
            raise InvalidArgument(f"Thinking level {level} is not supported for this model.")
        return
    if budget == -1:
        return
    if not thinks:
        if budget != 0:
            raise InvalidArgument("Thinking is not supported for this model.")
        return
    low, high, zero = _BUDGETS.get(model.tier or "flash", _BUDGETS["flash"])
    assert budget is not None  # None returned above
    if budget == 0:
        if not zero:
            raise InvalidArgument("Budget 0 is invalid. This model only works in thinking mode.")
        return
    if not low <= budget <= high:
        raise InvalidArgument(f"The thinking budget {budget} is invalid. Please choose a value between {low} and "
                              f"{high}.")
