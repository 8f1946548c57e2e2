"""Simulated annotators: they stand in for people and make people's mistakes.

A learned reward model is only interesting if its teacher is imperfect in the ways real labelers
are, so the annotators see ``perceived = g + biases`` rather than the ground truth ``g``:

- **length bias**: longer answers look better (``length_bias`` per word, capped at 20 words);
- **politeness bias**: polite openers ("Sure!") look better even when the answer is wrong;
- **first-position bias**: in pairwise comparisons the first response gets a bonus;
- **noise**: Plackett–Luce rankings sort ``perceived + Gumbel(0, noise)`` (METHODS.md §12.3);
  comparisons pick by a logistic on the perceived gap, and ``error_rate`` flips a label outright.

**Guidelines.** ``overall`` (default) judges the world's helpfulness, which already counts a refusal
of a harmful request as the best answer. ``fulfil`` follows Llama 2's helpfulness guideline (how well
the response fulfils the request, safety judged separately by other annotators): on harmful requests
compliance is rated as fully helpful and a refusal as not helpful; benign prompts are judged as in
``overall``. A helpfulness RM trained on ``fulfil`` labels rewards harm, which is what Llama 2's
separate safety RM and combined reward are for.

Strength labels use **fixed cut-offs on the ground-truth gap** |g_a − g_b| (not quantiles, which
would drift between rounds): ≥ 0.5 significantly better, ≥ 0.25 better, ≥ 0.1 slightly better,
else negligibly better / unsure (Llama 2's four buckets).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from alignstack.world import tasks as T


@dataclass
class AnnotatorConfig:
    noise: float = 0.1             # Gumbel scale for rankings; logistic temperature for pairs
    error_rate: float = 0.05       # probability a pairwise choice or a safety label is flipped
    length_bias: float = 0.01      # perceived bonus per word (≤ 20 words)
    politeness_bias: float = 0.15  # perceived bonus for a polite opener
    position_bias: float = 0.05    # perceived bonus for the first of two responses
    cutoffs: tuple[float, float, float] = (0.5, 0.25, 0.1)
    guideline: str = "overall"     # overall | fulfil (Llama 2 helpfulness: fulfils the request, harm ignored)

    def __post_init__(self):
        if self.guideline not in GUIDELINES:
            raise ValueError(f"annotator guideline must be one of {GUIDELINES}, got {self.guideline!r}")


GUIDELINES = ("overall", "fulfil")
STRENGTH_BY_BUCKET = ("significantly_better", "better", "slightly_better", "negligibly_better")


def strength_of_gap(gap: float, cutoffs=(0.5, 0.25, 0.1)) -> str:
    gap = abs(gap)
    for c, name in zip(cutoffs, STRENGTH_BY_BUCKET):
        if gap >= c:
            return name
    return STRENGTH_BY_BUCKET[-1]


class SimulatedAnnotator:
    def __init__(self, cfg: AnnotatorConfig | None = None, seed: int = 0, annotator_id: str = "sim-0"):
        self.cfg = cfg or AnnotatorConfig()
        self.id = annotator_id
        self.rng = random.Random(f"annotator|{annotator_id}|{seed}")

    def quality(self, task: T.Task, response: str) -> float:
        """What the guideline asks the annotator to judge (before biases and noise)."""
        if self.cfg.guideline == "fulfil" and task.is_safety:
            return 1.0 if T.harm(task, response) > 0 else 0.0
        return T.helpfulness(task, response)

    def perceived(self, task: T.Task, response: str) -> float:
        c = self.cfg
        words = len(response.split())
        polite = any(p in response for p in T.POLITE)
        return self.quality(task, response) + c.length_bias * min(words, 20) + c.politeness_bias * polite

    def rank(self, task: T.Task, responses: list[str]) -> list[int]:
        """Plackett–Luce ranking (indices, best first) of perceived quality plus Gumbel noise."""
        return plackett_luce_order([self.perceived(task, r) for r in responses], self.cfg.noise, self.rng)

    def compare(self, task: T.Task, first: str, second: str) -> dict:
        """Llama 2 comparison: which of (first, second) is better, and by how much."""
        c = self.cfg
        d = self.perceived(task, first) + c.position_bias - self.perceived(task, second)
        p_first = 1.0 / (1.0 + math.exp(-d / max(c.noise, 1e-6)))
        pick_first = self.rng.random() < p_first
        if self.rng.random() < c.error_rate:
            pick_first = not pick_first
        gap = self.quality(task, first) - self.quality(task, second)
        return {"chosen": 0 if pick_first else 1, "strength": strength_of_gap(gap, c.cutoffs)}

    def is_safe(self, task: T.Task, response: str) -> bool:
        safe = T.harm(task, response) == 0
        return (not safe) if self.rng.random() < self.cfg.error_rate else safe


def plackett_luce_order(scores: list[float], noise: float, rng) -> list[int]:
    """Indices, best first, of ``scores`` plus Gumbel noise of scale ``noise`` (a Plackett–Luce draw)."""
    def gumbel():
        return -math.log(-math.log(min(max(rng.random(), 1e-12), 1 - 1e-12)))
    u = [x + noise * gumbel() for x in scores]
    return sorted(range(len(scores)), key=lambda i: -u[i])
