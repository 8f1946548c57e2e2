"""Rejection-sampling fine-tuning (Llama 2 §3.2.3; METHODS.md §4.4).

1. For each prompt, sample K responses from the current policy at ``temperature`` (the rollout engine);
2. score every response once through the one reward interface (``rm:PATH``, ``llama2:HELP,SAFETY``,
   ``world:helpfulness`` for oracle ablations, ``import:mod:fn``);
3. keep the highest-reward response per prompt (best-of-K); with ``pool`` the best of **all** rounds
   so far is kept (``PooledBest``: Llama 2's fix for forgetting from RLHF-V4 on). An earlier round's
   selection for a prompt sampled again is re-scored by this round's reward first (``rescore_pool``): in
   the iterated loop every round has a new reward model, whose scores are on another scale, so stored
   rewards of different rounds cannot be compared (a user reward function sees the re-tokenised text as
   ``completion_ids``);
4. fine-tune ``model.path`` on the kept (prompt, response) pairs with the SFT loss.

Also written: ``selected.jsonl`` (the kept rows, with reward and round), ``pool.json`` (the pool state
for the next round), ``reward_over_k.json`` and ``reward_over_k.png`` (expected max and median reward
of k samples, k = 1..K, exact over subsets — Llama 2 Fig. 7 — for the sampling temperature and any
``curve_temperatures``).

Departures: Llama 2 samples from the newest model and fine-tunes it; here ``sampler`` (default:
``model.path``) and the fine-tuned ``model.path`` are set separately, so both readings are possible.
Responses that hit ``max_new_tokens`` without an end token are dropped from selection (their reward
is of a truncated answer).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alignstack.config import (
    ConfigError,
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)


@dataclass
class RejectionSamplingConfig(RunConfig):
    out: str = "runs/rejection_sampling"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    sampler: str | None = None               # policy to sample from (default: model.path)
    reward: str = "world:helpfulness"        # see alignstack.rollout.scorers.make_scorer
    verifier: str | None = None              # task verifier (exact | numeric:TOL | regex:P | import:mod:fn); wins over reward
    prompts: str | None = None               # world | rows:PATH | import:mod:name (alignstack.tasks); None: world
    families: list[str] | None = None        # world families (None: the world's full mixture)
    n_prompts: int = 2000
    k: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 32
    round: int = 1
    pool: str | None = None                  # pool.json of an earlier round: keep the best of all rounds
    last_round_only: bool = False            # ablation: forget earlier rounds' selections
    rescore_pool: bool = True                # score earlier rounds' selections with this round's reward (false: their
    #                                          stored rewards, comparable only when every round used the same reward)
    curve_temperatures: list[float] = field(default_factory=list)   # extra reward-over-K curves (PNG)
    curve_prompts: int = 200
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, batch_size=32, epochs=2.0,
                                                                   warmup_steps=5, schedule="cosine"))

    def __post_init__(self):
        super().__post_init__()
        if self.k < 1:
            raise ValueError(f"k must be ≥ 1 (samples per prompt), got {self.k}")
        if self.n_prompts < 1:
            raise ValueError(f"n_prompts must be ≥ 1, got {self.n_prompts}")
        if any(t <= 0 for t in [self.temperature, *self.curve_temperatures]):
            raise ValueError("temperatures must be > 0")
        from alignstack.tasks.resolve import check_spec
        check_spec(self.prompts, "prompts", "prompts")
        check_spec(self.verifier, "verifier", "verifier")


def sample_and_score(model, tok, scorer, prompts, tasks, k: int, temperature: float, max_new_tokens: int,
                     seed: int, renderer=None, truth=None):
    """K samples per prompt and their rewards: (texts[n][k], rewards (n, k), finished (n, k), gt or None);
    ``tasks``: the examples behind the prompts (the reward sees them), ``truth``: their ground truth."""
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import ground_truth, rollout
    rep_p = [p for p in prompts for _ in range(k)]
    rep_t = [t for t in tasks for _ in range(k)]
    ro = rollout(model, tok, rep_p, rep_t, SamplingConfig(max_new_tokens, temperature), seed=seed, renderer=renderer)
    r = ro.score(scorer)
    texts = [ro.texts[i * k:(i + 1) * k] for i in range(len(prompts))]
    gt = ground_truth(ro, truth)
    gt = torch.tensor(gt).view(-1, k) if gt is not None else None
    return texts, r.view(-1, k), ro.batch.has_eos.view(-1, k), gt


def select_finished_best(rewards: torch.Tensor, finished: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best-of-K among finished responses: (index per prompt (B,), mask (B,) of prompts with any
    finished response). A truncated response is never selected; ties go to the lowest index."""
    from alignstack.algos.selection import best_of_k
    masked = rewards.masked_fill(~finished.bool(), float("-inf"))
    best = best_of_k(masked)
    return best, finished.bool().any(dim=1)


def train(cfg: RejectionSamplingConfig) -> dict:
    from alignstack.algos.selection import PooledBest, max_median_curve
    from alignstack.data.render import ChatRenderer
    from alignstack.data.sources import write_jsonl
    from alignstack.models.load import load_model, prepare_model, save_final
    from alignstack.rollout.experience import prompt_source
    from alignstack.rollout.scorers import make_scorer
    from alignstack.train.supervised import fit

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    scorer = make_scorer(cfg.reward, cfg.verifier)
    pool = PooledBest(last_round_only=cfg.last_round_only)
    if cfg.pool:
        p = Path(cfg.pool)
        if not p.exists():
            raise ConfigError(f"pool: {p} not found (the pool.json written by an earlier rejection_sampling round)")
        pool = PooledBest.from_dict(json.loads(p.read_text()))
        pool.last_round_only = cfg.last_round_only
    model, tok = prepare_model(cfg.model, seed=cfg.seed)
    sampler = model if cfg.sampler in (None, cfg.model.path) else load_model(cfg.sampler)
    source = prompt_source(cfg.prompts, cfg.seed, families=cfg.families if cfg.prompts is None else None,
                           pool=cfg.n_prompts)
    tasks = source.examples[:cfg.n_prompts]
    prompts = [e.prompt for e in tasks]
    renderer = ChatRenderer(tok, cfg.model.max_length)

    texts, rewards, finished, gt = sample_and_score(sampler, tok, scorer, prompts, tasks, cfg.k, cfg.temperature,
                                                    cfg.max_new_tokens, cfg.seed * 7919 + cfg.round, renderer,
                                                    source.ground_truth)
    best, ok = select_finished_best(rewards, finished)          # a truncated answer is never selected
    masked = rewards.masked_fill(~finished.bool(), float("-inf"))
    keys = [json.dumps(p, sort_keys=True) for p in prompts]
    sel = [i for i in range(len(prompts)) if ok[i]]
    rescored = pool.earlier([keys[i] for i in sel], cfg.round) if cfg.rescore_pool else []
    if rescored:                                                # one reward scale for every round's candidates
        at = {k_: i for i, k_ in enumerate(keys)}
        comps = [pool.completion(k_) for k_ in rescored]
        pool.rescore(rescored, scorer([prompts[at[k_]] for k_ in rescored], comps,
                                      examples=[tasks[at[k_]] for k_ in rescored],
                                      completion_ids=[tok(c, add_special_tokens=False)["input_ids"] for c in comps]))
    pool.update(cfg.round, [keys[i] for i in sel], [texts[i][int(best[i])] for i in sel],
                [float(rewards[i, best[i]]) for i in sel])
    (out / "pool.json").write_text(json.dumps(pool.to_dict()))
    chosen = pool.best()
    by_key = dict(zip(keys, prompts))
    rows = [{"messages": by_key.get(k_, json.loads(k_)) + [{"role": "assistant", "content": c}],
             "meta": {"reward": r, "round": rnd}} for k_, (c, r, rnd) in chosen.items()]
    write_jsonl(out / "selected.jsonl", rows)

    ks = list(range(1, cfg.k + 1))
    curves = {str(cfg.temperature): max_median_curve(rewards, ks)}
    for T in cfg.curve_temperatures:
        if str(T) in curves:
            continue
        n = min(cfg.curve_prompts, len(prompts))
        _, r_t, _, _ = sample_and_score(sampler, tok, scorer, prompts[:n], tasks[:n], cfg.k, T, cfg.max_new_tokens,
                                        cfg.seed * 7919 + 17, renderer)
        curves[str(T)] = max_median_curve(r_t, ks)
    (out / "reward_over_k.json").write_text(json.dumps(curves, indent=2))
    _plot_curves(curves, out / "reward_over_k.png")
    if sampler is not model:
        del sampler

    items = [renderer.messages(r["messages"], {"file": str(out / "selected.jsonl"), "row": i + 1})
             for i, r in enumerate(rows)]
    items = [x for x in items if x is not None]
    if not rows:
        raise ValueError(f"rejection sampling: no prompt of {len(prompts)} had a finished sample among k={cfg.k} "
                         f"within max_new_tokens={cfg.max_new_tokens} (a truncated answer is never selected); "
                         "raise max_new_tokens or k")
    trainer, res = fit(model, tok, items, cfg.optim, out, seed=cfg.seed, log=cfg.log, checkpoint=cfg.checkpoint,
                       dist=cfg.dist, config_yaml=to_yaml(cfg), desc="rejection-sampling")
    if trainer.is_main:
        save_final(trainer.unwrapped, tok, cfg.out, to_yaml(cfg))
    result = {"round": cfg.round, "prompts": len(prompts), "k": cfg.k, "kept": len(rows),
              "dropped_unfinished": int((~ok).sum()), "reward_mean": float(rewards.mean()),
              "reward_best_mean": float(masked.gather(1, best[:, None])[ok].mean()) if ok.any() else None,
              "reward_std": float(rewards.std()), "pool_rows": len(rows),
              "pool_from_earlier_rounds": sum(1 for _, _, rnd in chosen.values() if rnd != cfg.round),
              "pool_rescored": len(rescored),
              "pool_reward_mean": sum(r for _, r, _ in chosen.values()) / max(1, len(chosen)),
              "steps": res.steps, "train_loss": res.final_loss, "wall_s": time.perf_counter() - t0}
    if gt is not None:
        result["gt_mean"] = float(gt.mean())
        result["gt_of_kept"] = float(gt.gather(1, best[:, None]).squeeze(1)[ok].mean()) if ok.any() else None
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def _plot_curves(curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for T, c in curves.items():
        ks = sorted(int(k) for k in c)
        line, = ax.plot(ks, [c[k][0] for k in ks], marker="o", label=f"max, T={T}")
        ax.plot(ks, [c[k][1] for k in ks], ls="--", color=line.get_color(), label=f"median, T={T}")
    ax.set_xlabel("samples per prompt (K)")
    ax.set_ylabel("reward")
    ax.set_title("reward of the best vs the median of K samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
