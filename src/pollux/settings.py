"""One typed settings object. Precedence: defaults < TOML file < `POLLUX_*` env < CLI flags."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GB = 1000**3
MB = 1000**2


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("pollux-data")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    database_pool_size: int = Field(5, ge=1, description="connections each process keeps open to a server "
                                    "database (PostgreSQL); SQLite ignores it")
    database_max_overflow: int = Field(10, ge=0, description="connections opened beyond the pool under load, "
                                       "closed again when idle")
    blob_url: str | None = Field(None, description="file://DIR (default: data_dir) or s3://BUCKET/PREFIX; "
                                 "credentials from the standard AWS_* variables")
    s3_endpoint_url: str | None = Field(None, description="an S3-compatible endpoint (default: AWS, or AWS_ENDPOINT_URL)")
    s3_path_style: bool | None = Field(None, description="path-style bucket addressing; default on when "
                                       "s3_endpoint_url is set")
    blob_cache_bytes: int = Field(10 * GB, ge=0, description="local copies of S3 blobs and artifacts kept in "
                                  "data_dir/cache, least recently used evicted beyond this")
    public_base_url: str | None = Field(None, description="Base of file `uri`s; default: the request's host")
    api_keys: str = Field("", description="'key:project,key2:project2' (dev/test convenience)")
    emulator: bool = Field(False, description="answer every catalog model with the emulator engine")
    log_level: str = "info"

    # Files API limits (Gemini's defaults).
    max_file_bytes: int = 2 * GB
    max_project_bytes: int = 20 * GB
    file_ttl_seconds: int = 48 * 3600
    max_inline_bytes: int = 20 * MB
    sweep_interval_seconds: float = 60.0
    upload_session_ttl_seconds: int = 7 * 24 * 3600
    interaction_ttl_seconds: int = Field(48 * 3600, ge=1, description="how long a stored interaction (Interactions "
                                         "API, store=true) stays retrievable; continuing a conversation extends it")
    fsync: bool = True

    # Media preparation: jobs claimed with a lease renewed by a heartbeat (files/jobs.py, files/processing.py).
    workers: int | None = Field(None, ge=0, description="media job loops in this process (default 2); 0 for an "
                                "API-only node whose uploads `pollux worker` processes prepare")
    processing_workers: int | None = Field(None, ge=0, description="the former name of `workers` (still accepted)")
    job_lease_seconds: float = Field(15.0, gt=0, le=30, description="a claimed job's lease, renewed every third "
                                     "of it: a worker that dies has its job claimed elsewhere once it passes")
    job_poll_seconds: float = Field(0.5, gt=0, description="how often idle workers look for jobs queued by "
                                    "other processes (this process's own uploads wake them at once)")
    job_max_attempts: int = Field(3, ge=1, description="attempts before a file whose processing keeps failing "
                                  "(or keeps killing its worker) is FAILED with the last error")
    job_retry_seconds: float = Field(1.0, ge=0, description="the first retry's delay; it doubles per attempt")
    job_drain_seconds: float = Field(20.0, ge=0, description="on SIGTERM, how long `pollux worker` lets its "
                                     "running jobs finish before giving them back to the queue")
    processing_hooks: str = Field("", description="extra post-processing hooks, comma-separated "
                                  "'module:function' names, each called (file, prepared media, settings)")
    max_video_seconds: float = 3600.0
    media_worker_nice: int = Field(5, ge=0, le=19, description="niceness of the video decoding worker processes: "
                                   "requests go first when the cores are busy (0: decoding competes with them "
                                   "as an equal, faster when other programs load the CPU)")
    max_audio_seconds: float = 9.5 * 3600  # Gemini takes up to 9.5 hours of audio in one prompt
    max_image_pixels: int = 178_956_970  # Pillow's own bomb threshold
    max_images_per_request: int = 3600
    # The image decode budget (media/decode_budget.py): a huge declared size costs its full pixels in RAM.
    max_concurrent_decodes: int = Field(4, ge=1, description="image decodes running at once")
    max_decode_pixels: int = Field(250_000_000, ge=1, description="pixels all running image decodes may hold "
                                   "together (one image larger than this still runs, alone)")
    decode_wait_seconds: float = Field(30.0, ge=0, description="how long a request waits for decode budget "
                                       "before 503 UNAVAILABLE (background jobs wait as long as needed)")
    transcribe: bool = Field(True, description="speech-to-text for video audio tracks and audio files")
    whisper_model: str | None = Field(None, description="faster-whisper model (path or hub id); default Whisper base")

    processing_wait_seconds: float = Field(
        120.0, description="how long a request naming a PROCESSING audio file waits for it before a 400")

    # Media named by URL in fileData.fileUri.
    allow_private_urls: bool = Field(False, description="fetch loopback/private/link-local URLs too")
    youtube_downloader: str | None = Field(None, description="a yt-dlp binary for YouTube links; else they get a 400")

    # Engines and weights.
    models_dir: Path | None = Field(None, description="where pulled/converted weights live; default data_dir/models")
    catalog_file: Path | None = None
    default_model: str = "smolvlm2-256m"
    strict_model_names: bool = Field(False, description="answer names outside Gemini's documented forms with "
                                                        "Gemini's exact 404 (no Pollux hint, no loose matching)")
    pull: bool = Field(True, description="download a model's absent weights from the hub on first use (requests "
                       "answer 503 UNAVAILABLE with the download's progress meanwhile); off: `pollux pull` only")
    device: str = "cpu"
    idle_unload_seconds: float = 0.0
    engine_url: str | None = Field(None, description="OpenAI-compatible server base URL(s), comma-separated replicas; "
                                                     "its /v1/models become catalog entries, Gemini aliases → first")
    engine_model: str | None = Field(None, description="which served model the Gemini aliases use (--engine-url)")
    engine_api_key_env: str | None = Field(None, description="env var holding the engine's API key (--engine-url)")

    # cachedContents (explicit context caching).
    cache_memory_bytes: int = Field(1 * GB, ge=0, description="computed state (vision features, KV prefix) a "
                                    "local engine keeps pinned for live caches; beyond it, state is recomputed")
    cache_default_ttl_seconds: int = Field(3600, ge=1, description="a cache's lifetime when create names none")
    cache_min_tokens: int | None = Field(None, ge=0, description="smallest cache accepted (Gemini-rule tokens); "
                                         "default Gemini's per model: 4096 for Pro models, 1024 for the others")

    # Operations (pollux.limits, pollux.observability).
    rate_limit_window_seconds: int = Field(60, ge=1, description="length of the RPM/TPM window (Gemini: a "
                                           "minute; tests shorten it)")
    rate_limit_refresh_seconds: float = Field(5.0, ge=0, description="how often a node re-reads the projects' "
                                              "limits (`pollux projects set-limits` applies within this)")
    log_format: str = Field("text", pattern="^(text|json)$", description="text, or json: one object per line "
                            "with the request id")
    drain_seconds: float = Field(30.0, ge=0, description="on SIGTERM, how long in-flight requests (streams, "
                                 "uploads) may run on while new ones get 503")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'pollux.db').resolve()}"

    @property
    def resolved_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return 2 if self.processing_workers is None else self.processing_workers

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    def parsed_api_keys(self) -> dict[str, str]:
        """`POLLUX_API_KEYS` as {key: project}."""
        keys: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in self.api_keys.split(","))):
            key, _, project = item.partition(":")
            keys[key.strip()] = (project or "default").strip()
        return keys


def _coerce_env(name: str, raw: str) -> Any:
    field = Settings.model_fields[name]
    if field.annotation is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return raw


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from the TOML file (arg or POLLUX_CONFIG), env vars, then explicit overrides."""
    values: dict[str, Any] = {}
    path = config_file or os.environ.get("POLLUX_CONFIG")
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        values.update(data.get("pollux", data))
    for name in Settings.model_fields:
        env = os.environ.get(f"POLLUX_{name.upper()}")
        if env is not None:
            values[name] = _coerce_env(name, env)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
