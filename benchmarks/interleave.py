"""Interleaved repeats for the side-by-side benchmarks.

Why: a single short run of one implementation moved by up to 2× between runs on a shared 2-core machine (a
child started right after data preparation, the scheduler), while its peer happened to run undisturbed. Running
every implementation ``repeats`` times, interleaved (ours, TRL, TRL fp32, ours, …), and keeping each one's fastest
run gives every side the same chance of a quiet moment.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence


def fastest_of(run: Callable[[str, int], dict], impls: Sequence[str], repeats: int, rate: str) -> dict[str, dict]:
    """``run(impl, repeat)`` for every implementation, ``repeats`` rounds interleaved; per implementation the run
    with the highest ``rate``, with every run's rate under ``runs`` (the spread is part of the result)."""
    runs: dict[str, list[dict]] = {impl: [] for impl in impls}
    for rep in range(repeats):
        for impl in impls:
            runs[impl].append(run(impl, rep))
    best = {}
    for impl, rs in runs.items():
        best[impl] = {**max(rs, key=lambda r: r[rate]), "runs": [round(r[rate], 1) for r in rs]}
    return best
