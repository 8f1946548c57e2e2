"""Checks for alignstack.algos.rewards."""

import math

import pytest
import torch

from alignstack.algos import rewards as R
from alignstack.algos.advantages import whiten


def test_logit():
    # logit(0.15) = log(0.15/0.85) = −1.734601
    assert R.logit(0.15).item() == pytest.approx(-1.734601, abs=1e-6)
    assert R.logit(torch.tensor([0.5])).item() == 0.0
    assert torch.isfinite(R.logit(torch.tensor([0.0, 1.0]))).all()


def test_llama2_combined_reward_gate():
    help_ = torch.tensor([2.0, 2.0, 2.0, 40.0])
    safety = torch.tensor([3.0, -2.0, -1.0, 30.0])
    tagged = torch.tensor([True, False, False, False])
    # row 0 tagged -> safety 3 ; row 1: −2 < logit(0.15) = −1.7346 -> safety ; row 2: −1 ≥ −1.7346 -> help ;
    # row 3: large logits (σ(30) rounds to 1 in fp32, logit(σ(·)) would overflow) -> help 40 exactly
    out, used = R.llama2_combined_reward(help_, safety, tagged)
    assert out.tolist() == [3.0, -2.0, 2.0, 40.0]
    assert used.tolist() == [True, True, False, False]


def test_llama2_gate_matches_probability_form():
    g = torch.Generator().manual_seed(0)
    sh, ss = (
        torch.randn(200, generator=g, dtype=torch.float64) * 3,
        torch.randn(200, generator=g, dtype=torch.float64) * 3,
    )
    tag = torch.rand(200, generator=g) < 0.2
    # paper: R_c = R_s if tag or R_s < 0.15 else R_h (probabilities), then LOGIT
    rs, rh = torch.sigmoid(ss), torch.sigmoid(sh)
    paper = torch.logit(torch.where(tag | (rs < 0.15), rs, rh))
    out, _ = R.llama2_combined_reward(sh, ss, tag)
    assert torch.allclose(out, paper, atol=1e-9)
    # the caller then whitens
    w = whiten(out)
    assert w.mean().abs().item() < 1e-9


def test_linear_combined_reward():
    out = R.linear_combined_reward([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])], [0.5, 2.0])
    assert out.tolist() == [6.5, 9.0]  # 0.5·1 + 2·3, 0.5·2 + 2·4
    with pytest.raises(ValueError):
        R.linear_combined_reward([torch.tensor([1.0])], [1.0, 2.0])


def test_missing_eos_penalty():
    scores, has_eos = torch.tensor([0.5, -0.3]), torch.tensor([True, False])
    assert torch.allclose(R.apply_missing_eos_penalty(scores, has_eos), torch.tensor([0.5, -1.3]))
    assert R.apply_missing_eos_penalty(scores, has_eos, mode="set").tolist() == [0.5, -1.0]
    with pytest.raises(ValueError):
        R.apply_missing_eos_penalty(scores, has_eos, mode="mul")


def test_platt_calibrate_recovers_parameters_and_is_stationary():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(20000, generator=g, dtype=torch.float64) * 2
    y = (torch.rand(20000, generator=g, dtype=torch.float64) < torch.sigmoid(0.5 * s + 1.0)).double()
    a, b = R.platt_calibrate(s, y)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(1.0, abs=0.08)
    # first-order optimality of the log loss: Σ(p − y) = 0 and Σ(p − y)·s = 0
    resid = torch.sigmoid(R.platt_apply(s, a, b)) - y
    assert abs(resid.mean().item()) < 1e-6 and abs((resid * s).mean().item()) < 1e-6


def test_platt_targets_option():
    s = torch.tensor([-2.0, -1.0, 1.0, 2.0])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    a, _ = R.platt_calibrate(s, y, platt_targets=True)
    assert math.isfinite(a) and a > 0  # separable data stays finite with Platt's smoothed targets


def test_center_rewards():
    # demonstrations score mean (0.5 + 1.5)/2 = 1 -> subtract 1
    assert R.center_rewards(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.5])).tolist() == [0.0, 1.0]
