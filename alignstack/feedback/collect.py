"""Feedback collection on the built-in world: sample K responses per prompt, let the simulated
annotators label them, write ``ranking`` or ``preference`` rows (METHODS §3.1, §4.1).

- **Sampling.** K responses per prompt from one model with the rollout engine (batched, KV
  cache). With several ``temperatures`` the K samples cycle through them (Llama 2 compared
  samples drawn at varied temperatures, e.g. 0.7 and 1.3); each response's temperature is kept in
  ``meta.temperatures``. K is fixed (``k``) or drawn per prompt from ``k..k_max`` (InstructGPT
  ranked 4–9).
- **Labels.** ``mode="ranking"``: the annotator ranks all K (Plackett–Luce on perceived quality) →
  one ``ranking`` row per prompt. ``mode="preference"``: the K responses are split into K//2
  disjoint pairs, each compared with a Llama 2 strength label → ``preference`` rows (the order
  of presentation is random, so the annotator's first-position bias does not always favour the
  same sample). Every response gets the annotator's safe/unsafe label (``safe`` list, or
  ``chosen_safe`` / ``rejected_safe``). Annotators make mistakes on purpose (world/annotators.py).
- **Rows** carry ``annotator`` and ``meta`` = the task's own data (family, answer, red_team, …, so
  ``Task.from_row(row)`` rebuilds the task for ground-truth evaluation) plus ``is_safety``,
  ``temperatures``, ``model``, ``split``; ``is_safety`` is also a top-level field (like prompt rows).
  Every row passes ``formats.validate_row``.
- **World v3** (``world="3"``): prompts come from v3's train or dev split (``eval`` is v3's dev; the
  sealed test split is refused), and labels from v3's annotator POOL (``world/v3/annotators.py``):
  each prompt is labelled by one member, assigned round-robin over a seeded shuffle of the pool, and
  the row's ``annotator`` is that member's id (``pool-3``). Rows keep v3's task meta
  (``world_version`` "3", split, problem and template ids, style), so :func:`rows_tasks` rebuilds v3
  tasks and :func:`helpfulness` / :func:`unsafe` score them by v3's ground truth.
  :func:`inter_annotator` has every pool member compare the same pairs and reports their agreement.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from alignstack.data.formats import validate_row
from alignstack.world import corpus as C
from alignstack.world import tasks as T
from alignstack.world.annotators import (  # noqa: F401 — STRENGTH_BY_BUCKET, strength_of_gap: re-exported
    GUIDELINES,
    STRENGTH_BY_BUCKET,
    AnnotatorConfig,
    SimulatedAnnotator,
    strength_of_gap,
)
from alignstack.world.v3 import annotators as A3
from alignstack.world.v3 import plugin as P3
from alignstack.world.v3 import splits as S3
from alignstack.world.v3 import tasks as T3
from alignstack.world.v3.lexicon import VERSION as V3

MODES = ("ranking", "preference")
WORLDS = ("2", "3")


@dataclass
class CollectConfig:
    n_prompts: int = 1000
    split: str = "train"              # world prompt split (train | dev | eval)
    seed: int = 0                     # prompt set, sampling and annotator seed
    mode: str = "ranking"             # ranking | preference
    k: int = 4                        # responses per prompt (ranking: 2..9; preference: pairs = k // 2)
    k_max: int | None = None          # draw K uniformly from k..k_max per prompt (InstructGPT: 4..9)
    temperatures: list[float] = field(default_factory=lambda: [1.0])
    max_new_tokens: int = 32
    batch_size: int = 256
    safety_frac: float | None = None  # share of harmful-request prompts (None: the world's mix, 0.2)
    annotator_id: str = "sim-0"
    annotator_noise: float = 0.1
    annotator_error_rate: float = 0.05
    annotator_guideline: str = "overall"  # overall | fulfil (Llama 2 helpfulness guideline; world/annotators.py)
    # world: "2" (default; one SimulatedAnnotator configured by the annotator_* fields) | "3" (v3's train or
    # dev prompts, labelled by v3's annotator pool; annotator_id/noise/error_rate are then unused)
    world: str = "2"
    pool_size: int = 8                # world 3: annotators in the pool; each prompt is labelled by one of them
    pool_careless: int = 1            # world 3: how many of them are careless (choose at random)
    agreement_items: int = 50         # world 3: pairs every pool member compares for inter_annotator (0 = none)

    def __post_init__(self):
        self.world = check_world(self.world)
        if self.world == V3:
            P3.training_split(self.split)      # train | dev (eval = dev); test: the sealed-split error
            if self.pool_size < 1 or not 0 <= self.pool_careless <= self.pool_size:
                raise ValueError(f"need pool_size >= 1 and 0 <= pool_careless <= pool_size, got pool_size="
                                 f"{self.pool_size}, pool_careless={self.pool_careless}")
            if self.agreement_items < 0:
                raise ValueError(f"agreement_items must be >= 0, got {self.agreement_items}")
        if self.annotator_guideline not in GUIDELINES:
            raise ValueError(f"annotator_guideline must be one of {GUIDELINES}, got {self.annotator_guideline!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        hi = self.k_max if self.k_max is not None else self.k
        if not 2 <= self.k <= hi <= 9:
            raise ValueError(f"need 2 <= k <= k_max <= 9 responses per prompt, got k={self.k}, k_max={self.k_max}")
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures must be a non-empty list of positive numbers, got {self.temperatures}")
        if self.safety_frac is not None and not 0.0 <= self.safety_frac <= 1.0:
            raise ValueError(f"safety_frac must be in [0, 1], got {self.safety_frac}")


def check_world(world) -> str:
    """The world version feedback is collected on, as a string ("2" or "3"); one line otherwise."""
    if str(world) not in WORLDS:
        raise ValueError(f"world must be one of {', '.join(WORLDS)} (the built-in world's version), got {world!r}")
    return str(world)


def family_mix(safety_frac: float | None, mix: dict = C.MIX, harmful_families=T.HARMFUL) -> dict | None:
    """A world's prompt mixture (v2's by default) with harmful requests re-weighted to ``safety_frac``."""
    if safety_frac is None:
        return None
    benign = {f: w for f, w in mix.items() if f not in harmful_families}
    harmful = {f: w for f, w in mix.items() if f in harmful_families}
    sb, sh = sum(benign.values()), sum(harmful.values())
    mix = {f: (1 - safety_frac) * w / sb for f, w in benign.items()}
    mix.update({f: safety_frac * w / sh for f, w in harmful.items()})
    return {f: w for f, w in mix.items() if w > 0}


def world_tasks(cfg: CollectConfig) -> list:
    """The prompts ``cfg`` describes: v2's split, or v3's train / dev split (never the sealed test split)."""
    if cfg.world == V3:
        mix = family_mix(cfg.safety_frac, S3.MIX, S3.HARMFUL)
        return S3.prompt_set(cfg.seed, P3.training_split(cfg.split), cfg.n_prompts, families=mix)
    return C.prompt_set(cfg.seed, cfg.split, cfg.n_prompts, families=family_mix(cfg.safety_frac))


def is_v3(task) -> bool:
    return isinstance(task, T3.Task)


def labellers(tasks: list, cfg: CollectConfig) -> list:
    """The annotator of each task. v2: one simulated annotator for all. v3: the pool, round-robin over a
    seeded shuffle, so every member labels about the same share and the assignment depends only on the seed."""
    if any(is_v3(t) != (cfg.world == V3) for t in tasks):    # one world's annotators never judge the other's tasks
        raise ValueError(f"CollectConfig(world={cfg.world!r}) got tasks of the other world version; "
                         "set world to the version of the tasks")
    if cfg.world != V3:
        ann = SimulatedAnnotator(AnnotatorConfig(noise=cfg.annotator_noise, error_rate=cfg.annotator_error_rate,
                                                 guideline=cfg.annotator_guideline),
                                 seed=cfg.seed, annotator_id=cfg.annotator_id)
        return [ann] * len(tasks)
    pool = A3.make_pool(cfg.pool_size, cfg.seed, cfg.pool_careless, cfg.annotator_guideline)
    order = list(range(len(pool)))
    random.Random(f"collect-pool|{cfg.seed}").shuffle(order)
    return [pool[order[i % len(pool)]] for i in range(len(tasks))]


def sample_responses(model, tokenizer, tasks: list[T.Task], cfg: CollectConfig,
                     ks: list[int]) -> tuple[list[list[str]], list[list[float]]]:
    """K_i responses for task i, sampled at the configured temperatures (one batched pass per T)."""
    import torch

    from alignstack.data.render import ChatRenderer
    from alignstack.models.tokenizer import stop_token_ids
    from alignstack.rollout.engine import SamplingConfig, sample

    r = ChatRenderer(tokenizer)
    prompt_ids = [r.prompt_ids(t.to_row()["prompt"]) for t in tasks]
    temps = [[cfg.temperatures[j % len(cfg.temperatures)] for j in range(k)] for k in ks]
    texts: list[list[str]] = [[""] * k for k in ks]
    stop = stop_token_ids(tokenizer)
    for ti, temp in enumerate(cfg.temperatures):
        slots = [(i, j) for i, k in enumerate(ks) for j in range(k) if temps[i][j] == temp]
        if not slots:
            continue
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + ti)
        g = sample(model, [prompt_ids[i] for i, _ in slots],
                   SamplingConfig(cfg.max_new_tokens, temp, batch_size=cfg.batch_size),
                   stop, tokenizer.pad_token_id, gen)
        for (i, j), text in zip(slots, g.texts(tokenizer)):
            texts[i][j] = text
    return texts, temps


def _nonempty(text: str) -> str:
    # validate_row rejects empty responses; an empty sample is still a (bad) response
    return text if text.strip() else "…"


def task_meta(task, cfg: CollectConfig, model_name: str | None) -> dict:
    row = task.to_row()
    # a v3 task knows its split (the plug-in maps "eval" to "dev"); v2 rows name the split they were asked for
    split = task.split if is_v3(task) else cfg.split
    return {**row["meta"], "is_safety": task.is_safety, "split": split, "model": model_name}


def label_responses(tasks: list, texts: list[list[str]], temps: list[list[float]],
                    cfg: CollectConfig, model_name: str | None = None) -> list[dict]:
    """Annotate sampled responses (no model needed; pure world code) → validated rows."""
    anns = labellers(tasks, cfg)
    order_rng = random.Random(f"collect-order|{cfg.seed}|{cfg.annotator_id}")
    rows = []
    for task, resp, ts, ann in zip(tasks, texts, temps, anns):
        resp = [_nonempty(x) for x in resp]
        prompt = task.to_row()["prompt"]
        meta = task_meta(task, cfg, model_name)
        if cfg.mode == "ranking":
            row = {"prompt": prompt, "responses": resp, "ranking": ann.rank(task, resp),
                   "safe": [ann.is_safe(task, x) for x in resp], "is_safety": task.is_safety,
                   "annotator": ann.id, "meta": {**meta, "temperatures": list(ts)}}
            rows.append(validate_row("ranking", row))
            continue
        for p in range(len(resp) // 2):
            a, b = 2 * p, 2 * p + 1
            if order_rng.random() < 0.5:  # presentation order (the annotator favours the first)
                a, b = b, a
            lab = ann.compare(task, resp[a], resp[b])
            c, r = (a, b) if lab["chosen"] == 0 else (b, a)
            row = {"prompt": prompt, "chosen": resp[c], "rejected": resp[r], "strength": lab["strength"],
                   "chosen_safe": ann.is_safe(task, resp[c]), "rejected_safe": ann.is_safe(task, resp[r]),
                   "is_safety": task.is_safety, "annotator": ann.id,
                   "meta": {**meta, "temperatures": [ts[c], ts[r]], "shown_first": "chosen" if c == a else "rejected"}}
            rows.append(validate_row("preference", row))
    return rows


def collect(model, tokenizer, cfg: CollectConfig, tasks: list | None = None,
            model_name: str | None = None) -> list[dict]:
    """Sample and label feedback for ``tasks`` (default: the world prompts ``cfg`` describes)."""
    tasks = world_tasks(cfg) if tasks is None else tasks
    rng = random.Random(f"collect-k|{cfg.seed}")
    hi = cfg.k_max if cfg.k_max is not None else cfg.k
    ks = [rng.randint(cfg.k, hi) for _ in tasks]
    texts, temps = sample_responses(model, tokenizer, tasks, cfg, ks)
    return label_responses(tasks, texts, temps, cfg, model_name)


def collect_from_path(model_path: str, cfg: CollectConfig) -> list[dict]:
    from alignstack.models.load import load_model, load_tokenizer

    tok, model = load_tokenizer(model_path), load_model(model_path)
    return collect(model, tok, cfg, model_name=str(model_path))


# what collection adds to a task's own meta; v3 tasks keep their split, v2 tasks have none
ROW_KEYS = ("is_safety", "split", "model", "temperatures", "shown_first")


def rows_tasks(rows: list[dict]) -> list:
    """World tasks of feedback rows (for ground-truth evaluation): v3 tasks for rows whose
    ``meta.world_version`` is "3", v2 tasks otherwise; rows need ``meta.family`` and ``meta.answer``."""
    out = []
    for i, r in enumerate(rows):
        m = r.get("meta") or {}
        if "family" not in m or "answer" not in m:
            raise ValueError(f"row {i + 1}: ground-truth evaluation needs world feedback rows "
                             "(meta.family and meta.answer)")
        if str(m.get("world_version")) == V3:
            meta = {k: v for k, v in m.items() if k not in ROW_KEYS or k == "split"}
            out.append(T3.Task.from_row({"prompt": r["prompt"], "meta": meta}))
            continue
        out.append(T.Task.from_row({"prompt": r["prompt"], "is_safety": r.get("is_safety", m.get("is_safety")),
                                    "meta": {k: v for k, v in m.items() if k not in ROW_KEYS}}))
    return out


# --------------------------------------------------------------------------- ground truth of feedback rows
# The one place that says which world's truth scores a task: every caller (the reward model's evaluation)
# goes through helpfulness / unsafe, so rows of either world are judged by their own world.
GROUND_TRUTH = {"2": (T.helpfulness, lambda task, response: T.harm(task, response) > 0),
                V3: (T3.helpfulness, T3.unsafe)}


def _truth(task):
    return GROUND_TRUTH[V3 if is_v3(task) else "2"]


def helpfulness(task, response: str) -> float:
    """Ground-truth helpfulness of ``response`` by the task's own world (v3: a refusal of a benign prompt is 0)."""
    return _truth(task)[0](task, response)


def unsafe(task, response: str) -> bool:
    """Ground-truth harm: v2 any leaked item; v3 any leaked share of the secret (lookalikes included) or a harmful
    request complied with (``world.v3.tasks.unsafe``)."""
    return _truth(task)[1](task, response)


# --------------------------------------------------------------------------- inter-annotator agreement


def shared_items(rows: list[dict], n: int) -> list[tuple]:
    """Up to ``n`` (task, first, second) pairs from feedback rows, one per prompt, in the order they were shown
    (a preference row's ``meta.shown_first``; a ranking row's first two responses)."""
    items, seen = [], set()
    for task, r in zip(rows_tasks(rows), rows):
        if len(items) >= n:
            break
        if task in seen:          # a preference collection has k // 2 rows per prompt: one item each
            continue
        seen.add(task)
        if "responses" in r:
            a, b = r["responses"][0], r["responses"][1]
        elif (r.get("meta") or {}).get("shown_first") == "rejected":
            a, b = r["rejected"], r["chosen"]
        else:
            a, b = r["chosen"], r["rejected"]
        items.append((task, a, b))
    return items


def pool_agreement(items: list[tuple], pool: list) -> dict:
    """Every annotator of ``pool`` compares every (task, first, second) item; their choices (0 = first) →
    ``annotators.agreement``: pairwise_agreement, fleiss_kappa, n_annotators, n_items."""
    return A3.agreement([[ann.compare(task, a, b)["chosen"] for task, a, b in items] for ann in pool])


def inter_annotator(rows: list[dict], cfg: CollectConfig) -> dict | None:
    """Inter-annotator agreement of a v3 collection's pool on ``cfg.agreement_items`` of its own pairs.

    A fresh copy of the pool (same profiles, same seed) does the shared labelling, so asking for agreement
    never changes the collected rows. None for v2 (one annotator), a pool of one, or no items."""
    if cfg.world != V3 or cfg.pool_size < 2 or cfg.agreement_items == 0:
        return None
    v3_rows = [r for r in rows if str((r.get("meta") or {}).get("world_version")) == V3]
    items = shared_items(v3_rows, cfg.agreement_items)
    if not items:
        return None
    return pool_agreement(items, A3.make_pool(cfg.pool_size, cfg.seed, cfg.pool_careless, cfg.annotator_guideline))


def label_noise(cfg: CollectConfig) -> float:
    """The mean rate at which the collection's safety labels are flipped: v2 the annotator's error rate; v3 the
    pool's mean (a careless member labels at random: 0.5). Partial leaks a non-expert misses are not counted."""
    if cfg.world != V3:
        return cfg.annotator_error_rate
    pool = A3.make_pool(cfg.pool_size, cfg.seed, cfg.pool_careless, cfg.annotator_guideline)
    return sum(0.5 if a.cfg.careless else a.cfg.error_rate for a in pool) / len(pool)
