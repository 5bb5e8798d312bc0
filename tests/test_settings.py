from pollux.settings import load_settings


def test_precedence_defaults_toml_env_flags(tmp_path, monkeypatch):
    cfg = tmp_path / "pollux.toml"
    cfg.write_text('[pollux]\nport = 9000\nmax_file_bytes = 123\nemulator = false\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("POLLUX_PORT", "9100")
    monkeypatch.setenv("POLLUX_EMULATOR", "true")
    s = load_settings(cfg, host=None, port=9200)
    assert s.max_file_bytes == 123  # TOML over default
    assert s.emulator is True  # env over TOML
    assert s.port == 9200  # flag over env
    assert s.host == "0.0.0.0"  # None flags do not override
    assert s.max_project_bytes == 20 * 1000**3


def test_api_keys_parse_and_default_db(tmp_path):
    s = load_settings(None, data_dir=str(tmp_path), api_keys="a:demo, b:acme,c")
    assert s.parsed_api_keys() == {"a": "demo", "b": "acme", "c": "default"}
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith("pollux.db")
