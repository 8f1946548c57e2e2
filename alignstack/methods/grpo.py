"""Critic-free group RL: GRPO (Shao et al. 2024, arXiv 2402.03300) and RLOO (Ahmadian et al.
2024, arXiv 2402.14740), on the shared rollout engine and maths layer (METHODS.md §11, A.9).

Each step: draw ``prompts_per_step`` prompts, sample ``num_generations`` completions each with the
current policy (the sampling pass gives the old log-probs), score them through the one reward
interface, then

- GRPO: Â_i = (R_i − mean R)/(std R + 1e-4) per group; loss = clipped surrogate + β·k3 (KL in the
  loss), aggregated per sequence (``aggregation`` is explicit; ``scale: null`` gives Dr. GRPO);
- RLOO: r_i = R_i − β·Σ_t(log π_old − log π_ref) (detached, KL in the reward); A_i = r_i − mean_{j≠i} r_j;
  loss = −A_i·log π_θ(y_i|x) (the whole completion is one action).

Departures: GRPO here takes ``updates_per_batch`` optimizer steps per exploration stage (paper: 1);
the share of zero-signal groups (all rewards equal) is logged as ``zero_signal``.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from alignstack.config import LogConfig, ModelConfig, OptimConfig, RunConfig, to_yaml


@dataclass
class GRPOConfig(RunConfig):
    out: str = "runs/grpo"
    algorithm: str = "grpo"                  # grpo | rloo
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    reward: str = "world:correct"            # see alignstack.rollout.scorers.make_scorer
    verifier: str | None = None              # task verifier (exact | numeric:TOL | regex:P | import:mod:fn); wins over reward
    prompts: str | None = None               # world | rows:PATH | import:mod:name (alignstack.tasks); None: world
    families: list[str] = field(default_factory=lambda: ["add", "reverse", "sort", "count", "lookup", "track"])
    steps: int = 60
    prompts_per_step: int = 16
    num_generations: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 24
    beta: float = 0.04                       # GRPO: k3 weight in the loss; RLOO: KL weight in the reward
    clip_range: float = 0.2
    aggregation: str = "sequence"            # sequence | token | sequence_sum
    scale: str | None = "std"                # GRPO advantage scale: std | batch | null (Dr. GRPO)
    missing_eos_penalty: float | None = None
    updates_per_batch: int = 1
    # the update and reference passes run each group's prompt once and share its KV cache across the group's
    # completions (the same log-probs and gradients up to float rounding; models.logprobs.shared_prefix_logprobs)
    share_prefix: bool = True
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-5, schedule="constant", warmup_steps=0,
                                                                   batch_size=1, grad_clip=1.0))
    log: LogConfig = field(default_factory=lambda: LogConfig(every=5))

    def __post_init__(self):
        super().__post_init__()
        if self.algorithm not in ("grpo", "rloo"):
            raise ValueError(f"algorithm must be grpo or rloo, got {self.algorithm!r}")
        if self.num_generations < 2:
            raise ValueError("num_generations must be ≥ 2 (group baselines need several samples per prompt)")
        from alignstack.tasks.resolve import check_spec
        check_spec(self.prompts, "prompts", "prompts")
        check_spec(self.verifier, "verifier", "verifier")


def train(cfg: GRPOConfig) -> dict:
    from alignstack.algos.advantages import group_advantages, rloo_advantages, zero_signal_fraction
    from alignstack.algos.kl import rloo_kl_rewards
    from alignstack.algos.rewards import apply_missing_eos_penalty
    from alignstack.data.render import ChatRenderer
    from alignstack.losses.policy import grpo_loss, reinforce_loss
    from alignstack.losses.reduce import masked_mean, masked_sum
    from alignstack.models.load import frozen_copy, prepare_model, prepare_reference, save_final
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import (
        frozen_logprobs,
        ground_truth,
        policy_logprobs,
        prompt_source,
        rollout,
    )
    from alignstack.rollout.scorers import make_scorer
    from alignstack.train.loop import Trainer
    from alignstack.train.microbatch import aggregation_weight, split

    t0 = time.perf_counter()
    scorer = make_scorer(cfg.reward, cfg.verifier)
    policy, tok = prepare_model(cfg.model, seed=cfg.seed)
    lora = hasattr(policy, "peft_config")
    ref = None if lora else frozen_copy(policy)
    source = prompt_source(cfg.prompts, cfg.seed, families=cfg.families if cfg.prompts is None else None)
    renderer = ChatRenderer(tok, cfg.model.max_length)
    sampling = SamplingConfig(cfg.max_new_tokens, cfg.temperature)
    total = cfg.steps * cfg.updates_per_batch
    tr = Trainer(policy, tok, cfg.optim, total, Path(cfg.out), to_yaml(cfg), cfg.log, cfg.checkpoint, cfg.dist,
                 desc=cfg.algorithm)
    tr.resume_if_requested()
    if ref is not None:                              # beside the policy, in the precision its passes run at
        prepare_reference(ref, cfg.dist.mixed_precision, tr.acc.device)
    rank, world = tr.acc.process_index, tr.acc.num_processes
    G = cfg.num_generations
    history = []
    from alignstack.train.alarms import HackingAlarms
    alarms = HackingAlarms.from_log(cfg.log)  # length collapse, KL, reward up while the check falls: warn once

    def ref_lp(batch):
        if ref is not None:
            return frozen_logprobs(ref, batch, cfg.temperature, share_prefix=cfg.share_prefix)
        with tr.unwrapped.disable_adapter():
            return frozen_logprobs(tr.unwrapped, batch, cfg.temperature, share_prefix=cfg.share_prefix)

    with tr:
        while not tr.done:
            it = tr.step_count // cfg.updates_per_batch
            exs = source.batch(it, cfg.prompts_per_step)[rank::world]          # this process's prompts
            rep_t = [e for e in exs for _ in range(G)]
            rep_p = [e.prompt for e in rep_t]
            # dist.mixed_precision reaches sampling and the reference pass too (as the update), not only the
            # model's own forward (a no-op in fp32)
            with tr.acc.autocast():
                ro = rollout(tr.unwrapped, tok, rep_p, rep_t, sampling, seed=cfg.seed * 100003 + it * world + rank,
                             renderer=renderer)
            scores = ro.score(scorer)
            if cfg.missing_eos_penalty is not None:
                scores = apply_missing_eos_penalty(scores, ro.batch.has_eos, cfg.missing_eos_penalty)
            mask = ro.batch.mask
            with tr.acc.autocast():
                ref_logp = ref_lp(ro.batch) if (cfg.beta != 0 or cfg.algorithm == "rloo") else None
            R = scores.view(-1, G)
            if cfg.algorithm == "grpo":
                adv = group_advantages(R, cfg.scale).flatten()
            else:
                r = rloo_kl_rewards(scores, ro.batch.old_logprobs, ref_logp, mask, cfg.beta) if cfg.beta else scores
                adv = rloo_advantages(r.view(-1, G)).flatten()
            # micro-batches of rows (optim.micro_batch_size); each returns its loss times what its mean was
            # taken over, so the step's normalisation is over the whole batch (train.microbatch)
            mbs = split(list(range(len(rep_p))), cfg.optim)
            weights = [aggregation_weight(mask[i], cfg.aggregation) if cfg.algorithm == "grpo" else float(len(i))
                       for i in mbs]

            def loss_fn(idx):
                mb = ro.batch.select(idx)                    # trimmed to the micro-batch's longest row
                Tm = mb.old_logprobs.shape[1]
                # one autocast around the update's forwards (shared prefix: the prompts, then the completions), so
                # the policy's weights are cast to bf16 once a micro-batch: accelerate's autocast wraps each forward
                # and drops its casts on exit, which kept two bf16 copies of the weights for the backward and sent
                # two cast gradients back per weight (small preset in bf16: 20–40 MB less peak memory and 4–7% more
                # completions/s). FSDP2 casts the gathered weights itself (train.loop.fsdp_shard).
                with nullcontext() if tr.fsdp else tr.acc.autocast():
                    lp = policy_logprobs(tr.model, mb, cfg.temperature, cfg.share_prefix)
                d = lp.device                               # the rollout's arrays sit on the CPU
                m, a = mask[idx, :Tm].to(d), adv[idx].to(d)
                if cfg.algorithm == "grpo":
                    loss, st = grpo_loss(lp, mb.old_logprobs.to(d),
                                         None if ref_logp is None else ref_logp[idx, :Tm].to(d),
                                         a, m, cfg.clip_range, cfg.beta, cfg.aggregation)
                    w = aggregation_weight(m, cfg.aggregation)
                    return loss * w, w, {k: float(v) * w for k, v in st.items()}
                return reinforce_loss(masked_sum(lp, m, dim=-1), a) * len(idx), len(idx), {}

            for _ in range(cfg.updates_per_batch):
                stats = tr.step(loss_fn, mbs, weights)
            gt = ground_truth(ro, source.ground_truth)
            row = {"step": tr.step_count, "reward": float(scores.mean()), "zero_signal": zero_signal_fraction(R),
                   "length": float(mask.sum(-1).mean()), "loss": stats["loss"]}
            if ref_logp is not None:
                row["kl"] = float(masked_sum(ro.batch.old_logprobs - ref_logp, mask, dim=-1).mean())
            if "clipfrac" in stats:
                row["clipfrac"] = stats["clipfrac"]
            if gt is not None:
                row["gt"] = sum(gt) / len(gt)
            row["entropy_proxy"] = float(-masked_mean(ro.batch.old_logprobs, mask))
            history.append(row)
            tr.log(row)
            alarms.update(history)
    if tr.is_main:
        save_final(tr.unwrapped, tok, cfg.out, to_yaml(cfg))
    last = history[-5:] if history else []
    avg = lambda k: sum(h[k] for h in last if k in h) / max(1, sum(k in h for h in last))
    return {"steps": tr.step_count, "final_reward": avg("reward"), "final_gt": avg("gt") if last else None,
            "first_reward": history[0]["reward"] if history else None, "alarms": alarms.fired,
            "wall_s": time.perf_counter() - t0}
