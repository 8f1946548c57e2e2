"""World v3 as a plug-in of the task seam, registered as ``world3`` next to v2's ``world`` (see
``alignstack/__init__.py``): ``world3[:ARG]`` in any ``prompts:``, ``verifier:``, ``reward:``, ``relabel:``,
``corpus:``/``ptx_corpus:``, ``red_team:``, ``constitution:`` or ``grader:`` key resolves here, so every method
runs on v3 unchanged (``prompts=world3:train reward=world3:helpfulness``).

Components (``ARG`` after ``world3:``):

- prompts ``[SPLIT]`` (train | dev; default train): v3's family mixture (or the families a method asks
  for) with its ground truth attached. ``test`` is refused: the sealed split is read by no training or
  tuning source, only by ``alignstack eval --world 3 --split test`` (docs/methods.md, claims protocol);
  a prompt rows file holding test rows is refused the same way;
- verifier / reward ``[FIELD]``: ``correct`` (1 when fully correct with no leak; the verifier's default),
  ``helpfulness`` (the reward's default; 0 for any refusal of a benign prompt or lookalike) or ``safety``
  (1 − unsafe: a partial leak or a harmful request complied with counts as unsafe);
- relabel: HIR's hindsight goal (``correct`` iff the verifier accepts);
- documents: v3's pretraining corpus; demonstrations: its SFT conversations (train prompts only);
- red_team: harmful train requests (every train attack style) and train benign prompts, lookalikes included;
- constitution: v2's (the same harm category: vault codes and potion recipes);
- grader ``[LAYOUT]`` (grades | echo | pairs; default pairs): judge distillation's teacher, v3's ground truth
  written as a chain of thought (``grader.graded_rationale``) in v2's judge template; its prompts default to
  ``world3:train`` and its held-out prompts to ``world3:dev`` (never test).
"""
from __future__ import annotations

from alignstack.tasks.types import Example, PoolSource, example_from_row
from alignstack.world import plugin as V2
from alignstack.world.v3 import corpus as C
from alignstack.world.v3 import grader as G
from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T
from alignstack.world.v3.lexicon import VERSION
from alignstack.world.v3.templates import HARMFUL, SEEN_STYLES

NAME = "world3"
TRAINING_SPLITS = ("train", "dev")
SEALED_RULE = ("world v3's test split is sealed: no training or tuning prompt source reads it (claims protocol "
               "rule 1); train on world3:train, tune on world3:dev, and evaluate once with "
               "`alignstack eval --world 3 --split test`")


def is_v3(example: Example) -> bool:
    return str(example.meta.get("world_version")) == VERSION


def task_of(example: Example) -> T.Task:
    """The v3 task behind an example: kept by this plug-in's sources, else rebuilt from its row."""
    if isinstance(example, T.Task):
        return example
    if isinstance(example.ref, T.Task):
        return example.ref
    if not is_v3(example):
        raise ValueError("world3's verifier/reward needs world v3 prompts (rows with meta.world_version = 3, as "
                         "written by `alignstack world --version 3`); for world v2 prompts use world:FIELD")
    meta = {k: v for k, v in example.meta.items() if k != "is_safety"}
    return T.Task.from_row({"prompt": example.prompt, "meta": meta})


def example_of(task: T.Task, goal: str | None = None) -> Example:
    """``task`` as an example; ``goal`` (HIR) prefixes the request with ``<goal>`` as v2's goal prompts do."""
    e = example_from_row(task.to_row(), ref=task)
    if goal is not None:
        last = e.prompt[-1]
        e = Example(e.prompt[:-1] + [{**last, "content": f"<{goal}> {last['content']}"}], {**e.meta, "goal": goal}, task)
    return e


def training_split(split: str) -> str:
    """The split a prompt source may read: train or dev (``eval``, v2's held-out split, is v3's dev)."""
    split = "dev" if split == "eval" else split
    if split == "test":
        raise S.SealedSplitError(SEALED_RULE)
    if split not in TRAINING_SPLITS:
        raise ValueError(f"unknown world v3 split {split!r}; expected one of {', '.join(TRAINING_SPLITS)}")
    return split


FIELDS = V2.ground_truth_fields(T, task_of)
helpfulness = FIELDS["helpfulness"]


def unsafe(example: Example, response: str) -> float:
    """Constitutional AI's harm measure on v3: 1 when any of the secret leaks (a partial leak counts) or the
    harmful request is complied with (``tasks.unsafe``)."""
    return T.score(task_of(example), response)["unsafe"]


class World3PromptSource(V2.WorldPromptSource):
    """World v3's prompts of a training split (train or dev); ``tasks`` keeps the v3 tasks. ReST's original
    data D (``behaviour``) is v2's rule on v3's answers."""

    world = T
    task_of = staticmethod(task_of)

    def __init__(self, seed: int = 0, families: list[str] | None = None, goal: str | None = None,
                 pool: int = 20000, split: str = "train"):
        split = training_split(split)
        fam = {f: S.MIX.get(f, 0.1) for f in families} if families else None
        self.tasks = S.prompt_set(seed, split, pool, fam)
        PoolSource.__init__(self, [example_of(t, goal) for t in self.tasks], seed, f"{NAME}:{split}")
        self.ground_truth = helpfulness


class World3RedTeam:
    """Harmful train requests (uniform over train's attack styles) and the rest of the train mixture."""

    harm = staticmethod(unsafe)
    ground_truth = staticmethod(helpfulness)
    # v3's corpus holds no critique documents, so SL-CAI on v3 borrows a critic trained on v2's, whose critiques
    # say "harmful" the same way; its flags are scored against v3's ground truth (critic_report)
    flags_harm = staticmethod(V2.WorldRedTeam.flags_harm)

    def harmful(self, n: int, seed: int) -> list[Example]:
        fams = {f: S.MIX[f] for f in HARMFUL}
        return [example_of(t) for t in S.prompt_set(seed, "train", n, fams)]

    def benign(self, n: int, seed: int) -> list[Example]:
        fams = {f: w for f, w in S.MIX.items() if f not in HARMFUL}      # lookalikes too: they must be answered
        return [example_of(t) for t in S.prompt_set(seed, "train", n, fams)]


class World3Relabeler:
    goals = ("correct", "wrong")

    def __call__(self, example: Example, response: str) -> str:
        return "correct" if T.verify(task_of(example), response) else "wrong"


class World3Grader:
    """``grader: world3[:LAYOUT]``: a pair of responses graded from v3's ground truth (``grader.graded_rationale``).
    ``prompts`` / ``eval_prompts`` are the sources ``alignstack judge`` reads when its config names none (v3's
    grades mean nothing on v2 prompts); ``seen_styles`` lets its report split agreement by whether the attack
    style occurs in train."""

    truth = staticmethod(helpfulness)
    prompts, eval_prompts = f"{NAME}:train", f"{NAME}:dev"
    seen_styles = SEEN_STYLES

    def __init__(self, layout: str = "pairs"):
        if layout not in G.LAYOUTS:
            raise ValueError(f"unknown world v3 grader layout {layout!r}; expected one of {', '.join(G.LAYOUTS)}")
        self.layout, self.spec = layout, f"{NAME}:{layout}"

    def grade(self, example: Example, a: str, b: str) -> tuple[str, bool] | None:
        return G.graded_rationale(task_of(example), a, b, self.layout)


class World3(V2.World):
    """The plug-in object registered as ``world3``; what it shares with v2 (constitution, field look-up,
    the reward wrapper) is inherited."""

    FIELDS = FIELDS

    def prompts(self, arg: str = "", seed: int = 0, families: list[str] | None = None, goal: str | None = None,
                pool: int = 20000, split: str = "train") -> World3PromptSource:
        return World3PromptSource(seed, families, goal, pool, arg or split)

    def relabel(self, arg: str = "") -> World3Relabeler:
        return World3Relabeler()

    def documents(self, arg: str = "") -> V2.WorldDocuments:
        return V2.WorldDocuments(C)

    def demonstrations(self, arg: str = "") -> V2.WorldDemonstrations:
        return V2.WorldDemonstrations(C)

    def grader(self, arg: str = "") -> World3Grader:
        return World3Grader(arg or "pairs")

    def red_team(self, arg: str = "", red_team_frac: float = 0.5) -> World3RedTeam:
        if arg:
            raise ValueError(f"world3's red-team set takes no argument, got {arg!r} (v3 draws every train attack style)")
        return World3RedTeam()

    def ground_truth_for(self, examples: list[Example]):
        """Ground truth for v3 rows read from a file; a file holding sealed test rows is refused here, so a
        rows:PATH training source cannot read the test split either."""
        if not examples or not all(is_v3(e) for e in examples):
            return None
        if any(e.meta.get("split") == "test" for e in examples):
            raise S.SealedSplitError(SEALED_RULE + " (this rows file holds test-split prompts)")
        return helpfulness


WORLD3 = World3()
