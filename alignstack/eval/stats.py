"""Paired comparisons with confidence intervals (normal approximation, 95% by default)."""
from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959964


def mean_ci(x: Sequence[float], z: float = Z95) -> dict:
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    m = sum(x) / n
    var = sum((v - m) ** 2 for v in x) / (n - 1) if n > 1 else 0.0
    se = math.sqrt(var / n)
    return {"mean": m, "lo": m - z * se, "hi": m + z * se, "n": n}


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of per-prompt differences a − b with its CI, and the win rate of a over b (ties ½)."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs equal lengths, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    w = [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b)]
    return {"diff": mean_ci(d), "win_rate": mean_ci(w)}
