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


@pytest.mark.parametrize("name,tier,profile", [
    ("gemini-3.5-flash", "flash", "gemini-3"), ("gemini-3.6-flash", "flash", "gemini-3"),
    ("gemini-3.7-flash", "flash", "gemini-3"), ("gemini-3-flash-preview", "flash", "gemini-3"),
    ("gemini-3-pro-preview", "pro", "gemini-3"), ("gemini-3.1-flash-lite", "flash-lite", "gemini-3"),
    ("gemini-flash-lite-latest", "flash-lite", "gemini-3"), ("gemini-flash-latest", "flash", "gemini-3"),
    ("gemini-pro-latest", "pro", "gemini-3"), ("gemini-2.5-flash-preview-09-2025", "flash", "gemini-2"),
    ("gemini-2.5-flash-preview-05-20", "flash", "gemini-2"), ("gemini-2.5-pro-exp-03-25", "pro", "gemini-2"),
    ("gemini-2.0-flash-thinking-exp-01-21", "flash", "gemini-2"), ("gemini-2.0-flash-001", "flash", "gemini-2"),
    ("gemini-1.5-flash-8b-001", "flash-lite", "gemini-1.5"), ("gemini-1.5-pro-latest", "pro", "gemini-1.5"),
    ("gemini-pro-vision", "pro", "gemini-1.5"), ("gemma-3-27b-it", "gemma", "gemini-2"),
    ("learnlm-2.0-flash-experimental", "flash", "gemini-2"),
])
def test_gemini_names_resolve_by_rule(name, tier, profile):
    r = Catalog().resolve(f"models/{name}")
    assert (r.requested, r.tier, r.token_profile) == (name, tier, profile)
    assert r.entry.id == "smolvlm2-256m"


def test_tiers_map_to_entries_from_the_catalog_file(tmp_path):
    f = tmp_path / "catalog.toml"
    f.write_text('[gemini_tiers]\nflash-lite = "smolvlm2-256m"\nflash = "smolvlm2-500m"\npro = "qwen2.5-vl-3b"\n')
    c = Catalog.from_file(f)
    assert c.resolve("gemini-3-pro-preview").entry.id == "qwen2.5-vl-3b"
    assert c.resolve("gemini-3.5-flash").entry.id == "smolvlm2-500m"
    assert c.resolve("gemini-flash-lite-latest").entry.id == "smolvlm2-256m"
    assert c.resolve("gemma-3-4b-it").entry.id == "smolvlm2-500m"  # gemma follows flash unless mapped
    f.write_text('[gemini_tiers]\npro = "no-such-model"\n')
    with pytest.raises(ValueError, match="gemini_tiers"):
        Catalog.from_file(f)


@pytest.mark.parametrize("name,what", [
    ("gemini-embedding-001", "embedding"), ("text-embedding-004", "embedding"),
    ("imagen-4.0-generate-001", "image generation"), ("gemini-2.5-flash-image-preview", "image generation"),
    ("gemini-2.5-flash-preview-tts", "text-to-speech"), ("gemini-2.0-flash-live-001", "Live"),
    ("gemini-2.5-flash-native-audio-preview-09-2025", "Live"), ("veo-3.0-generate-preview", "video generation"),
])
def test_models_of_other_jobs_are_refused_clearly(name, what):
    with pytest.raises(NotFound, match=f"{what}.*Pollux does not serve that kind of model"):
        Catalog().resolve(name)
    with pytest.raises(NotFound) as strict:
        Catalog().resolve(name, strict=True)
    assert strict.value.message.startswith(f"models/{name} is not found for API version v1beta")


def test_not_found_names_the_model_as_asked_and_the_api_version():
    with pytest.raises(NotFound) as e:
        Catalog().resolve("models/gpt-4o-preview", api_version="v1alpha", method="countTokens")
    assert e.value.message.startswith("models/gpt-4o-preview is not found for API version v1alpha, or is not "
                                      "supported for countTokens. Call ListModels")
    assert "Pollux resolves" in e.value.message
    with pytest.raises(NotFound) as strict:
        Catalog().resolve("gpt-4o-preview", api_version="v1", strict=True)
    assert strict.value.message == ("models/gpt-4o-preview is not found for API version v1, or is not supported for "
                                    "generateContent. Call ListModels to see the list of available models and their "
                                    "supported methods.")


def test_strict_names_take_only_documented_forms():
    c = Catalog()
    assert c.resolve("gemini-2.5-flash-preview-computer", strict=False).tier == "flash"  # loose: a tier is named
    with pytest.raises(NotFound):
        c.resolve("gemini-2.5-flash-preview-computer", strict=True)


def test_listed_names_all_resolve():
    c = Catalog()
    names = c.names()
    assert "gemini-3.5-flash" in names and "gemini-2.0-flash" in names and "smolvlm2-256m" in names
    assert len(names) == len(set(names))
    for n in names:
        assert c.resolve(n).requested == n


@pytest.mark.parametrize("name,budget,level,error", [
    ("gemini-2.5-pro", 0, None, "Budget 0 is invalid. This model only works in thinking mode."),
    ("gemini-2.5-pro", 64, None, "between 128 and 32768"),
    ("gemini-2.5-flash", 30000, None, "between 1 and 24576"),
    ("gemini-2.5-flash-lite", 100, None, "between 512 and 24576"),
    ("gemini-2.5-flash", None, "LOW", "Thinking level is not supported"),
    ("gemini-2.0-flash", 1024, None, "Thinking is not supported"),
    ("gemini-3-pro-preview", 1024, "HIGH", "only one of thinking budget and thinking level"),
    ("gemini-3-pro-preview", None, "MINIMAL", "Thinking level MINIMAL is not supported"),
])
def test_thinking_the_named_model_rejects(name, budget, level, error):
    from pollux.catalog import check_thinking
    from pollux.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=error):
        check_thinking(Catalog().resolve(name), budget, level)


@pytest.mark.parametrize("name,budget,level", [
    ("gemini-2.5-pro", -1, None), ("gemini-2.5-pro", 128, None), ("gemini-2.5-flash", 0, None),
    ("gemini-2.5-flash-lite", 0, None), ("gemini-3-flash-preview", None, "MINIMAL"), ("gemini-3.5-flash", 0, None),
    ("gemini-2.0-flash", 0, None), ("smolvlm2-256m", 5, "LOW"),
])
def test_thinking_the_named_model_takes(name, budget, level):
    from pollux.catalog import check_thinking

    check_thinking(Catalog().resolve(name), budget, level)
