"""Hand-computed checks for alignstack.losses.preference.

Notation in comments: sp(x) = −logσ(x) = log(1 + e^{−x}).
"""

import math

import pytest
import torch

from alignstack.losses import preference as P


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_margin_tables_and_lookup():
    m = P.margins_from_strengths(
        ["significantly_better", "better", "slightly_better", "negligibly_better"], "small"
    )
    assert torch.allclose(m, torch.tensor([1.0, 2 / 3, 1 / 3, 0.0]))
    m = P.margins_from_strengths(["significantly_better", "slightly_better"], "large")
    assert m.tolist() == [3.0, 1.0]
    assert P.margins_from_strengths(["better"], "none").tolist() == [0.0]
    with pytest.raises(ValueError, match="margin table"):
        P.margins_from_strengths(["better"], "huge")
    with pytest.raises(ValueError, match="strength"):
        P.margins_from_strengths(["much_better"], "small")


def test_pairwise_loss_hand_values():
    # σ(0.5) = 0.6225 -> −log = 0.4741
    assert P.pairwise_loss(t(1.0), t(0.5)).item() == pytest.approx(0.474077, abs=1e-6)
    # margin 1/3: sp(0.5 − 0.3333) = sp(0.1667) = 0.6133
    assert P.pairwise_loss(t(1.0), t(0.5), t(1 / 3)).item() == pytest.approx(0.613282, abs=1e-6)
    # margin 2 ("large", better): sp(−1.5) = 1.7014
    assert P.pairwise_loss(t(1.0), t(0.5), 2.0).item() == pytest.approx(1.701413, abs=1e-6)
    # stable for large gaps: sp(−1000) = 1000, sp(1000) = 0
    out = P.pairwise_loss(t(0.0, 1000.0), t(1000.0, 0.0))
    assert out[0].item() == pytest.approx(1000.0) and out[1].item() == pytest.approx(0.0, abs=1e-12)


def test_ranking_loss_three_responses():
    # r = [2, 1, 0], ranks [0, 1, 2]: pairs d = 1, 2, 1 -> (2·sp(1) + sp(2))/3 = (2·0.31326 + 0.12693)/3 = 0.25115
    out = P.ranking_loss(t(2.0, 1.0, 0.0)[None], torch.tensor([[0, 1, 2]]), torch.ones(1, 3))
    assert out.shape == (1,)
    assert out.item() == pytest.approx(0.251150, abs=1e-6)


def test_ranking_loss_ties_dropped_and_order_invariant():
    # ranks [0, 0, 1]: tied pair (0,1) dropped; pairs (0,2) d=2 and (1,2) d=1 -> (0.12693 + 0.31326)/2 = 0.22009
    out = P.ranking_loss(t(2.0, 1.0, 0.0)[None], torch.tensor([[0, 0, 1]]), torch.ones(1, 3))
    assert out.item() == pytest.approx(0.220095, abs=1e-6)
    # permuting the responses (with their ranks) changes nothing
    out2 = P.ranking_loss(t(0.0, 2.0, 1.0)[None], torch.tensor([[1, 0, 0]]), torch.ones(1, 3))
    assert out2.item() == pytest.approx(out.item(), abs=1e-12)


def test_ranking_loss_variable_k_and_padding():
    # prompt 0 has K=2 (third slot is padding holding garbage nan), prompt 1 has K=3
    rewards = torch.tensor([[1.0, 0.0, float("nan")], [2.0, 1.0, 0.0]], dtype=torch.float64)
    ranks = torch.tensor([[0, 1, -5], [0, 1, 2]])  # the padded rank would win every pair if not masked
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = P.ranking_loss(rewards, ranks, mask)
    # prompt 0: one pair, sp(1) = 0.31326; prompt 1: 0.25115 as above
    assert torch.allclose(out, t(0.313262, 0.251150), atol=1e-6)


def test_ranking_loss_no_valid_pairs_and_grad():
    rewards = torch.tensor([[1.0, 2.0], [0.5, 0.5]], requires_grad=True)
    ranks = torch.tensor([[0, 0], [0, 1]])  # prompt 0: all tied -> 0 loss
    mask = torch.tensor([[1, 1], [1, 0]])  # prompt 1: single response -> 0 loss
    out = P.ranking_loss(rewards, ranks, mask)
    assert out.tolist() == [0.0, 0.0]
    out.sum().backward()
    assert torch.isfinite(rewards.grad).all()


def test_ranking_loss_equals_pairwise_mean():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(4, 5, generator=g, dtype=torch.float64)
    ranks = torch.stack([torch.randperm(5, generator=g) for _ in range(4)])
    out = P.ranking_loss(r, ranks, torch.ones(4, 5))
    for b in range(4):
        losses = [
            P.pairwise_loss(r[b, i], r[b, j]) for i in range(5) for j in range(5) if ranks[b, i] < ranks[b, j]
        ]
        assert len(losses) == 10  # C(5, 2)
        assert out[b].item() == pytest.approx(torch.stack(losses).mean().item(), abs=1e-12)


def test_soft_label_loss():
    # q = 0.75, d = 1: 0.75·sp(1) + 0.25·sp(−1) = 0.75·0.31326 + 0.25·1.31326 = 0.56326
    assert P.soft_label_loss(t(1.0), t(0.0), 0.75).item() == pytest.approx(0.563262, abs=1e-6)
    # q = 1 reduces to the hard pairwise loss
    assert P.soft_label_loss(t(1.0), t(0.0), 1.0).item() == pytest.approx(
        P.pairwise_loss(t(1.0), t(0.0)).item()
    )


def test_best_of_n_loss():
    # −log(e³/(e¹ + e² + e³)) = log(1 + e^{−1} + e^{−2}) = 0.40761
    out = P.best_of_n_loss(t(1.0, 2.0, 3.0)[None], torch.tensor([2]))
    assert out.item() == pytest.approx(0.407606, abs=1e-6)


# DPO family example: pc=−10, pr=−12, rc=−11, rr=−11, β=0.1 -> chosen log-ratio 1, rejected −1, h = 2, βh = 0.2
PC, PR, RC, RR = t(-10.0), t(-12.0), t(-11.0), t(-11.0)


def test_dpo_loss_hand_values_and_rewards():
    losses, cr, rr = P.dpo_loss(PC, PR, RC, RR, beta=0.1)
    assert losses.item() == pytest.approx(0.598139, abs=1e-6)  # sp(0.2)
    assert cr.item() == pytest.approx(0.1) and rr.item() == pytest.approx(-0.1)
    # cDPO ε = 0.1: 0.9·sp(0.2) + 0.1·sp(−0.2) = 0.9·0.59814 + 0.1·0.79814 = 0.61814
    losses, _, _ = P.dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.1)
    assert losses.item() == pytest.approx(0.618139, abs=1e-6)
    with pytest.raises(ValueError):
        P.dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.7)


def test_dpo_rewards_are_detached():
    pc = PC.clone().requires_grad_(True)
    losses, cr, _ = P.dpo_loss(pc, PR, RC, RR, beta=0.1)
    assert losses.requires_grad and not cr.requires_grad
    losses.sum().backward()
    # d/dpc sp(β·h) = −β·σ(−βh) = −0.1·σ(−0.2) = −0.1·0.45017
    assert pc.grad.item() == pytest.approx(-0.1 * (1 / (1 + math.exp(0.2))), abs=1e-9)


def test_ipo_hinge_robust():
    # IPO: (h − 1/(2β))² = (2 − 5)² = 9
    assert P.ipo_loss(PC, PR, RC, RR, beta=0.1)[0].item() == pytest.approx(9.0)
    # hinge: relu(1 − 0.2) = 0.8
    assert P.hinge_loss(PC, PR, RC, RR, beta=0.1)[0].item() == pytest.approx(0.8)
    assert P.hinge_loss(PC, PR, RC, RR, beta=1.0)[0].item() == 0.0  # relu(1 − 2) = 0
    # robust ε=0.1: (0.9·sp(0.2) − 0.1·sp(−0.2))/0.8 = (0.53833 − 0.07981)/0.8 = 0.57314
    assert P.robust_dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.1)[0].item() == pytest.approx(
        0.573139, abs=1e-6
    )
    # ε = 0 reduces to DPO
    assert P.robust_dpo_loss(PC, PR, RC, RR, 0.1, 0.0)[0].item() == pytest.approx(0.598139, abs=1e-6)
    with pytest.raises(ValueError):
        P.robust_dpo_loss(PC, PR, RC, RR, 0.1, 0.5)
    with pytest.raises(ValueError):
        P.ipo_loss(PC, PR, RC, RR, 0.1, label_smoothing=0.1)


def test_dpo_losses_lookup_uniform_call():
    assert set(P.DPO_LOSSES) == {"sigmoid", "ipo", "hinge", "robust"}
    for name, fn in P.DPO_LOSSES.items():
        losses, cr, rr = fn(PC, PR, RC, RR, beta=0.1, label_smoothing=0.0)
        assert losses.shape == PC.shape, name


def test_robust_dpo_is_unbiased_under_label_noise():
    # E over flips with rate ε of robust loss on (w,l)/(l,w) equals the clean DPO loss (Chowdhury et al. Lemma)
    h = torch.linspace(-3, 3, 7, dtype=torch.float64)
    z = torch.zeros_like(h)
    eps, beta = 0.2, 0.5
    clean = P.dpo_loss(h, z, z, z, beta)[0]
    fwd = P.robust_dpo_loss(h, z, z, z, beta, eps)[0]
    flipped = P.robust_dpo_loss(z, h, z, z, beta, eps)[0]
    assert torch.allclose((1 - eps) * fwd + eps * flipped, clean, atol=1e-12)


def test_simpo():
    # β=2, γ=0.5, avg −0.5 vs −1.0: 2·0.5 − 0.5 = 0.5 -> sp(0.5) = 0.4741
    losses, cr, rr = P.simpo_loss(t(-0.5), t(-1.0), beta=2.0, gamma=0.5)
    assert losses.item() == pytest.approx(0.474077, abs=1e-6)
    assert cr.item() == pytest.approx(-1.0) and rr.item() == pytest.approx(-2.0)


def test_orpo():
    # P_w = 0.5 -> odds 1; P_l = 0.2 -> odds 0.25; log-odds ratio = log 4; sp(log 4) = log(1.25) = 0.22314
    losses, cr, _ = P.orpo_loss(t(math.log(0.5)), t(math.log(0.2)), lam=0.1)
    assert losses.item() == pytest.approx(0.1 * 0.223144, abs=1e-7)
    assert cr.item() == pytest.approx(0.1 * math.log(0.5))


def test_orpo_log_odds_stable():
    x = t(-1e-9, -1e-4, -0.5, -0.7, -30.0, 0.0)
    lo = P.log_odds(x)
    assert torch.isfinite(lo).all()
    ref = torch.log(torch.exp(x[:5]) / (1 - torch.exp(x[:5])))
    assert torch.allclose(lo[:5], ref, rtol=1e-6)
    # gradient finite near 0
    y = t(-1e-6).requires_grad_(True)
    P.orpo_loss(y, t(-2.0), lam=1.0)[0].backward()
    assert torch.isfinite(y.grad).all()


def test_kto():
    # β=1, z0=0.5. desirable r = 1: 1 − σ(0.5) = 0.37754; undesirable r = −1: 1 − σ(0.5 + 1) = 0.18243
    pol, ref = t(1.0, -1.0), t(0.0, 0.0)
    losses, rewards = P.kto_loss(pol, ref, torch.tensor([True, False]), torch.tensor(0.5), beta=1.0)
    assert torch.allclose(losses, t(0.377541, 0.182426), atol=1e-6)
    assert rewards.tolist() == [1.0, -1.0]
    # λ_D = 2, λ_U = 0.5 scale each branch: λ − λσ = λ(1 − σ)
    losses, _ = P.kto_loss(pol, ref, torch.tensor([True, False]), 0.5, beta=1.0, lambda_d=2.0, lambda_u=0.5)
    assert torch.allclose(losses, t(2 * 0.377541, 0.5 * 0.182426), atol=1e-6)
    # negative KL estimates are clamped to 0 and never carry gradient
    z = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    pol = t(0.0).requires_grad_(True)
    losses, _ = P.kto_loss(pol, t(0.0), torch.tensor([True]), z, beta=1.0)
    assert losses.item() == pytest.approx(0.5)  # 1 − σ(0)
    losses.sum().backward()
    assert z.grad is None and pol.grad.item() == pytest.approx(-0.25)  # −β·σ'(0) = −0.25


def test_kto_kl_estimate():
    est = P.kto_kl_estimate(t(1.0, 2.0, -6.0).requires_grad_(True), t(0.0, 0.0, 0.0))
    assert est.item() == 0.0 and not est.requires_grad  # mean −1 -> clamp 0
    assert P.kto_kl_estimate(t(1.0, 2.0), t(0.0, 1.0)).item() == pytest.approx(1.0)


def test_nll_term():
    # −(−6)/3 = 2, −(−2)/4 = 0.5; zero length clamped to 1
    assert P.nll_term(t(-6.0, -2.0, 0.0), torch.tensor([3, 4, 0])).tolist() == [2.0, 0.5, 0.0]
