"""Shared options of the client commands, and the google-genai client they build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from pollux.client.failures import AUTH, ClientFailure

DEFAULT_BASE_URL = "http://127.0.0.1:8080"

BaseUrlOption = Annotated[str, typer.Option(
    "--base-url", envvar="POLLUX_BASE_URL", show_envvar=True, help="Server to talk to.")]
ApiKeyOption = Annotated[str | None, typer.Option(
    "--api-key", envvar=["POLLUX_API_KEY", "GEMINI_API_KEY"], show_envvar=True,
    help="API key (sent as x-goog-api-key).")]
ApiVersionOption = Annotated[str, typer.Option(
    "--api-version", hidden=True, help="API version prefix (v1beta or v1).")]


@dataclass(frozen=True)
class Server:
    base_url: str
    api_key: str | None
    api_version: str = "v1beta"

    def client(self):
        """A google-genai client pointed at this server (the same call users write)."""
        from google import genai
        from google.genai import types

        if not self.api_key:
            raise ClientFailure("no API key: pass --api-key or set POLLUX_API_KEY (or GEMINI_API_KEY)", AUTH)
        return genai.Client(api_key=self.api_key, http_options=types.HttpOptions(
            base_url=self.base_url.rstrip("/"), api_version=self.api_version))
