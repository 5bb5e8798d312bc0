from typer.testing import CliRunner

from pollux.cli import app
from pollux.files.store import MetadataStore
from pollux.settings import load_settings


def test_keys_create_list_revoke(tmp_path):
    runner = CliRunner()
    data = str(tmp_path / "data")
    created = runner.invoke(app, ["keys", "create", "--project", "acme", "--data-dir", data])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    store = MetadataStore.open(load_settings(None, data_dir=data))
    assert store.project_for_key(key) == "acme"
    listed = runner.invoke(app, ["keys", "list", "--data-dir", data])
    assert "acme" in listed.output and key not in listed.output
    assert runner.invoke(app, ["keys", "revoke", key[:10], "--data-dir", data]).exit_code == 0
    assert store.project_for_key(key) is None
    assert runner.invoke(app, ["keys", "revoke", "px-nothing", "--data-dir", data]).exit_code == 1
