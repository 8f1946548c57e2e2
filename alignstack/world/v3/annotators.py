"""World v3's annotator pool: people who differ, and a few who do not try.

Each :class:`PoolAnnotator` has v2's interface (``quality``, ``perceived``, ``rank``, ``compare``,
``is_safe``; :class:`alignstack.world.annotators.SimulatedAnnotator`) and v2's two guidelines
(``overall``; Llama 2's ``fulfil``), but its own profile:

- **bias profile**: per-annotator length, politeness and first-position biases;
- **expertise**: the chance an annotator checks the answer; otherwise they judge by the look of it
  (an answer-shaped reply looks 0.6 good, a refusal of a benign request 0) — and a non-expert sees a
  partial leak as safe;
- **reliability**: the noise of their choices and their error rate;
- **careless** annotators choose, rank and label at random.

Strength labels are **noisy**: the bucket comes from the annotator's *perceived* gap plus Gaussian
noise (``strength_noise``), not from the true gap. :func:`agreement` reports inter-annotator
agreement (mean pairwise agreement and Fleiss' κ) on items every annotator labelled.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from alignstack.world.annotators import GUIDELINES, STRENGTH_BY_BUCKET, plackett_luce_order, strength_of_gap
from alignstack.world.v3 import tasks as T


@dataclass
class AnnotatorProfile:
    noise: float = 0.1              # Gumbel scale for rankings; logistic temperature for pairs
    error_rate: float = 0.05        # probability a pairwise choice or a safety label is flipped
    length_bias: float = 0.01       # perceived bonus per word (≤ 20 words)
    politeness_bias: float = 0.15   # perceived bonus for a polite opener
    position_bias: float = 0.05     # perceived bonus for the first of two responses
    expertise: float = 1.0          # probability of checking the answer rather than its look
    strength_noise: float = 0.1     # sd of the noise on the gap a strength label is read from
    careless: bool = False
    cutoffs: tuple[float, float, float] = (0.5, 0.25, 0.1)
    guideline: str = "overall"      # overall | fulfil (Llama 2 helpfulness: fulfils the request, harm ignored)

    def __post_init__(self):
        if self.guideline not in GUIDELINES:
            raise ValueError(f"annotator guideline must be one of {GUIDELINES}, got {self.guideline!r}")
        if not 0.0 <= self.expertise <= 1.0:
            raise ValueError(f"annotator expertise must be in [0, 1], got {self.expertise}")


class PoolAnnotator:
    def __init__(self, profile: AnnotatorProfile | None = None, seed: int = 0, annotator_id: str = "pool-0"):
        self.cfg = profile or AnnotatorProfile()
        self.id = annotator_id
        self.rng = random.Random(f"annotator-v3|{annotator_id}|{seed}")

    def _checks(self) -> bool:
        return self.rng.random() < self.cfg.expertise

    def quality(self, task: T.Task, response: str) -> float:
        """What the guideline asks to judge, as this annotator sees it (before biases and noise)."""
        if self.cfg.guideline == "fulfil" and task.kind == "harmful":
            return T.leak(task, response)
        if self._checks():
            return T.helpfulness(task, response)
        # judged by its look: a refusal is right for a request that looks harmful, an answer otherwise
        refused = T.is_refusal(response)
        if task.kind == "harmful":
            return 1.0 if refused else 0.0
        return 0.0 if refused or not response.strip() else 0.6

    def perceived(self, task: T.Task, response: str) -> float:
        c = self.cfg
        polite = any(p in response for p in T.POLITE)
        return (self.quality(task, response) + c.length_bias * min(len(response.split()), 20)
                + c.politeness_bias * polite)

    def rank(self, task: T.Task, responses: list[str]) -> list[int]:
        """Plackett–Luce ranking (indices, best first) of perceived quality plus Gumbel noise."""
        if self.cfg.careless:
            order = list(range(len(responses)))
            self.rng.shuffle(order)
            return order
        return plackett_luce_order([self.perceived(task, r) for r in responses], self.cfg.noise, self.rng)

    def compare(self, task: T.Task, first: str, second: str) -> dict:
        """Llama 2 comparison: which of (first, second) is better, and by how much (noisy label)."""
        c = self.cfg
        if c.careless:
            return {"chosen": self.rng.randrange(2), "strength": self.rng.choice(STRENGTH_BY_BUCKET)}
        d = self.perceived(task, first) + c.position_bias - self.perceived(task, second)
        z = max(-60.0, min(60.0, d / max(c.noise, 1e-6)))     # clipped: a noise-free annotator would overflow exp
        p_first = 1.0 / (1.0 + math.exp(-z))
        pick_first = self.rng.random() < p_first
        if self.rng.random() < c.error_rate:
            pick_first = not pick_first
        gap = d + self.rng.gauss(0.0, c.strength_noise)
        return {"chosen": 0 if pick_first else 1, "strength": strength_of_gap(gap, c.cutoffs)}

    def is_safe(self, task: T.Task, response: str) -> bool:
        if self.cfg.careless:
            return self.rng.random() < 0.5
        lk = T.leak(task, response)
        # anyone sees an open attempt to give the secret away; a non-expert misses a partial leak hidden in an
        # otherwise safe answer ("I can't, but it starts with 6 5")
        safe = not T.unsafe(task, response) or (not T.disclosure(task, response) and lk < 1 and not self._checks())
        return (not safe) if self.rng.random() < self.cfg.error_rate else safe


def make_pool(n: int = 8, seed: int = 0, n_careless: int = 1, guideline: str = "overall") -> list[PoolAnnotator]:
    """``n`` annotators with profiles drawn deterministically from ``seed``; the last ``n_careless``
    are careless."""
    if not 0 <= n_careless <= n:
        raise ValueError(f"make_pool: n_careless={n_careless} must be between 0 and n={n}")
    rng = random.Random(f"annotator-pool-v3|{seed}")
    pool = []
    for i in range(n):
        prof = AnnotatorProfile(noise=rng.uniform(0.05, 0.3), error_rate=rng.uniform(0.0, 0.1),
                                length_bias=rng.uniform(0.0, 0.03), politeness_bias=rng.uniform(0.0, 0.3),
                                position_bias=rng.uniform(0.0, 0.1), expertise=rng.uniform(0.4, 1.0),
                                strength_noise=rng.uniform(0.05, 0.25), careless=i >= n - n_careless,
                                guideline=guideline)
        pool.append(PoolAnnotator(prof, seed, f"pool-{i}"))
    return pool


def fleiss_kappa(counts: list[list[int]]) -> float:
    """Fleiss' κ from per-item category counts (every item rated by the same number of raters)."""
    if not counts:
        raise ValueError("fleiss_kappa: no items")
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        raise ValueError("fleiss_kappa: every item needs the same number (≥ 2) of ratings")
    n_items = len(counts)
    p_item = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts]
    p_bar = sum(p_item) / n_items
    p_cat = [sum(row[j] for row in counts) / (n_items * n) for j in range(len(counts[0]))]
    p_e = sum(p * p for p in p_cat)
    return 1.0 if p_e == 1.0 else (p_bar - p_e) / (1.0 - p_e)


def agreement(labels: list[list[int]]) -> dict:
    """Inter-annotator agreement; ``labels[a][i]`` is annotator ``a``'s label of item ``i``."""
    if len(labels) < 2 or len({len(row) for row in labels}) != 1:
        raise ValueError("agreement: need ≥ 2 annotators who labelled the same items")
    n_items = len(labels[0])
    cats = sorted({x for row in labels for x in row})
    counts = [[sum(row[i] == c for row in labels) for c in cats] for i in range(n_items)]
    pairs = [(a, b) for a in range(len(labels)) for b in range(a + 1, len(labels))]
    pairwise = sum(labels[a][i] == labels[b][i] for a, b in pairs for i in range(n_items)) / (len(pairs) * n_items)
    return {"pairwise_agreement": pairwise, "fleiss_kappa": fleiss_kappa(counts), "n_annotators": len(labels),
            "n_items": n_items}
