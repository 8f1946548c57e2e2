"""Numerical parity with TRL (1.x) where TRL has the same maths.

Pure TRL functions are called directly. Losses that live inside trainer methods are called as
plain functions on a small stub ``self`` (and a stub "model" that returns fixed per-token
log-probs), so TRL's own code runs without a network. If TRL's internals move on, those tests
skip with a message instead of failing; a numeric mismatch always fails.
"""

import math
import types
from collections import defaultdict

import pytest
import torch

from alignstack.algos import advantages as A
from alignstack.algos import kl as KL
from alignstack.losses import policy as PL
from alignstack.losses import preference as P

trl = pytest.importorskip("trl")

DT = torch.float64


class _Acc:
    device = torch.device("cpu")
    num_processes = 1
    sync_gradients = True

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x

    def unwrap_model(self, m):
        return m


def _stub(**attrs):
    s = types.SimpleNamespace(
        accelerator=_Acc(),
        model=types.SimpleNamespace(training=True),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        aux_loss_enabled=False,
    )
    s.__dict__.update(attrs)
    return s


def _call_trl(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (AttributeError, KeyError, TypeError) as e:  # pragma: no cover - depends on the TRL version
        pytest.skip(f"TRL internals changed; the parity stub needs updating: {e!r}")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- reward model


def test_reward_trainer_margin_loss():
    from trl.trainer.reward_trainer import RewardTrainer

    g = _gen(0)
    rc, rr = torch.randn(5, generator=g, dtype=DT), torch.randn(5, generator=g, dtype=DT)
    margin = P.margins_from_strengths(
        ["significantly_better", "better", "slightly_better", "negligibly_better", "better"], "small"
    ).to(DT)

    def model(**kw):
        return types.SimpleNamespace(logits=torch.cat([rc, rr])[:, None])

    stub = _stub(args=types.SimpleNamespace(center_rewards_coefficient=None))
    inputs = {
        "input_ids": torch.zeros(10, 3, dtype=torch.long),
        "attention_mask": torch.ones(10, 3),
        "margin": margin,
    }
    ref = _call_trl(RewardTrainer.compute_loss, stub, model, inputs)
    assert P.pairwise_loss(rc, rr, margin).mean().item() == pytest.approx(ref.item(), abs=1e-12)
    inputs.pop("margin")
    ref = _call_trl(RewardTrainer.compute_loss, stub, model, inputs)
    assert P.pairwise_loss(rc, rr).mean().item() == pytest.approx(ref.item(), abs=1e-12)


# --------------------------------------------------------------------------- DPO family


def _dpo_batch(seed, B=4, T=7):
    g = _gen(seed)
    completion_mask = torch.zeros(2 * B, T, dtype=torch.long)
    lengths = torch.randint(1, T - 2, (2 * B,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        completion_mask[i, 2 : 2 + n] = 1
    shift = completion_mask[:, 1:]
    per_token = -torch.rand(2 * B, T - 1, generator=g, dtype=DT) * 3 * shift  # zero outside the completion
    ref_per_token = -torch.rand(2 * B, T - 1, generator=g, dtype=DT) * 3 * shift
    return completion_mask, per_token, ref_per_token


def _trl_dpo(loss_type, completion_mask, per_token, ref_logps, beta, label_smoothing=0.0):
    from trl.trainer.dpo_trainer import DPOTrainer

    n2, t1 = per_token.shape
    policy = per_token.clone().requires_grad_(True)

    def model(**kw):
        return types.SimpleNamespace(
            log_probs=policy,
            entropy=torch.zeros(n2, t1, dtype=DT),
            mean_logits=torch.zeros(n2, t1, dtype=DT),
            is_top1=torch.zeros(n2, t1, dtype=torch.bool),
        )

    B = n2 // 2
    stub = _stub(
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        use_weighting=False,
        beta=beta,
        label_smoothing=label_smoothing,
        ref_model=None,
        args=types.SimpleNamespace(gradient_checkpointing_kwargs=None),
    )
    inputs = {
        "input_ids": torch.ones(n2, t1 + 1, dtype=torch.long),
        "attention_mask": torch.ones(n2, t1 + 1, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_logps[:B],
        "ref_rejected_logps": ref_logps[B:],
    }
    loss = _call_trl(DPOTrainer._compute_loss, stub, model, inputs, False)
    loss.backward()
    return loss, policy.grad, stub._metrics["train"]


@pytest.mark.parametrize(
    "loss_type,beta,eps",
    [("sigmoid", 0.1, 0.0), ("hinge", 0.5, 0.0), ("robust", 0.1, 0.2), ("ipo", 0.1, 0.0)],
)
def test_dpo_family_matches_trl_dpo_trainer(loss_type, beta, eps):
    completion_mask, per_token, ref_per_token = _dpo_batch(1)
    B = per_token.shape[0] // 2
    ref_logps = ref_per_token.sum(1)
    trl_loss, trl_grad, metrics = _trl_dpo(loss_type, completion_mask, per_token, ref_logps, beta, eps)

    policy = per_token.clone().requires_grad_(True)
    logps = policy.sum(1)
    if loss_type == "ipo":  # IPO takes length-averaged log-probs (TRL averages inside)
        lengths = completion_mask.sum(1).to(DT)
        logps, ref_in = logps / lengths, ref_logps / lengths
    else:
        ref_in = ref_logps
    losses, cr, rr = P.DPO_LOSSES[loss_type](
        logps[:B], logps[B:], ref_in[:B], ref_in[B:], beta=beta, label_smoothing=eps
    )
    losses.mean().backward()
    assert losses.mean().item() == pytest.approx(trl_loss.item(), abs=1e-10)
    assert torch.allclose(policy.grad, trl_grad, atol=1e-10)
    if loss_type != "ipo":  # TRL logs β·(summed log-ratio) for every loss type
        assert cr.mean().item() == pytest.approx(metrics["rewards/chosen"][-1], abs=1e-10)
        assert rr.mean().item() == pytest.approx(metrics["rewards/rejected"][-1], abs=1e-10)


def _cpo(loss_type, beta, label_smoothing=0.0, simpo_gamma=0.5):
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    stub = _stub(
        alpha=0.0, loss_type=loss_type, beta=beta, label_smoothing=label_smoothing, simpo_gamma=simpo_gamma
    )
    return lambda c, r: _call_trl(CPOTrainer.cpo_loss, stub, c, r)


def test_cdpo_matches_trl_cpo_sigmoid_with_label_smoothing():
    # TRL's DPO "sigmoid" ignores label_smoothing; CPO's sigmoid is exactly cDPO on (log-ratio) inputs.
    g = _gen(2)
    pc, pr, rc, rr = (torch.randn(6, generator=g, dtype=DT) * 4 for _ in range(4))
    ours, _, _ = P.dpo_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=0.15)
    ref, _, _ = _cpo("sigmoid", 0.3, 0.15)(pc - rc, pr - rr)
    assert torch.allclose(ours, ref, atol=1e-12)


def test_simpo_matches_trl_cpo_simpo():
    g = _gen(3)
    c, r = -torch.rand(6, generator=g, dtype=DT) * 3, -torch.rand(6, generator=g, dtype=DT) * 3
    ours, oc, orr = P.simpo_loss(c, r, beta=2.0, gamma=1.0)
    ref, rc_, rr_ = _cpo("simpo", 2.0, simpo_gamma=1.0)(c, r)
    assert torch.allclose(ours, ref, atol=1e-12)
    assert torch.allclose(oc, rc_) and torch.allclose(orr, rr_)


def test_orpo_matches_trl_odds_ratio_loss():
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer, log1mexp

    g = _gen(4)
    c = -torch.rand(8, generator=g, dtype=torch.float32) * 4 - 1e-3
    r = -torch.rand(8, generator=g, dtype=torch.float32) * 4 - 1e-3
    stub = _stub(beta=0.1)
    ref_losses, ref_c, ref_r, _, _ = _call_trl(ORPOTrainer.odds_ratio_loss, stub, c, r)
    ours, oc, orr = P.orpo_loss(c, r, lam=0.1)
    # TRL returns +λ·logσ(·) (subtracted from the NLL later); ours is the loss, so the sign flips
    assert torch.allclose(ours, -ref_losses, atol=1e-6)
    assert torch.allclose(oc, ref_c) and torch.allclose(orr, ref_r)
    x = -torch.logspace(-6, 1.5, 50, dtype=DT)
    assert torch.allclose(P._log1mexp(x), log1mexp(x), atol=1e-12)


def test_kto_matches_trl_kto_trainer():
    from trl.trainer.kto_trainer import KTOTrainer

    g = _gen(5)
    B, T = 6, 6
    labels = torch.tensor([True, False, True, True, False, False])
    completion_mask = torch.zeros(B, T, dtype=torch.long)
    completion_mask[:, 2:] = 1
    per_token = -torch.rand(B, T - 1, generator=g, dtype=DT) * 2
    kl_per_token = -torch.rand(B, T - 1, generator=g, dtype=DT) * 2
    ref_logps = per_token.sum(1) + torch.randn(B, generator=g, dtype=DT)
    ref_kl_logps = kl_per_token.sum(1) - torch.rand(B, generator=g, dtype=DT)  # positive mean KL
    input_ids = torch.ones(B, T, dtype=torch.long)
    kl_input_ids = torch.ones(B, T, dtype=torch.long)
    policy = per_token.clone().requires_grad_(True)

    def model(**kw):
        lp = kl_per_token if kw["input_ids"] is kl_input_ids else policy
        return types.SimpleNamespace(
            log_probs=lp, mean_logits=torch.zeros(B, T - 1, dtype=DT), entropy=torch.zeros(B, T - 1, dtype=DT)
        )

    stub = _stub(
        calculate_KL=True,
        precompute_ref_logps=True,
        loss_type="kto",
        beta=0.1,
        desirable_weight=1.0,
        undesirable_weight=1.33,
        ref_model=None,
        args=types.SimpleNamespace(gradient_checkpointing_kwargs=None),
    )
    stub._compute_kl_logps = lambda m, b: KTOTrainer._compute_kl_logps(stub, m, b)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones(B, T, dtype=torch.long),
        "completion_mask": completion_mask,
        "KL_input_ids": kl_input_ids,
        "KL_attention_mask": torch.ones(B, T, dtype=torch.long),
        "KL_completion_mask": completion_mask,
        "label": labels,
        "ref_logps": ref_logps,
        "ref_KL_logps": ref_kl_logps,
    }
    ref_loss = _call_trl(KTOTrainer._compute_loss, stub, model, inputs, False)
    ref_loss.backward()
    z0 = P.kto_kl_estimate(kl_per_token.sum(1), ref_kl_logps)
    assert z0.item() > 0
    ours_policy = per_token.clone().requires_grad_(True)
    losses, _ = P.kto_loss(ours_policy.sum(1), ref_logps, labels, z0, beta=0.1, lambda_d=1.0, lambda_u=1.33)
    losses.mean().backward()
    assert losses.mean().item() == pytest.approx(ref_loss.item(), abs=1e-12)
    assert torch.allclose(ours_policy.grad, policy.grad, atol=1e-12)
    assert stub._metrics["train"]["kl"][-1] == pytest.approx(z0.item(), abs=1e-12)


# --------------------------------------------------------------------------- GRPO / RLOO


def _grpo_inputs(seed, B=6, T=5):
    g = _gen(seed)
    mask = torch.ones(B, T, dtype=torch.long)
    for i, n in enumerate(torch.randint(1, T + 1, (B,), generator=g).tolist()):
        mask[i, n:] = 0
    logp = -torch.rand(B, T, generator=g, dtype=DT) * 2
    old = logp + torch.randn(B, T, generator=g, dtype=DT) * 0.3  # ratios well outside [0.8, 1.28]
    ref = logp + torch.randn(B, T, generator=g, dtype=DT) * 0.5
    adv = torch.randn(B, generator=g, dtype=DT)
    return mask, logp, old, ref, adv


def _trl_grpo(loss_type, mask, logp, old, ref, adv, beta, eps_low, eps_high):
    from trl.trainer.grpo_trainer import GRPOTrainer

    B, T = logp.shape
    policy = logp.clone().requires_grad_(True)
    stub = _stub(
        _get_per_token_logps_and_entropies=lambda *a, **k: (policy, torch.zeros(B, T, dtype=DT), None),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        loss_type=loss_type,
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False,
        max_completion_length=T,
        args=types.SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
    )
    inputs = {
        "prompt_ids": torch.ones(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.ones(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum().to(DT),
    }
    loss = _call_trl(GRPOTrainer._compute_loss, stub, None, inputs)
    loss.backward()
    return loss, policy.grad, stub._metrics["train"]


@pytest.mark.parametrize(
    "loss_type,aggregation,eps_high",
    [("grpo", "sequence", 0.2), ("bnpo", "token", 0.2), ("dapo", "token", 0.28), ("grpo", "sequence", 0.28)],
)
def test_grpo_loss_matches_trl(loss_type, aggregation, eps_high):
    mask, logp, old, ref, adv = _grpo_inputs(6)
    trl_loss, trl_grad, metrics = _trl_grpo(loss_type, mask, logp, old, ref, adv, 0.04, 0.2, eps_high)
    policy = logp.clone().requires_grad_(True)
    loss, stats = PL.grpo_loss(
        policy,
        old,
        ref,
        adv,
        mask,
        clip_range=0.2,
        beta=0.04,
        aggregation=aggregation,
        clip_range_high=eps_high,
    )
    loss.backward()
    assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-12)
    assert torch.allclose(policy.grad, trl_grad, atol=1e-12)
    assert stats["kl"].item() == pytest.approx(metrics["kl"][-1], abs=1e-12)
    # TRL counts a token as clipped only when the clip is active for the sign of A; so do we
    assert stats["clipfrac"].item() == pytest.approx(
        metrics["clip_ratio/region_mean"][-1], abs=1e-6
    )  # TRL: fp32 count


def test_grpo_k3_matches_trl_formula():
    _, logp, _, ref, _ = _grpo_inputs(7)
    trl_k3 = torch.exp(ref - logp) - (ref - logp) - 1  # GRPOTrainer._compute_loss, per_token_kl
    assert torch.allclose(KL.kl_k3(logp, ref), trl_k3)


def test_group_advantages_match_trl_nanstd_formula():
    from trl.trainer.utils import nanstd

    g = _gen(8)
    rewards = (torch.rand(5, 8, generator=g) < 0.4).to(DT)  # 0/1 rewards incl. zero-signal groups
    rewards[0] = 1.0
    ours = A.group_advantages(rewards)
    # TRL GRPOTrainer (scale_rewards="group"): (r − mean_g) / (nanstd_g + 1e-4), nanstd is Bessel-corrected
    ref = (rewards - rewards.mean(1, keepdim=True)) / (nanstd(rewards, dim=1).unsqueeze(1) + 1e-4)
    assert torch.allclose(ours, ref, atol=1e-12)
    ref_batch = (rewards - rewards.mean(1, keepdim=True)) / (nanstd(rewards) + 1e-4)
    assert torch.allclose(A.group_advantages(rewards, scale="batch"), ref_batch, atol=1e-12)


def test_rloo_loss_matches_trl_rloo_trainer():
    from trl.trainer.rloo_trainer import RLOOTrainer

    g = _gen(9)
    B, T = 6, 4
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 2:] = 0
    per_token = -torch.rand(B, T, generator=g, dtype=DT)
    scores = torch.randn(B, generator=g, dtype=DT)
    adv = A.rloo_advantages(scores.view(2, 3)).view(-1)
    policy = per_token.clone().requires_grad_(True)
    stub = _stub(
        _get_per_token_logps_and_entropies=lambda *a, **k: (policy, torch.zeros(B, T, dtype=DT), None),
        epsilon_low=0.2,
        epsilon_high=0.2,
    )
    old_logps = (per_token * mask).sum(1)  # on-policy, one PPO epoch: ρ = 1
    inputs = {
        "prompt_ids": torch.ones(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.ones(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "old_logps": old_logps,
    }
    trl_loss = _call_trl(RLOOTrainer._compute_loss, stub, None, inputs)
    trl_loss.backward()
    # value: TRL's sequence-level clipped surrogate == ppo_policy_loss on (B, 1) sequence log-probs
    ours_seq = per_token.clone().requires_grad_(True)
    seq = (ours_seq * mask).sum(1, keepdim=True)
    loss, _ = PL.ppo_policy_loss(seq, old_logps[:, None], adv, torch.ones(B, 1))
    assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-12)
    # gradient: on-policy it is exactly REINFORCE with the leave-one-out advantages
    ours = per_token.clone().requires_grad_(True)
    PL.reinforce_loss((ours * mask).sum(1), adv).backward()
    assert torch.allclose(ours.grad, policy.grad, atol=1e-12)


def test_rloo_kl_reward_matches_trl_formula():
    # RLOOTrainer: rewards − β·Σ_t (old_logp − ref_logp)·mask  (k1, summed, in the reward)
    g = _gen(10)
    old, ref = -torch.rand(4, 5, generator=g, dtype=DT), -torch.rand(4, 5, generator=g, dtype=DT)
    mask = torch.ones(4, 5)
    mask[2, 3:] = 0
    scores = torch.randn(4, generator=g, dtype=DT)
    ref_rewards = scores - 0.05 * ((old - ref) * mask).sum(-1)
    assert torch.allclose(KL.rloo_kl_rewards(scores, old, ref, mask, 0.05), ref_rewards)


def test_log_sigmoid_identity_sanity():
    # guards the sp(x) hand values used across the suite: −logσ(0.5) = 0.474077
    assert -torch.nn.functional.logsigmoid(torch.tensor(0.5, dtype=DT)).item() == pytest.approx(
        math.log1p(math.exp(-0.5))
    )
