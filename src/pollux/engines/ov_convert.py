"""Convert a transformers checkpoint to OpenVINO IR once, and cache it.

The cache key covers the source (its revision and a fingerprint of its files), the weight setting
and the converter versions, so a new revision or setting converts again and nothing stale is used.
A conversion is written into a temporary folder next to its final place and renamed only when
complete (with a marker file inside), so an interrupted one is never loaded; its leftovers are
removed by the next attempt. A file lock keeps two processes from converting the same thing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from pollux.errors import InvalidArgument

if TYPE_CHECKING:
    from pollux.catalog import ModelEntry
    from pollux.settings import Settings

log = logging.getLogger("pollux.engines.ov_convert")

SUPPORTED_FAMILIES = {"smolvlm"}  # families the OpenVINO engine converts and runs (others: transformers)
WEIGHT_MODES = ("int8", "int4", "fp16", "fp32")
DEFAULT_WEIGHTS = "int8"
DEFAULT_INT4_GROUP = 64  # 128 (nncf's default) does not divide SmolLM2-135M's 576-wide layers
VISION_MODES = ("fp32", "fp16", "int8", "int8-static")
# The vision encoder is compute-bound: int8 and fp16 *weights* alone are decompressed on the fly and
# run it no faster than fp32 (AVX2), so `weights` applies to the language model and this is separate.
# "int8-static" quantises weights and activations (ov_vision: calibrated on real photos, kept only
# within a measured tolerance of fp32, chosen at load against fp32/bf16 by measured speed).
DEFAULT_VISION_WEIGHTS = "fp32"
MARKER = "pollux-openvino.json"  # written last: a folder without it is not a finished conversion
FORMAT_VERSION = 1  # bump when the layout of a conversion changes
TASK = "image-text-to-text"

Progress = Callable[[str], None]


def weights_mode(entry: "ModelEntry") -> str:
    return _weights_option(entry, "weights", DEFAULT_WEIGHTS, WEIGHT_MODES)


def vision_weights(entry: "ModelEntry") -> str:
    return _weights_option(entry, "vision_weights", DEFAULT_VISION_WEIGHTS, VISION_MODES)


def _weights_option(entry: "ModelEntry", name: str, default: str, allowed: tuple[str, ...]) -> str:
    mode = str(entry.options.get(name, default)).lower()
    if mode not in allowed:
        raise InvalidArgument(f"Model {entry.id}: options.{name} must be one of {', '.join(allowed)}; got {mode!r}.")
    return mode


def quantization_settings(entry: "ModelEntry", mode: str) -> dict:
    """What, beyond the mode, changes the converted language-model weights (part of the cache key)."""
    from pollux.engines.options import LocalOptions, validate

    options = validate(entry, LocalOptions)
    if mode == "int4":
        return {"bits": 4, "sym": options.sym, "group_size": options.group_size}
    if mode == "int8":
        return {"bits": 8, "sym": options.sym}
    return {}


def package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


def source_fingerprint(source: Path) -> dict:
    """Identity of a checkpoint folder: its config, and its weight files' names, sizes and times."""
    files = sorted(p for p in source.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    config = (source / "config.json").read_bytes() if (source / "config.json").is_file() else b""
    return {"folder": source.resolve().name, "config": hashlib.sha256(config).hexdigest(),
            "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def cache_key(entry: "ModelEntry", source: Path, mode: str) -> str:
    spec = {"format": FORMAT_VERSION, "source": entry.source, "revision": entry.revision,
            "files": source_fingerprint(source), "mode": mode, "quantization": quantization_settings(entry, mode),
            "vision": _vision_spec(vision_weights(entry)) if mode != "fp32" else "fp32",
            "versions": {p: package_version(p) for p in ("optimum-intel", "openvino", "nncf", "transformers")}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _vision_spec(vision: str) -> str | dict:
    if vision != "int8-static":
        return vision
    from pollux.engines import ov_vision

    return {"mode": vision, **ov_vision.cache_spec()}


def cache_root(entry: "ModelEntry", settings: "Settings") -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in entry.id)
    return Path(settings.resolved_models_dir) / "openvino" / safe


def converted_dir(entry: "ModelEntry", settings: "Settings", source: Path, mode: str | None = None) -> Path:
    mode = mode or weights_mode(entry)
    return cache_root(entry, settings) / f"{mode}-{cache_key(entry, source, mode)}"


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def ensure_converted(entry: "ModelEntry", settings: "Settings", source: Path, mode: str | None = None,
                     progress: Progress | None = None) -> Path:
    """The finished conversion of `source` for `entry`'s weight setting, converting it first if needed."""
    mode = mode or weights_mode(entry)
    final = converted_dir(entry, settings, source, mode)
    if is_complete(final):
        return final
    say = progress or (lambda message: log.info("%s", message))
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.parent / f".{final.name}.lock"):
        if is_complete(final):  # another process finished it while we waited
            return final
        for stale in final.parent.glob(f".tmp-{final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # an interrupted conversion: never trusted
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)  # no marker: incomplete
        tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        try:
            tmp.mkdir()
            base = _complete_fp32(entry, settings, source) if mode != "fp32" else None
            convert(source, tmp, mode, quantization_settings(entry, mode), say, base=base,
                    vision=vision_weights(entry))
            (tmp / MARKER).write_text(json.dumps({"model": entry.id, "source": entry.source, "mode": mode,
                                                   "revision": entry.revision, "seconds": time.monotonic() - started}))
            os.replace(tmp, final)  # atomic: the folder appears complete or not at all
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    say(f"{entry.id}: OpenVINO {mode} conversion ready in {final} ({time.monotonic() - started:.0f} s)")
    _prune(final)
    return final


def pull(entry: "ModelEntry", settings: "Settings", progress: bool = True) -> Path:
    """`pollux pull` for any model: download the weights, then, for the OpenVINO engine, convert them
    (cached) so the first request does not. Returns the folder the model will be loaded from."""
    from pollux.engines import weights

    folder = weights.pull(entry, settings, progress=progress)
    if entry.engine != "openvino" or entry.family not in SUPPORTED_FAMILIES:
        return folder
    say = print if progress else (lambda message: log.info("%s", message))
    try:
        import optimum.intel  # noqa: F401
    except ImportError:
        say(f"{entry.id}: optimum-intel is not installed; it will run with the transformers engine")
        return folder
    return ensure_converted(entry, settings, folder, progress=say)


def _complete_fp32(entry: "ModelEntry", settings: "Settings", source: Path) -> Path | None:
    """A cached fp32 conversion of the same source, to quantize from instead of exporting again."""
    folder = converted_dir(entry, settings, source, "fp32")
    return folder if is_complete(folder) else None


def _prune(final: Path) -> None:
    """Remove older conversions of the same model and mode (a previous revision or setting)."""
    mode = final.name.split("-", 1)[0]
    for other in final.parent.glob(f"{mode}-*"):
        if other != final and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename still protects readers
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def convert(source: Path, out: Path, mode: str, quantization: dict, progress: Progress,
            base: Path | None = None, vision: str = DEFAULT_VISION_WEIGHTS) -> None:
    """Export `source` with optimum-intel into `out`, then compress the language model's weights (fp16,
    int8, int4) and the vision encoder's (`vision`). With `base` (a finished fp32 conversion of the
    same source) the export is skipped. fp32 is the plain export (the reference)."""
    from optimum.exporters.openvino import main_export
    from optimum.intel.openvino.configuration import OVConfig

    out.mkdir(parents=True, exist_ok=True)
    if mode == "fp32":
        progress(f"converting {source.name} to OpenVINO IR (fp32) [1/1]")
        main_export(str(source), out, task=TASK, ov_config=OVConfig(dtype="fp32"), local_files_only=True)
        return
    steps = 1 if base is not None else 2
    export_dir = base
    if export_dir is None:
        export_dir = out / "_fp32"
        progress(f"converting {source.name} to OpenVINO IR (fp32) [1/{steps}]")
        main_export(str(source), export_dir, task=TASK, ov_config=OVConfig(dtype="fp32"), local_files_only=True)
    detail = f" {quantization}" if quantization else ""
    progress(f"compressing weights: language model {mode}{detail}, vision encoder {vision} [{steps}/{steps}]")
    if mode == "fp16":
        _to_fp16(export_dir, out, skip=() if vision == "fp16" else (VISION_XML,))
    else:
        _compress(export_dir, out, quantization, vision_int8=vision == "int8")
        if vision == "fp16":
            _to_fp16(export_dir, out, only=(VISION_XML,))
    for xml in (export_dir / name for name in IR_FILES):  # parts left as exported
        if not (out / xml.name).exists():
            shutil.copy2(xml, out / xml.name)
            shutil.copy2(xml.with_suffix(".bin"), out / xml.with_suffix(".bin").name)
    _copy_side_files(export_dir, out)
    if vision == "int8-static":
        from pollux.engines import ov_vision

        ov_vision.quantize(out, progress)
    if export_dir != base:
        shutil.rmtree(export_dir, ignore_errors=True)


VISION_XML = "openvino_vision_embeddings_model.xml"
IR_FILES = ("openvino_language_model.xml", "openvino_text_embeddings_model.xml", VISION_XML)


def _to_fp16(ir_dir: Path, out: Path, skip: tuple = (), only: tuple | None = None) -> None:
    import openvino as ov

    core = ov.Core()
    for xml in ir_dir.glob("openvino_*.xml"):
        if xml.name in skip or (only is not None and xml.name not in only):
            continue
        ov.save_model(core.read_model(xml), out / xml.name, compress_to_fp16=True)


def _copy_side_files(ir_dir: Path, out: Path) -> None:
    """Config, processor, tokenizer and template files travel with the IR."""
    for name in os.listdir(ir_dir):
        src = ir_dir / name
        if src.is_file() and not (out / name).exists() and not name.startswith("openvino_") and name != MARKER:
            shutil.copy2(src, out / name)


def _compress(ir_dir: Path, out: Path, quantization: dict, vision_int8: bool) -> None:
    """Weight-only compression with NNCF through optimum-intel: the language model gets `quantization`,
    the token embeddings int8; parts without a config are left as exported."""
    from optimum.intel import OVModelForVisualCausalLM, OVPipelineQuantizationConfig, OVWeightQuantizationConfig

    configs = {"lm_model": OVWeightQuantizationConfig(**quantization),
               "text_embeddings_model": OVWeightQuantizationConfig(bits=8, sym=True)}
    if vision_int8:
        configs["vision_embeddings_model"] = OVWeightQuantizationConfig(bits=8, sym=True)
    model = OVModelForVisualCausalLM.from_pretrained(str(ir_dir), compile=False,
                                                     quantization_config=OVPipelineQuantizationConfig(configs))
    model.save_pretrained(out)
