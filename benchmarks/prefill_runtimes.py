"""Long prefill and vision-encoder speed per runtime and precision, on this machine.

For the default model's shape (a SmolVLM2-256M-shaped random-weight checkpoint at real sizes, the
int8 LM conversion `benchmarks/video_e2e.py` builds in its --work dir): seconds to prefill N
positions (inputs_embeds, a fresh KV state, logits of the last position only, as the runtimes do)
and seconds per 512x512 vision tile, for

  ov-f32    OpenVINO, INFERENCE_PRECISION_HINT f32
  ov-bf16   OpenVINO, bf16 (the CPU plugin's default where the CPU has it: AMX / AVX-512 BF16)
  ov-auto   OpenVINO with no hint (what the runtime uses for int8 weights)
  torch     transformers eager fp32 (sdpa), the reference runtime

in interleaved rounds (benchmarks/_rounds.py), all in one process (the configurations share the
machine alike). Prints the table, the OpenVINO CPU's OPTIMIZATION_CAPABILITIES and load averages.

Usage: python benchmarks/prefill_runtimes.py --work DIR [--lengths 1024,3072,7168] [--rounds 3]
       [--configs ov-auto,ov-f32,ov-bf16,torch] [--threads N]
       python benchmarks/prefill_runtimes.py --work DIR --choice [--remeasure]

--choice loads the default model as the server does (OpenVINO engine, the work dir's conversion) and
prints the long-prompt runtime choice it makes (runtimes/prefill_choice.py: the figures it measured
once on this machine, or stored from an earlier load; --remeasure drops the stored ones first).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _rounds as rounds  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def ov_model(folder: Path, hint: str | None, threads: int | None):
    from optimum.intel import OVModelForVisualCausalLM

    from pollux.engines.runtimes.openvino import _logits_for_last_position

    config = {"PERFORMANCE_HINT": "LATENCY"}
    if hint:
        config["INFERENCE_PRECISION_HINT"] = hint
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    model = OVModelForVisualCausalLM.from_pretrained(str(folder), ov_config=config, compile=False)
    _logits_for_last_position(model.language_model.model)
    model.compile()
    return model


def ov_runner(model, lengths: list[int], hidden: int):
    import numpy as np
    import torch

    request = model.language_model.request
    rng = np.random.default_rng(0)
    pixels = torch.randn(1, 1, 3, 512, 512)
    mask = torch.ones(1, 1, 512, 512, dtype=torch.bool)

    def run(_r: int) -> dict:
        out = {}
        for n in lengths:
            embeds = (rng.standard_normal((1, n, hidden)) * 0.02).astype(np.float32)
            request.reset_state()
            t = time.perf_counter()
            request.infer({"inputs_embeds": embeds, "attention_mask": np.ones((1, n), dtype=np.int64),
                           "position_ids": np.arange(n, dtype=np.int64)[None], "beam_idx": np.zeros(1, np.int32)})
            out[f"prefill_{n}"] = time.perf_counter() - t
        t = time.perf_counter()
        model.get_vision_embeddings(pixels, input_ids=None, pixel_attention_mask=mask)
        out["vision_tile"] = time.perf_counter() - t
        return out

    return run


def torch_runner(source: Path, lengths: list[int], dtype: str):
    import torch
    from transformers import AutoModelForImageTextToText, DynamicCache

    model = AutoModelForImageTextToText.from_pretrained(source, dtype=getattr(torch, dtype)).eval()
    hidden = model.config.text_config.hidden_size
    gen = torch.Generator().manual_seed(0)

    def run(_r: int) -> dict:
        out = {}
        with torch.inference_mode():
            for n in lengths:
                embeds = (torch.randn(1, n, hidden, generator=gen) * 0.02).to(model.dtype)
                t = time.perf_counter()
                model(inputs_embeds=embeds, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
                out[f"prefill_{n}"] = time.perf_counter() - t
            pixels = torch.randn(1, 1, 3, 512, 512, generator=gen).to(model.dtype)
            t = time.perf_counter()
            model.model.get_image_features(pixels, torch.ones(1, 1, 512, 512, dtype=torch.bool))
            out["vision_tile"] = time.perf_counter() - t
        return out

    return run, hidden


def show_choice(work: Path, remeasure: bool) -> None:
    import json

    from pollux.catalog import Catalog
    from pollux.engines.openvino import OpenVINOEngine
    from pollux.engines.runtimes import prefill_choice
    from pollux.settings import Settings

    entry = Catalog.from_file(work / "catalog.toml").entries["smolvlm2-256m"]
    engine = OpenVINOEngine(entry, Settings(data_dir=work / "data", models_dir=work / "models", transcribe=False))
    if remeasure:
        for stored in (work / "models" / "openvino").glob(f"*/*/{prefill_choice.CHOICE_FILE}"):
            stored.unlink()
    began = time.perf_counter()
    engine.load()
    info = engine.info()
    print(f"load (with the choice) {time.perf_counter() - began:.1f} s; load average {os.getloadavg()}")
    print(json.dumps(info.get("prefill", {"runtime": info.get("runtime")}), indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="benchmarks/video_e2e.py's work dir (model built)")
    ap.add_argument("--lengths", default="1024,3072,7168")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--configs", default="ov-auto,ov-f32,ov-bf16,torch")
    ap.add_argument("--warmup", action="store_true", help="run (and drop) one round first")
    ap.add_argument("--threads", type=int, default=None, help="OpenVINO inference threads (default: all cores)")
    ap.add_argument("--choice", action="store_true", help="print the engine's long-prompt runtime choice")
    ap.add_argument("--remeasure", action="store_true", help="with --choice: measure again")
    args = ap.parse_args()
    if args.choice:
        show_choice(args.work.resolve(), args.remeasure)
        return
    import openvino as ov

    lengths = [int(x) for x in args.lengths.split(",")]
    source = args.work.resolve() / "smolvlm-256m"
    folder = next((args.work.resolve() / "models" / "openvino" / "smolvlm2-256m").glob("int8-*"))
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    runners = {}
    hidden = None
    for name in args.configs.split(","):
        if name.startswith("torch"):
            runners[name], hidden = torch_runner(source, lengths, "bfloat16" if name == "torch-bf16" else "float32")
    for name in args.configs.split(","):
        if name.startswith("ov-"):
            hint = {"ov-auto": None, "ov-f32": "f32", "ov-bf16": "bf16", "ov-f16": "f16"}[name]
            if hint == "bf16" and "BF16" not in caps:
                print(f"skipping {name}: the CPU has no BF16 ({caps})")
                continue
            model = ov_model(folder, hint, args.threads)
            compiled = model.language_model.request.get_compiled_model()
            print(f"{name}: the LM compiled with INFERENCE_PRECISION_HINT "
                  f"{compiled.get_property('INFERENCE_PRECISION_HINT')}", flush=True)
            runners[name] = ov_runner(model, lengths, hidden or model.config.text_config.hidden_size)
    print(f"OpenVINO CPU capabilities: {', '.join(caps)}; load average {os.getloadavg()}", flush=True)
    result = rounds.interleave(runners, args.rounds, warmup=args.warmup)
    metrics = [rounds.Metric(f"prefill_{n}", "s") for n in lengths] + [rounds.Metric("vision_tile", "s")]
    rounds.report(result, metrics, baseline="torch" if "torch" in runners else None,
                  title="prefill and vision per runtime")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
