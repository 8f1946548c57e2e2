"""Hand-computed checks for alignstack.losses.policy."""

import math

import pytest
import torch

from alignstack.losses import policy as L

# Four real tokens with old log-prob 0, so ρ = exp(logp): padding at (1, 2) holds garbage.
RATIOS = torch.tensor([[1.5, 0.5, 0.5], [1.1, 1.0, 99.0]], dtype=torch.float64)
ADV = torch.tensor([[1.0, 1.0, -1.0], [-2.0, 0.0, 5.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_ppo_policy_loss_hand_values():
    logp = torch.log(RATIOS).requires_grad_(True)
    old = torch.zeros_like(logp)
    # token by token, max(−Aρ, −A·clip(ρ, 0.8, 1.2)):
    #   ρ=1.5 A=1:  max(−1.5, −1.2) = −1.2  (clipped)
    #   ρ=0.5 A=1:  max(−0.5, −0.8) = −0.5
    #   ρ=0.5 A=−1: max( 0.5,  0.8) =  0.8  (clipped)
    #   ρ=1.1 A=−2: max( 2.2,  2.2) =  2.2
    #   ρ=1.0 A=0:  0
    # token mean = (−1.2 − 0.5 + 0.8 + 2.2 + 0)/5 = 0.26
    loss, stats = L.ppo_policy_loss(logp, old, ADV, MASK, clip_range=0.2)
    assert loss.item() == pytest.approx(0.26)
    assert stats["clipfrac"].item() == pytest.approx(2 / 5)
    # approx_kl = mean ½(log ρ)² over the 5 tokens
    lr = [math.log(1.5), math.log(0.5), math.log(0.5), math.log(1.1), 0.0]
    assert stats["approx_kl"].item() == pytest.approx(sum(0.5 * x * x for x in lr) / 5)
    loss.backward()
    # clipped tokens carry no gradient; unclipped: d(−Aρ)/dlogp = −Aρ / 5
    g = logp.grad
    assert g[0, 0].item() == 0.0 and g[0, 2].item() == 0.0 and g[1, 2].item() == 0.0
    assert g[0, 1].item() == pytest.approx(-1.0 * 0.5 / 5)
    assert g[1, 0].item() == pytest.approx(2.0 * 1.1 / 5)


def test_ppo_sequence_aggregation_and_broadcast_adv():
    logp = torch.log(RATIOS)
    # sequence mode: row 0 mean (−1.2 − 0.5 + 0.8)/3 = −0.3; row 1 mean (2.2 + 0)/2 = 1.1 -> 0.4
    loss, _ = L.ppo_policy_loss(logp, torch.zeros_like(logp), ADV, MASK, aggregation="sequence")
    assert loss.item() == pytest.approx(0.4)
    # (B,) advantages broadcast over tokens: A = [1, 1]: row 0 -> −1.2, −0.5, −0.5 ; row 1 -> −1.1, −1.0
    loss, _ = L.ppo_policy_loss(
        logp, torch.zeros_like(logp), torch.tensor([1.0, 1.0], dtype=torch.float64), MASK
    )
    assert loss.item() == pytest.approx((-1.2 - 0.5 - 0.5 - 1.1 - 1.0) / 5)


def test_ppo_asymmetric_clip_dapo():
    logp = torch.log(torch.tensor([[1.5, 0.5]], dtype=torch.float64))
    adv = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    # ε_low 0.2, ε_high 0.28: ρ=1.5 A=1 -> −1.28; ρ=0.5 A=−1 -> max(0.5, 0.8) = 0.8 -> mean −0.24
    loss, _ = L.ppo_policy_loss(logp, torch.zeros_like(logp), adv, torch.ones(1, 2), clip_range_high=0.28)
    assert loss.item() == pytest.approx((-1.28 + 0.8) / 2)


def test_value_loss_hand_values():
    values = torch.tensor([[1.0, 0.0, 0.9, 7.0]], dtype=torch.float64)
    old = torch.tensor([[0.5, 0.5, 0.5, 0.0]], dtype=torch.float64)
    ret = torch.tensor([[0.0, 0.6, 1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0]])
    # t0: (1−0)² = 1 vs v_clip 0.7 -> 0.49 ; max 1    -> 0.5
    # t1: (0−0.6)² = 0.36 vs v_clip 0.3 -> 0.09 ; 0.36 -> 0.18
    # t2: (0.9−1)² = 0.01 vs v_clip 0.7 -> 0.09 ; 0.09 -> 0.045 (clipped branch active)
    loss, stats = L.value_loss(values, old, ret, mask, clip_range=0.2)
    assert loss.item() == pytest.approx((0.5 + 0.18 + 0.045) / 3)
    assert stats["vf_clipfrac"].item() == pytest.approx(1 / 3)
    loss, _ = L.value_loss(values, old, ret, mask, clip_range=None)
    assert loss.item() == pytest.approx((0.5 + 0.18 + 0.005) / 3)


def test_grpo_loss_hand_values():
    # ρ = 1 everywhere; ref − logp = log 2 -> k3 = 2 − log 2 − 1 = 0.306853
    logp = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    ref = torch.full((2, 2), math.log(2.0), dtype=torch.float64)
    adv = torch.tensor([1.0, -0.5], dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0]])
    k3 = 1.0 - math.log(2.0)
    # per token −A + β·k3: seq 0 −1 + 0.04·0.306853 = −0.987726 (×2), seq 1 0.5 + 0.012274 = 0.512274
    loss, stats = L.grpo_loss(logp, logp.detach(), ref, adv, mask, beta=0.04, aggregation="sequence")
    assert loss.item() == pytest.approx(((-1 + 0.04 * k3) + (0.5 + 0.04 * k3)) / 2)  # −0.237726
    assert stats["kl"].item() == pytest.approx(k3)
    loss, _ = L.grpo_loss(logp, logp.detach(), ref, adv, mask, beta=0.04, aggregation="token")
    assert loss.item() == pytest.approx((2 * (-1 + 0.04 * k3) + (0.5 + 0.04 * k3)) / 3)  # −0.487726
    loss, _ = L.grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0)
    assert loss.item() == pytest.approx((-1 + 0.5) / 2)
    with pytest.raises(ValueError):
        L.grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.1)


def test_grpo_gradient_matches_policy_gradient_on_policy():
    # on-policy (ρ = 1), β = 0: ∇ = −A_i/|o_i| per token, over G sequences
    logp = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    loss, _ = L.grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0)
    loss.backward()
    expected = -(adv[:, None] / mask.sum(1, keepdim=True)) * mask / 3
    assert torch.allclose(logp.grad, expected.to(torch.float64))


def test_reinforce_loss():
    # −mean(A·logπ) = −mean(2·(−1), (−1)·(−2)) = −mean(−2, 2) = 0 ; gradient −A/B
    lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    adv = torch.tensor([2.0, -1.0], requires_grad=True)
    loss = L.reinforce_loss(lp, adv)
    assert loss.item() == 0.0
    loss.backward()
    assert lp.grad.tolist() == [-1.0, 0.5] and adv.grad is None


def test_padding_garbage_never_reaches_values_or_gradients():
    nan, inf = float("nan"), float("inf")
    logp = torch.tensor([[-1.0, -0.5], [-0.2, inf]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-1.1, -0.4], [-0.3, -inf]], dtype=torch.float64)
    ref = torch.tensor([[-0.9, -0.6], [-0.1, nan]], dtype=torch.float64)
    adv = torch.tensor([[1.0, 1.0], [-1.0, nan]], dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0]])
    for fn in (
        lambda: L.ppo_policy_loss(logp, old, adv, mask)[0],
        lambda: L.grpo_loss(logp, old, ref, adv, mask)[0],
        lambda: L.value_loss(logp, old, ref, mask)[0],
    ):
        logp.grad = None
        loss = fn()
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logp.grad).all() and logp.grad[1, 1].item() == 0.0
    # an all-masked row changes nothing in "sequence" mode
    full, _ = L.grpo_loss(logp[:1], old[:1], ref[:1], adv[:1], mask[:1])
    padded, _ = L.grpo_loss(logp, old, ref, adv, torch.tensor([[1, 1], [0, 0]]))
    assert padded.item() == pytest.approx(full.item())
