"""benchmarks/_rounds.py: interleaving, per-round ratios, and the NOISY verdict."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _rounds as rounds  # noqa: E402


def test_order_alternates_so_each_configuration_runs_early_and_late():
    assert [rounds.order("ABC", r) for r in range(3)] == [list("ABC"), list("CBA"), list("ABC")]


def test_ratios_are_taken_within_a_round():
    # the machine got 3x slower from round 2 on: per-round ratios stay 2x, pooled medians would not
    walls = {"base": [1.0, 3.0, 3.0], "fast": [0.5, 1.5, 1.5]}
    calls: list[tuple[str, int]] = []

    def runner(name):
        def run(r):
            calls.append((name, r))
            return {"wall": walls[name][r], "rate": 1 / walls[name][r]}

        return run

    result = rounds.interleave({"base": runner("base"), "fast": runner("fast")}, 3, progress=None)
    assert calls == [("base", 0), ("fast", 0), ("fast", 1), ("base", 1), ("base", 2), ("fast", 2)]
    assert result.ratios("fast", "base", rounds.Metric("wall")) == [2.0, 2.0, 2.0]
    assert result.ratios("fast", "base", rounds.Metric("rate", higher_is_better=True)) == [2.0, 2.0, 2.0]
    lines: list[str] = []
    heads = rounds.report(result, [rounds.Metric("wall", "s")], baseline="base", out=lines.append)
    assert heads[("fast", "wall")] == 2.0
    assert any("fast wall: x2.00" in line for line in lines)


def test_a_wide_spread_gives_no_headline():
    ratio, text = rounds.headline([1.0, 2.0, 1.5])
    assert ratio is None and text.startswith("NOISY")
    ratio, text = rounds.headline([1.50, 1.55, 1.45])
    assert ratio == 1.50 and "NOISY" not in text
    assert rounds.headline([1.5, 1.5])[0] is None  # too few rounds to tell


def test_child_reads_the_figures_and_counts_its_cpu():
    code = "import _rounds; sum(range(3_000_000)); _rounds.emit({'answer': 42})"
    env_path = str(Path(rounds.__file__).parent)
    result = rounds.child([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": env_path})
    assert result["answer"] == 42
    assert result["cpu"] > 0 and result["wall"] > 0
