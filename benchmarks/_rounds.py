"""Interleaved rounds: comparisons that survive a noisy, shared machine.

Running configuration A five times and then B five times measures the machine's load as much as A
and B: when another job starts halfway, B looks 2-3x slower. Here every round runs each
configuration once, in an order that alternates (A B, B A, A B, ...) so a steady drift in load hits
both alike, and the ratio is taken *within* a round, where the load was about the same:

    rounds = interleave({"baseline": run_a, "candidate": run_b}, rounds=5)
    report(rounds, [Metric("wall", "s")], baseline="baseline")

Each runner gets the round index and returns a dict of figures (`wall`, `cpu`, `rss_mb`, tok/s ...).
`child()` runs a command in its own process (one configuration's memory is then its own, and
wall, CPU-seconds and peak RSS come from the kernel: wait4 rusage, and the child's own VmHWM
when it prints one).

The report gives per configuration the median and the min-max of every figure, and per figure the
median of the per-round ratios to the baseline with their min-max. When that spread is wider than
MAX_SPREAD of the median (or fewer than MIN_ROUNDS rounds ran), it prints NOISY and no headline:
the machine changed too much during the run to tell, so rerun it rather than quote it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

MAX_SPREAD = 0.25  # (max - min) / median of the per-round ratios above this: no headline
MIN_ROUNDS = 3  # fewer rounds than this never give a headline
RESULT_PREFIX = "RESULT "  # a child prints one line `RESULT {json}` with its own figures


@dataclass
class Metric:
    """One figure to compare. `higher_is_better`: throughput (req/s, tok/s) rather than time."""

    key: str
    unit: str = ""
    higher_is_better: bool = False
    fmt: str = ".2f"

    def label(self) -> str:
        return f"{self.key} {self.unit}".strip()


@dataclass
class Rounds:
    names: list[str]
    results: dict[str, list[dict]] = field(default_factory=dict)  # name -> one dict per round

    def values(self, name: str, key: str) -> list[float]:
        return [r[key] for r in self.results.get(name, []) if _number(r.get(key))]

    def ratios(self, name: str, baseline: str, metric: Metric) -> list[float]:
        """Per-round speed-up of `name` over `baseline` (> 1: better), rounds where both ran."""
        out = []
        for a, b in zip(self.results.get(name, []), self.results.get(baseline, [])):
            x, y = a.get(metric.key), b.get(metric.key)
            if _number(x) and _number(y) and x > 0 and y > 0:
                out.append(x / y if metric.higher_is_better else y / x)
        return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and v == v


def order(names: Sequence[str], round_index: int) -> list[str]:
    """A B C, then C B A, then A B C ...: each configuration sits early and late equally often."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def interleave(
    runners: dict[str, Callable[[int], dict]],
    rounds: int,
    *,
    warmup: bool = False,
    progress: Callable[[str], None] | None = print,
) -> Rounds:
    """Run every configuration once per round, alternating the order; `warmup` runs (and drops)
    one round first (page cache, lazy imports, JIT)."""
    out = Rounds(list(runners), {name: [] for name in runners})
    if warmup:
        for name in runners:
            runners[name](-1)
    for r in range(rounds):
        for name in order(list(runners), r):
            started = time.perf_counter()
            result = dict(runners[name](r))
            result.setdefault("wall", time.perf_counter() - started)
            out.results[name].append(result)
            if progress:
                shown = ", ".join(f"{k} {v:.3g}" for k, v in result.items() if _number(v))
                progress(f"  round {r + 1}/{rounds} {name}: {shown}")
    return out


def child(cmd: Sequence[str], env: dict | None = None, timeout: float | None = None) -> dict:
    """Run `cmd` in its own process and return the figures it `emit`ted, plus wall and cpu
    (user+sys of it and every process it started: the RUSAGE_CHILDREN difference, exact because
    children run one at a time). The child reports its own rss_mb (VmHWM, see _rss.py)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), stdout=subprocess.PIPE, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))[:300]} exited with {proc.returncode}")
    result: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    result.setdefault("wall", wall)
    result.setdefault("cpu", (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))
    return result


def emit(result: dict) -> None:
    """What a child calls last: its figures, for `child()` to read."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: 0 for a perfectly steady figure."""
    if not values:
        return float("inf")
    m = statistics.median(values)
    return (max(values) - min(values)) / m if m else float("inf")


def summary(values: Sequence[float], fmt: str = ".2f") -> str:
    if not values:
        return "-"
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def headline(values: Sequence[float], max_spread: float = MAX_SPREAD) -> tuple[float | None, str]:
    """(median ratio, text) when the per-round ratios agree; (None, NOISY ...) when they don't."""
    if len(values) < MIN_ROUNDS:
        return None, f"NOISY: only {len(values)} round(s) (need {MIN_ROUNDS}); no headline"
    s = spread(values)
    text = f"x{statistics.median(values):.2f} (rounds {min(values):.2f}-{max(values):.2f}, spread {s:.0%})"
    if s > max_spread:
        return None, f"NOISY: {text} > {max_spread:.0%}; no headline, rerun on a quieter machine"
    return statistics.median(values), text


def report(
    rounds: Rounds,
    metrics: Sequence[Metric],
    baseline: str | None = None,
    *,
    title: str = "",
    max_spread: float = MAX_SPREAD,
    out: Callable[[str], None] = print,
) -> dict[tuple[str, str], float | None]:
    """Print the table (median [min-max] per configuration and figure) and the per-round ratios.
    Returns {(configuration, metric key): headline ratio or None when noisy}."""
    n = max((len(v) for v in rounds.results.values()), default=0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out("")
    out(f"{title + ': ' if title else ''}{n} interleaved round(s), {os.cpu_count()} CPUs, load average now "
        f"{load:.1f}; median [min-max] per configuration")
    width = max([len(name) for name in rounds.names] + [13])
    cols = [m.label() for m in metrics]
    cells = {name: [summary(rounds.values(name, m.key), m.fmt) for m in metrics] for name in rounds.names}
    colw = [max(len(c), *(len(cells[name][i]) for name in rounds.names)) for i, c in enumerate(cols)]
    out(f"{'configuration':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cols, colw)))
    for name in rounds.names:
        out(f"{name:<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells[name], colw)))
    headlines: dict[tuple[str, str], float | None] = {}
    if baseline is None:
        return headlines
    out(f"per-round ratio to {baseline} (> 1 is better: faster, or more throughput), median of rounds")
    for name in rounds.names:
        if name == baseline:
            continue
        for m in metrics:
            values = rounds.ratios(name, baseline, m)
            if not values:
                continue
            ratio, text = headline(values, max_spread)
            headlines[(name, m.key)] = ratio
            out(f"  {name} {m.key}: {text}")
    return headlines


def goal(label: str, met: bool | None) -> str:
    """A goal line; None (the figure was noisy) is neither met nor missed."""
    verdict = "unknown (noisy run)" if met is None else ("met" if met else "NOT met")
    return f"goal: {label}: {verdict}"
