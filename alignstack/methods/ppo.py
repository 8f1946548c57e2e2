"""PPO for language models with a per-token KL penalty to the SFT policy, and PPO-ptx.

Ziegler et al. 2019 (arXiv 1909.08593), Stiennon et al. 2020, InstructGPT (Ouyang et al. 2022,
Eq. 2) and Llama 2 (Touvron et al. 2023, Eq. 4); implementation details follow METHODS.md §5.5.
One iteration, in the paper's order (A.3):

1. sample ``batch_size`` prompts, one completion each at ``temperature`` (old log-probs come from
   the sampling pass; logits are divided by T whenever log-probs are computed — checklist item 8);
2. score with the reward interface (one RM, Llama 2's helpfulness+safety rule, ground truth for
   ablations, or a user callable); optionally whiten the scores over the batch (Llama 2's
   WHITEN(LOGIT(·)) of raw RM logits); the missing-EOS penalty is applied **after** that transform;
3. per-token rewards −β·(log π − log π_ref) with the score on the last token (k1, §5.1);
4. GAE (γ = 1, λ = 0.95) on the value model's estimates; advantages whitened;
5. ``ppo_epochs`` passes over shuffled minibatches: clipped policy loss + vf_coef·clipped value
   loss (+ γ_ptx·pretraining NLL for PPO-ptx); β updated by the adaptive controller (code form).

The value model is a separate critic (paper default; initialised from a reward-model checkpoint
when ``value_init`` is given, else from the policy trunk with a zero head) or a zero-initialised
head on the policy trunk (``value_model: shared``).

Departures: GAE and advantage whitening are computed once per batch (over all its episodes), not
per minibatch; rewards are whitened only if ``whiten_rewards`` (N+ found it shortens completions);
no weight EMA.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from alignstack.config import LogConfig, ModelConfig, OptimConfig, RunConfig, to_yaml
from alignstack.models.logprobs import completion_logits


@dataclass
class PPOConfig(RunConfig):
    out: str = "runs/ppo"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    reward: str = "world:helpfulness"        # rm:PATH | llama2:HELP,SAFETY | world:FIELD | import:mod:fn
    value_model: str = "separate"            # separate | shared
    value_init: str | None = None            # reward-model checkpoint to initialise the critic from
    verifier: str | None = None              # task verifier (exact | numeric:TOL | regex:P | import:mod:fn); wins over reward
    prompts: str | None = None               # world | rows:PATH | import:mod:name (alignstack.tasks); None: world
    families: list[str] | None = None        # None: the world's full prompt mixture
    steps: int = 40                          # iterations (rollout batches)
    batch_size: int = 64                     # episodes per iteration (global)
    minibatches: int = 4
    ppo_epochs: int = 2
    temperature: float = 1.0
    max_new_tokens: int = 24
    init_kl_coef: float = 0.05
    adaptive_kl: bool = False
    kl_target: float = 2.0
    kl_horizon: int = 10000
    clip_range: float = 0.2
    value_clip: float | None = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    whiten_scores: bool = True
    whiten_rewards: bool = False
    missing_eos_penalty: float | None = -1.0
    ptx_coef: float = 0.0                    # PPO-ptx γ (InstructGPT: 27.8)
    ptx_rows: int = 16                       # pretraining rows per minibatch
    ptx_corpus: str = "world"                # PPO-ptx documents: world | file:PATH (.txt / text rows) | import:mod:name
    dev_every: int = 0                       # early stopping on the dev-set *proxy* reward (0: off)
    dev_prompts: int = 128
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, schedule="constant", warmup_steps=0,
                                                                   batch_size=1, grad_clip=1.0))
    log: LogConfig = field(default_factory=lambda: LogConfig(every=1))

    def __post_init__(self):
        super().__post_init__()
        if self.value_model not in ("separate", "shared"):
            raise ValueError(f"value_model must be separate or shared, got {self.value_model!r}")
        if self.minibatches < 1 or self.batch_size % self.minibatches:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of minibatches ({self.minibatches})")
        from alignstack.tasks.resolve import check_spec
        check_spec(self.prompts, "prompts", "prompts")
        check_spec(self.verifier, "verifier", "verifier")
        check_spec(self.ptx_corpus, "documents", "ptx_corpus")


class PolicyAndValue(nn.Module):
    """The trainable pair. ``values(input_ids, mask)`` returns (B, T-1) estimates aligned with
    per-token log-probs: the value of the state before each target token."""

    def __init__(self, policy, critic=None):
        super().__init__()
        self.policy, self.critic = policy, critic
        if critic is None:
            h = policy.config.hidden_size
            self.value_head = nn.Linear(h, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, temperature: float = 1.0, keep: int | None = None):
        """(logits, values (B, T-1)); with ``keep`` the logits of the last ``keep + 1`` positions only
        (``logprobs.forward_logprobs``'s ``keep``), the values still at every position."""
        pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = completion_logits(self.policy, keep, input_ids=input_ids, attention_mask=attention_mask,
                                position_ids=pos, use_cache=False, output_hidden_states=self.critic is None)
        if self.critic is None:
            values = self.value_head(out.hidden_states[-1]).squeeze(-1)
        else:
            values = self._critic(input_ids, attention_mask, pos)
        return out.logits, values[:, :-1].float()

    def _critic(self, input_ids, attention_mask, pos):
        h = self.critic.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos).last_hidden_state
        return self.critic.score(h).squeeze(-1)

    def values(self, input_ids, attention_mask):
        """The (B, T-1) value estimates alone: a separate critic skips the policy's forward."""
        if self.critic is None:       # the shared trunk's hidden states; one position's logits (none are used)
            return self(input_ids, attention_mask, keep=0)[1]
        pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return self._critic(input_ids, attention_mask, pos)[:, :-1].float()

    def save_pretrained(self, path: str, **_):
        from safetensors.torch import save_model
        Path(path).mkdir(parents=True, exist_ok=True)
        save_model(self, str(Path(path) / "model.safetensors"))


def build_critic(policy, value_init: str | None):
    from transformers import AutoModelForSequenceClassification
    if value_init is not None:
        return AutoModelForSequenceClassification.from_pretrained(value_init, num_labels=1, use_safetensors=True)
    ccfg = copy.deepcopy(policy.config)
    ccfg.num_labels = 1
    critic = AutoModelForSequenceClassification.from_config(ccfg)      # the policy's own architecture
    if hasattr(policy, "peft_config"):          # LoRA policy: the critic starts from the merged weights
        policy = copy.deepcopy(policy).merge_and_unload()
    critic.model.load_state_dict(policy.model.state_dict())
    nn.init.zeros_(critic.score.weight)
    return critic


def train(cfg: PPOConfig) -> dict:
    from alignstack.algos.advantages import explained_variance, gae, whiten
    from alignstack.algos.kl import AdaptiveKLController, FixedKLController, kl_shaped_rewards
    from alignstack.algos.rewards import apply_missing_eos_penalty
    from alignstack.data.collate import pad_right
    from alignstack.data.render import ChatRenderer
    from alignstack.losses.lm import lm_loss_sum
    from alignstack.losses.policy import ppo_policy_loss, value_loss
    from alignstack.losses.reduce import masked_mean, masked_sum
    from alignstack.models.load import frozen_copy, prepare_model, prepare_reference, save_final
    from alignstack.models.logprobs import completion_span, token_entropy, token_logprobs
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import frozen_logprobs, ground_truth, prompt_source, rollout
    from alignstack.rollout.scorers import make_scorer
    from alignstack.train.loop import Trainer
    from alignstack.train.microbatch import split as micro_split

    t0 = time.perf_counter()
    scorer = make_scorer(cfg.reward, cfg.verifier)
    policy, tok = prepare_model(cfg.model, seed=cfg.seed)
    ref = frozen_copy(policy)
    critic = build_critic(policy, cfg.value_init) if cfg.value_model == "separate" else None
    pv = PolicyAndValue(policy, critic)
    source = prompt_source(cfg.prompts, cfg.seed, families=cfg.families)
    # dev prompts for early stopping on the proxy reward: the world's dev split (a user file: its own rows)
    dev_source = (prompt_source(cfg.prompts, cfg.seed + 1, families=cfg.families, pool=cfg.dev_prompts * 4,
                                split="dev") if cfg.dev_every else None)
    renderer = ChatRenderer(tok, cfg.model.max_length)
    sampling = SamplingConfig(cfg.max_new_tokens, cfg.temperature)
    ptx_items = []
    if cfg.ptx_coef:
        from alignstack.tasks import resolve
        docs = resolve(cfg.ptx_corpus, "documents", key="ptx_corpus").documents(20000, cfg.seed + 17)
        ptx_items = [renderer.text(d) for d in docs]
    updates = cfg.ppo_epochs * cfg.minibatches
    tr = Trainer(pv, tok, cfg.optim, cfg.steps * updates, Path(cfg.out), to_yaml(cfg), cfg.log, cfg.checkpoint,
                 cfg.dist, desc="ppo")
    ctl = (AdaptiveKLController(cfg.init_kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl
           else FixedKLController(cfg.init_kl_coef))
    st = tr.resume_if_requested()
    dev = tr.acc.device                             # rollout arrays stay on the CPU; forwards run here
    prepare_reference(ref, cfg.dist.mixed_precision, dev)      # beside the policy, at its passes' precision
    if "kl" in st:
        ctl.load_state_dict(st["kl"])
    rank, world = tr.acc.process_index, tr.acc.num_processes
    reduce = (lambda t: tr.acc.reduce(t, reduction="sum")) if world > 1 else None
    history, best = [], (-float("inf"), None)
    from alignstack.train.alarms import HackingAlarms
    alarms = HackingAlarms.from_log(cfg.log)  # length collapse, KL, reward up while the check falls: warn once
    split = {"generation": 0.0, "scoring": 0.0, "ref_value": 0.0, "training": 0.0}   # wall-time split (s)
    clock = time.perf_counter

    with tr:
        while not tr.done:
            it = tr.step_count // updates
            tasks = source.batch(it, cfg.batch_size)[rank::world]            # the examples behind the prompts
            prompts = [e.prompt for e in tasks]
            model = tr.unwrapped
            t_it = clock()
            # dist.mixed_precision reaches sampling, the reference and the old values too, as in GRPO (a no-op
            # in fp32); the reward model scores in its own precision
            with tr.acc.autocast():
                ro = rollout(model.policy, tok, prompts, tasks, sampling, seed=cfg.seed * 7919 + it * world + rank,
                             renderer=renderer)
            t_gen = clock()
            raw = ro.score(scorer)
            score = whiten(raw, all_reduce=reduce) if cfg.whiten_scores else raw
            if cfg.missing_eos_penalty is not None:
                score = apply_missing_eos_penalty(score, ro.batch.has_eos, cfg.missing_eos_penalty)
            b, mask = ro.batch, ro.batch.mask
            t_score = clock()
            with tr.acc.autocast():
                ref_lp = frozen_logprobs(ref, b, cfg.temperature)
            with torch.no_grad(), tr.acc.autocast():     # in micro-batches too: the logits are (B, T, V)
                model.eval()
                old_v = torch.cat([model.values(b.input_ids[c].to(dev), b.attention_mask[c].to(dev)).float().cpu()
                                   for c in micro_split(list(range(len(mask))), cfg.optim)])
            beta = ctl.value
            rewards, kl = kl_shaped_rewards(score, b.old_logprobs, ref_lp, mask, beta)
            if cfg.whiten_rewards:
                rewards = whiten(rewards, mask, shift_mean=False, all_reduce=reduce)
            adv, returns = gae(rewards, old_v * mask, mask, cfg.gamma, cfg.lam)
            adv = whiten(adv, mask, all_reduce=reduce)
            seq_kl = masked_sum(kl, mask, dim=-1)
            ctl.update(float(seq_kl.mean()), cfg.batch_size)
            n = len(prompts)
            t_ref = clock()
            gen = torch.Generator().manual_seed(cfg.seed + it)
            agg = {}
            for _ in range(cfg.ppo_epochs):
                perm = torch.randperm(n, generator=gen).tolist()
                size = max(1, n // cfg.minibatches)
                for s in range(0, size * cfg.minibatches, size):
                    idx = perm[s:s + size]
                    ptx = None
                    if cfg.ptx_coef:
                        g = torch.Generator().manual_seed(cfg.seed * 31 + tr.step_count)
                        ptx = pad_right([ptx_items[i] for i in torch.randint(len(ptx_items), (cfg.ptx_rows,),
                                                                             generator=g).tolist()], tok.pad_token_id)
                    # micro-batches of the minibatch (optim.micro_batch_size), each weighted by its response
                    # tokens: the step's token-mean is over the whole minibatch (train.microbatch)
                    mbs = micro_split(idx, cfg.optim)
                    weights = [float(mask[sub].sum()) for sub in mbs]
                    first, total = mbs[0], sum(weights)

                    def loss_fn(sub):
                        mb = b.select(sub).to(dev)
                        Tm = mb.old_logprobs.shape[1]
                        mb_adv, mb_ret, mb_v = (x[sub, :Tm].to(dev) for x in (adv, returns, old_v))
                        mb_mask = mb.mask
                        w = float(mb_mask.sum())
                        # the policy's logits from the first completion column on (prompt positions: lp 0)
                        logits, v = tr.model(mb.input_ids, mb.attention_mask, keep=completion_span(mb.loss_mask))
                        lp = token_logprobs(logits, mb.input_ids, cfg.temperature)
                        l_pg, s1 = ppo_policy_loss(lp, mb.old_logprobs, mb_adv, mb_mask, cfg.clip_range)
                        l_v, s2 = value_loss(v, mb_v, mb_ret, mb_mask, cfg.value_clip)
                        loss = (l_pg + cfg.vf_coef * l_v) * w
                        stats = {"policy_loss": l_pg.item() * w, "value_loss": l_v.item() * w,
                                 "clipfrac": float(s1["clipfrac"]) * w,
                                 "entropy": float(masked_mean(token_entropy(logits.detach(), cfg.temperature,
                                                                            mb.input_ids.shape[1]), mb_mask)) * w}
                        if ptx is not None and sub is first:   # the pretraining term once per minibatch
                            px = {k: v.to(dev) for k, v in ptx.items()}
                            out = tr.unwrapped.policy(input_ids=px["input_ids"], attention_mask=px["attention_mask"])
                            s_, c = lm_loss_sum(out.logits, px["input_ids"], px["loss_mask"])
                            loss = loss + cfg.ptx_coef * s_ / c * total
                            stats["ptx_nll"] = (s_ / c).item() * total
                        return loss, w, stats

                    tr.state = {"kl": ctl.state_dict()}
                    out = tr.step(loss_fn, mbs, weights)
                    for k, v in out.items():
                        agg[k] = agg.get(k, 0.0) + v / updates
            t_train = clock()
            for k, dt in zip(split, (t_gen - t_it, t_score - t_gen, t_ref - t_score, t_train - t_ref)):
                split[k] += dt
            ev = explained_variance(old_v, returns, mask)
            row = {"iteration": it + 1, "reward": float(raw.mean()), "score": float(score.mean()), "kl": float(seq_kl.mean()),
                   "beta": beta, "explained_variance": ev, "length": float(mask.sum(-1).mean()), **agg}
            gt = ground_truth(ro, source.ground_truth)
            if gt is not None:
                row["gt"] = sum(gt) / len(gt)
            if cfg.dev_every and (it + 1) % cfg.dev_every == 0:
                dt = dev_source.batch(0, cfg.dev_prompts)           # the same dev prompts every time
                dp = [e.prompt for e in dt]
                dro = rollout(tr.unwrapped.policy, tok, dp, dt, sampling, seed=12345, renderer=renderer)
                row["dev_reward"] = sum(scorer(dp, dro.texts, examples=dt)) / len(dp)
                if row["dev_reward"] > best[0]:
                    best = (row["dev_reward"], {k: v.detach().clone() for k, v in
                                                tr.unwrapped.policy.state_dict().items()})
            history.append(row)
            tr.log(row)
            alarms.update(history)
    policy = tr.unwrapped.policy
    if best[1] is not None:
        policy.load_state_dict(best[1])
    if tr.is_main:
        save_final(policy, tok, cfg.out, to_yaml(cfg))
    last = history[-5:]
    avg = lambda k: sum(h[k] for h in last if k in h) / max(1, sum(k in h for h in last))
    return {"iterations": len(history), "final_reward": avg("reward"), "final_kl": avg("kl"),
            "final_gt": avg("gt") if any("gt" in h for h in last) else None,
            "best_dev_reward": best[0] if best[1] is not None else None, "alarms": alarms.fired,
            "wall_s": time.perf_counter() - t0,
            "time_split_s": {k: round(v, 2) for k, v in split.items()},
            "completions_per_s": len(history) * cfg.batch_size / max(sum(split.values()), 1e-9)}
