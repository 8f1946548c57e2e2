"""World v3's splits by identity, and prompt sets drawn from them.

- A **problem** belongs to a split by a hash of its entity (vaults, potions, creatures: every
  question about one vault is in one split) or of its problem id (numbers, letter sequences):
  70% train, 10% dev, 20% test.
- A **template** belongs to the split of its most held-out part (:mod:`.templates`).
- A prompt of split ``s`` pairs a problem of ``s`` with a template of ``s``, so no test problem id
  and no test template id (no test-only attack style) ever occurs in train or dev.

The test split is **sealed**: :func:`prompt_set` refuses ``"test"`` unless called with
``sealed=True``, which only final evaluation (``alignstack eval --split test``) and final reports
pass. All tuning reads ``dev``.
"""
from __future__ import annotations

import hashlib
import random

from alignstack.world.v3 import lexicon as L
from alignstack.world.v3 import tasks as T
from alignstack.world.v3.templates import FAMILIES, HARMFUL, LOOKALIKE, SPLITS, templates_for

# the family mixture, the same in every split: 60% benign, 20% harmful, 20% benign lookalikes
MIX = {"arith": 0.14, "word": 0.12, "transform": 0.12, "compose": 0.1, "lookup": 0.12,
       "vault": 0.1, "potion": 0.1, "vault_lore": 0.1, "potion_lore": 0.1}
_ENTITY_POOLS = {"vault": L.VAULTS, "potion": L.POTIONS}


class SealedSplitError(PermissionError):
    """The test split was read without ``sealed=True``."""


def rng_for(*parts) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, ("world", L.VERSION, *parts))).encode()).hexdigest())


def split_of_key(key: str) -> str:
    b = int(hashlib.sha256(f"world{L.VERSION}|split|{key}".encode()).hexdigest(), 16) % 100
    return "train" if b < 70 else "dev" if b < 80 else "test"


def problem_split(problem_id: str) -> str:
    return split_of_key(T.entity_of(problem_id))


def entities_of(kind: str, split: str) -> list[str]:
    """Names of the vaults / potions / creatures whose questions belong to ``split``."""
    pool = L.CREATURES if kind == "creature" else _ENTITY_POOLS[kind]
    return [e.name for e in pool if split_of_key(f"{kind}:{e.name}") == split]


def draw(family: str, split: str, rng: random.Random) -> T.Task:
    """One prompt of ``family`` whose problem and template both belong to ``split``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    tpls = templates_for(family, split)
    if family in HARMFUL or family in LOOKALIKE:
        # uniform over attack styles first, so every style of the split is well represented
        style = rng.choice(sorted({t.style for t in tpls}))
        tpls = [t for t in tpls if t.style == style]
    tpl = rng.choice(tpls)
    for _ in range(10000):
        pid, params, answer = T.draw_problem(family, tpl.slot, rng)
        if problem_split(pid) == split:
            return T.render(tpl, pid, params, answer, split, rng)
    raise RuntimeError(f"could not draw a {split} problem of family {family!r}")


def prompt_set(seed: int, split: str, n: int, families: dict | None = None, *, sealed: bool = False) -> list[T.Task]:
    """``n`` prompts of ``split`` from the family mixture (deterministic in ``seed``). Reading
    ``"test"`` needs ``sealed=True``: only final evaluation and final reports may pass it."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "test" and not sealed:
        raise SealedSplitError("world v3's test split is sealed: tune on 'dev'; only final evaluation "
                               "(alignstack eval --split test) reads 'test', with sealed=True")
    fams = families or MIX
    unknown = sorted(set(fams) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown world v3 families {unknown}; expected some of {FAMILIES}")
    names, weights = list(fams), list(fams.values())
    rng = rng_for("prompts", seed, split, sorted(fams.items()))
    return [draw(rng.choices(names, weights)[0], split, rng) for _ in range(n)]


def sealed_test_set(seed: int, n: int, families: dict | None = None) -> list[T.Task]:
    """The sealed test split (final evaluation only)."""
    return prompt_set(seed, "test", n, families, sealed=True)
