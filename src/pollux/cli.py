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
) -> None:
    """Start the server."""
    import uvicorn

    from pollux.api.app import create_app
    from pollux.settings import load_settings

    from pollux.files.store import StorageError

    settings = load_settings(config, host=host, port=port, data_dir=data_dir, emulator=emulator, log_level=log_level,
                             engine_url=engine_url, engine_model=engine_model, database_url=database_url,
                             workers=0 if no_workers else workers, blob_url=blob_url, s3_endpoint_url=s3_endpoint_url)
    try:
        app_ = create_app(settings)
    except StorageError as e:  # a data dir we must not serve from: say why, no traceback
        typer.echo(f"pollux: cannot start: {e}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=5)


@app.command()
def worker(
    database_url: str = typer.Option(None, "--database-url", help="The metadata database the API nodes use."),
    blob_url: str = typer.Option(None, "--blob-url", help="The blob store the API nodes use (file://DIR, s3://...)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Local data dir (blobs when no --blob-url, caches)."),
    config: str = typer.Option(None, "--config", help="TOML settings file."),
    workers: int = typer.Option(None, "--workers", min=1, help="Jobs run at once (default 2)."),
    log_level: str = typer.Option(None, "--log-level"),
) -> None:
    """Prepare uploaded media (frames, audio, transcripts) for the API nodes: claims jobs, serves no HTTP."""
    import logging

    from pollux.files.store import StorageError
    from pollux.settings import load_settings
    from pollux.worker import run

    settings = load_settings(config, database_url=database_url, blob_url=blob_url, data_dir=data_dir,
                             workers=workers, log_level=log_level)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
