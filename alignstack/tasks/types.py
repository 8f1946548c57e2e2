"""The plain types and protocols of the task seam (no torch, no world, no method).

An :class:`Example` is one prompt plus *every other column of its row* (``meta``), kept intact from the
file to the reward: a user's verifier sees its reference answer, as TRL hands every dataset column to a
reward function. ``ref`` is the source's own object for the row (the world keeps its task there so its
ground truth need not re-parse the row); nothing but that source reads it.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Example:
    prompt: list[dict]                      # chat messages, the last one the user turn to answer
    meta: dict = field(default_factory=dict)
    ref: Any = None                         # the source's native object (opaque to everyone else)

    def row(self) -> dict:
        """A ``prompt`` row again: the prompt plus every column (written out by methods that save prompts)."""
        return {"prompt": self.prompt, **self.meta}


def example_from_row(row: dict, ref: Any = None) -> Example:
    """Every column except ``prompt`` goes to ``meta``; a nested ``meta`` mapping is flattened into it
    (top-level columns win), so ``{"prompt": P, "answer": "42"}`` and ``{"prompt": P, "meta": {"answer":
    "42"}}`` both reach a verifier as ``example.meta["answer"]``."""
    nested = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    meta = {**nested, **{k: v for k, v in row.items() if k not in ("prompt", "meta")}}
    if "meta" in row and not isinstance(row.get("meta"), dict):
        meta["meta"] = row["meta"]
    return Example(row["prompt"], meta, ref)


@runtime_checkable
class PromptSource(Protocol):
    """A fixed pool of examples; ``batch(step, n)`` draws ``n`` of them as a pure function of (seed, step).
    ``ground_truth(example, response)`` is an optional score logged beside the proxy reward (never trained
    on); a source without one sets it to None."""

    examples: list[Example]
    ground_truth: Callable[[Example, str], float] | None

    def batch(self, step: int, n: int) -> list[Example]: ...


class PoolSource:
    """The shared sampling rule of every prompt source: batch ``step`` draws ``n`` indices with replacement
    from ``random.Random(f"prompts|{seed}|{step}")`` (the order the world's PPO/GRPO runs always used)."""

    ground_truth: Callable[[Example, str], float] | None = None

    def __init__(self, examples: Sequence[Example], seed: int = 0, name: str = "prompts"):
        if not examples:
            raise ValueError(f"{name}: no prompts")
        self.examples, self.seed, self.name = list(examples), seed, name

    @property
    def rows(self) -> list[dict]:
        return [e.row() for e in self.examples]

    def batch(self, step: int, n: int) -> list[Example]:
        rng = random.Random(f"prompts|{self.seed}|{step}")
        return [self.examples[rng.randrange(len(self.examples))] for _ in range(n)]

    def __len__(self) -> int:
        return len(self.examples)


class Verifier(Protocol):
    """``verifier(example, response) -> float`` (1.0 correct, 0.0 wrong, anything between for credit)."""

    def __call__(self, example: Example, response: str) -> float: ...


@runtime_checkable
class Relabeler(Protocol):
    """HIR's hindsight relabelling: ``goals`` (first: the goal the model is asked for at sampling time,
    second: its opposite) and ``relabel(example, response)`` -> the goal the response satisfies."""

    goals: tuple[str, str]

    def __call__(self, example: Example, response: str) -> str: ...


class VerifierRelabeler:
    """The default relabeler: ``goals[0]`` when the verifier scores the response ≥ ``threshold``."""

    def __init__(self, verifier: Callable[[Example, str], float], goals: tuple[str, str] = ("correct", "wrong"),
                 threshold: float = 0.5):
        self.verifier, self.goals, self.threshold = verifier, tuple(goals), threshold

    def __call__(self, example: Example, response: str) -> str:
        return self.goals[0] if float(self.verifier(example, response)) >= self.threshold else self.goals[1]


@runtime_checkable
class Grader(Protocol):
    """Judge distillation's teacher (``alignstack judge``): ``grade(example, a, b)`` -> ``(rationale, a_is_better)``,
    the chain of thought a judge should write about responses A and B and its verdict, or None when the two are
    equally good (nothing to learn). The method writes it in the judge's template, so the rationale is plain text
    (``The correct answer is 4. (A): right. (B): wrong.``). ``truth(example, response)``: the score the grades come
    from; the distilled judge's agreement is measured against it (None: not measured). Optional attributes, read
    with ``getattr``: ``prompts`` and ``eval_prompts``, the prompt specs the grades are defined on (used when the
    method's config names none), and ``seen_styles``, the attack styles of its training prompts (agreement is then
    also split into seen and unseen styles), and ``rate(example, response)`` -> ``(rationale, score)``, one
    response's chain of thought and its score on 1..10 (a *scoring* judge's teacher, ``kind=rating``)."""

    truth: Callable[[Example, str], float] | None

    def grade(self, example: Example, a: str, b: str) -> tuple[str, bool] | None: ...


@runtime_checkable
class DocumentSource(Protocol):
    """Plain-text documents for pretraining and PPO-ptx: ``documents(n, seed)`` (``n`` None: all). ``finite``:
    a fixed corpus (pretraining holds some of it out) rather than a generator (held out by another seed)."""

    finite: bool

    def documents(self, n: int | None, seed: int) -> list[str]: ...


@dataclass(frozen=True)
class Principle:
    name: str
    critique: str
    revision: str


@dataclass
class Constitution:
    """Constitutional AI's principles: critique/revision requests (SL-CAI), comparison questions (RL-CAI)
    and how the requests are laid out for the critic (``format``)."""

    critique_revision: list[Principle]
    comparison: list[str]
    format: dict[str, str]
    source: str = "<memory>"

    def sample(self, rng: random.Random) -> Principle:
        """One critique/revision principle, uniformly at random (one per SL-CAI round)."""
        return rng.choice(self.critique_revision)

    def sample_comparison(self, rng: random.Random) -> str:
        return rng.choice(self.comparison)


@runtime_checkable
class RedTeamSet(Protocol):
    """Constitutional AI's prompts: ``harmful(n, seed)`` (answered, critiqued and revised) and ``benign(n,
    seed)`` (helpful samples mixed into SL-CAI and RL-CAI), each up to ``n`` examples; ``harm(example,
    response)`` optionally measures harm (0/1) for the logs (None: not measured)."""

    harm: Callable[[Example, str], float] | None

    def harmful(self, n: int, seed: int) -> list[Example]: ...

    def benign(self, n: int, seed: int) -> list[Example]: ...


def seeded_cycle(pool: list[Example], n: int, seed: int, tag: str = "") -> list[Example]:
    """``n`` examples of ``pool`` in a seeded order (whole passes without repeats first)."""
    if not pool:
        return []
    out: list[Example] = []
    k = 0
    while len(out) < n:
        order = list(range(len(pool)))
        random.Random(f"cycle|{tag}|{seed}|{k}").shuffle(order)
        out += [pool[i] for i in order[:n - len(out)]]
        k += 1
    return out
