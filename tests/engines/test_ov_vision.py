"""The statically quantised vision encoder and the CPU default tiling (issue 14, image TTFT), on the tiny
random-weight SmolVLM2 converted offline for real: int8-static is calibrated on real photos, checked
against fp32 on held-out real photos, used only within tolerance (else fp32, with the reason in
`polluxRuntime.vision`); an unspecified mediaResolution gets the catalog entry's default tiling."""

from __future__ import annotations

import functools
import json

import pytest

pytest.importorskip("openvino")
pytest.importorskip("optimum.intel")
pytest.importorskip("nncf")
pytest.importorskip("skimage")

from pollux.catalog import DEFAULT_ENTRIES, DEFAULT_MODEL  # noqa: E402
from pollux.engines import ov_vision, resolution  # noqa: E402
from pollux.prompt_types import Image, Prompt, Text, Turn  # noqa: E402
from tests.engines.test_openvino import _entry, ov_settings, run  # noqa: E402,F401

DEFAULT_OPTIONS = dict(next(e for e in DEFAULT_ENTRIES if e.id == DEFAULT_MODEL).options)


def catalog_entry(source, model_id: str = "tiny-default", **override):
    """The default catalog entry's options (weights, vision encoder, default tiling) on the tiny checkpoint."""
    options = {**DEFAULT_OPTIONS, **override}
    return _entry(source, options.pop("weights"), model_id=model_id, **options)


@pytest.fixture(scope="module")
def ov_default(tiny_smolvlm, ov_settings):  # noqa: F811
    from pollux.engines.openvino import OpenVINOEngine

    engine = OpenVINOEngine(catalog_entry(tiny_smolvlm), ov_settings)
    engine.load()
    assert engine.runtime.name == "openvino", engine.fallback_reason
    return engine


def photo_prompt(photo, level=None, key="p"):
    return Prompt([Turn("user", [Image(photo, photo.size, source="inline[0]", cache_key=f"{key}:{level}",
                                       resolution=level), Text("What is this?")])])


def real_photo(name="coffee", size=(768, 768)):
    return ov_vision.photos((name,))[0].resize(size)


# ---------------------------------------------------------------------------------- the quantised encoder

def test_default_entry_asks_for_the_quantised_encoder():
    assert DEFAULT_OPTIONS["vision_weights"] == "int8-static"
    assert DEFAULT_OPTIONS["default_image_tiles"] in (1, 2, 3, 4)


def test_int8_static_is_calibrated_and_checked_on_held_out_real_photos(ov_default):
    import openvino as ov

    assert not set(ov_vision.HELD_OUT_PHOTOS) & set(ov_vision.CALIBRATION_PHOTOS)
    report = json.loads((ov_default.converted / ov_vision.REPORT).read_text())
    assert report["heldOutPhotos"] == list(ov_vision.HELD_OUT_PHOTOS)
    assert report["heldOutTiles"] > len(ov_vision.HELD_OUT_PHOTOS)  # split into tiles, as requests are
    assert report["calibrationTiles"] > len(ov_vision.CALIBRATION_PHOTOS)
    found = {(c["weights"], c["precision"]): c for c in report["candidates"]}
    assert found[("fp32", "f32")]["cosine"]["mean"] > 0.99999  # the reference against itself
    int8 = [c for c in report["candidates"] if c["weights"] == "int8-static"]
    assert int8 and all(c["cosine"]["mean"] < 1 - 1e-6 for c in int8)  # measured, and changed by quantisation
    assert {c["precision"] for c in int8} == set(ov_vision.precisions())
    ops = {op.get_type_name() for op in ov.Core().read_model(ov_default.converted / ov_vision.INT8_XML).get_ops()}
    assert "FakeQuantize" in ops  # activations quantised too, not weights only


def test_the_fastest_candidate_within_tolerance_runs_and_is_reported(ov_default, photos):
    info = ov_default.info()["vision"]
    report = json.loads((ov_default.converted / ov_vision.REPORT).read_text())
    usable = [c for c in report["candidates"]
              if ov_vision.within(c["cosine"]) and c["precision"] in ov_vision.precisions()]
    fastest = min(usable, key=lambda c: c["secondsPerTile"])
    assert (info["weights"], info["precision"]) == (fastest["weights"], fastest["precision"])
    assert info["wanted"] == "int8-static" and info["tolerance"] == ov_vision.TOLERANCE
    assert set(info["cosine"]) == {f"{c['weights']}/{c['precision']}" for c in report["candidates"]}
    assert info["precision"] == ov_default.model.vision_embeddings.request.get_property("INFERENCE_PRECISION_HINT").to_string()
    before = ov_default.stats["vision_tiles"]
    assert run(ov_default, photo_prompt(real_photo(), key="run"), max_output_tokens=3)[-1].finish_reason
    assert ov_default.stats["vision_tiles"] > before


def test_int8_encoder_through_the_engine_stays_close_to_fp32(ov_default, tiny_smolvlm, ov_settings,  # noqa: F811
                                                             monkeypatch):
    """The int8 IR run by the engine itself, on a real held-out photo, against the fp32 IR at f32."""
    import numpy as np

    from pollux.engines.openvino import OpenVINOEngine

    features = {}
    original = ov_vision.choose
    for candidate in (("int8-static", "f32"), ("fp32", "f32")):
        monkeypatch.setattr(ov_vision, "choose", functools.partial(original, force=candidate))
        engine = OpenVINOEngine(catalog_entry(tiny_smolvlm), ov_settings)  # the same conversion, loaded again
        engine.load()
        assert (engine.info()["vision"]["weights"], engine.info()["vision"]["precision"]) == candidate
        assert fake_quantized(engine) == (candidate[0] == "int8-static")
        found = engine.runtime.image_features(Image(real_photo("chelsea"), (768, 768), cache_key=None))
        features[candidate[0]] = found.array.reshape(-1, found.array.shape[-1])
        engine.unload()
    cos = ov_vision.cosine(features["fp32"], features["int8-static"])
    assert ov_vision.within({"mean": float(cos.mean()), "min": float(cos.min())})
    assert not np.array_equal(features["fp32"], features["int8-static"])


def fake_quantized(engine) -> bool:
    return any(op.get_type_name() == "FakeQuantize" for op in engine.model.vision_embeddings.model.get_ops())


def test_outside_tolerance_keeps_fp32_and_says_why(ov_default, tiny_smolvlm, ov_settings, monkeypatch):  # noqa: F811
    from pollux.engines.openvino import OpenVINOEngine

    monkeypatch.setattr(ov_vision, "TOLERANCE", {"mean": 1.5, "min": 1.5})  # nothing can meet it
    engine = OpenVINOEngine(catalog_entry(tiny_smolvlm), ov_settings)  # checked at load: no new conversion
    engine.load()
    assert engine.converted == ov_default.converted
    info = engine.info()
    assert info["runtime"] == "openvino" and "fallbackReason" not in info  # the runtime is fine; the encoder is not
    vision = info["vision"]
    assert (vision["weights"], vision["precision"]) == ("fp32", "f32") and not fake_quantized(engine)
    assert "not within tolerance" in vision["fallbackReason"] and "fp32 encoder is used" in vision["fallbackReason"]
    assert vision["tolerance"] == {"mean": 1.5, "min": 1.5}
    assert vision["cosine"]["int8-static/f32"]["mean"] < 1.5  # measured, then refused
    assert engine.model.vision_embeddings.request.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    assert run(engine, photo_prompt(real_photo(), key="fallback"), max_output_tokens=2)[-1].finish_reason
    engine.unload()


def test_a_quantisation_that_cannot_run_keeps_fp32(ov_default, tmp_path, monkeypatch):
    import shutil

    import nncf

    folder = tmp_path / "conversion"
    shutil.copytree(ov_default.converted, folder)
    monkeypatch.setattr(nncf, "quantize", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("unsupported graph")))
    report = ov_vision.quantize(folder, progress=lambda message: None)
    assert "unsupported graph" in report["fallbackReason"] and not (folder / ov_vision.INT8_XML).exists()
    chosen = ov_vision.choose(folder, "int8-static", ov_vision.precisions())
    assert (chosen["weights"], chosen["xml"]) == ("fp32", ov_vision.VISION_XML) and chosen["fallbackReason"]


def test_vision_weights_modes_are_validated(tiny_smolvlm):
    from pollux.engines import options

    assert options.validate(catalog_entry(tiny_smolvlm)).vision_weights == "int8-static"
    with pytest.raises(ValueError, match="vision_weights"):
        options.validate(catalog_entry(tiny_smolvlm, vision_weights="int4-static"))


# ---------------------------------------------------------------------------------- the default tiling

def grid(engine, photo, edge_tiles):
    ip = engine.format.processor.image_processor
    tile = ip.max_image_size["longest_edge"]
    _, rows, cols = ip.get_number_of_image_patches(photo.size[1], photo.size[0],
                                                   {"do_image_splitting": True, "size": {"longest_edge": edge_tiles * tile}})
    return rows * cols + (1 if rows * cols > 1 else 0)


def tiles_encoded(engine, prompt) -> int:
    engine.features.clear()
    engine.prefix.clear()
    before = engine.stats["vision_tiles"]
    engine.prepare_prompt(prompt)
    return engine.stats["vision_tiles"] - before


def test_unspecified_resolution_gets_the_default_tiling_and_levels_still_override(ov_default):
    photo = real_photo("astronaut")
    default = DEFAULT_OPTIONS["default_image_tiles"]
    unspecified = photo_prompt(photo, None, key="tiling")
    assert tiles_encoded(ov_default, unspecified) == grid(ov_default, photo, default)
    assert ov_default.prepare_prompt(unspecified).length == ov_default.count_tokens(unspecified)  # countTokens agrees
    levels = {}
    for level in resolution.LEVELS:
        prompt = photo_prompt(photo, f"MEDIA_RESOLUTION_{level}", key="tiling")
        row = resolution.TABLE["smolvlm"][level]
        expected = grid(ov_default, photo, row["tiles"]) if row["split"] else 1
        assert tiles_encoded(ov_default, prompt) == expected, level
        levels[level] = ov_default.count_tokens(prompt)
        assert ov_default.prepare_prompt(prompt).length == levels[level]
    assert levels["LOW"] < levels["MEDIUM"] < levels["HIGH"]
    matching = [lv for lv in resolution.LEVELS if resolution.TABLE["smolvlm"][lv]["tiles"] == default]
    if matching and resolution.TABLE["smolvlm"][matching[0]]["split"]:
        assert ov_default.count_tokens(unspecified) == levels[matching[0]]
    # the processor's own default (the checkpoint's 2048-px edge) is no longer what an unspecified image gets
    native = ov_default.format.processor.image_processor.size["longest_edge"]
    assert default * ov_default.format.processor.image_processor.max_image_size["longest_edge"] <= native


def test_api_reports_the_encoder_and_counts_the_default_tiling(make_client, tmp_path, tiny_smolvlm, ov_settings,  # noqa: F811
                                                               ov_default):
    import base64
    import io

    from tests.conftest import H

    entry = ov_default.entry  # same id and options: the conversion cached by the fixture is reused
    table = {"id": entry.id, "display_name": "tiny", "description": "tiny", "engine": "openvino",
             "source": str(tiny_smolvlm), "family": "smolvlm", "input_token_limit": 4096, "output_token_limit": 64}
    options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry.options.items())
    catalog = tmp_path / "catalog.toml"  # TOML strings and numbers are written as JSON writes them
    catalog.write_text("[[models]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
                       + f"options = {{ {options} }}\n")
    client = make_client(emulator=False, catalog_file=catalog, models_dir=ov_settings.resolved_models_dir,
                         default_model=entry.id)
    buf = io.BytesIO()
    photo = real_photo("astronaut")
    photo.save(buf, format="PNG")
    part = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(buf.getvalue()).decode()}}

    def native(config):
        body = {"contents": [{"role": "user", "parts": [part, {"text": "What is this?"}]}], "generationConfig": config}
        r = client.post(f"/v1beta/models/{entry.id}:countTokens", headers=H, json=body)
        assert r.status_code == 200, r.text
        return int(r.headers["x-pollux-native-prompt-tokens"])

    assert native({}) == ov_default.count_tokens(photo_prompt(photo))
    assert native({"mediaResolution": "MEDIA_RESOLUTION_LOW"}) < native({})
    assert native({"mediaResolution": "MEDIA_RESOLUTION_HIGH"}) > native({})
    vision = client.get(f"/v1beta/models/{entry.id}", headers=H).json()["polluxRuntime"]["vision"]
    assert vision == json.loads(json.dumps(ov_default.info()["vision"]))
