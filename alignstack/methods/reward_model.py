"""Reward models (METHODS §3.1 InstructGPT, §4.2 Llama 2): a scalar head on the SFT model, trained
on human (here: simulated-annotator) rankings or strength-labelled comparisons.

The loop, in the papers' order:

1. **Feedback.** Rows from ``data.path`` (``ranking`` or ``preference`` JSONL/Parquet/datasets),
   validated at the boundary, or — on the built-in world — collected now: K SFT samples per
   train-split prompt at ``feedback.temperatures``, labelled by the simulated annotators; plus a
   dev-split set (Platt calibration of the safety RM) and an eval-split set (held-out metrics).
   ``feedback.world=3``: world v3's train prompts labelled by its annotator pool, calibration and
   metrics on v3's dev split (the sealed test split is never read), and the pool's inter-annotator
   agreement in ``metrics.json`` (``inter_annotator``).
2. **Targets.** ``target=helpfulness`` uses the annotators' preferences as they are.
   ``target=safety`` (Llama 2) trains on harmful-request data mixed 90/10 with helpfulness data;
   a response labelled safe is preferred to one labelled unsafe: preference pairs whose chosen
   response is unsafe and rejected safe are **dropped** (Llama 2), and a ranking is re-sorted
   stably so safe responses come first (the K-way form of the same rule — our choice, since a
   ranking cannot drop single pairs).
3. **Objective.** ``objective=ranking`` (InstructGPT Eq. 1): **one prompt is one batch element**;
   the K responses of every prompt in a microbatch go through the model in ONE forward pass, each
   response once, and the loss averages −logσ(r_i − r_j) over the prompt's C(K,2) pairs (ties
   dropped; ``losses.preference.ranking_loss``). ``objective=pairwise`` (Llama 2 Eq. 2): flat
   shuffled pairs, chosen and rejected concatenated in one forward, loss −logσ(r_c − r_r − m) with
   m from the strength label (``margin`` none | small | large, Table 27) or a row's own ``margin``;
   ranking rows flattened into all their pairs give InstructGPT's "flat" baseline that overfits.
4. **Shift / calibration** (METHODS §2, §4.3). Helpfulness RM: r ← r − mean r(SFT demonstrations)
   (InstructGPT). Safety RM: Platt scaling σ(a·s + b) fitted on held-out labelled responses, so
   σ(score) is P(safe) and Llama 2's 0.15 gate means what it says; never the demonstration shift.
   Both are stored as ``{"a", "b"}`` in ``model/calibration.json`` and applied by the scorer.
5. **Save** ``out/model``: a Hugging Face sequence-classification checkpoint (+ tokenizer,
   calibration, resolved config); ``out/metrics.json``; ``out/scores_hist.png``.
6. **Evaluate** on held-out rows: pair accuracy against the annotators' labels overall and by
   strength bucket (prompt-clustered 95% CIs), accuracy against ground-truth order, Spearman /
   Kendall correlation with ground-truth helpfulness, and for the safety RM ROC AUC against
   ground-truth safety and unsafe precision/recall at the 0.15 gate.

Defaults are the papers' where they transfer (1 epoch; AdamW β = (0.9, 0.95), eps 1e-5, weight
decay 0.1, clip 1.0, cosine to 10%); the learning rate (3e-4) and batch size (16) were tuned on the
world's dev split for the tiny model (the papers' 9e-6 / 1e-5 are for billions of parameters).
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alignstack.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)
from alignstack.data.collate import pad_right
from alignstack.data.formats import DataError, validate_row
from alignstack.data.render import ChatRenderer, Rendered, training_renderer
from alignstack.losses.preference import MARGIN_TABLES, margins_from_strengths, pairwise_loss, ranking_loss
from alignstack.models.heads import CALIBRATION_FILE, RewardModelScorer  # noqa: F401  (re-exported)

OBJECTIVES = ("ranking", "pairwise")
TARGETS = ("helpfulness", "safety")


@dataclass
class FeedbackConfig:
    """World feedback collected when ``data.path`` is unset (see ``feedback/collect.py``)."""
    sampler: str | None = None        # causal LM to sample from (default: model.path, the SFT model)
    mode: str | None = None           # ranking | preference (default: ranking for objective=ranking,
    #                                   preference for pairwise)
    n_prompts: int = 2000             # train split
    calib_prompts: int = 300          # dev split (safety RM: Platt calibration)
    eval_prompts: int = 500           # held-out metrics, from ``eval_split``
    eval_split: str = "eval"          # set to dev when tuning hyper-parameters (never tune on eval)
    k: int = 4
    k_max: int | None = None          # K drawn from k..k_max per prompt
    temperatures: list[float] = field(default_factory=lambda: [0.7, 1.3])
    max_new_tokens: int = 32
    safety_frac: float | None = None  # share of harmful requests (safety RM default 0.5; else the world's)
    annotator_noise: float = 0.1
    annotator_error_rate: float = 0.05
    annotator_guideline: str = "overall"  # overall | fulfil: Llama 2's helpfulness guideline (harm not judged)
    # world: the built-in world's version, 2 | 3. With 3: v3's train prompts labelled by its annotator pool
    # (annotator_noise / annotator_error_rate unused), calibration and metrics on v3's dev split (eval_split
    # eval = dev; test is sealed), ground truth and demonstrations from v3. Pipelines with `world: 3` set it.
    world: int = 2
    pool_size: int = 8                # world 3: annotators in the pool (each prompt labelled by one)
    pool_careless: int = 1            # world 3: careless members of the pool
    agreement_items: int = 50         # world 3: pairs every member compares for metrics.json's inter_annotator


@dataclass
class RewardModelConfig(RunConfig):
    out: str = "runs/reward_model"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    data: DataConfig = field(default_factory=DataConfig)   # data.path: training feedback rows
    calib_path: str | None = None     # held-out labelled rows for calibration (default: world dev feedback)
    calib_label_noise: float | None = None  # known flip rate of the calibration safety labels (None: the
    #                                   world annotator's error rate for world feedback, 0 for calib_path rows)
    eval_path: str | None = None      # held-out rows for metrics (default: world eval feedback)
    demos_path: str | None = None     # SFT demonstrations (messages rows) for the helpfulness shift
    n_demos: int = 1000               # world demonstrations used for the shift when demos_path is unset
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    objective: str = "ranking"        # ranking (K-way, InstructGPT) | pairwise (flat pairs, Llama 2)
    margin: str = "none"              # none | small | large (pairwise only; Llama 2 Table 27)
    target: str = "helpfulness"       # helpfulness | safety
    safety_help_frac: float = 0.1     # safety RM: share of helpfulness rows mixed in (Llama 2: 90/10)
    eval_batch_size: int = 128
    histogram: bool = True
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=3e-4, batch_size=16, epochs=1.0, warmup_steps=5, schedule="cosine", min_lr_ratio=0.1,
        betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1, grad_clip=1.0))

    def __post_init__(self):
        super().__post_init__()
        check_config(self)


def check_config(cfg: RewardModelConfig) -> None:
    """Validation run when the config is built (and again by ``train``)."""
    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"objective: expected one of {OBJECTIVES}, got {cfg.objective!r}")
    if cfg.target not in TARGETS:
        raise ConfigError(f"target: expected one of {TARGETS}, got {cfg.target!r}")
    if cfg.margin not in MARGIN_TABLES:
        raise ConfigError(f"margin: expected one of {sorted(MARGIN_TABLES)}, got {cfg.margin!r}")
    if cfg.objective == "ranking" and cfg.margin != "none":
        raise ConfigError("margin: the K-way ranking loss (objective=ranking) has no margin; "
                          "set margin=none, or objective=pairwise for Llama 2's margin loss")
    if cfg.feedback.mode not in (None, "ranking", "preference"):
        raise ConfigError(f"feedback.mode: expected ranking or preference, got {cfg.feedback.mode!r}")
    from alignstack.feedback.collect import check_world
    try:
        check_world(cfg.feedback.world)
    except ValueError as e:
        raise ConfigError(f"feedback.{e}") from None
    if cfg.data.path is None and str(cfg.feedback.world) == "3":   # v3's splits and pool, as collection will
        try:
            collect_config(cfg, "eval")
        except (ValueError, PermissionError) as e:   # PermissionError: v3's sealed test split
            raise ConfigError(f"feedback (world 3): {e}") from None
    if cfg.model.path is None:
        raise ConfigError("model.path: a reward model starts from a causal-LM checkpoint (the SFT model)")
    if cfg.dist.fsdp:   # a sharded model's forward needs every rank; calibration and evaluation run on one
        raise ConfigError("dist.fsdp: not supported for reward models yet (scored on the main rank after "
                          "training); train data parallel")
    if not 0.0 <= cfg.safety_help_frac < 1.0:
        raise ConfigError(f"safety_help_frac: expected a share in [0, 1), got {cfg.safety_help_frac}")
    if cfg.calib_label_noise is not None and not 0.0 <= cfg.calib_label_noise < 0.5:
        raise ConfigError(f"calib_label_noise: expected a flip rate in [0, 0.5), got {cfg.calib_label_noise}")


# --------------------------------------------------------------------------- feedback rows


def row_kind(row: dict) -> str:
    return "ranking" if "responses" in row or "ranking" in row else "preference"


def load_rows(path: str, kind: str | None = None) -> list[dict]:
    """Feedback rows from a file, validated (``ranking`` or ``preference``; auto from the first row)."""
    from alignstack.data.formats import resolve_kind
    from alignstack.data.sources import read_rows

    raw = read_rows(path)
    kind = resolve_kind(kind, raw[0], ("ranking", "preference"), file=path, what="reward-model rows")
    return [validate_row(kind, r, file=path, row_number=i + 1) for i, r in enumerate(raw)]


def collect_config(cfg: RewardModelConfig, name: str):
    """The collection config of one feedback set: ``train`` (train split), ``calib`` (dev) or ``eval``."""
    from alignstack.feedback.collect import CollectConfig

    fb = cfg.feedback
    split, n, seed = {"train": ("train", fb.n_prompts, cfg.seed), "calib": ("dev", fb.calib_prompts, cfg.seed + 1),
                      "eval": (fb.eval_split, fb.eval_prompts, cfg.seed + 2)}[name]
    mode = fb.mode or ("ranking" if cfg.objective == "ranking" else "preference")
    sfrac = fb.safety_frac if fb.safety_frac is not None else (0.5 if cfg.target == "safety" else None)
    return CollectConfig(n_prompts=n, split=split, seed=seed, mode=mode, k=fb.k, k_max=fb.k_max,
                         temperatures=list(fb.temperatures), max_new_tokens=fb.max_new_tokens, safety_frac=sfrac,
                         annotator_id=f"sim-{name}", annotator_noise=fb.annotator_noise,
                         annotator_error_rate=fb.annotator_error_rate, annotator_guideline=fb.annotator_guideline,
                         world=str(fb.world), pool_size=fb.pool_size, pool_careless=fb.pool_careless,
                         agreement_items=fb.agreement_items)


def collect_world_feedback(cfg: RewardModelConfig, tokenizer=None) -> dict[str, list[dict]]:
    """Train / dev (calibration) / eval feedback on world prompts, sampled from the SFT model."""
    from alignstack.feedback.collect import collect
    from alignstack.models.load import load_model, load_tokenizer

    path = cfg.feedback.sampler or cfg.model.path
    tok = tokenizer if tokenizer is not None else load_tokenizer(cfg.model.tokenizer or path)
    model = load_model(path)
    out = {}
    for name in ("train", "calib", "eval"):
        cc = collect_config(cfg, name)
        out[name] = collect(model, tok, cc, model_name=str(path)) if cc.n_prompts > 0 else []
    return out


def load_feedback(cfg: RewardModelConfig, tokenizer=None) -> dict[str, list[dict]]:
    if cfg.data.path is None:
        return collect_world_feedback(cfg, tokenizer)
    from alignstack.data.splits import eval_split
    train, held = eval_split(load_rows(cfg.data.path, cfg.data.kind), cfg.data,
                             lambda p: load_rows(p, cfg.data.kind), cfg.seed)   # data.eval_path / data.eval_frac
    rows = {"train": train}
    rows["calib"] = load_rows(cfg.calib_path) if cfg.calib_path else []
    rows["eval"] = load_rows(cfg.eval_path) if cfg.eval_path else held
    return rows


def _is_safety(row: dict) -> bool | None:
    v = row.get("is_safety", (row.get("meta") or {}).get("is_safety"))
    return None if v is None else bool(v)


def mix_for_target(rows: list[dict], target: str, help_frac: float, seed: int) -> list[dict]:
    """Helpfulness: all rows. Safety: all harmful-request rows + helpfulness rows making up
    ``help_frac`` of the mix (Llama 2's 90/10); rows without an ``is_safety`` tag count as safety data."""
    if target == "helpfulness":
        return rows
    safety = [r for r in rows if _is_safety(r) is not False]
    helpful = [r for r in rows if _is_safety(r) is False]
    n_help = min(len(helpful), round(len(safety) * help_frac / (1 - help_frac)))
    rng = random.Random(f"rm-mix|{seed}")
    return safety + rng.sample(helpful, n_help)


def safety_ranking(order: list[int], safe: list[bool] | None) -> list[int]:
    """Stable re-sort of a best-first ranking so responses labelled safe come before unsafe ones."""
    if safe is None:
        return list(order)
    return sorted(order, key=lambda i: not safe[i])


# --------------------------------------------------------------------------- training examples


@dataclass
class Example:
    """One batch element: a prompt's K responses with their rank positions (0 = best), or one pair
    (items = [chosen, rejected]) with its margin."""
    items: list[Rendered]
    ranks: list[int]
    margin: float = 0.0
    strength: str | None = None
    prompt_id: int = 0


def _render(renderer: ChatRenderer, prompt, response: str, where: dict) -> Rendered | None:
    from alignstack.data.formats import normalize_prompt

    return renderer.prompt_completion(normalize_prompt(prompt, "prompt", where), response, where)


def target_rows(rows: list[dict], target: str) -> list[dict]:
    """Rows re-labelled for ``target`` (safety: safe ≻ unsafe; see the module docstring)."""
    if target == "helpfulness":
        return rows
    out = []
    for r in rows:
        if row_kind(r) == "ranking":
            out.append({**r, "ranking": safety_ranking(r["ranking"], r.get("safe"))})
        elif r.get("chosen_safe") is False and r.get("rejected_safe") is True:
            continue  # Llama 2: pairs whose chosen response is unsafe and rejected safe are dropped
        else:
            out.append(r)
    return out


def build_examples(rows: list[dict], objective: str, margin: str, renderer: ChatRenderer,
                   source: str = "feedback") -> list[Example]:
    """K-way examples (objective=ranking) or flat pairs (objective=pairwise), tokenized once."""
    out: list[Example] = []
    for n, r in enumerate(rows):
        where = {"file": source, "row": n + 1}
        if row_kind(r) == "ranking":
            order = r["ranking"]
            items = [_render(renderer, r["prompt"], x, where) for x in r["responses"]]
            kept = [i for i in order if items[i] is not None]  # overlong=drop may remove responses
            if len(kept) < 2:
                continue
            if objective == "ranking":
                out.append(Example([items[i] for i in kept], list(range(len(kept))), prompt_id=n))
                continue
            if margin != "none":
                raise DataError(f"margin={margin} needs strength labels, but ranking rows have none; use "
                                "margin=none (or preference rows with 'strength')", file=source, row=n + 1)
            for a in range(len(kept)):
                for b in range(a + 1, len(kept)):
                    # flat pairs: each pair forwards both responses again (K−1 forwards per response)
                    out.append(Example([items[kept[a]], items[kept[b]]], [0, 1], prompt_id=n))
            continue
        items = [_render(renderer, r["prompt"], r["chosen"], where), _render(renderer, r["prompt"], r["rejected"], where)]
        if items[0] is None or items[1] is None:
            continue
        m = 0.0
        if objective == "pairwise" and margin != "none":
            if r.get("margin") is not None:
                m = float(r["margin"])
            elif r.get("strength") is None:
                raise DataError(f"margin={margin} needs a 'strength' label (or a numeric 'margin') on every row",
                                file=source, row=n + 1, field="strength")
            else:
                m = float(margins_from_strengths([r["strength"]], margin)[0])
        out.append(Example(items, [0, 1], m, r.get("strength"), n))
    return out


# --------------------------------------------------------------------------- the loss


def batch_loss(model, examples: list[Example], pad_id: int, objective: str, device=None):
    """Loss summed over the batch elements (prompts or pairs), their count, and stats.

    Every response of every example is in ONE padded batch and goes through the model once; the
    K-way loss then uses all C(K,2) pairs of a prompt from those K scores."""
    from alignstack.models.heads import sequence_scores

    flat = [it for ex in examples for it in ex.items]
    b = pad_right(flat, pad_id)
    scores = sequence_scores(model, b["input_ids"].to(device), b["attention_mask"].to(device))
    if objective == "ranking":
        K = max(len(ex.items) for ex in examples)
        B = len(examples)
        rewards = scores.new_zeros((B, K))
        ranks = torch.full((B, K), 10 ** 6, dtype=torch.long)
        mask = torch.zeros((B, K), dtype=torch.bool)
        pos = 0
        for i, ex in enumerate(examples):
            k = len(ex.items)
            rewards[i, :k] = scores[pos:pos + k]
            ranks[i, :k] = torch.tensor(ex.ranks)
            mask[i, :k] = True
            pos += k
        ranks, mask = ranks.to(scores.device), mask.to(scores.device)
        losses = ranking_loss(rewards, ranks, mask)
        with torch.no_grad():
            diff = rewards.unsqueeze(2) - rewards.unsqueeze(1)
            pair = (ranks.unsqueeze(2) < ranks.unsqueeze(1)) & mask.unsqueeze(2) & mask.unsqueeze(1)
            acc = ((diff > 0) & pair).sum(dim=(1, 2)).float() / pair.sum(dim=(1, 2)).clamp(min=1).float()
        return losses.sum(), float(B), {"pair_acc": float(acc.sum())}
    c, r = scores[0::2], scores[1::2]
    m = torch.tensor([ex.margin for ex in examples], dtype=scores.dtype, device=scores.device)
    losses = pairwise_loss(c, r, m)
    return losses.sum(), float(len(examples)), {"pair_acc": float((c > r).float().sum())}


def fit(model, tokenizer, examples: list[Example], cfg: RewardModelConfig, on_step=None):
    """The optimisation loop (the shared fit loop; one prompt or pair is one batch element, weight 1);
    returns the trainer holding the trained model and the per-step history."""
    from alignstack.train.supervised import fit_items

    if not examples:
        raise ValueError("no training examples (no feedback rows survived)")
    pad = tokenizer.pad_token_id
    return fit_items(model, tokenizer, examples,
                     lambda tr, mb: batch_loss(tr.model, mb, pad, cfg.objective, tr.acc.device), cfg.optim, cfg.out,
                     seed=cfg.seed, log=cfg.log, checkpoint=cfg.checkpoint, dist=cfg.dist, config_yaml=to_yaml(cfg),
                     desc=f"rm-{cfg.target}", on_step=on_step)


# --------------------------------------------------------------------------- shift, calibration


def world_demonstrations(cfg: RewardModelConfig) -> list[tuple[list[dict], str]]:
    """(prompt, response) demonstrations: ``demos_path`` rows or the world's SFT demonstrations."""
    if cfg.demos_path is not None:
        from alignstack.data.sources import read_rows
        rows = read_rows(cfg.demos_path, "messages")
        convs = [r["messages"] for r in rows]
    elif cfg.data.path is None:
        from alignstack.tasks import resolve
        world = "world3" if str(cfg.feedback.world) == "3" else "world"     # the world the feedback came from
        convs = resolve(world, "demonstrations", key="demos_path").conversations(cfg.n_demos, cfg.data.world_seed)
    else:
        return []
    out = []
    for c in convs:
        last = max(i for i, m in enumerate(c) if m["role"] == "assistant")
        out.append((c[:last], c[last]["content"]))
    return out[:cfg.n_demos]


def fit_calibration(cfg: RewardModelConfig, scorer: RewardModelScorer, calib_rows: list[dict]) -> dict:
    """Helpfulness: ``b = −mean r(demos)`` (InstructGPT). Safety: Platt (a, b) on held-out safe labels."""
    from alignstack.algos.rewards import platt_calibrate

    if cfg.target == "helpfulness":
        demos = world_demonstrations(cfg)
        if not demos:
            return {"a": 1.0, "b": 0.0, "kind": "none", "note": "no demonstrations (set demos_path) — no shift"}
        s = scorer.raw_scores([p for p, _ in demos], [r for _, r in demos])
        mu = sum(s) / len(s)
        return {"a": 1.0, "b": -mu, "kind": "demo_shift", "n": len(s),
                "note": "InstructGPT: r - mean r(SFT demonstrations), so demonstrations average 0"}
    prompts, resp, labels = [], [], []
    for r in calib_rows:
        if row_kind(r) == "ranking":
            if r.get("safe") is None:
                continue
            for x, s in zip(r["responses"], r["safe"]):
                prompts.append(r["prompt"])
                resp.append(x)
                labels.append(float(s))
        else:
            for key in ("chosen", "rejected"):
                if r.get(f"{key}_safe") is not None:
                    prompts.append(r["prompt"])
                    resp.append(r[key])
                    labels.append(float(r[f"{key}_safe"]))
    if not labels or len(set(labels)) < 2:
        raise DataError("the safety RM needs held-out responses labelled both safe and unsafe for Platt "
                        "calibration (calib_path rows with 'safe' / 'chosen_safe' labels)",
                        file=cfg.calib_path or "world:dev")
    s = torch.tensor(scorer.raw_scores(prompts, resp))
    eps = cfg.calib_label_noise
    if eps is None:
        from alignstack.feedback.collect import label_noise
        eps = 0.0 if cfg.calib_path else label_noise(collect_config(cfg, "calib"))
    a, b = platt_calibrate(s, torch.tensor(labels))
    out = {"a": a, "b": b, "kind": "platt", "n": len(labels), "n_unsafe": int(len(labels) - sum(labels)),
           "label_noise": eps, "note": "sigmoid(a*s + b) = P(safe); fitted on held-out annotator safety labels"}
    if eps > 0:
        a, b = platt_calibrate_noisy(s, torch.tensor(labels), eps, init=(a, b))
        out.update({"a": a, "b": b, "noise_aware": True, "plain_platt": {"a": out["a"], "b": out["b"]},
                    "note": f"sigmoid(a*s + b) = P(truly safe); labels assumed flipped at rate {eps:g}"})
    return out


def platt_calibrate_noisy(logits: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 200,
                          init: tuple[float, float] = (1.0, 0.0)) -> tuple[float, float]:
    """Platt scaling under symmetric label noise of known rate ``eps``: maximise the likelihood of
    the observed labels under P(label = 1 | s) = ε + (1 − 2ε)·σ(a·s + b), so σ(a·s + b) estimates the
    *clean* probability. Plain Platt on labels flipped at rate ε can never go below ε (nor above
    1 − ε) on average and flattens the slope, so a gate like Llama 2's σ < 0.15 may never fire.
    Departure from Platt (1999): the noise model (known ε) replaces his smoothed targets."""
    s = logits.detach().reshape(-1).to(torch.float64)
    y = labels.detach().reshape(-1).to(torch.float64)
    params = torch.tensor(list(init), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([params], lr=1.0, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        p = eps + (1 - 2 * eps) * torch.sigmoid(params[0] * s + params[1])
        loss = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
        loss.backward()
        return loss

    opt.step(closure)
    a, b = params.detach().tolist()
    return float(a), float(b)


# --------------------------------------------------------------------------- evaluation


def _pairs_for_eval(rows: list[dict], target: str, tasks) -> list[dict]:
    """Held-out (chosen, rejected) pairs with a strength bucket; responses referenced by index."""
    from alignstack.feedback import collect as T  # ground truth of feedback rows, by each row's world
    from alignstack.feedback.collect import strength_of_gap

    out = []
    for n, r in enumerate(rows):
        resp = r["responses"] if row_kind(r) == "ranking" else [r["chosen"], r["rejected"]]
        if row_kind(r) == "ranking":
            order = r["ranking"] if target == "helpfulness" else safety_ranking(r["ranking"], r.get("safe"))
            plist = [(order[a], order[b], None) for a in range(len(order)) for b in range(a + 1, len(order))]
        else:
            if target == "safety" and r.get("chosen_safe") is False and r.get("rejected_safe") is True:
                continue
            plist = [(0, 1, r.get("strength"))]
        for c, j, strength in plist:
            if strength is None and tasks is not None:
                strength = strength_of_gap(T.helpfulness(tasks[n], resp[c]) - T.helpfulness(tasks[n], resp[j]))
            out.append({"row": n, "c": c, "r": j, "strength": strength})
    return out


def evaluate(scorer: RewardModelScorer, rows: list[dict], target: str = "helpfulness") -> dict:
    """Held-out reward-model metrics (see the module docstring). World rows (v2 or v3, each scored by its own
    world: ``feedback.collect.helpfulness`` / ``unsafe``) add ground truth."""
    from alignstack.eval import rm_metrics as M
    from alignstack.feedback import collect as T  # ground truth of feedback rows, by each row's world
    from alignstack.feedback.collect import STRENGTH_BY_BUCKET

    if not rows:
        return {}
    try:
        from alignstack.feedback.collect import rows_tasks
        tasks = rows_tasks(rows)
    except ValueError:
        tasks = None
    resp = [r["responses"] if row_kind(r) == "ranking" else [r["chosen"], r["rejected"]] for r in rows]
    flat_p = [r["prompt"] for r, rs in zip(rows, resp) for _ in rs]
    flat_r = [x for rs in resp for x in rs]
    cal = scorer(flat_p, flat_r)
    scores, pos = [], 0
    for rs in resp:
        scores.append(cal[pos:pos + len(rs)])
        pos += len(rs)
    pairs = _pairs_for_eval(rows, target, tasks)
    ch = [scores[p["row"]][p["c"]] for p in pairs]
    rj = [scores[p["row"]][p["r"]] for p in pairs]
    cl = [p["row"] for p in pairs]
    res: dict = {"n_rows": len(rows), "n_responses": len(flat_r), "n_pairs": len(pairs),
                 "pair_accuracy": M.pair_accuracy(ch, rj, cl), "pair_loss": M.mean_pair_loss(ch, rj),
                 "score_mean": sum(cal) / len(cal),
                 "score_std": math.sqrt(sum((x - sum(cal) / len(cal)) ** 2 for x in cal) / max(len(cal) - 1, 1))}
    strengths = [p["strength"] for p in pairs]
    if all(s is not None for s in strengths):
        res["accuracy_by_strength"] = M.accuracy_by_bucket(ch, rj, strengths, cl, STRENGTH_BY_BUCKET)
        res["gap_by_strength"] = M.gap_by_bucket(ch, rj, strengths, cl, STRENGTH_BY_BUCKET)
    res["scores"] = cal
    if tasks is None:
        return res
    gt = [[T.helpfulness(t, x) for x in rs] for t, rs in zip(tasks, resp)]
    safe_gt = [[not T.unsafe(t, x) for x in rs] for t, rs in zip(tasks, resp)]
    flat_gt = [g for gs in gt for g in gs]
    flat_safe = [s for ss in safe_gt for s in ss]
    groups = [i for i, rs in enumerate(resp) for _ in rs]
    # ground-truth pair accuracy: every within-prompt pair with a GT difference, oriented by GT
    gch, grj, gcl = [], [], []
    for i, (ss, gs) in enumerate(zip(scores, gt)):
        for a in range(len(gs)):
            for b in range(a + 1, len(gs)):
                if gs[a] != gs[b]:
                    hi, lo = (a, b) if gs[a] > gs[b] else (b, a)
                    gch.append(ss[hi])
                    grj.append(ss[lo])
                    gcl.append(i)
    res["gt_pair_accuracy"] = M.pair_accuracy(gch, grj, gcl)
    res["spearman_gt"] = M.spearman(cal, flat_gt)
    res["kendall_gt"] = M.kendall_tau_b(cal, flat_gt)
    res["within_prompt_kendall_gt"] = M.grouped_kendall(cal, flat_gt, groups)
    benign = [i for i, t in enumerate(tasks) for _ in resp[i] if not t.is_safety]
    if benign:
        res["spearman_gt_benign"] = M.spearman([cal[j] for j in range(len(cal)) if not tasks[groups[j]].is_safety],
                                               [flat_gt[j] for j in range(len(cal)) if not tasks[groups[j]].is_safety])
    sp = [j for j in range(len(cal)) if tasks[groups[j]].is_safety]
    res["safety"] = {
        "auc": M.roc_auc(cal, flat_safe),
        "auc_safety_prompts": M.roc_auc([cal[j] for j in sp], [flat_safe[j] for j in sp]),
        "n_unsafe": sum(1 for s in flat_safe if not s), "n_safety_responses": len(sp),
    }
    if target == "safety":
        cut = math.log(0.15 / 0.85)  # Llama 2 gate σ(s) < 0.15 on the calibrated logit
        flagged = [x < cut for x in cal]
        res["safety"]["unsafe_at_0.15"] = M.precision_recall(flagged, [not s for s in flat_safe])
        p_safe = [1 / (1 + math.exp(-max(min(x, 50.0), -50.0))) for x in cal]
        res["safety"]["mean_p_safe"] = sum(p_safe) / len(p_safe)
        res["safety"]["actual_safe_rate"] = sum(flat_safe) / len(flat_safe)
    return res


# --------------------------------------------------------------------------- the method


def train(cfg: RewardModelConfig) -> dict:
    from alignstack.eval.rm_metrics import score_histogram
    from alignstack.models.heads import reward_model_from_causal_lm
    from alignstack.models.load import load_tokenizer, resolve_max_length, save_pretrained_atomic

    t0 = time.perf_counter()
    check_config(cfg)
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model.tokenizer or cfg.model.path, cfg.model.chat_template)
    resolve_max_length(cfg.model)
    rows = load_feedback(cfg, tokenizer if cfg.feedback.sampler is None else None)  # 1. feedback
    source = cfg.data.path or "world:feedback"
    train_rows = target_rows(mix_for_target(rows["train"], cfg.target, cfg.safety_help_frac, cfg.seed),
                             cfg.target)                                # 2. targets
    renderer = training_renderer(tokenizer, cfg.model, cfg.data)
    examples = build_examples(train_rows, cfg.objective, cfg.margin, renderer, source)
    renderer.warn_dropped(source)
    model = reward_model_from_causal_lm(cfg.model.path, tokenizer, cfg.seed, cfg.model.trust_remote_code)
    if cfg.model.lora.enabled:           # adapters on the trunk; the scalar head trains in full
        from alignstack.models.load import apply_lora
        model = apply_lora(model, cfg.model.lora, task_type="SEQ_CLS")
    t_fit = time.perf_counter()
    trainer, history = fit(model, tokenizer, examples, cfg)             # 3. objective
    fit_s = time.perf_counter() - t_fit
    out = Path(cfg.out)
    result: dict = {"steps": trainer.step_count, "examples": len(examples), "train_rows": len(train_rows),
                    "fit_s": fit_s, "train_loss": history[-1]["loss"] if history else float("nan")}
    if cfg.data.path is None and str(cfg.feedback.world) == "3":   # how much the pool that labelled it agrees
        from alignstack.feedback.collect import inter_annotator
        result["inter_annotator"] = inter_annotator(rows["train"], collect_config(cfg, "train"))
    if not trainer.is_main:
        return result
    rm = trainer.unwrapped.eval()
    if hasattr(rm, "peft_config"):       # save and score the merged model: a plain HF checkpoint
        rm.save_pretrained(str(out / "adapter"))
        rm = rm.merge_and_unload().eval()
    scorer = RewardModelScorer(None, cfg.eval_batch_size, cfg.model.max_length, tokenizer=tokenizer, model=rm)
    cal = fit_calibration(cfg, scorer, rows["calib"])                   # 4. shift / calibration
    scorer.a, scorer.b = cal["a"], cal["b"]
    save_pretrained_atomic(rm, tokenizer, out / "model", {CALIBRATION_FILE: json.dumps(cal, indent=2),
                                                          "alignstack_config.yaml": to_yaml(cfg)})  # 5. save
    metrics = evaluate(scorer, rows["eval"], cfg.target) if rows["eval"] else {}  # 6. evaluate
    scores = metrics.pop("scores", None)
    if cfg.histogram and scores:
        result["histogram"] = score_histogram({f"{cfg.target} RM ({cfg.objective}, margin {cfg.margin})": scores},
                                              out / "scores_hist.png", title="held-out reward-model scores")
    result.update({"calibration": cal, "eval": metrics, "wall_s": time.perf_counter() - t0})
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
    return result
