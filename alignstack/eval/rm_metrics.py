"""Reward-model statistics, in pure Python: pair accuracy with a prompt-clustered confidence
interval, accuracy by Llama 2 strength bucket, Spearman and Kendall (τ-b) rank correlation, ROC
AUC, and a score histogram (matplotlib, Agg backend, imported lazily).

Pairs from one prompt share a prompt and responses, so they are not independent: the CI of an
accuracy treats prompts as clusters (ratio estimator, normal approximation) instead of pretending
every pair is a fresh sample.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

Z95 = 1.959964


def clustered_mean_ci(values: Sequence[float], clusters: Sequence[Hashable] | None = None, z: float = Z95) -> dict:
    """Mean of ``values`` with a normal CI whose variance is computed over ``clusters``
    (each value its own cluster when ``clusters`` is None)."""
    n = len(values)
    if n == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0, "clusters": 0}
    clusters = list(range(n)) if clusters is None else list(clusters)
    if len(clusters) != n:
        raise ValueError(f"need one cluster id per value, got {len(clusters)} for {n} values")
    m = sum(values) / n
    sums: dict[Hashable, list[float]] = {}
    for v, c in zip(values, clusters):
        s = sums.setdefault(c, [0.0, 0.0])
        s[0] += v
        s[1] += 1
    g = len(sums)
    if g > 1:
        var = g / (g - 1) * sum((s - m * k) ** 2 for s, k in sums.values()) / n ** 2
    else:
        var = 0.0
    se = math.sqrt(var)
    return {"mean": m, "lo": m - z * se, "hi": m + z * se, "n": n, "clusters": g}


def pair_correct(chosen: Sequence[float], rejected: Sequence[float]) -> list[float]:
    """1 if the chosen response scores higher, ½ on a tie, else 0."""
    return [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)]


def pair_accuracy(chosen: Sequence[float], rejected: Sequence[float],
                  clusters: Sequence[Hashable] | None = None) -> dict:
    return clustered_mean_ci(pair_correct(chosen, rejected), clusters)


def accuracy_by_bucket(chosen: Sequence[float], rejected: Sequence[float], buckets: Sequence[str],
                       clusters: Sequence[Hashable] | None = None, order: Sequence[str] | None = None) -> dict:
    """Pair accuracy per bucket label (e.g. Llama 2 strength), each with its clustered CI."""
    correct = pair_correct(chosen, rejected)
    clusters = list(range(len(correct))) if clusters is None else list(clusters)
    names = list(order) if order is not None else sorted(set(buckets))
    out = {}
    for name in names:
        idx = [i for i, b in enumerate(buckets) if b == name]
        out[name] = clustered_mean_ci([correct[i] for i in idx], [clusters[i] for i in idx])
    return out


def gap_by_bucket(chosen: Sequence[float], rejected: Sequence[float], buckets: Sequence[str],
                  clusters: Sequence[Hashable] | None = None, order: Sequence[str] | None = None) -> dict:
    """Mean score gap r(chosen) − r(rejected) per bucket label, each with its clustered CI (the
    Llama 2 margin loss should widen the gap on "significantly better" pairs most)."""
    gaps = [c - r for c, r in zip(chosen, rejected)]
    clusters = list(range(len(gaps))) if clusters is None else list(clusters)
    names = list(order) if order is not None else sorted(set(buckets))
    return {name: clustered_mean_ci([gaps[i] for i, b in enumerate(buckets) if b == name],
                                    [clusters[i] for i, b in enumerate(buckets) if b == name]) for name in names}


def mean_pair_loss(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Mean −logσ(r_c − r_r) (held-out pair loss), computed stably."""
    tot = 0.0
    for c, r in zip(chosen, rejected):
        d = c - r
        tot += math.log1p(math.exp(-d)) if d > -30 else -d
    return tot / max(len(chosen), 1)


def average_ranks(x: Sequence[float]) -> list[float]:
    """1-based ranks with ties sharing their average rank."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for t in range(i, j + 1):
            ranks[order[t]] = avg
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    if n < 2 or n != len(y):
        return float("nan")
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson correlation of average ranks (tie-corrected)."""
    return pearson(average_ranks(x), average_ranks(y))


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (ties in either variable corrected), O(n²) — fine for a few thousand items."""
    n = len(x)
    if n < 2 or n != len(y):
        return float("nan")
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom > 0 else float("nan")


def grouped_kendall(x: Sequence[float], y: Sequence[float], groups: Sequence[Hashable]) -> dict:
    """Mean within-group Kendall τ-b (groups where it is defined) with a CI over groups."""
    by: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    taus = []
    for idx in by.values():
        t = kendall_tau_b([x[i] for i in idx], [y[i] for i in idx])
        if not math.isnan(t):
            taus.append(t)
    return clustered_mean_ci(taus)


def roc_auc(scores: Sequence[float], labels: Sequence[bool | int]) -> float:
    """Area under the ROC curve for ``labels`` (positive = true/1) ranked by ``scores``
    (Mann–Whitney U with average ranks for ties); NaN if a class is empty."""
    pos = sum(1 for v in labels if v)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = average_ranks(scores)
    rsum = sum(r for r, v in zip(ranks, labels) if v)
    return (rsum - pos * (pos + 1) / 2) / (pos * neg)


def precision_recall(predicted: Sequence[bool], actual: Sequence[bool]) -> dict:
    tp = sum(1 for p, a in zip(predicted, actual) if p and a)
    fp = sum(1 for p, a in zip(predicted, actual) if p and not a)
    fn = sum(1 for p, a in zip(predicted, actual) if a and not p)
    nan = float("nan")
    return {"precision": tp / (tp + fp) if tp + fp else nan, "recall": tp / (tp + fn) if tp + fn else nan,
            "n_predicted": tp + fp, "n_actual": tp + fn}


def score_histogram(series: dict[str, Sequence[float]], path, title: str = "reward-model scores",
                    bins: int = 40, xlabel: str = "score") -> str:
    """Overlaid histograms of score series (e.g. one per margin) saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, vals in series.items():
        ax.hist(list(vals), bins=bins, alpha=0.5, density=True, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
    return str(path)


def bimodality_coefficient(x: Sequence[float]) -> float:
    """Sarle's bimodality coefficient (g² + 1) / (κ + 3(n−1)²/((n−2)(n−3))), g = sample skewness,
    κ = sample excess kurtosis; > 5/9 ≈ 0.555 (the uniform's value) hints at two modes."""
    n = len(x)
    if n < 4:
        return float("nan")
    m = sum(x) / n
    m2 = sum((v - m) ** 2 for v in x) / n
    if m2 == 0:
        return float("nan")
    m3 = sum((v - m) ** 3 for v in x) / n
    m4 = sum((v - m) ** 4 for v in x) / n
    g = math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5
    k = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2 ** 2 - 3) + 6)
    return (g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
