"""`pollux`: the server (`serve`), key management, data-dir care (`doctor`, `backup`), the client commands."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Pollux: the Gemini API, self-hosted.")

DATABASE_URL_HELP = ("The metadata database's SQLAlchemy URL, e.g. postgresql+psycopg://user@host/pollux "
                     "(default: SQLite in the data dir).")


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default 8080)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Where files, metadata and models live."),
    config: str = typer.Option(None, "--config", help="TOML settings file."),
    emulator: bool = typer.Option(None, "--emulator/--no-emulator", help="Answer every model with the emulator."),
    log_level: str = typer.Option(None, "--log-level"),
    engine_url: str = typer.Option(None, "--engine-url", help="An OpenAI-compatible server (vLLM, SGLang, Ollama, "
                                   "llama.cpp, LM Studio): its /v1 base URL; comma-separated for replicas."),
    engine_model: str = typer.Option(None, "--engine-model", help="The served model the Gemini aliases use "
                                     "(default: the first of /v1/models)."),
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    workers: int = typer.Option(None, "--workers", min=0, help="Media job loops in this process (default 2)."),
    no_workers: bool = typer.Option(False, "--no-workers", help="Prepare no media here (an API-only node; "
                                    "`pollux worker` processes do it)."),
    blob_url: str = typer.Option(None, "--blob-url", help="Where uploaded bytes live: file://DIR (default: the data "
                                 "dir) or s3://BUCKET/PREFIX (endpoint: --s3-endpoint-url or AWS_* variables)."),
    s3_endpoint_url: str = typer.Option(None, "--s3-endpoint-url", help="An S3-compatible endpoint (default AWS)."),
    log_format: str = typer.Option(None, "--log-format", help="text (default) or json: one object per line, "
                                   "with the request id."),
) -> None:
    """Start the server."""
    from pollux.api.app import create_app
    from pollux.observability import serve as serve_app
    from pollux.settings import load_settings

    from pollux.files.store import StorageError

    settings = load_settings(config, host=host, port=port, data_dir=data_dir, emulator=emulator, log_level=log_level,
                             engine_url=engine_url, engine_model=engine_model, database_url=database_url,
                             workers=0 if no_workers else workers, blob_url=blob_url,
                             s3_endpoint_url=s3_endpoint_url, log_format=log_format)
    try:
        app_ = create_app(settings)
    except StorageError as e:  # a data dir we must not serve from: say why, no traceback
        typer.echo(f"pollux: cannot start: {e}", err=True)
        raise typer.Exit(2) from None
    serve_app(app_, settings)  # uvicorn, draining on SIGTERM first (pollux.observability)


@app.command()
def worker(
    database_url: str = typer.Option(None, "--database-url", help="The metadata database the API nodes use."),
    blob_url: str = typer.Option(None, "--blob-url", help="The blob store the API nodes use (file://DIR, s3://...)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Local data dir (blobs when no --blob-url, caches)."),
    config: str = typer.Option(None, "--config", help="TOML settings file."),
    workers: int = typer.Option(None, "--workers", min=1, help="Jobs run at once (default 2)."),
    log_level: str = typer.Option(None, "--log-level"),
    log_format: str = typer.Option(None, "--log-format", help="text (default) or json: one object per line."),
) -> None:
    """Prepare uploaded media (frames, audio, transcripts) for the API nodes: claims jobs, serves no HTTP."""
    from pollux.files.store import StorageError
    from pollux.observability import configure_logging
    from pollux.settings import load_settings
    from pollux.worker import run

    settings = load_settings(config, database_url=database_url, blob_url=blob_url, data_dir=data_dir,
                             workers=workers, log_level=log_level, log_format=log_format)
    configure_logging(settings)
    try:
        run(settings)
    except StorageError as e:
        typer.echo(f"pollux: cannot start: {e}", err=True)
        raise typer.Exit(2) from None


def _data_dir(data_dir: str | None, config: str | None, blob_url: str | None = None):
    """The data dir's metadata store and blob store, or a clean exit when they cannot be opened."""
    from pollux.files.blobs import LocalBlobStore, open_blob_store
    from pollux.files.store import MetadataStore, StorageError
    from pollux.settings import load_settings

    settings = load_settings(config, data_dir=data_dir, blob_url=blob_url)
    try:
        store = MetadataStore.open(settings)
        blobs = open_blob_store(settings, store)
        if not isinstance(blobs, LocalBlobStore):  # a clear message for wrong S3 credentials or bucket
            blobs.check_writable()
        return store, blobs
    except StorageError as e:
        typer.echo(f"pollux: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def doctor(data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config"),
           dry_run: bool = typer.Option(False, "--dry-run", help="Check only; repair nothing."),
           blob_url: str = typer.Option(None, "--blob-url", help="file://DIR or s3://BUCKET/PREFIX")) -> None:
    """Check every stored file against its SHA-256 and the database; repair only what is proven."""
    from pollux.files.doctor import run_doctor

    report = run_doctor(*_data_dir(data_dir, config, blob_url), dry_run=dry_run)
    for line in report.lines:
        typer.echo(line)
    raise typer.Exit(1 if report.problems else 0)


@app.command()
def backup(dest: str = typer.Argument(..., help="A new or empty directory."),
           data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config")) -> None:
    """Copy the data dir consistently (works while the server runs); `pollux serve --data-dir DEST` starts from it."""
    from pathlib import Path

    from pollux.files.backup import backup as run_backup
    from pollux.files.store import StorageError

    store, blobs = _data_dir(data_dir, config)
    try:
        done = run_backup(store, blobs, Path(dest))
    except StorageError as e:
        typer.echo(f"pollux: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"backed up {done.files} file(s), {done.bytes} bytes, to {dest}"
               + (f" ({done.dropped} deleted meanwhile, left out)" if done.dropped else ""))


@app.command()
def migrate(database_url: str = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
            data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config")) -> None:
    """Bring the metadata database's schema to this version's (start-up does it too); print the revision."""
    from pollux.files.store import MetadataStore, StorageError, safe_url
    from pollux.settings import load_settings

    settings = load_settings(config, data_dir=data_dir, database_url=database_url)
    try:
        store = MetadataStore.open(settings)
    except StorageError as e:
        typer.echo(f"pollux: {e}", err=True)
        raise typer.Exit(2) from None
    store.close()
    typer.echo(f"{safe_url(settings.resolved_database_url)} is at revision {store.revision}")


keys_app = typer.Typer(help="API keys (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _store(data_dir: str | None, config: str | None):
    from pollux.files.store import MetadataStore
    from pollux.settings import load_settings

    settings = load_settings(config, data_dir=data_dir)
    return MetadataStore.open(settings)


@keys_app.command("create")
def keys_create(project: str = typer.Option("default", "--project"),
                data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config")):
    """Create a key for a project; it is printed once."""
    key = _store(data_dir, config).create_key(project)
    typer.echo(key)


@keys_app.command("list")
def keys_list(data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config")):
    """List keys (prefix, project, created, revoked)."""
    for row in _store(data_dir, config).list_keys():
        typer.echo(f"{row['prefix']}…  {row['project']}  {row['created']}  {'revoked' if row['revoked'] else ''}")


@keys_app.command("revoke")
def keys_revoke(prefix: str, data_dir: str = typer.Option(None, "--data-dir"),
                config: str = typer.Option(None, "--config")):
    """Revoke the key that starts with PREFIX."""
    if not _store(data_dir, config).revoke_key(prefix):
        typer.echo(f"no key starts with {prefix!r}", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


projects_app = typer.Typer(help="Per-project settings: rate limits (RPM, TPM, RPD), as Gemini has them.",
                           no_args_is_help=True)
app.add_typer(projects_app, name="projects")


def _limit_store(data_dir: str | None, config: str | None, database_url: str | None):
    from pollux.files.limits_store import LimitStore
    from pollux.files.store import MetadataStore, StorageError
    from pollux.settings import load_settings

    settings = load_settings(config, data_dir=data_dir, database_url=database_url)
    try:
        return LimitStore(MetadataStore.open(settings))
    except StorageError as e:
        typer.echo(f"pollux: {e}", err=True)
        raise typer.Exit(2) from None


def _limit_line(lim) -> str:
    shown = lambda v: "-" if v is None else str(v)  # noqa: E731
    return f"{lim.project}  {lim.model}  rpm={shown(lim.rpm)}  tpm={shown(lim.tpm)}  rpd={shown(lim.rpd)}"


@projects_app.command("set-limits")
def projects_set_limits(
    project: str = typer.Argument(..., help="The project (as API keys name it)."),
    rpm: int = typer.Option(None, "--rpm", min=0, help="Generate requests per minute."),
    tpm: int = typer.Option(None, "--tpm", min=0, help="Input tokens per minute (Gemini-rule counts)."),
    rpd: int = typer.Option(None, "--rpd", min=0, help="Generate requests per day (the day starts at midnight "
                            "Pacific time, as Gemini's)."),
    model: str = typer.Option(None, "--model", help="A Gemini model name; default * (each model on its own)."),
    clear: bool = typer.Option(False, "--clear", help="Remove the project's limits (for --model, or all)."),
    data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config"),
    database_url: str = typer.Option(None, "--database-url"),
) -> None:
    """Set a project's limits (replacing the previous ones for that model; an omitted metric is unlimited).
    Running servers apply them within `rate_limit_refresh_seconds`."""
    from pollux.files.limits_store import ANY_MODEL, Limits

    store = _limit_store(data_dir, config, database_url)
    model = model.removeprefix("models/") if model else None
    if clear:
        gone = store.clear_limits(project, model)
        typer.echo(f"cleared {gone} limit row(s) of {project}")
        return
    if rpm is None and tpm is None and rpd is None:
        typer.echo("pollux: name at least one of --rpm, --tpm, --rpd (or --clear)", err=True)
        raise typer.Exit(2)
    lim = Limits(project, model or ANY_MODEL, rpm, tpm, rpd)
    store.set_limits(lim)
    typer.echo(_limit_line(lim))


@projects_app.command("show")
def projects_show(project: str = typer.Argument(...), data_dir: str = typer.Option(None, "--data-dir"),
                  config: str = typer.Option(None, "--config"), database_url: str = typer.Option(None, "--database-url")
                  ) -> None:
    """A project's limits and its usage in the current windows."""
    import time

    from pollux.limits import day_window

    store = _limit_store(data_dir, config, database_url)
    mine = [lim for lim in store.all_limits() if lim.project == project]
    if not mine:
        typer.echo(f"{project}: no limits")
    for lim in mine:
        typer.echo(_limit_line(lim))
    for model, metric, start, value in store.usage(project, day_window(time.time())[0]):
        typer.echo(f"  used {model}  {metric}={value}  (window from {time.strftime('%H:%M:%S', time.gmtime(start))} UTC)")


@projects_app.command("list")
def projects_list(data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config"),
                  database_url: str = typer.Option(None, "--database-url")) -> None:
    """Every project with limits."""
    for lim in _limit_store(data_dir, config, database_url).all_limits():
        typer.echo(_limit_line(lim))


def _register_client_commands() -> None:
    try:
        from pollux.client.commands import register
    except ImportError:  # the client commands are optional during development
        return
    register(app)


_register_client_commands()


def main() -> None:  # python -m pollux.cli
    app()


if __name__ == "__main__":
    main()
