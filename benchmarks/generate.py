"""Generation benchmark: Pollux's transformers engine against plain `model.generate`, same model, same run.

Builds (in a temp dir, random weights) a model with SmolVLM2-256M's real architecture and sizes:
SigLIP-base 512/16 vision encoder, 30-layer 576-wide Llama text model, 49,280-token vocabulary,
and SmolVLM2's processor settings (tiles of 512, longest edge 2048). One real photo
(scikit-image's astronaut, prepared as Pollux prepares uploads: scaled up to 768x768) and a short
question. For each path: time to first token (image preprocessing + vision encoder + prefill +
one decode step) and decode tokens/s after the first token, greedy, fp32, CPU.

  baseline  processor(...) then model.generate(max_new_tokens=N) with a streamer timing each token
  pollux    TransformersEngine.generate(prompt) (its token loop, streamed deltas)

The two paths alternate in rounds after one warm-up each (benchmarks/_rounds.py): the headline is
the median of the per-round ratios, or NOISY when the rounds disagree.

Usage: python benchmarks/generate.py [--tokens 16] [--rounds 3] [--threads N] [--model DIR] [--keep DIR]
Numbers are printed, never asserted; goal: the engine within ~10% of model.generate on both figures.

The fast CPU engine (OpenVINO, each weight setting, 256M- and 500M-shaped models, vision per tile,
time to first token inline and uploaded, decode, a video asked twice, peak RSS, ratios to eager):
       python benchmarks/generate.py fast [--sizes 256m,500m] [--weights fp32,fp16,int8,int4] ...
(the same as benchmarks/generate_fast.py; `fast --help` lists its options).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import _rounds as rounds  # benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures builds the model; src is installed (pip install -e .)


def build(folder: Path) -> Path:
    from tests.fixtures.tiny_models import build_smolvlm

    t = time.perf_counter()
    build_smolvlm(folder, tiny=False)
    print(f"built a SmolVLM2-256M-shaped model in {time.perf_counter() - t:.1f} s -> {folder}")
    return folder


def photo():
    import skimage.data
    from PIL import Image

    return Image.fromarray(skimage.data.astronaut()).resize((768, 768), Image.Resampling.BICUBIC)


QUESTION = "Describe this image."


class Clock:
    """A transformers streamer that timestamps every token `generate` produces after the prompt."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt ids
            self.prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def baseline_run(model, processor, image, tokens: int) -> tuple[float, float, int]:
    import torch

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    clock = Clock()
    start = time.perf_counter()
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=text, images=[image], return_tensors="pt")
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, streamer=clock)
    ttft = clock.times[0] - start
    rate = (len(clock.times) - 1) / (clock.times[-1] - clock.times[0])
    return ttft, rate, int(inputs["input_ids"].shape[1])


def engine_run(engine, image, tokens: int) -> tuple[float, float, int]:
    from pollux.engines.base import GenerationParams
    from pollux.prompt_types import Image, Prompt, Text, Turn

    prompt = Prompt([Turn("user", [Image(image, (512, 512)), Text(QUESTION)])])
    params = GenerationParams(max_output_tokens=tokens, temperature=0.0)
    start = time.perf_counter()
    first = last = None
    first_count = last_count = 0
    for delta in engine.generate(prompt, params, threading.Event()):
        now = time.perf_counter()
        if first is None and delta.output_tokens:
            first, first_count = now, delta.output_tokens
        last, last_count = now, delta.output_tokens or last_count
    rate = (last_count - first_count) / (last - first)
    return first - start, rate, engine.count_tokens(prompt)


def main() -> None:
    if sys.argv[1:2] == ["fast"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import generate_fast

        sys.argv = [generate_fast.__file__, *sys.argv[2:]]
        generate_fast.main()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (after one warm-up each)")
    parser.add_argument("--model", type=Path, help="reuse a folder built earlier (--keep)")
    parser.add_argument("--keep", type=Path, help="build the model into this folder and keep it")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice); 1 is steadier on a "
                                                   "busy machine")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from pollux.catalog import ModelEntry
    from pollux.engines.transformers import TransformersEngine
    from pollux.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model or build(args.keep or Path(tmp) / "smolvlm2-256m-random")
        image = photo()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, greedy, {args.tokens} new tokens")

        processor = AutoProcessor.from_pretrained(folder)
        processor.tokenizer.model_input_names = ["input_ids", "attention_mask"]
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"model: {type(model).__name__}, {params:.0f}M parameters")
        entry = ModelEntry(id="smolvlm2-256m-random", display_name="bench", description="", engine="transformers",
                           source=str(folder), family="smolvlm", output_token_limit=args.tokens)
        engine = TransformersEngine(entry, Settings(data_dir=Path(tmp) / "data"))
        engine.load()

        def measured(run) -> Callable[[int], dict]:
            def once(_r: int) -> dict:
                ttft, rate, prompt_tokens = run()
                return {"ttft": ttft, "decode": rate, "prompt_tokens": prompt_tokens}

            return once

        result = rounds.interleave({"generate": measured(lambda: baseline_run(model, processor, image, args.tokens)),
                                    "pollux": measured(lambda: engine_run(engine, image, args.tokens))},
                                   args.rounds, warmup=True)  # fmt: skip
        heads = rounds.report(result, [rounds.Metric("ttft", "s"), rounds.Metric("decode", "tok/s", True, ".1f"),
                                       rounds.Metric("prompt_tokens", fmt=".0f")],
                              baseline="generate", title="transformers engine vs model.generate")  # fmt: skip
        for key in ("ttft", "decode"):
            ratio = heads.get(("pollux", key))
            print(rounds.goal(f"pollux {key} within 10% of model.generate", None if ratio is None else ratio >= 0.9))

if __name__ == "__main__":
    main()
