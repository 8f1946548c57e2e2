"""Seed-level statistics and verdicts for paper claims (docs/methods.md, "Claims protocol").

A claim compares two training recipes. Each training seed gives one model per recipe and, on the eval
prompts, one paired per-prompt difference per prompt. The unit of replication is the **seed**: a rerun
of the recipe draws a new seed, not new eval prompts. So the combined estimate is the mean of the
per-seed means and its interval is a Student-t interval over the seeds (a two-stage, summary-statistics
random-effects estimate). Each seed's mean already carries its own prompt-sampling noise, so the spread
of the seed means counts both the prompt noise and the seed-to-seed variance.

Why not pool the prompts of all seeds into one paired CI: that CI counts only prompt-sampling noise, so it
shrinks by √(seeds) while saying nothing about how much a different seed moves the result — exactly the
variance a claim about a training recipe has to survive. The rows are not independent either when
every seed is evaluated on the same prompts. The price of the seed-level interval is width: with 3 seeds
the t quantile is 4.30 instead of 1.96. That is the honest price, and why the protocol asks for ≥ 3.

Pure functions over floats: no torch, nothing from the world or the methods.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from .stats import Z95

NAN = float("nan")
DIRECTIONS = ("greater", "less", "within")
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


# ---------------------------------------------------------------- Student t quantile (no scipy in the core)

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (modified Lentz; Numerical Recipes §6.4)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbeta) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbeta) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the CDF; |error| < 1e-10)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------- combining seeds

def seed_level_ci_from_means(means: Sequence[float], level: float = 0.95) -> dict:
    """Mean of per-seed means with a t-interval over seeds (df = seeds − 1).

    One seed gives no seed-level interval (``lo``/``hi`` are NaN): its own per-prompt CI says nothing about
    another seed, and the verdict then stays inconclusive."""
    k = len(means)
    if k == 0:
        return {"mean": NAN, "lo": NAN, "hi": NAN, "n_seeds": 0, "se": NAN, "df": 0, "per_seed": []}
    m = sum(means) / k
    if k == 1:
        return {"mean": m, "lo": NAN, "hi": NAN, "n_seeds": 1, "se": NAN, "df": 0, "per_seed": list(means)}
    sd = math.sqrt(sum((x - m) ** 2 for x in means) / (k - 1))
    se = sd / math.sqrt(k)
    q = t_quantile(0.5 + level / 2.0, k - 1)
    return {"mean": m, "lo": m - q * se, "hi": m + q * se, "n_seeds": k, "se": se, "df": k - 1,
            "per_seed": list(means)}


def seed_level_ci(per_seed_diffs: Sequence[Sequence[float]], level: float = 0.95) -> dict:
    """``per_seed_diffs[s]`` = the paired per-prompt differences (recipe A − recipe B) of training seed ``s``.

    Every seed weighs the same, whatever its number of prompts: the seed is the unit of replication."""
    means = []
    for s, d in enumerate(per_seed_diffs):
        if len(d) == 0:
            raise ValueError(f"seed {s} has no paired differences")
        means.append(sum(d) / len(d))
    return seed_level_ci_from_means(means, level)


# ---------------------------------------------------------------- reward–KL frontiers

def interpolation_bracket(xs: Sequence[float], x: float) -> tuple[int, int, float] | None:
    """Where ``x`` falls on a sweep whose points sit at ascending ``xs`` (e.g. DPO's KLs to SFT): the neighbours
    ``i ≤ j`` and the weight ``w`` with ``x = (1 − w)·xs[i] + w·xs[j]``, so the sweep's value at ``x`` is
    ``(1 − w)·y[i] + w·y[j]`` (linear interpolation); ``None`` when ``x`` lies outside ``[xs[0], xs[-1]]``."""
    if not xs or not xs[0] <= x <= xs[-1]:
        return None
    for i in range(len(xs) - 1):
        if xs[i] <= x <= xs[i + 1]:
            span = xs[i + 1] - xs[i]
            return i, i + 1, (x - xs[i]) / span if span > 0 else 0.0
    return 0, 0, 0.0                                     # one point, at x itself


def combine_independent(terms: Sequence[tuple[float, float, float, float]], z: float = Z95) -> dict:
    """A linear combination Σ cᵢ·Xᵢ of estimates given as (cᵢ, mean, lo, hi) with symmetric normal CIs,
    treating them as independent: SE = √Σ (cᵢ·halfwidthᵢ / z)².

    For results whose per-prompt rows were not recorded (only each arm's summary CI). When the estimates
    come from the same prompts and are positively correlated, as paired arms against one baseline are,
    the true SE of a difference is smaller, so this CI is conservative (wider), never optimistic."""
    mean = sum(c * m for c, m, _, _ in terms)
    se = math.sqrt(sum((c * (hi - lo) / (2.0 * z)) ** 2 for c, _, lo, hi in terms))
    return {"mean": mean, "lo": mean - z * se, "hi": mean + z * se, "se": se}


# ---------------------------------------------------------------- verdicts

def ci_verdict(lo: float, hi: float, direction: str, threshold: float = 0.0) -> str:
    """What an interval says about a claim, ignoring how many seeds it rests on.

    ``greater``: the effect is above ``threshold`` — holds if lo > threshold, does not hold if hi < threshold.
    ``less``: mirrored. ``within``: |effect| < threshold (equivalence, threshold > 0) — holds if the whole CI is
    inside (−threshold, threshold), does not hold if it lies wholly outside. Anything else is inconclusive."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE
    if direction == "greater":
        return HOLDS if lo > threshold else FAILS if hi < threshold else INCONCLUSIVE
    if direction == "less":
        return HOLDS if hi < threshold else FAILS if lo > threshold else INCONCLUSIVE
    if threshold <= 0:
        raise ValueError("an equivalence ('within') claim needs a positive threshold")
    if -threshold < lo and hi < threshold:
        return HOLDS
    return FAILS if lo > threshold or hi < -threshold else INCONCLUSIVE


def claim_verdict(lo: float, hi: float, direction: str, threshold: float = 0.0, *, n_seeds: int,
                  min_seeds: int = 3, gaps: Sequence[str] = ()) -> tuple[str, str]:
    """(status, text) under the claims protocol.

    ``status`` is the CI's verdict only when the result meets the protocol: ≥ ``min_seeds`` training seeds and
    no ``gaps`` (e.g. "world v2", "split not sealed"); otherwise it is ``inconclusive`` and ``text`` says why
    and what the interval alone would say, so a single lucky seed is never reported as a holding claim."""
    seen = ci_verdict(lo, hi, direction, threshold)
    reasons = ([f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"] if n_seeds < min_seeds else []) + list(gaps)
    if not reasons:
        return seen, seen
    return INCONCLUSIVE, f"{INCONCLUSIVE} ({', '.join(reasons)}; this CI: {seen})"


def conjunction(statuses: Sequence[str]) -> str:
    """A claim made of parts ("each Improve step raises reward"): it fails if any part fails, holds if all hold."""
    if any(s == FAILS for s in statuses):
        return FAILS
    return HOLDS if statuses and all(s == HOLDS for s in statuses) else INCONCLUSIVE
