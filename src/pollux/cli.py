"""`pollux`: the server (`serve`), key management, data-dir care (`doctor`, `backup`), the client commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pollux.files.blobs import LocalBlobStore
    from pollux.files.store import MetadataStore

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Pollux: the Gemini API, self-hosted.")


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
    pull: bool = typer.Option(None, "--pull/--no-pull", help="Download a model's absent weights from the hub on "
                              "first use (default on; requests answer 503 with the progress meanwhile)."),
) -> None:
    """Start the server. On loopback with no key configured, the first start makes one and prints it once."""
    import uvicorn

    from pollux.api.app import create_app
    from pollux.files.store import StorageError
    from pollux.local_key import first_run
    from pollux.settings import load_settings

    settings = load_settings(config, host=host, port=port, data_dir=data_dir, emulator=emulator, log_level=log_level,
                             engine_url=engine_url, engine_model=engine_model, pull=pull)
    try:
        app_ = create_app(settings)
    except StorageError as e:  # a data dir we must not serve from: say why, no traceback
        typer.echo(f"pollux: cannot start: {e}", err=True)
        raise typer.Exit(2) from None
    first = first_run(settings, app_.state.pollux.files.store)
    if first is not None:
        typer.echo("\n".join(first.lines), err=first.warning)
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=5)


def _data_dir(data_dir: str | None, config: str | None) -> tuple["MetadataStore", "LocalBlobStore"]:
    """The data dir's metadata store and blob store, or a clean exit when they cannot be opened."""
    from pollux.files.blobs import LocalBlobStore
    from pollux.files.store import MetadataStore, StorageError
    from pollux.settings import load_settings

    settings = load_settings(config, data_dir=data_dir)
    try:
        return MetadataStore.open(settings), LocalBlobStore(settings.data_dir, fsync=settings.fsync)
    except StorageError as e:
        typer.echo(f"pollux: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def doctor(data_dir: str = typer.Option(None, "--data-dir"), config: str = typer.Option(None, "--config"),
           dry_run: bool = typer.Option(False, "--dry-run", help="Check only; repair nothing.")) -> None:
    """Check every stored file against its SHA-256 and the database; repair only what is proven."""
    from pollux.files.doctor import run_doctor

    store, blobs = _data_dir(data_dir, config)
    report = run_doctor(store, blobs, dry_run=dry_run)
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


keys_app = typer.Typer(help="API keys (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _store(data_dir: str | None, config: str | None) -> "MetadataStore":
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
