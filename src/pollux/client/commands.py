"""The client commands of `pollux`: models, upload, files, ask, count-tokens (over HTTP) and pull (local)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pollux.client.connection import (DEFAULT_BASE_URL, ApiKeyOption, ApiVersionOption, BaseUrlOption,
                                      Server)
from pollux.client.failures import EXIT_CODES_HELP, REJECTED, USAGE, ClientFailure, reported

ModelOption = Annotated[str, typer.Option("--model", "-m", envvar="POLLUX_MODEL", help="Model or Gemini alias.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the REST JSON instead of a summary.")]
TimeoutOption = Annotated[float | None, typer.Option(
    "--timeout", help="Seconds to wait for PROCESSING files (default: no limit).")]
InlineMaxOption = Annotated[int, typer.Option(
    "--inline-max", help="Images up to this many bytes are sent inline; larger files and all video and "
                         "audio are uploaded through the Files API.")]
MediaPromptArgs = Annotated[list[str], typer.Argument(
    metavar="[FILE...] PROMPT", help="Local files or uploaded files/NAME, then the prompt.", show_default=False)]

DEFAULT_MODEL = "gemini-2.0-flash"


def _consoles() -> tuple[Console, Console]:
    """stdout for results (pipeable), stderr for progress and notes."""
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=4096)  # pipes get whole rows, not 80-column wraps
    return out, Console(stderr=True, highlight=False, soft_wrap=True)


def _split(args: list[str]) -> tuple[list[str], str]:
    if not args or not args[-1].strip():
        raise ClientFailure("the last argument must be the prompt", USAGE)
    return args[:-1], args[-1]


def models(base_url: BaseUrlOption = DEFAULT_BASE_URL, api_key: ApiKeyOption = None,
           api_version: ApiVersionOption = "v1beta", json_out: JsonOption = False) -> None:
    """List the models the server offers."""
    from pollux.client.render import as_json_list, models_table

    out, _ = _consoles()
    with reported():
        client = Server(base_url, api_key, api_version).client()  # keep a reference: the SDK closes on GC
        found = list(client.models.list(config={"page_size": 1000}))
        if json_out:
            typer.echo(as_json_list(found))
        else:
            out.print(models_table(found))


def upload(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)],
    display_name: Annotated[str | None, typer.Option(help="Display name (one file only; default: file name).")] = None,
    mime_type: Annotated[str | None, typer.Option(help="MIME type (default: from the file name).")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until each file leaves PROCESSING.")] = True,
    timeout: TimeoutOption = None, json_out: JsonOption = False,
    base_url: BaseUrlOption = DEFAULT_BASE_URL, api_key: ApiKeyOption = None,
    api_version: ApiVersionOption = "v1beta",
) -> None:
    """Upload files (resumable, a progress bar each), wait until they are ACTIVE, and print them."""
    from pollux.client.media import is_processing, upload as upload_one, wait_until_active
    from pollux.client.progress import TransferDisplay, waiting
    from pollux.client.render import as_json, print_file

    out, err = _consoles()
    with reported():
        if display_name and len(paths) > 1:
            raise ClientFailure("--display-name needs a single file", USAGE)
        client = Server(base_url, api_key, api_version).client()
        with TransferDisplay(err) as display:
            uploaded = [upload_one(client, p, advance=display.track(p.name, p.stat().st_size),
                                   display_name=display_name, mime_type=mime_type) for p in paths]
        for i, file in enumerate(uploaded):
            if wait and is_processing(file):
                with waiting(err, f"waiting for {file.name} ({file.display_name}) to be processed"):
                    file = wait_until_active(client, file, timeout=timeout)
            if json_out:
                typer.echo(as_json(file))
            else:
                if i:
                    out.print()
                print_file(out, file)


files_app = typer.Typer(help="Uploaded files: list, get, delete.", no_args_is_help=True)


@files_app.command("list", epilog=EXIT_CODES_HELP)
def files_list(page_size: Annotated[int, typer.Option(help="Files per request (the server caps it at 100).")] = 100,
               json_out: JsonOption = False, base_url: BaseUrlOption = DEFAULT_BASE_URL,
               api_key: ApiKeyOption = None, api_version: ApiVersionOption = "v1beta") -> None:
    """List uploaded files, newest first (every page)."""
    from pollux.client.render import as_json_list, files_table

    out, _ = _consoles()
    with reported():
        client = Server(base_url, api_key, api_version).client()
        found = list(client.files.list(config={"page_size": page_size}))
        if json_out:
            typer.echo(as_json_list(found))
        elif found:
            out.print(files_table(found))
        else:
            out.print("no files")


@files_app.command("get", epilog=EXIT_CODES_HELP)
def files_get(name: Annotated[str, typer.Argument(help="files/NAME (or NAME).")], json_out: JsonOption = False,
              base_url: BaseUrlOption = DEFAULT_BASE_URL, api_key: ApiKeyOption = None,
              api_version: ApiVersionOption = "v1beta") -> None:
    """Show one file's metadata."""
    from pollux.client.render import as_json, print_file

    out, _ = _consoles()
    with reported():
        client = Server(base_url, api_key, api_version).client()
        file = client.files.get(name=name)
        typer.echo(as_json(file)) if json_out else print_file(out, file)


@files_app.command("delete", epilog=EXIT_CODES_HELP)
def files_delete(names: Annotated[list[str], typer.Argument(help="files/NAME (or NAME).", show_default=False)],
                 base_url: BaseUrlOption = DEFAULT_BASE_URL, api_key: ApiKeyOption = None,
                 api_version: ApiVersionOption = "v1beta") -> None:
    """Delete files."""
    with reported():
        client = Server(base_url, api_key, api_version).client()
        for name in names:
            client.files.delete(name=name)
            typer.echo(f"deleted {name if name.startswith('files/') else 'files/' + name}")


def ask(
    args: MediaPromptArgs,
    model: ModelOption = DEFAULT_MODEL,
    system: Annotated[str | None, typer.Option(help="System instruction.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    max_output_tokens: Annotated[int | None, typer.Option(help="Cap on answer tokens.")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print the answer as it arrives.")] = True,
    usage: Annotated[bool, typer.Option("--usage", help="Print token usage on stderr afterwards.")] = False,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="Keep files this command uploaded.")] = True,
    inline_max: InlineMaxOption = 4 * 1024 * 1024, timeout: TimeoutOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL, api_key: ApiKeyOption = None,
    api_version: ApiVersionOption = "v1beta",
) -> None:
    """Ask a model about images, video or audio; the answer streams to stdout."""
    from google.genai import types

    config = types.GenerateContentConfig(system_instruction=system, temperature=temperature,
                                         max_output_tokens=max_output_tokens)
    with _prepared(args, Server(base_url, api_key, api_version), inline_max, timeout, keep) as (client, prepared, err):
        if stream:
            last = None
            for chunk in client.models.generate_content_stream(model=model, contents=prepared.contents, config=config):
                _check_blocked(chunk)
                typer.echo(chunk.text or "", nl=False)
                last = chunk
            typer.echo()
        else:
            last = client.models.generate_content(model=model, contents=prepared.contents, config=config)
            _check_blocked(last)
            typer.echo(last.text or "")
        _notes(err, last, usage)


def count_tokens(
    args: MediaPromptArgs, model: ModelOption = DEFAULT_MODEL,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="Keep files this command uploaded.")] = False,
    inline_max: InlineMaxOption = 4 * 1024 * 1024, timeout: TimeoutOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL, api_key: ApiKeyOption = None,
    api_version: ApiVersionOption = "v1beta",
) -> None:
    """Count the tokens a prompt with files would use."""
    with _prepared(args, Server(base_url, api_key, api_version), inline_max, timeout, keep) as (client, prepared, _):
        result = client.models.count_tokens(model=model, contents=prepared.contents)
        typer.echo(f"{result.total_tokens} tokens")


@contextmanager
def _prepared(args: list[str], server: "Server", inline_max: int, timeout: float | None,
              keep: bool) -> Iterator[tuple[Any, Any, Console]]:
    """The files of a prompt uploaded (or inlined) and waited for; afterwards what was uploaded is
    kept or deleted. Failures are reported as the other commands report them."""
    from pollux.client.prompt import prepare

    _, err = _consoles()
    with reported():
        sources, prompt = _split(args)
        client = server.client()
        prepared = prepare(client, sources, prompt, inline_max=inline_max, err=err, wait_timeout=timeout)
        try:
            yield client, prepared, err
        finally:
            _settle_uploads(client, err, prepared.uploaded, keep)


def pull(
    model: Annotated[str, typer.Argument(help="Catalog id or Gemini alias.")],
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Where models live (data_dir/models).")] = None,
    config: Annotated[str | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """Download a model's weights into this machine's model store (with progress)."""
    from pollux.settings import load_settings

    with reported():
        settings = load_settings(config, data_dir=data_dir)
        try:
            where, name = _pull(model, settings)
        except ImportError as exc:
            raise ClientFailure(f"pulling weights is not available in this install ({exc})", REJECTED) from None
        typer.echo(f"{name} is ready in {where}")


def _pull(model: str, settings) -> tuple:
    """Catalog models (converted for OpenVINO when that is their engine), grounding models, Whisper models."""
    from pollux.catalog import Catalog

    if model == "whisper-base" or model.startswith("whisper:"):
        from pollux.engines import whisper

        name = model.partition(":")[2] or whisper.DEFAULT_MODEL
        return whisper.pull(name, settings), f"whisper:{name}"
    from pollux.engines import grounding

    if model in grounding.grounding_entries():
        from pollux.engines.weights import pull as pull_weights

        return pull_weights(grounding.grounding_entries()[model], settings, progress=True), model
    from pollux.engines.ov_convert import pull as pull_and_convert

    entry = Catalog.from_file(settings.catalog_file).resolve(model).entry
    return pull_and_convert(entry, settings, progress=True), entry.id


def _check_blocked(response) -> None:
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and feedback.block_reason:
        reason = getattr(feedback.block_reason, "value", feedback.block_reason)
        raise ClientFailure(f"the prompt was blocked: {reason}", REJECTED)


def _notes(err: Console, response, usage: bool) -> None:
    candidates = getattr(response, "candidates", None) or []
    reason = candidates[0].finish_reason if candidates else None
    reason = getattr(reason, "value", reason)
    if reason not in (None, "STOP", "FINISH_REASON_UNSPECIFIED"):
        err.print(f"note: the answer stopped early ({reason})")
    meta = getattr(response, "usage_metadata", None)
    if usage and meta is not None:
        err.print(f"tokens: prompt {meta.prompt_token_count or 0}, answer {meta.candidates_token_count or 0}, "
                  f"total {meta.total_token_count or 0}")


def _settle_uploads(client, err: Console, uploaded: list, keep: bool) -> None:
    for file in uploaded:
        if keep:
            err.print(f"kept {file.display_name} as {file.name} (reuse it: pollux ask {file.name} PROMPT)")
        else:
            client.files.delete(name=file.name)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `pollux` Typer app."""
    app.command("pull", epilog=EXIT_CODES_HELP)(pull)
    app.command("models", epilog=EXIT_CODES_HELP)(models)
    app.command("upload", epilog=EXIT_CODES_HELP)(upload)
    app.add_typer(files_app, name="files")
    app.command("ask", epilog=EXIT_CODES_HELP)(ask)
    app.command("count-tokens", epilog=EXIT_CODES_HELP)(count_tokens)
