"""Which runtime prefills a long prompt when OpenVINO serves the model: measured on the machine that runs it.

Neither runtime wins everywhere: on an AVX-512 VNNI + AMX Xeon OpenVINO (bf16) prefilled 6,912
positions in 18.4 s against torch's 26.8 s (benchmarks/prefill_runtimes.py), while on an AVX2 EPYC
torch was ~2.5x faster at ~6.8k (design notes). So, once per machine and model, both runtimes
prefill random embeddings at a few short lengths (MEASURED, a few seconds in all); each runtime's
times are fitted to t = a·n + b·n² (the linear layers, the attention) and extrapolated up to the
model's input limit. The crossover is the first length from MIN_LONG on from which torch's fit stays
under MARGIN × OpenVINO's; "never" when there is none. The figures are stored beside the conversion
(CHOICE_FILE) under a key of what changes them (the CPU's capabilities and usable cores, library
versions, precisions), so a later load reuses them and another machine sharing the models folder
measures its own.

Prompts shorter than MIN_LONG always run on OpenVINO: their prefill takes about a second on either,
and OpenVINO keeps KV prefixes and decodes faster. What is compared is the prefill a request would
really run: its positions after the prefix OpenVINO already holds (a warmed-up file's prompt is short).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("pollux.engines.runtimes.prefill_choice")

CHOICE_FILE = "prefill-choice.json"
VERSION = 1  # bump when the measurement or the fit changes (part of the key)
MEASURED = (512, 1024, 2048)  # positions timed per runtime, interleaved, after one warm-up call
WARMUP = 64
MIN_LONG = 1024  # shorter prompts stay on OpenVINO whatever the figures
MARGIN = 0.9  # torch must be at least 10% faster: switching costs its memory and OpenVINO's kept prefixes
STEP = 64  # resolution of the crossover search
OPENVINO, TORCH = "openvino", "transformers"  # the names options and info use

Timer = Callable[[int], float]  # positions → seconds of one prefill


@dataclass
class Choice:
    """The decision for one loaded model: prefills of at least `crossover` positions run on torch."""

    mode: str  # options.long_prompt_runtime
    crossover: int | None  # None: never
    decided_by: str  # "option", "measured", "stored" (an earlier load's measurement), "failed"
    limit: int = 0
    table: list[dict] = field(default_factory=list)  # per measured length: seconds per runtime
    fits: dict[str, dict] = field(default_factory=dict)
    seconds: float | None = None  # what the measurement took
    key: dict = field(default_factory=dict)
    reason: str | None = None

    def torch_for(self, positions: int) -> bool:
        return self.crossover is not None and positions >= self.crossover

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"longPromptRuntime": self.mode, "crossoverPositions": self.crossover,
                               "decidedBy": self.decided_by}
        if self.table:
            out.update(measured=self.table, measurementSeconds=self.seconds, extrapolatedTo=self.limit,
                       predicted=predicted(self.fits, self.limit), minLongPositions=MIN_LONG, margin=MARGIN)
            out["machine"] = {k: self.key.get(k) for k in ("cpu", "precision")}
        if self.reason:
            out["reason"] = self.reason
        return out


def decide(options: Any, folder: Path, limit: int, key: Callable[[], dict],
           timers: Callable[[], tuple[dict[str, Timer], Callable[[], None]]]) -> Choice:
    """The choice for a model converted in `folder`: from the options, a stored measurement whose key
    matches `key()`, or a new measurement with the runtimes `timers()` gives (and a function that
    releases them), stored for the next load. A measurement that fails leaves every prompt on OpenVINO."""
    mode = options.long_prompt_runtime
    if mode == OPENVINO:
        return Choice(mode, None, "option", limit)
    if mode == TORCH or options.long_prompt_crossover:
        return Choice(mode, options.long_prompt_crossover or 1, "option", limit)
    try:
        fingerprint = key()
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        stored = _read(folder).get(digest)
        decided_by = "stored"
        if stored is None:
            began = time.perf_counter()
            runners, release = timers()
            try:
                table = measure(runners, MEASURED)
            finally:
                release()
            stored = {"key": fingerprint, "table": table, "seconds": round(time.perf_counter() - began, 2)}
            _write(folder, digest, stored)
            decided_by = "measured"
    except Exception as e:  # the fast path still serves: a measurement is an optimisation
        log.warning("prefill runtime measurement in %s failed: %s", folder, e)
        return Choice(mode, None, "failed", limit, reason=f"the measurement failed ({type(e).__name__}: {e})")
    fits = {name: fit(stored["table"], name) for name in (OPENVINO, TORCH)}
    choice = Choice(mode, crossover(fits, limit), decided_by, limit, stored["table"], fits, stored["seconds"],
                    stored["key"])
    log.info("long prompts on transformers: %s (%s; %s)", f"from {choice.crossover} positions" if choice.crossover
             else "never", decided_by,
             ", ".join(f"{r['positions']}: ov {r[OPENVINO]:.3f} s, torch {r[TORCH]:.3f} s" for r in choice.table))
    return choice


def measure(runners: dict[str, Timer], lengths: tuple[int, ...]) -> list[dict]:
    """Seconds of one prefill per runtime and length, the runtimes' order alternating per length
    (a machine whose load drifts treats both alike), after one warm-up call each."""
    for run in runners.values():
        run(WARMUP)
    table = []
    names = list(runners)
    for i, n in enumerate(lengths):
        row: dict[str, Any] = {"positions": n}
        for name in names if i % 2 == 0 else reversed(names):
            row[name] = round(runners[name](n), 4)
        table.append(row)
    return table


def fit(table: list[dict], name: str) -> dict[str, float]:
    """Least squares t = a·n + b·n² (a, b >= 0) over one runtime's measured times."""
    import numpy as np

    n = np.array([float(r["positions"]) for r in table])
    t = np.array([float(r[name]) for r in table])
    (a, b), *_ = np.linalg.lstsq(np.stack([n, n * n], axis=1), t, rcond=None)
    if b < 0:  # no visible attention term: linear
        a, b = float((t * n).sum() / (n * n).sum()), 0.0
    elif a < 0:
        a, b = 0.0, float((t * n * n).sum() / (n**4).sum())
    return {"a": float(a), "b": float(b)}


def seconds(coefficients: dict[str, float], positions: int) -> float:
    return coefficients["a"] * positions + coefficients["b"] * positions * positions


def crossover(fits: dict[str, dict], limit: int) -> int | None:
    """The first length (from MIN_LONG, in STEPs) from which torch's fit stays under MARGIN × OpenVINO's
    up to `limit`; None when there is none."""
    found = None
    for n in reversed(range(MIN_LONG, limit + 1, STEP)):
        if seconds(fits[TORCH], n) <= MARGIN * seconds(fits[OPENVINO], n):
            found = n
        else:
            break
    return found


def predicted(fits: dict[str, dict], limit: int) -> dict[str, dict[str, float]]:
    """The fits' seconds at a few lengths up to `limit` (extrapolated past the measured ones)."""
    lengths = sorted({n for n in (MIN_LONG, 4096, limit) if MIN_LONG <= n <= limit})
    return {str(n): {name: round(seconds(c, n), 3) for name, c in fits.items()} for n in lengths}


# ---------------------------------------------------------------------------------- what the figures depend on

CPU_FLAG_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4")


def cpu_flags() -> list[str]:
    """This CPU's vector extensions (Linux /proc/cpuinfo); empty elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if f.startswith(CPU_FLAG_PREFIXES))
    except OSError:
        pass
    return []


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------- the stored file

def _read(folder: Path) -> dict:
    try:
        data = json.loads((folder / CHOICE_FILE).read_text())
        return data.get("entries", {}) if data.get("version") == VERSION else {}
    except (OSError, ValueError):
        return {}


def _write(folder: Path, digest: str, entry: dict) -> None:
    """Add `entry` to the file (other machines' entries kept); written whole and renamed into place."""
    entries = _read(folder)
    entries[digest] = entry
    tmp = folder / f".{CHOICE_FILE}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({"version": VERSION, "entries": entries}, indent=1))
    os.replace(tmp, folder / CHOICE_FILE)
