"""The OpenVINO vision encoder: full INT8 quantisation, checked against fp32, and the variant to run.

`vision_weights = "int8-static"` quantises the encoder's weights *and* activations with NNCF
post-training quantisation, calibrated on real photos (scikit-image's bundled samples, prepared by
the checkpoint's own processor into tiles exactly as requests are). At conversion the candidates
(the fp32 IR at f32 and, where the CPU computes bf16, at bf16; the int8 IR at the same precisions)
run on *held-out* photos and are compared with the fp32/f32 reference feature by feature (cosine
similarity of every feature vector the language model receives); the figures and seconds per tile
go into `vision.json` in the conversion. At load, `choose` takes the fastest candidate within
TOLERANCE whose precision this CPU offers (OPTIMIZATION_CAPABILITIES is probed then); when no int8
candidate is within it, the fp32 encoder runs and the reason says so (`polluxRuntime.vision`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("pollux.engines.ov_vision")

VISION_XML = "openvino_vision_embeddings_model.xml"
INT8_XML = "openvino_vision_embeddings_int8.xml"  # the statically quantised encoder, next to the fp32 one
REPORT = "vision.json"
# Mean and worst per-feature cosine similarity to fp32/f32 on the held-out photos, checked at load
# against the figures measured at conversion. Chosen from SmolVLM2-256M-size measurements (README,
# mediaResolution): int8-static 0.9985 mean, 0.9958 worst; bf16 0.9999.
TOLERANCE = {"mean": 0.99, "min": 0.98}
CALIBRATION_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "camera", "coins")
HELD_OUT_PHOTOS = ("coffee", "chelsea", "stereo_motorcycle", "retina")
CALIBRATION_VERSION = 1  # bump when the calibration data or algorithm changes (part of the cache key)
REFERENCE = "fp32/f32"

Progress = Callable[[str], None]


def cache_spec() -> dict:
    """What, beyond the mode, changes an int8-static conversion (part of the conversion's cache key)."""
    return {"calibration": CALIBRATION_VERSION, "photos": list(CALIBRATION_PHOTOS),
            "held_out": list(HELD_OUT_PHOTOS)}


def photos(names: tuple[str, ...]) -> list:
    """scikit-image's bundled sample photos as RGB PIL images (grey ones as RGB)."""
    import skimage.data
    from PIL import Image

    out = []
    for name in names:
        array = getattr(skimage.data, name)()
        array = array[0] if isinstance(array, tuple) else array  # stereo pairs: the left view
        out.append(Image.fromarray(array).convert("RGB"))
    return out


def encoder_inputs(model: Any, images: list, tile_edge_factor: int = 2) -> list[dict]:
    """The vision IR's inputs for `images`, one tile per item, made by optimum's own preprocessing
    (`get_vision_embeddings`) from the checkpoint processor's tiles (split, `tile_edge_factor` tiles
    on the longest edge: MEDIUM's tiling)."""
    import numpy as np
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model.model_save_dir)
    tile = processor.image_processor.max_image_size["longest_edge"]
    captured: list[dict] = []
    real = model.vision_embeddings

    class Recorder:
        def __call__(self, **inputs: Any) -> Any:
            captured.extend({k: np.asarray(v[i:i + 1]) for k, v in inputs.items()} for i in range(len(inputs["pixel_values"])))
            return real(**inputs)

    model.vision_embeddings = Recorder()
    try:
        for image in images:
            out = processor.image_processor([[image]], do_image_splitting=True,
                                            size={"longest_edge": tile_edge_factor * tile}, return_tensors="pt")
            model.get_vision_embeddings(out["pixel_values"], input_ids=None,
                                        pixel_attention_mask=out["pixel_attention_mask"])
    finally:
        model.vision_embeddings = real
    return captured


def quantize(folder: Path, progress: Progress) -> dict:
    """Write the int8 encoder (INT8_XML) and `vision.json` into the finished conversion `folder`
    (its fp32 encoder at VISION_XML). Returns the report. A quantisation that cannot run (an
    unfamiliar encoder graph, scikit-image missing) leaves the fp32 encoder in use, with the reason,
    rather than failing the whole conversion."""
    try:
        report = _quantize(folder, progress)
    except Exception as e:
        log.warning("int8-static vision encoder for %s failed: %s", folder, e)
        report = {"reference": REFERENCE, "heldOutPhotos": list(HELD_OUT_PHOTOS),
                  "heldOutTiles": 0, "candidates": [],
                  "fallbackReason": f"int8-static quantisation failed ({type(e).__name__}: {e}); the fp32 encoder is used"}
    if report.get("fallbackReason"):
        for path in (folder / INT8_XML, (folder / INT8_XML).with_suffix(".bin")):
            path.unlink(missing_ok=True)
        progress(report["fallbackReason"])
    (folder / REPORT).write_text(json.dumps(report, indent=1))
    return report


def _quantize(folder: Path, progress: Progress) -> dict:
    import nncf
    import openvino as ov
    from optimum.intel import OVModelForVisualCausalLM

    model = OVModelForVisualCausalLM.from_pretrained(str(folder), compile=False)
    started = time.monotonic()
    calibration = encoder_inputs(model, photos(CALIBRATION_PHOTOS))
    held_out = encoder_inputs(model, photos(HELD_OUT_PHOTOS))
    progress(f"quantising the vision encoder to int8 (weights and activations) on {len(calibration)} tiles "
             f"of {len(CALIBRATION_PHOTOS)} photos")
    core = ov.Core()
    fp32 = core.read_model(folder / VISION_XML)
    int8 = nncf.quantize(fp32, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(calibration))
    ov.save_model(int8, folder / INT8_XML, compress_to_fp16=False)
    del model
    report = evaluate(folder, held_out, progress)
    report["calibrationTiles"], report["seconds"] = len(calibration), round(time.monotonic() - started, 1)
    return report


def precisions(core: Any | None = None) -> list[str]:
    """The inference precisions this CPU computes natively: f32, and bf16 where it is offered."""
    import openvino as ov

    caps = (core or ov.Core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ["f32"] + (["bf16"] if "BF16" in caps else [])


def evaluate(folder: Path, held_out: list[dict], progress: Progress, rounds: int = 2) -> dict:
    """Every candidate (IR × precision this CPU offers) on the held-out tiles: cosine to fp32/f32
    per feature vector, and seconds per tile (the best of `rounds` interleaved passes)."""
    import numpy as np
    import openvino as ov

    core = ov.Core()
    candidates = [(weights, precision) for weights in ("fp32", "int8-static") for precision in precisions(core)]
    compiled = {c: core.compile_model(folder / (VISION_XML if c[0] == "fp32" else INT8_XML), "CPU",
                                      {"INFERENCE_PRECISION_HINT": c[1], "PERFORMANCE_HINT": "LATENCY"})
                for c in candidates}
    outputs: dict[tuple[str, str], list] = {c: [] for c in candidates}
    times: dict[tuple[str, str], list[float]] = {c: [] for c in candidates}
    for r in range(rounds):
        for c in candidates if r % 2 == 0 else list(reversed(candidates)):
            began = time.perf_counter()
            result = [np.array(compiled[c](item)[0], dtype=np.float32) for item in held_out]
            times[c].append((time.perf_counter() - began) / len(held_out))
            outputs[c] = result
    reference = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outputs[("fp32", "f32")]])
    report: dict[str, Any] = {"reference": REFERENCE, "heldOutPhotos": list(HELD_OUT_PHOTOS),
                              "heldOutTiles": len(held_out), "candidates": []}
    for c in candidates:
        features = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outputs[c]])
        cos = cosine(reference, features)
        figures = {"mean": float(cos.mean()), "min": float(cos.min())}
        report["candidates"].append({"weights": c[0], "precision": c[1], "cosine": figures,
                                     "secondsPerTile": min(times[c])})
        progress(f"  vision {c[0]}/{c[1]}: cosine to {REFERENCE} mean {figures['mean']:.4f} "
                 f"min {figures['min']:.4f}, {min(times[c]):.3f} s/tile")
    return report


def cosine(a: Any, b: Any) -> Any:
    """Cosine similarity of corresponding rows."""
    import numpy as np

    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def within(cos: dict, tolerance: dict | None = None) -> bool:
    tolerance = tolerance or TOLERANCE
    return cos["mean"] >= tolerance["mean"] and cos["min"] >= tolerance["min"]


def choose(folder: Path, wanted: str, precision_allowed: list[str], force: tuple[str, str] | None = None) -> dict:
    """The encoder to run from conversion `folder`: {weights, precision, xml, ...} and why.

    Without a report (fp32/fp16/int8 weight-only modes) the exported encoder runs at OpenVINO's
    default precision. With one, the fastest measured candidate within tolerance whose precision
    this CPU offers (`precision_allowed`, probed at load). `force` (weights, precision): that
    candidate whatever its figures (benchmarks)."""
    path = folder / REPORT
    if not path.is_file():
        return {"weights": wanted, "precision": "default", "xml": VISION_XML}
    report = json.loads(path.read_text())
    measured = [c for c in report["candidates"] if c["precision"] in precision_allowed]
    usable = [c for c in measured if within(c["cosine"])]
    if force is not None:
        usable = [c for c in report["candidates"] if (c["weights"], c["precision"]) == force]
    if not usable:  # a CPU without the precisions measured at conversion: the reference runs
        usable = [{"weights": "fp32", "precision": "f32", "secondsPerTile": 0.0}]
    best = min(usable, key=lambda c: c["secondsPerTile"])
    name = lambda c: f"{c['weights']}/{c['precision']}"  # noqa: E731
    out = {"weights": best["weights"], "precision": best["precision"],
           "xml": INT8_XML if best["weights"] == "int8-static" else VISION_XML, "wanted": wanted,
           "tolerance": TOLERANCE, "cosine": {name(c): c["cosine"] for c in report["candidates"]},
           "secondsPerTile": {name(c): round(c["secondsPerTile"], 4) for c in report["candidates"]}}
    int8 = [c for c in measured if c["weights"] == "int8-static"]
    if report.get("fallbackReason"):
        out["fallbackReason"] = report["fallbackReason"]
    elif wanted == "int8-static" and int8 and not any(within(c["cosine"]) for c in int8):
        closest = max(int8, key=lambda c: c["cosine"]["mean"])["cosine"]
        out["fallbackReason"] = (f"int8-static features are not within tolerance of fp32 on held-out photos "
                                 f"(cosine mean {closest['mean']:.4f}, min {closest['min']:.4f}; needed "
                                 f"{TOLERANCE['mean']}, {TOLERANCE['min']}): the fp32 encoder is used")
    elif best["weights"] != wanted:
        out["reason"] = f"{name(best)} measured faster than {wanted} at conversion, within tolerance"
    return out


def apply(model: Any, folder: Path, wanted: str, reference: bool = False) -> dict:
    """Set up `model`'s (an uncompiled OVModelForVisualCausalLM) vision encoder as `choose` decides;
    returns what runs, for `polluxRuntime.vision`. `reference` (fp32 everywhere) keeps fp32/f32."""
    if reference:
        return {"weights": "fp32", "precision": "f32", "xml": VISION_XML}
    chosen = choose(folder, wanted, precisions())
    part = model.vision_embeddings
    if chosen["xml"] != VISION_XML:
        import openvino as ov

        part.model = ov.Core().read_model(folder / chosen["xml"])
    if chosen["precision"] != "default":
        part.ov_config = {**part.ov_config, "INFERENCE_PRECISION_HINT": chosen["precision"]}
    return chosen
