"""Noise-aware Platt calibration of the safety RM (labels flipped at a known rate)."""
import pytest
import torch

from alignstack.algos.rewards import platt_calibrate
from alignstack.methods.reward_model import RewardModelConfig, check_config, platt_calibrate_noisy


def test_noisy_platt_with_zero_noise_is_plain_platt():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(500, generator=g, dtype=torch.float64)
    y = (torch.rand(500, generator=g, dtype=torch.float64) < torch.sigmoid(1.5 * s + 0.3)).double()
    a0, b0 = platt_calibrate(s, y)
    a1, b1 = platt_calibrate_noisy(s, y, 0.0)
    assert a1 == pytest.approx(a0, abs=1e-5) and b1 == pytest.approx(b0, abs=1e-5)


def test_noisy_platt_recovers_the_clean_curve_plain_platt_does_not():
    # clean P(safe | s) = σ(2s − 1); observed labels flipped with probability 0.1
    g = torch.Generator().manual_seed(1)
    n = 60000
    s = torch.randn(n, generator=g, dtype=torch.float64) * 2
    clean = torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(2 * s - 1)
    y = (clean ^ (torch.rand(n, generator=g, dtype=torch.float64) < 0.1)).double()
    a, b = platt_calibrate_noisy(s, y, 0.1)
    assert a == pytest.approx(2.0, rel=0.1) and b == pytest.approx(-1.0, abs=0.15)
    a0, _ = platt_calibrate(s, y)
    assert a0 < 0.6 * a            # plain Platt on noisy labels flattens the slope


def test_calib_label_noise_is_checked():
    from alignstack.config import ConfigError

    with pytest.raises(ConfigError, match="calib_label_noise"):
        check_config(RewardModelConfig(calib_label_noise=0.6))
