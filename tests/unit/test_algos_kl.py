"""Checks for alignstack.algos.kl."""

import json
import math

import pytest
import torch

from alignstack.algos import kl as K


def test_estimators_hand_values():
    # π = 0.5, π_ref = 0.25: k1 = log 2 = 0.693147 ; k2 = ½·log²2 = 0.240227 ; k3 = 0.5 + log 2 − 1 = 0.193147
    lp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert K.kl_k1(lp, ref).item() == pytest.approx(0.693147, abs=1e-6)
    assert K.kl_k2(lp, ref).item() == pytest.approx(0.240227, abs=1e-6)
    assert K.kl_k3(lp, ref).item() == pytest.approx(0.193147, abs=1e-6)


def test_k3_nonnegative_and_estimators_unbiased_by_enumeration():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=g), torch.randn(50, generator=g) * 3
    assert (K.kl_k3(a, b) >= 0).all() and (K.kl_k2(a, b) >= 0).all()
    # E_{a~p}[k1] = E_{a~p}[k3] = KL(p‖q) exactly, over a 5-way categorical
    lp = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    lq = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    p = lp.exp()
    kl = (p * (lp - lq)).sum()
    assert (p * K.kl_k1(lp, lq)).sum().item() == pytest.approx(kl.item(), abs=1e-12)
    assert (p * K.kl_k3(lp, lq)).sum().item() == pytest.approx(kl.item(), abs=1e-12)
    assert K.exact_kl(lp, lq).item() == pytest.approx(kl.item(), abs=1e-12)


def test_exact_kl():
    # p = [0.75, 0.25], q = [0.5, 0.5]: 0.75·log 1.5 + 0.25·log 0.5 = 0.304099 − 0.173287 = 0.130812
    logits = torch.tensor([[[math.log(3.0), 0.0], [1.0, 2.0]]])
    ref = torch.tensor([[[0.0, 0.0], [9.0, -9.0]]])
    out = K.exact_kl(logits, ref, mask=torch.tensor([[1, 0]]))
    assert out.shape == (1, 2)
    assert out[0, 0].item() == pytest.approx(0.130812, abs=1e-6)
    assert out[0, 1].item() == 0.0
    same = torch.randn(2, 3, 7)
    assert torch.allclose(K.exact_kl(same, same.clone()), torch.zeros(2, 3), atol=1e-6)
    # invariant to a constant shift of the logits
    assert torch.allclose(K.exact_kl(same, same + 4.0), torch.zeros(2, 3), atol=1e-5)


def test_sequence_kl():
    per_token = torch.tensor([[0.5, 0.25, 9.0], [1.0, 2.0, 3.0]])
    assert K.sequence_kl(per_token, torch.tensor([[1, 1, 0], [1, 1, 1]])).tolist() == [0.75, 6.0]


def test_adaptive_controller_by_hand_and_resume():
    ctl = K.AdaptiveKLController(init_beta=0.15, target=6.0, horizon=10000)
    # KL 9: error = clip(9/6 − 1, ±0.2) = 0.2 ; β = 0.15·(1 + 0.2·512/10000) = 0.15·1.01024 = 0.151536
    assert ctl.update(9.0, n_steps=512) == pytest.approx(0.151536)
    # KL 6.6 (tensor): error 0.1 -> β·(1 + 0.1·0.0512)
    assert ctl.update(torch.tensor(6.6), n_steps=512) == pytest.approx(0.151536 * 1.00512)
    # KL 0: error −0.2 (clipped from −1)
    b = ctl.beta
    assert ctl.update(0.0, 10000) == pytest.approx(b * 0.8)
    state = json.loads(json.dumps(ctl.state_dict()))
    ctl2 = K.AdaptiveKLController()
    ctl2.load_state_dict(state)
    assert ctl2.beta == ctl.beta and ctl2.target == 6.0 and ctl2.horizon == 10000
    assert ctl2.update(9.0, 512) == ctl.update(9.0, 512)


def test_fixed_controller():
    ctl = K.FixedKLController(0.05)
    assert ctl.update(100.0, 512) == 0.05 and ctl.value == 0.05
    ctl2 = K.FixedKLController(1.0)
    ctl2.load_state_dict(ctl.state_dict())
    assert ctl2.beta == 0.05


LOGP = torch.tensor([[-1.0, -1.0, -2.0], [-1.0, -3.0, 0.0]])
REF = torch.tensor([[-1.5, -1.0, -1.0], [-2.0, -1.0, 5.0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_kl_shaped_rewards():
    # kl row 0 = [0.5, 0, −1] ; row 1 = [1, (pad), (pad)] ; β = 0.1
    # rewards row 0 = [−0.05, 0, 0.1 + score 1] ; row 1 = [−0.1 + score 2, 0, 0]
    rewards, kl = K.kl_shaped_rewards(
        torch.tensor([1.0, 2.0]), LOGP.requires_grad_(True), REF, MASK, beta=0.1
    )
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.0, 1.1], [1.9, 0.0, 0.0]]))
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, -1.0], [1.0, 0.0, 0.0]]))
    assert not rewards.requires_grad
    with pytest.raises(ValueError):
        K.kl_shaped_rewards(torch.tensor([1.0, 2.0]), LOGP, REF, torch.tensor([[1, 1, 1], [0, 0, 0]]), 0.1)


def test_rloo_kl_rewards():
    # row 0: 1 − 0.1·(0.5 + 0 − 1) = 1.05 ; row 1: 2 − 0.1·1 = 1.9
    out = K.rloo_kl_rewards(torch.tensor([1.0, 2.0]), LOGP, REF, MASK, beta=0.1)
    assert torch.allclose(out, torch.tensor([1.05, 1.9]))
    assert not out.requires_grad
