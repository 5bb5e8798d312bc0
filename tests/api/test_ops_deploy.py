"""deploy/compose.yaml and the Dockerfile, checked for structure (Docker is not available to the tests):
the services the issue names, the CLI spellings it fixes, and the nginx settings streaming needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The spellings issue #13 fixes (other checks rely on them), wherever the CLI on this branch lacks them yet.
ISSUE_FLAGS = {"serve": {"--database-url", "--blob-url", "--no-workers"},
               "worker": {"--database-url", "--blob-url", "--data-dir"}, "migrate": {"--database-url"}}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def _cli_flags(command: str) -> set[str]:
    """The options `pollux COMMAND --help` lists (empty if the command is not on this branch yet)."""
    out = subprocess.run([sys.executable, "-m", "pollux.cli", command, "--help"], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")})
    return set(re.findall(r"(--[a-z][a-z-]+)", out.stdout)) if out.returncode == 0 else set()


def test_the_cluster_has_every_part():
    services = _compose()["services"]
    assert {"postgres", "seaweedfs", "migrate", "api1", "api2", "worker", "lb", "vllm"} <= set(services)
    assert services["vllm"]["profiles"] == ["vllm"]  # optional
    assert services["seaweedfs"]["image"].startswith("chrislusf/seaweedfs")
    for name in ("api1", "api2"):
        api = services[name]
        assert api["command"][0] == "serve" and "--no-workers" in api["command"]
        assert api["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert "/readyz" in " ".join(api["healthcheck"]["test"])
        assert api["build"]["context"] == ".." and api["build"]["dockerfile"] == "Dockerfile"
    assert services["worker"]["command"][0] == "worker"
    assert services["migrate"]["command"][0] == "migrate"
    assert services["migrate"]["restart"] == "no"


def test_commands_use_the_cli_spellings():
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if not command or service.get("image") != "pollux:latest":
            continue
        verb, flags = command[0], {a for a in command[1:] if a.startswith("--")}
        known = _cli_flags(verb) | ISSUE_FLAGS.get(verb, set())
        assert flags <= known, f"{name}: {sorted(flags - known)} not options of `pollux {verb}`"
        if verb in ("serve", "worker"):
            i = command.index("--database-url")
            assert command[i + 1].startswith("postgresql+psycopg://")
            assert command[command.index("--blob-url") + 1].startswith("s3://")


def test_environment_uses_the_settings_names():
    from pollux.settings import Settings

    env = _compose()["services"]["api1"]["environment"]
    pollux_vars = {k for k in env if k.startswith("POLLUX_")}
    fields = {f"POLLUX_{name.upper()}" for name in Settings.model_fields} | {"POLLUX_S3_ENDPOINT_URL"}
    assert pollux_vars <= fields, pollux_vars - fields
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    assert not any(re.fullmatch(r"[A-Za-z0-9/+]{30,}", str(v)) for v in env.values())  # no literal secrets


def test_balancer_streams_and_takes_big_uploads():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for line in ("proxy_buffering off;", "proxy_request_buffering off;", "client_max_body_size 0;",
                 "server api1:8080", "server api2:8080"):
        assert line in conf, line
    assert int(re.search(r"proxy_read_timeout (\d+)s;", conf).group(1)) >= 600
    lb = _compose()["services"]["lb"]
    assert any(v.startswith("./nginx.conf:") for v in lb["volumes"])


def test_dockerfile_serves_on_all_interfaces_with_cpu_torch():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert "https://download.pytorch.org/whl/cpu" in text and "requirements.txt" in text
    assert '"serve", "--host", "0.0.0.0"' in text
    assert "# tests" in (ROOT / "requirements.txt").read_text()  # the Dockerfile installs what is above it
