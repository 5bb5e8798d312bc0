"""Where a model's weights are: a local folder, the Hugging Face cache, or `pollux pull` (models_dir).

Resolution never touches the network; only `pull` downloads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pollux.errors import ModelUnavailable

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.weights")

PULLED_MARKER = ".pollux-pull.json"  # written last by `pull`: a folder without it is incomplete
# What a transformers checkpoint needs; skips other frameworks' copies (onnx, gguf, pytorch .bin twins).
PULL_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken", "*.py"]


def pulled_dir(entry: "ModelEntry", settings: "Settings") -> Path:
    return Path(settings.resolved_models_dir) / entry.id


def _is_local_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().exists()


def resolve(entry: "ModelEntry", settings: "Settings") -> Path:
    """The folder holding `entry`'s weights; ModelUnavailable (naming `pollux pull`) when absent."""
    source = entry.source
    assert isinstance(source, str), "a tuple of replicas names a remote server, which has no weights here"
    if _is_local_path(source):
        folder = Path(source).expanduser()
        if (folder / "config.json").is_file() or (folder / "model.bin").is_file():
            return folder
        raise ModelUnavailable(f"Model {entry.id}: its source folder {source} holds no weights (no config.json).",
                               reason="MODEL_WEIGHTS_MISSING", metadata={"model": entry.id})
    cached = _from_hf_cache(source, entry.revision)
    if cached is not None:
        return cached
    pulled = pulled_dir(entry, settings)
    if (pulled / PULLED_MARKER).is_file():
        return pulled
    from pollux.engines import pull  # absent: pulled on first use when allowed (a 503 with progress meanwhile)

    if (fetched := pull.on_first_use(entry, settings)) is not None:
        return fetched
    raise ModelUnavailable(
        f"The weights of model {entry.id} ({source}) are not on this machine. "
        f"Run `pollux pull {entry.id}` to download them, or set the model's source to a local folder.",
        reason="MODEL_WEIGHTS_MISSING", metadata={"model": entry.id},
    )


def _from_hf_cache(repo_id: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError, OSError):
        return None
    # A snapshot folder exists as soon as one file was fetched; require the config and some weights.
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    return folder if (folder / "config.json").is_file() and has_weights else None


def pull(entry: "ModelEntry", settings: "Settings", progress: bool = True) -> Path:
    """Download `entry`'s weights from the Hugging Face Hub into models_dir (resumable), with a progress bar."""
    source = entry.source
    assert isinstance(source, str), "a tuple of replicas names a remote server, which has no weights here"
    if _is_local_path(source):
        return resolve(entry, settings)
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    target = pulled_dir(entry, settings)
    target.mkdir(parents=True, exist_ok=True)
    (disable_progress_bars if not progress else enable_progress_bars)()
    try:
        snapshot_download(source, revision=entry.revision, local_dir=target, allow_patterns=PULL_PATTERNS)
    except Exception as e:  # network, auth, unknown repo: one clear message, no stack trace
        raise ModelUnavailable(f"Downloading {entry.id} from {entry.source} failed: {e}",
                               reason="MODEL_DOWNLOAD_FAILED", metadata={"model": entry.id}) from None
    (target / PULLED_MARKER).write_text(json.dumps({"source": entry.source, "revision": entry.revision}))
    log.info("pulled %s into %s", entry.id, target)
    return target
