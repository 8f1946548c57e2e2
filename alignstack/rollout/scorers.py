"""The one reward interface: ``scorer(prompts, completions, **meta) -> list[float]``.

``prompts`` are lists of chat messages, ``completions`` the decoded assistant texts; ``meta``
carries ``examples`` (each row's :class:`~alignstack.tasks.Example`: the prompt plus every column of
its row, as TRL hands dataset columns to reward functions), ``completion_ids`` (token ids) and
``is_safety`` flags. Rule-based, verifier, reward-model and LLM-judge scorers all fit it, so every
method takes any of them (a user's callable by import path too).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Scorer(Protocol):
    def __call__(self, prompts: list[list[dict]], completions: list[str], **meta) -> list[float]: ...


class VerifierScorer:
    """A task verifier ``(example, response) -> float`` through the reward interface."""

    def __init__(self, verifier, name: str = "verifier"):
        self.verifier, self.name = verifier, name

    def __call__(self, prompts, completions, *, examples=None, **meta) -> list[float]:
        if examples is None:
            raise ValueError(f"{self.name}: a verifier needs each row's example (examples=...)")
        return [float(self.verifier(e, c)) for e, c in zip(examples, completions)]


def load_callable(spec: str) -> Callable:
    """``package.module:function`` → the callable (user reward functions; the current folder is searched)."""
    from alignstack.tasks.resolve import load_object
    if ":" not in spec:
        raise ValueError(f"expected 'module.path:function', got {spec!r}")
    fn = load_object(spec, "reward")
    if not callable(fn):
        raise ValueError(f"{spec!r} is not callable")
    return fn


def make_scorer(spec: str, verifier: str | None = None) -> Scorer:
    """Build a scorer from a config string (``verifier``, when given, wins: a task verifier spec
    resolved by :func:`alignstack.tasks.resolve`, e.g. ``exact``, ``numeric:0.01``, ``import:mod:fn``):

    - ``world:helpfulness`` / ``world:correct`` / ``world:safety`` — the world plug-in's ground truth
      (ablations; the 0/1 verifier ``world:correct`` is allowed for GRPO/RLOO/HIR); any registered
      plug-in name works the same way,
    - ``rm:PATH`` — a trained reward model,
    - ``llama2:HELP_PATH,SAFETY_PATH`` — Llama 2's helpfulness + safety combination,
    - ``import:package.module:function`` — any callable with the reward interface,
    - ``judge:PATH`` — d-RLAIF: a local judge model's normalised 1–10 expected score ∈ [−1, 1]
      (:class:`alignstack.feedback.judges.ScoringJudge`); a judge distilled as a rater (its ``judge_card.json``
      says ``kind: rating``) is asked for its chain of thought first, in its card's template.
    """
    from alignstack.tasks.resolve import plugin, resolve
    if verifier:
        return VerifierScorer(resolve(verifier, "verifier", key="verifier"), verifier)
    kind, _, arg = spec.partition(":")
    if kind == "import":
        return load_callable(arg)
    if kind == "judge":
        if not arg:
            raise ValueError(f"judge reward needs 'judge:PATH' (a local judge model), got {spec!r}")
        from alignstack.feedback.judges import (  # lazy: loads the judge model
            ScoringJudge,
            judge_card,
            local_backend,
        )
        card = judge_card(arg) or {}
        if card.get("kind") == "rating":  # a distilled rater grades each response in words before its score
            return ScoringJudge(local_backend(arg), card.get("template"), cot=bool(card.get("cot")),
                                cot_max_tokens=int(card.get("cot_max_tokens") or 64))
        return ScoringJudge(local_backend(arg))
    if kind in ("rm", "llama2"):
        from alignstack.models import heads  # lazy: loads torch/transformers models
        if kind == "rm":
            return heads.RewardModelScorer(arg)
        help_path, _, safety_path = arg.partition(",")
        if not safety_path:
            raise ValueError(f"llama2 reward needs 'llama2:HELP_PATH,SAFETY_PATH', got {spec!r}")
        return heads.Llama2Scorer(help_path, safety_path)
    if plugin(kind) is not None:
        return resolve(spec, "reward", key="reward")
    raise ValueError(f"unknown reward {spec!r}; expected world:FIELD, rm:PATH, llama2:HELP,SAFETY, "
                     "judge:PATH or import:module:function")
