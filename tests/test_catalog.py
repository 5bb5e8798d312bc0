import pytest

from pollux.catalog import Catalog
from pollux.errors import NotFound


def test_aliases_and_profiles():
    c = Catalog()
    assert c.resolve("models/gemini-1.5-flash").token_profile == "gemini-1.5"
    assert c.resolve("gemini-2.5-flash").token_profile == "gemini-2"
    assert c.resolve("gemini-2.0-flash-001").entry.id == "smolvlm2-256m"
    assert c.resolve("qwen2.5-vl-3b").entry.family == "qwen2_5_vl"
    with pytest.raises(NotFound):
        c.resolve("models/nope")


def test_catalog_file_adds_and_overrides(tmp_path):
    f = tmp_path / "catalog.toml"
    f.write_text('[[models]]\nid = "mine"\ndisplay_name = "Mine"\ndescription = "local"\nengine = "transformers"\n'
                 'source = "/models/mine"\nfamily = "smolvlm"\naliases = ["gemini-2.0-flash"]\n\n'
                 '[[models]]\nid = "qwen2.5-vl-3b"\ninput_token_limit = 4096\n')
    c = Catalog.from_file(f)
    assert c.resolve("mine").entry.source == "/models/mine"
    assert c.resolve("qwen2.5-vl-3b").entry.input_token_limit == 4096
    assert "mine" in c.names()


def test_catalog_file_can_remap_gemini_aliases(tmp_path):
    f = tmp_path / "catalog.toml"
    f.write_text('[[models]]\nid = "qwen2.5-vl-3b"\naliases = ["gemini-2.0-flash"]\n')
    c = Catalog.from_file(f)
    assert c.resolve("gemini-2.0-flash").entry.id == "qwen2.5-vl-3b"
    assert c.resolve("gemini-1.5-flash").entry.id == "smolvlm2-256m"
