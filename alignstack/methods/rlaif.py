"""RLAIF (Lee et al. 2023, arXiv 2309.00267; METHODS.md §10): preferences from an AI labeler.

Two modes (``mode``):

- ``distilled`` (canonical RLAIF): sample two responses per prompt from the policy, ask the
  pairwise judge for ``p = P(A ≻ B)`` (both presentation orders averaged against position bias),
  train a reward model on the soft labels with
  ``L = −q·log σ(r(x,y1) − r(x,y2)) − (1−q)·log σ(r(x,y2) − r(x,y1))``
  (:func:`alignstack.losses.preference.soft_label_loss`), then RL against it through the one reward
  interface (``rm:PATH``).
- ``direct`` (d-RLAIF): no reward model; the scoring judge rates every rollout 1–10 and its
  expected score ``s = Σ i·P(i)`` rescaled to ``(s − 5.5)/4.5`` ∈ [−1, 1] is the reward
  (``judge:PATH`` in :func:`alignstack.rollout.scorers.make_scorer`).

The judge's systematic errors are measured on the labelled pairs against the world's ground truth
and written to ``judge_report.json`` (never hidden): agreement with and without order averaging,
position bias (mean first-order P(A) − 0.5 and the share of pairs whose verdict flips with the
order), length bias (how often the longer response is preferred vs how often it is better in truth)
and agreement per family and per attack style (world v3's harmful and lookalike prompts).

Departures from the paper: the RL step is RLOO or PPO from this repo (``rl.algorithm``; the paper
uses REINFORCE with a learned value baseline); the judge is a tiny model trained on the world's
judgement/rating documents (the fixture's pretrained model), not PaLM 2; no chain of thought by
default (``cot``; the world model never learned rationales).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alignstack.config import (
    CheckpointConfig,
    ConfigError,
    DistConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)

MODES = ("distilled", "direct")
RL_ALGOS = ("rloo", "grpo", "ppo")


@dataclass
class JudgeConfig:
    path: str = "runs/pretrain/model"          # local causal LM that learned the world's judgement documents
    template: str | None = None                # pairwise template (default: the backend's)
    rating_template: str | None = None
    both_orders: bool = True                   # average both presentation orders (position-bias fix)
    cot: bool = False
    cot_max_tokens: int = 128                  # room for a rationale that grades both responses
    batch_size: int = 64


@dataclass
class RLConfig:
    algorithm: str = "rloo"                    # rloo | grpo | ppo
    steps: int = 60
    prompts_per_step: int = 16
    num_generations: int = 4
    beta: float = 0.05
    lr: float = 2e-5
    max_new_tokens: int = 24


@dataclass
class RLAIFConfig(RunConfig):
    out: str = "runs/rlaif"
    mode: str = "distilled"                    # distilled | direct
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    prompts: str | None = None                 # world | rows:PATH | import:mod:name (labelled pairs and RL); None: world
    n_pairs: int = 2000                        # AI-labelled comparisons (train split prompts)
    temperature: float = 1.0
    max_new_tokens: int = 24
    rm_optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=3e-4, batch_size=16, epochs=1.0, warmup_steps=5, schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0))
    rl: RLConfig = field(default_factory=RLConfig)

    def __post_init__(self):
        super().__post_init__()
        check_config(self)


def check_config(cfg: RLAIFConfig) -> None:
    """Validation run when the config is built (and again by ``train``)."""
    from alignstack.tasks.resolve import check_spec
    check_spec(cfg.prompts, "prompts", "prompts")
    for k in ("template", "rating_template"):
        t = getattr(cfg.judge, k)
        if t is not None and ("/" in t or t.endswith(".txt")) and not Path(t).is_file():
            raise ConfigError(f"judge.{k}: template file not found: {t}")
    if cfg.mode not in MODES:
        raise ConfigError(f"mode: expected one of {MODES}, got {cfg.mode!r}")
    if not (isinstance(cfg.judge.cot_max_tokens, int) and cfg.judge.cot_max_tokens > 0):
        raise ConfigError(f"judge.cot_max_tokens: expected an integer > 0, got {cfg.judge.cot_max_tokens!r}")
    if cfg.rl.algorithm not in RL_ALGOS:
        raise ConfigError(f"rl.algorithm: expected one of {RL_ALGOS}, got {cfg.rl.algorithm!r}")
    if cfg.model.path is None:
        raise ConfigError("model.path: RLAIF starts from a policy checkpoint (the SFT model)")
    if cfg.mode == "distilled" and cfg.n_pairs < 2:
        raise ConfigError(f"n_pairs: need at least 2 labelled pairs, got {cfg.n_pairs}")


# --------------------------------------------------------------------------- judge + labelling


def local_backend(path: str, batch_size: int = 64):
    from alignstack.feedback.judges import local_backend as backend
    return backend(path, batch_size)


def sample_pairs(model, tokenizer, examples, temperature: float, max_new_tokens: int, seed: int) -> list[dict]:
    """Two samples per prompt from the policy → rows ``{prompt, completions: [a, b], task}`` (``task``: the
    example behind the prompt)."""
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import complete
    from alignstack.tasks import Example, example_from_row
    # a source's own objects (e.g. the world's tasks, as experiments pass them) become examples via their row
    examples = [e if isinstance(e, Example) else example_from_row(e.to_row(), ref=e) for e in examples]
    sc = SamplingConfig(max_new_tokens, temperature)
    prompts = [e.prompt for e in examples]
    a = complete(model, tokenizer, prompts, sc, seed)
    b = complete(model, tokenizer, prompts, sc, seed + 1)
    return [{"prompt": p, "completions": [x, y], "task": e} for e, p, x, y in zip(examples, prompts, a, b)]


_WORLD = object()


def _attr(task, name: str):
    """A world task's own attribute, else the example's column (rows keep every column in ``meta``)."""
    return getattr(task, name, None) or (getattr(task, "meta", None) or {}).get(name)


def grouped_agreement(items) -> dict[str, dict]:
    """Agreement per group from ``(group, agreed)`` items (``agreed`` 1.0 or 0.0; a None group is left out):
    ``{group: {n, agreement, ci95}}``, groups sorted, the CI the normal one of the overall agreement."""
    groups: dict[str, list[float]] = {}
    for g, ok in items:
        if g is not None:
            groups.setdefault(str(g), []).append(float(ok))
    out = {}
    for g, v in sorted(groups.items()):
        ci = _mean_ci(v)
        out[g] = {"n": ci["n"], "agreement": ci["mean"], "ci95": ci["ci95"]}
    return out


def judge_report(tasks, pairs_a: list[str], pairs_b: list[str], results: list[dict],
                 truth=_WORLD, seen_styles=None) -> dict:
    """Systematic errors of a pairwise judge against ground truth (``truth(example, response)``; default:
    the world's helpfulness; None: no ground truth — only position bias and order flips are reported).
    Pairs with tied truth are skipped for agreement. Agreement is also split by family and by attack style
    (``per_style_agreement``: the task's ``style``, harmful and lookalike prompts of world v3; prompts without one
    are left out), and, given ``seen_styles`` (the styles training prompts use), into
    ``agreement_seen_vs_unseen_styles``."""
    if truth is _WORLD:
        from alignstack.tasks import resolve
        truth = resolve("world:helpfulness", "verifier")
    agree_avg, agree_first, flips, first_p = [], [], 0, []
    longer_pref, longer_better = [], []
    fam: list[tuple[str, float]] = []
    style: list[tuple[str | None, float]] = []
    for t, a, b, d in zip(tasks, pairs_a, pairs_b, results):
        first_p.append(d["p_a_first_order"])
        if d.get("p_a_second_order") is not None:
            flips += (d["p_a_first_order"] >= 0.5) != (d["p_a_second_order"] >= 0.5)
        if truth is None:
            continue
        ga, gb = truth(t, a), truth(t, b)
        if ga == gb:
            continue
        ok = float((d["p_a"] >= 0.5) == (ga > gb))
        agree_avg.append(ok)
        agree_first.append(float((d["p_a_first_order"] >= 0.5) == (ga > gb)))
        fam.append((_attr(t, "family") or "all", ok))
        style.append((_attr(t, "style"), ok))
        if len(a) != len(b):
            longer_pref.append(float((d["p_a"] >= 0.5) == (len(a) > len(b))))
            longer_better.append(float((ga > gb) == (len(a) > len(b))))
    n = len(results)
    both = results and results[0].get("p_a_second_order") is not None
    report = {
        "pairs": n, "decided_pairs": len(agree_avg),
        "agreement": _mean_ci(agree_avg),
        "agreement_first_order_only": _mean_ci(agree_first),
        "position_bias_mean_p_first": sum(first_p) / max(n, 1) - 0.5,
        "order_flip_rate": flips / max(n, 1) if both else None,
        "length_bias": {"prefers_longer": _mean_ci(longer_pref), "longer_is_better_in_truth": _mean_ci(longer_better)},
        "per_family_agreement": grouped_agreement(fam),
        "per_style_agreement": grouped_agreement(style),
    }
    if seen_styles is not None:
        seen = set(seen_styles)
        report["agreement_seen_vs_unseen_styles"] = {
            k: _mean_ci([ok for s, ok in style if s is not None and (s in seen) == (k == "seen")])
            for k in ("seen", "unseen")}
    return report


def _mean_ci(xs: list[float]) -> dict:
    """``alignstack.eval.stats.mean_ci`` in the judge reports' shape (``ci95`` as a pair)."""
    from alignstack.eval.stats import mean_ci
    r = mean_ci(xs, z=1.96)         # the reports' hand-checked values use 1.96
    return {"mean": r["mean"], "ci95": [r["lo"], r["hi"]], "n": r["n"]}


def label(cfg: RLAIFConfig, policy, tokenizer, principles: list[str] | None = None,
          tasks: list | None = None, truth=None) -> tuple[list[dict], dict]:
    """AI-labelled preference rows (with ``soft_label``) and the judge's error report, on the examples
    ``tasks`` (judged against ``truth``) or the first ``cfg.n_pairs`` of ``cfg.prompts`` (default: world
    train prompts of the general mix, judged against the world's ground truth)."""
    from alignstack.feedback.judges import PairwiseJudge, judge_card
    from alignstack.rollout.experience import prompt_source

    card = judge_card(cfg.judge.path)
    if card and card.get("cot") and not cfg.judge.cot:
        print(f"[judge] warning: {cfg.judge.path} was distilled to write a rationale before its verdict "
              "(judge_card.json); without judge.cot=true it answers without one", flush=True)
    if tasks is None:
        src = prompt_source(cfg.prompts, cfg.seed, pool=cfg.n_pairs)
        tasks, truth = src.examples[:cfg.n_pairs], src.ground_truth
    rows = sample_pairs(policy, tokenizer, tasks, cfg.temperature, cfg.max_new_tokens, cfg.seed)
    judge = PairwiseJudge(local_backend(cfg.judge.path, cfg.judge.batch_size), cfg.judge.template,
                          both_orders=cfg.judge.both_orders, cot=cfg.judge.cot, principles=principles,
                          cot_max_tokens=cfg.judge.cot_max_tokens)
    a = [r["completions"][0] for r in rows]
    b = [r["completions"][1] for r in rows]
    res = judge.judge([r["prompt"] for r in rows], a, b)
    report = judge_report(tasks, a, b, res, truth)
    if card is not None:                  # a distilled judge: how it was made and its held-out agreement
        report["judge_model"] = card
    out = []
    for r, x, y, d in zip(rows, a, b, res):
        a_wins = d["p_a"] >= 0.5
        out.append({"prompt": r["prompt"], "chosen": x if a_wins else y, "rejected": y if a_wins else x,
                    "soft_label": d["p_a"] if a_wins else 1.0 - d["p_a"], "annotator": f"judge:{judge.name}",
                    "meta": dict(r["task"].meta)})
    return out, report


# --------------------------------------------------------------------------- distilled RM (soft labels)


@dataclass
class SoftPair:
    items: list                 # [Rendered chosen, Rendered rejected]
    q: float                    # P(chosen ≻ rejected)


def soft_pairs(rows: list[dict], renderer, source: str = "ai-labels") -> list[SoftPair]:
    from alignstack.data.formats import DataError, normalize_prompt

    out = []
    for n, r in enumerate(rows):
        where = {"file": source, "row": n + 1}
        q = r.get("soft_label", 1.0)
        if not isinstance(q, (int, float)) or not 0.0 <= q <= 1.0:
            raise DataError(f"soft_label must be a probability in [0, 1], got {q!r}", file=source, row=n + 1,
                            field="soft_label")
        p = normalize_prompt(r["prompt"], "prompt", where)
        c, j = renderer.prompt_completion(p, r["chosen"], where), renderer.prompt_completion(p, r["rejected"], where)
        if c is not None and j is not None:
            out.append(SoftPair([c, j], float(q)))
    return out


def soft_batch_loss(model, pairs: list[SoftPair], pad_id: int, device=None):
    from alignstack.data.collate import pad_right
    from alignstack.losses.preference import soft_label_loss
    from alignstack.models.heads import sequence_scores

    b = pad_right([it for p in pairs for it in p.items], pad_id)
    s = sequence_scores(model, b["input_ids"].to(device), b["attention_mask"].to(device))
    c, r = s[0::2], s[1::2]
    q = torch.tensor([p.q for p in pairs], dtype=s.dtype, device=s.device)
    loss = soft_label_loss(c, r, q)
    return loss.sum(), float(len(pairs)), {"pair_acc": float((c > r).float().sum())}


def train_soft_rm(rows: list[dict], init_path: str, out: str, optim: OptimConfig, max_length: int = 96,
                  seed: int = 0, log: LogConfig | None = None, config_yaml: str = "",
                  checkpoint: CheckpointConfig | None = None, dist: DistConfig | None = None) -> dict:
    """Distil a reward model from soft-labelled rows; saved to ``out/model`` (``rm:out/model``); ``checkpoint``
    and ``dist`` are the method's own (periodic checkpoints, resume, mixed precision, FSDP)."""
    from alignstack.data.render import ChatRenderer
    from alignstack.models.heads import reward_model_from_causal_lm
    from alignstack.models.load import load_tokenizer, save_pretrained_atomic
    from alignstack.train.supervised import fit_items

    tok = load_tokenizer(init_path)
    pairs = soft_pairs(rows, ChatRenderer(tok, max_length))
    if not pairs:
        raise ValueError("no soft-labelled pairs survived rendering")
    model = reward_model_from_causal_lm(init_path, tok, seed)
    tr, hist = fit_items(model, tok, pairs, lambda tr, mb: soft_batch_loss(tr.model, mb, tok.pad_token_id, tr.acc.device),
                         optim, out, seed=seed, log=log, checkpoint=checkpoint, dist=dist, config_yaml=config_yaml,
                         desc="rm-soft")
    if tr.is_main:           # several processes: one writer of the model folder
        save_pretrained_atomic(tr.unwrapped.eval(), tok, Path(out) / "model",
                               {"calibration.json": json.dumps({"a": 1.0, "b": 0.0})})
    return {"steps": tr.step_count, "pairs": len(pairs), "train_loss": hist[-1]["loss"] if hist else float("nan"),
            "path": str(Path(out) / "model")}


# --------------------------------------------------------------------------- RL through the reward interface


def run_rl(rl: RLConfig, policy_path: str, reward: str, out: str, seed: int = 0, log: LogConfig | None = None,
           model: ModelConfig | None = None, prompts: str | None = None) -> dict:
    """RL from ``policy_path`` against the reward spec (any :func:`make_scorer` string) on the
    ``prompts`` rows file (None: the world's train prompts); the LoRA settings of ``model`` (the
    user's model config) carry over to the RL stage."""
    mcfg = ModelConfig(path=policy_path)
    if model is not None:
        mcfg.lora = model.lora
    if rl.algorithm == "ppo":
        from alignstack.methods import ppo
        pcfg = ppo.PPOConfig(out=out, seed=seed, reward=reward, model=mcfg, steps=rl.steps,
                             init_kl_coef=rl.beta, max_new_tokens=rl.max_new_tokens, prompts=prompts)
        pcfg.optim.lr = rl.lr
        if log is not None:
            pcfg.log = log
        return ppo.train(pcfg)
    from alignstack.methods import grpo
    cfg = grpo.GRPOConfig(out=out, seed=seed, algorithm=rl.algorithm, reward=reward,
                          model=mcfg, steps=rl.steps, prompts_per_step=rl.prompts_per_step,
                          num_generations=rl.num_generations, beta=rl.beta, max_new_tokens=rl.max_new_tokens,
                          families=[], prompts=prompts)
    cfg.optim.lr = rl.lr
    if log is not None:
        cfg.log = log
    return grpo.train(cfg)


def train(cfg: RLAIFConfig) -> dict:
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.train.dist import barrier

    t0 = time.perf_counter()
    check_config(cfg)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"mode": cfg.mode}
    if cfg.mode == "direct":
        from alignstack.feedback.judges import judge_card
        reward = f"judge:{cfg.judge.path}"
        card = judge_card(cfg.judge.path)
        if card is not None:
            res["judge_model"] = card
    else:
        policy, tok = load_model(cfg.model.path).eval(), load_tokenizer(cfg.model.tokenizer or cfg.model.path)
        rows, report = label(cfg, policy, tok)                                   # 1. AI labels
        del policy
        (out / "judge_report.json").write_text(json.dumps(report, indent=2))
        with open(out / "ai_labels.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        res["judge"] = report
        res["rm"] = train_soft_rm(rows, cfg.model.path, str(out / "rm"), cfg.rm_optim,   # 2. distilled RM
                                  cfg.model.max_length, cfg.seed, cfg.log, to_yaml(cfg), cfg.checkpoint, cfg.dist)
        barrier()                # several processes: the RM is saved before RL loads it
        reward = f"rm:{res['rm']['path']}"
    res["rl"] = run_rl(cfg.rl, cfg.model.path, reward, str(out / "policy"), cfg.seed, cfg.log, cfg.model,  # 3. RL
                       prompts=cfg.prompts)
    res["reward"] = reward
    res["policy"] = str(out / "policy" / "model")        # the aligned model (pipelines evaluate this one)
    res["wall_s"] = time.perf_counter() - t0
    (out / "metrics.json").write_text(json.dumps(res, indent=2, default=str))
    return res
