"""The built-in world as a plug-in of the task seam (``alignstack.tasks``): ``world[:ARG]`` in any
``prompts:``, ``verifier:``, ``reward:``, ``relabel:``, ``ptx_corpus:``/``corpus:``, ``red_team_prompts:``, ``grader:``
or ``constitution:`` key resolves here. Every component reproduces exactly what the methods did when they
imported the world themselves (same seeds, same draw order), so world runs are unchanged.

Components (``ARG`` after ``world:``):

- prompts ``[SPLIT]`` (train | dev | eval; default train): the world's prompt mixture, or the families a
  method asks for, with the world's ground truth (helpfulness) attached;
- verifier / reward ``[FIELD]``: ``correct`` (0/1 exact match; the verifier's default), ``helpfulness``
  (the reward's default) or ``safety`` (1 − unsafe);
- relabel: HIR's hindsight goal (``correct`` iff the exact-match verifier accepts);
- documents: the pretraining corpus (``corpus_documents``); demonstrations: the SFT conversations;
- red_team: harmful requests (half in red-team phrasing) and benign prompts of the general mix;
- constitution: ``alignstack/world/constitution.yaml``;
- grader ``[LAYOUT]`` (grades | echo | pairs; default pairs): judge distillation's teacher, the world's ground
  truth written as a chain of thought (``corpus.graded_rationale``; ``pairs`` reached 0.784 agreement).
"""
from __future__ import annotations

import random
from pathlib import Path

from alignstack.tasks.types import Example, PoolSource, example_from_row
from alignstack.world import corpus as C
from alignstack.world import tasks as T

CONSTITUTION = Path(__file__).resolve().parent / "constitution.yaml"


def task_of(example: Example) -> T.Task:
    """The world task behind an example: kept by the world's own sources, else rebuilt from its row
    (a bare world task is accepted too: experiments pass them)."""
    if isinstance(example, T.Task):
        return example
    if isinstance(example.ref, T.Task):
        return example.ref
    m = example.meta
    if str(m.get("world_version")) == "3":      # v3 rows parse as v2 tasks but v2's ground truth would misjudge them
        raise ValueError("this is a world v3 prompt (meta.world_version = 3): score it with world3:FIELD, not world:FIELD")
    if "family" not in m or "answer" not in m:
        raise ValueError("the world's verifier/reward needs world prompts (rows with meta.family and "
                         "meta.answer); for your own prompts use exact, numeric:TOL, regex:… or import:mod:fn")
    meta = {k: v for k, v in m.items() if k != "is_safety"}
    return T.Task.from_row({"prompt": example.prompt, "meta": meta, "is_safety": m.get("is_safety")})


def example_of(task: T.Task) -> Example:
    return example_from_row(task.to_row(), ref=task)


def ground_truth_fields(tasks, task_of) -> dict:
    """A world's verifier / reward fields, ``(example, response) -> float`` on the task behind each example
    (``task_of``), from its tasks module's ``helpfulness``, ``verify`` and ``score`` (v3 shares the rule)."""
    def helpfulness(example: Example, response: str) -> float:
        return tasks.helpfulness(task_of(example), response)

    def correct(example: Example, response: str) -> float:
        return float(tasks.verify(task_of(example), response))

    def safety(example: Example, response: str) -> float:
        return 1.0 - tasks.score(task_of(example), response)["unsafe"]

    return {"helpfulness": helpfulness, "correct": correct, "safety": safety}


FIELDS = ground_truth_fields(T, task_of)
helpfulness, correct, safety = FIELDS["helpfulness"], FIELDS["correct"], FIELDS["safety"]


def harm(example: Example, response: str) -> float:
    return float(T.harm(task_of(example), response))


class WorldPromptSource(PoolSource):
    """The world's prompts of ``split``; ``tasks`` keeps the world tasks (experiments read them)."""

    world = T                            # the tasks module and row parser behind ``behaviour`` (v3 swaps both)
    task_of = staticmethod(task_of)

    def __init__(self, seed: int = 0, families: list[str] | None = None, goal: str | None = None,
                 pool: int = 20000, split: str = "train"):
        fam = {f: C.MIX.get(f, 0.1) for f in families} if families else None
        self.tasks = C.prompt_set(seed, split, pool, fam, goal=goal)
        super().__init__([example_of(t) for t in self.tasks], seed, f"world:{split}")
        self.ground_truth = helpfulness

    def behaviour(self, examples: list[Example], seed: int, noise: float) -> list[str]:
        """ReST's original data D: the world's noisy behaviour answers for ``examples`` (the reference
        answer, corrupted with probability ``noise``)."""
        rng = random.Random(f"rest-original|{seed}")
        out = []
        for e in examples:
            t = self.task_of(e)
            if not t.is_safety and rng.random() < noise:
                out.append(self.world._phrase(t, self.world.wrong_answer(t, rng)))
            else:
                out.append(self.world.good_response(t, rng))
        return out


class WorldRedTeam:
    """Harmful requests (``red_team_frac`` of them in red-team phrasing) and benign prompts of the general mix."""

    harm = staticmethod(harm)
    ground_truth = staticmethod(helpfulness)      # judged against by RL-CAI's judge report

    @staticmethod
    def flags_harm(critique: str) -> bool:
        """Whether a critic's critique calls the answer harmful (the world's critique documents say "The answer
        helps with a harmful request."): SL-CAI's critic is scored on it against ground-truth harm."""
        return "harmful" in critique.lower()

    def __init__(self, red_team_frac: float = 0.5):
        self.red_team_frac = red_team_frac

    def harmful(self, n: int, seed: int) -> list[Example]:
        fams = {f: C.MIX.get(f, 0.1) for f in T.HARMFUL}
        return [example_of(t) for t in C.prompt_set(seed, "train", n, fams, red_team_frac=self.red_team_frac)]

    def benign(self, n: int, seed: int) -> list[Example]:
        # prompt_set draws in a fixed order whatever n is, so any pool ≥ 2n (+ margin) gives the same prefix
        pool = C.prompt_set(seed, "train", 2 * n + 50)
        return [example_of(t) for t in pool if not t.is_safety][:n]


class WorldRelabeler:
    goals = ("correct", "wrong")

    def __call__(self, example: Example, response: str) -> str:
        return T.hindsight_goal(task_of(example), response)


class WorldDocuments:
    finite = False                      # a generator: any n documents of any seed (held-out = another seed)

    def __init__(self, corpus=C):       # v3 passes its own corpus module (same function names)
        self.corpus = corpus

    def documents(self, n: int | None, seed: int) -> list[str]:
        return self.corpus.corpus_documents(seed, 40000 if n is None else n)


class WorldDemonstrations:
    """The world's SFT demonstrations (helpful answers, refusals of harmful requests)."""

    def __init__(self, corpus=C):
        self.corpus = corpus

    def conversations(self, n: int, seed: int) -> list[list[dict]]:
        return [r["messages"] for r in self.corpus.sft_rows(seed, n)]


class _GroundTruthScorer:
    """The world's ground truth through the reward interface (evaluation and ablations; the 0/1
    ``correct`` verifier is allowed for GRPO/RLOO/HIR)."""

    def __init__(self, field: str, fields: dict | None = None):
        self.field, self.fn = field, (fields or FIELDS)[field]

    def __call__(self, prompts, completions, *, examples=None, **meta) -> list[float]:
        if examples is None:
            raise ValueError("the world's reward needs each row's example (examples=...)")
        return [self.fn(e, c) for e, c in zip(examples, completions)]


class WorldGrader:
    """``grader: world[:LAYOUT]``: a pair of responses graded from ground truth — the expected answer, each
    response's answer laid against it (``layout``), a grade of each, the verdict (``corpus.graded_rationale``)."""

    truth = staticmethod(helpfulness)

    def __init__(self, layout: str = "pairs"):
        if layout not in C.LAYOUTS:
            raise ValueError(f"unknown world grader layout {layout!r}; expected one of {', '.join(C.LAYOUTS)}")
        self.layout, self.spec = layout, f"world:{layout}"

    def grade(self, example: Example, a: str, b: str) -> tuple[str, bool] | None:
        return C.graded_rationale(task_of(example), a, b, self.layout)

    def rate(self, example: Example, response: str) -> tuple[str, int]:
        """One response's rationale and 1–10 score (``corpus.graded_rating``): a scoring judge's teacher."""
        return C.graded_rating(task_of(example), response, self.layout)


class World:
    """The plug-in object registered as ``world`` (see ``alignstack/__init__.py``)."""

    FIELDS = FIELDS                       # verifier / reward fields by name (world v3 has its own)

    def prompts(self, arg: str = "", seed: int = 0, families: list[str] | None = None, goal: str | None = None,
                pool: int = 20000, split: str = "train") -> WorldPromptSource:
        return WorldPromptSource(seed, families, goal, pool, arg or split)

    def verifier(self, arg: str = ""):
        return _field(arg or "correct", self.FIELDS)

    def reward(self, arg: str = ""):
        _field(arg or "helpfulness", self.FIELDS)
        return _GroundTruthScorer(arg or "helpfulness", self.FIELDS)

    def relabel(self, arg: str = "") -> WorldRelabeler:
        return WorldRelabeler()

    def documents(self, arg: str = "") -> WorldDocuments:
        return WorldDocuments()

    def demonstrations(self, arg: str = "") -> WorldDemonstrations:
        return WorldDemonstrations()

    def red_team(self, arg: str = "", red_team_frac: float = 0.5) -> WorldRedTeam:
        return WorldRedTeam(float(arg) if arg else red_team_frac)

    def constitution(self, arg: str = ""):
        from alignstack.tasks.builtin import load_constitution
        return load_constitution(CONSTITUTION)

    def grader(self, arg: str = "") -> WorldGrader:
        return WorldGrader(arg or "pairs")

    def ground_truth_for(self, examples: list[Example]):
        """Ground truth for rows read from a file when every row is a world task (logged, never trained on)."""
        ok = examples and all("family" in e.meta and "answer" in e.meta and str(e.meta.get("world_version")) != "3"
                              for e in examples)
        return helpfulness if ok else None


def _field(name: str, fields: dict | None = None):
    fields = fields or FIELDS
    if name not in fields:
        raise ValueError(f"unknown world field {name!r}; expected one of {', '.join(fields)}")
    return fields[name]


WORLD = World()
