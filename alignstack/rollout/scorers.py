"""The one reward interface: ``scorer(prompts, completions, **meta) -> list[float]``.

``prompts`` are lists of chat messages, ``completions`` the decoded assistant texts; ``meta``
may carry ``completion_ids`` (token ids), ``tasks`` (world tasks, for ground truth) and
``is_safety`` flags. Rule-based, reward-model and LLM-judge scorers all fit it, so every method
takes any of them (a user's callable by import path too).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from alignstack.world import tasks as T


class Scorer(Protocol):
    def __call__(self, prompts: list[list[dict]], completions: list[str], **meta) -> list[float]: ...


class GroundTruthScorer:
    """The world's ground truth (evaluation and ablations only — methods that learn from human
    feedback must never train on it). ``field``: helpfulness (safety-aware), correct (0/1
    verifier, allowed for GRPO/RLOO/HIR), or safety (1 − unsafe)."""

    FIELDS = ("helpfulness", "correct", "safety")

    def __init__(self, field: str = "helpfulness"):
        if field not in self.FIELDS:
            raise ValueError(f"unknown ground-truth field {field!r}; expected one of {self.FIELDS}")
        self.field = field

    def __call__(self, prompts, completions, *, tasks: list[T.Task] | None = None, **meta) -> list[float]:
        if tasks is None:
            raise ValueError("the ground-truth scorer needs meta['tasks'] (world prompts carry them)")
        if self.field == "correct":
            return [float(T.verify(t, c)) for t, c in zip(tasks, completions)]
        if self.field == "safety":
            return [1.0 - T.score(t, c)["unsafe"] for t, c in zip(tasks, completions)]
        return [T.helpfulness(t, c) for t, c in zip(tasks, completions)]


def load_callable(spec: str) -> Callable:
    """``package.module:function`` → the callable (user reward functions)."""
    if ":" not in spec:
        raise ValueError(f"expected 'module.path:function', got {spec!r}")
    mod, name = spec.split(":", 1)
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load reward function {spec!r}: {e}") from None
    if not callable(fn):
        raise ValueError(f"{spec!r} is not callable")
    return fn


def make_scorer(spec: str) -> Scorer:
    """Build a scorer from a config string:

    - ``world:helpfulness`` / ``world:correct`` / ``world:safety`` — ground truth (ablations; the
      0/1 verifier ``world:correct`` is allowed for GRPO/RLOO/HIR),
    - ``rm:PATH`` — a trained reward model,
    - ``llama2:HELP_PATH,SAFETY_PATH`` — Llama 2's helpfulness + safety combination,
    - ``import:package.module:function`` — any callable with the reward interface,
    - ``judge:PATH`` — d-RLAIF: a local judge model's normalised 1–10 expected score ∈ [−1, 1]
      (:class:`alignstack.feedback.judges.ScoringJudge`).
    """
    kind, _, arg = spec.partition(":")
    if kind == "world":
        return GroundTruthScorer(arg or "helpfulness")
    if kind == "import":
        return load_callable(arg)
    if kind == "judge":
        if not arg:
            raise ValueError(f"judge reward needs 'judge:PATH' (a local judge model), got {spec!r}")
        from alignstack.feedback.judges import ScoringJudge
        from alignstack.methods.rlaif import local_backend  # lazy: loads the judge model
        return ScoringJudge(local_backend(arg))
    if kind in ("rm", "llama2"):
        from alignstack.models import heads  # lazy: loads torch/transformers models
        if kind == "rm":
            return heads.RewardModelScorer(arg)
        help_path, _, safety_path = arg.partition(",")
        if not safety_path:
            raise ValueError(f"llama2 reward needs 'llama2:HELP_PATH,SAFETY_PATH', got {spec!r}")
        return heads.Llama2Scorer(help_path, safety_path)
    raise ValueError(f"unknown reward {spec!r}; expected world:FIELD, rm:PATH, llama2:HELP,SAFETY, "
                     "judge:PATH or import:module:function")
