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
from alignstack.world.tasks import harm, helpfulness  # noqa: F401 — ground truth of world feedback rows

MODES = ("ranking", "preference")


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

    def __post_init__(self):
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


def family_mix(safety_frac: float | None) -> dict | None:
    """The world's prompt mixture with harmful requests re-weighted to ``safety_frac``."""
    if safety_frac is None:
        return None
    benign = {f: w for f, w in C.MIX.items() if f not in T.HARMFUL}
    harmful = {f: w for f, w in C.MIX.items() if f in T.HARMFUL}
    sb, sh = sum(benign.values()), sum(harmful.values())
    mix = {f: (1 - safety_frac) * w / sb for f, w in benign.items()}
    mix.update({f: safety_frac * w / sh for f, w in harmful.items()})
    return {f: w for f, w in mix.items() if w > 0}


def world_tasks(cfg: CollectConfig) -> list[T.Task]:
    return C.prompt_set(cfg.seed, cfg.split, cfg.n_prompts, families=family_mix(cfg.safety_frac))


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


def task_meta(task: T.Task, cfg: CollectConfig, model_name: str | None) -> dict:
    row = task.to_row()
    return {**row["meta"], "is_safety": task.is_safety, "split": cfg.split, "model": model_name}


def label_responses(tasks: list[T.Task], texts: list[list[str]], temps: list[list[float]],
                    cfg: CollectConfig, model_name: str | None = None) -> list[dict]:
    """Annotate sampled responses (no model needed; pure world code) → validated rows."""
    ann = SimulatedAnnotator(AnnotatorConfig(noise=cfg.annotator_noise, error_rate=cfg.annotator_error_rate,
                                             guideline=cfg.annotator_guideline),
                             seed=cfg.seed, annotator_id=cfg.annotator_id)
    order_rng = random.Random(f"collect-order|{cfg.seed}|{cfg.annotator_id}")
    rows = []
    for task, resp, ts in zip(tasks, texts, temps):
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


def collect(model, tokenizer, cfg: CollectConfig, tasks: list[T.Task] | None = None,
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


def rows_tasks(rows: list[dict]) -> list[T.Task]:
    """World tasks of feedback rows (for ground-truth evaluation); rows need ``meta.family``."""
    out = []
    for i, r in enumerate(rows):
        m = r.get("meta") or {}
        if "family" not in m or "answer" not in m:
            raise ValueError(f"row {i + 1}: ground-truth evaluation needs world feedback rows "
                             "(meta.family and meta.answer)")
        out.append(T.Task.from_row({"prompt": r["prompt"], "is_safety": r.get("is_safety", m.get("is_safety")),
                                    "meta": {k: v for k, v in m.items()
                                             if k not in ("is_safety", "split", "model", "temperatures",
                                                          "shown_first")}}))
    return out
