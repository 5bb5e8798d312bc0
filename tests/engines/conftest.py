"""Engine fixtures: tiny random-weight checkpoints built once per session, and media prepared by hand."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_smolvlm(models_root) -> Path:
    from tests.fixtures.tiny_models import build_smolvlm

    return build_smolvlm(models_root / "smolvlm")


@pytest.fixture(scope="session")
def tiny_qwen(models_root) -> Path:
    from tests.fixtures.tiny_models import build_qwen2_5_vl

    return build_qwen2_5_vl(models_root / "qwen2_5_vl")


@pytest.fixture(scope="session")
def tiny_owlv2(models_root) -> Path:
    from tests.fixtures.tiny_models import build_owlv2

    return build_owlv2(models_root / "owlv2")


@pytest.fixture(scope="session")
def engine_settings(tmp_path_factory):
    from pollux.settings import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("data"))


def _entry(model_id: str, family: str, source: Path, **options):
    from pollux.catalog import ModelEntry

    return ModelEntry(id=model_id, display_name=model_id, description="tiny test model", engine="transformers",
                      source=str(source), family=family, input_token_limit=4096, output_token_limit=256,
                      options=options)


@pytest.fixture(scope="session")
def smol_engine(tiny_smolvlm, tiny_owlv2, engine_settings):
    from pollux.engines.transformers import TransformersEngine

    engine = TransformersEngine(_entry("tiny-smolvlm", "smolvlm", tiny_smolvlm, grounding=str(tiny_owlv2)),
                                engine_settings)
    engine.load()
    return engine


@pytest.fixture(scope="session")
def qwen_engine(tiny_qwen, tiny_owlv2, engine_settings):
    from pollux.engines.transformers import TransformersEngine

    engine = TransformersEngine(_entry("tiny-qwen", "qwen2_5_vl", tiny_qwen, grounding=str(tiny_owlv2)),
                                engine_settings)
    engine.load()
    return engine


@pytest.fixture(scope="session")
def photos():
    """Real photos (scikit-image), non-square."""
    import skimage.data
    from PIL import Image

    return {
        "astronaut": Image.fromarray(skimage.data.astronaut()).resize((320, 240)),
        "coffee": Image.fromarray(skimage.data.coffee()).resize((300, 200)),
        "chelsea": Image.fromarray(skimage.data.chelsea()).resize((180, 240)),
    }
