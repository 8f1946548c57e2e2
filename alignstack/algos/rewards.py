"""Reward transforms: Llama 2's piecewise helpfulness/safety reward (METHODS §4.3), linear mixes,
the missing-EOS penalty (§5.5 item 11), Platt calibration and the InstructGPT bias shift (§2, §3.1).

Order inside a PPO step (METHODS A.3): raw RM logits -> combine (``llama2_combined_reward`` or
``linear_combined_reward``) -> ``whiten`` (advantages module) -> ``apply_missing_eos_penalty``
-> KL shaping. The EOS penalty comes AFTER the transform so its size is in whitened units and
whitening cannot rescale or undo it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def logit(p: torch.Tensor | float, eps: float = 1e-6) -> torch.Tensor:
    """log(p/(1−p)) with p clamped to [eps, 1−eps] so the result is finite."""
    p = torch.as_tensor(p).clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


def llama2_combined_reward(
    help_logits: torch.Tensor,
    safety_logits: torch.Tensor,
    is_safety: torch.Tensor,
    threshold: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama 2 Eq. 4 gate on raw RM logits: R_c = s_safety if IS_SAFETY(p) or σ(s_safety) < 0.15
    else s_help (Touvron et al. 2023, §3.2.2).

    Works on logits, gating with s_safety < logit(threshold) (≈ −1.735 at 0.15), so
    LOGIT(R_c) = the chosen raw logit and no probability is ever inverted (METHODS §4.3 numerics
    note, our choice). The caller then applies ``whiten``. The threshold assumes a calibrated
    safety RM (see ``platt_calibrate``). Returns (combined logits (B,), used_safety bool (B,)).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be a probability in (0, 1)")
    cut = math.log(threshold) - math.log1p(-threshold)
    used = is_safety.bool() | (safety_logits < cut)
    return torch.where(used, safety_logits, help_logits), used


def linear_combined_reward(rewards: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Σ_k w_k·r_k over same-shape reward tensors."""
    if len(rewards) != len(weights) or not rewards:
        raise ValueError("need one weight per reward tensor (and at least one)")
    out = torch.zeros_like(rewards[0])
    for r, w in zip(rewards, weights):
        out = out + w * r
    return out


def apply_missing_eos_penalty(
    scores: torch.Tensor, has_eos: torch.Tensor, penalty: float = -1.0, mode: str = "add"
) -> torch.Tensor:
    """EOS trick (METHODS §5.5 item 11; TRL ``missing_eos_penalty``), applied AFTER the reward transform.

    ``mode="add"``: score + penalty for completions without EOS (TRL's form);
    ``mode="set"``: score = penalty (Ziegler's "score −1" form).
    """
    no_eos = ~has_eos.bool()
    if mode == "add":
        return torch.where(no_eos, scores + penalty, scores)
    if mode == "set":
        return torch.where(no_eos, torch.full_like(scores, penalty), scores)
    raise ValueError(f"unknown mode {mode!r}; expected 'add' or 'set'")


def platt_calibrate(
    logits: torch.Tensor, labels: torch.Tensor, steps: int = 100, platt_targets: bool = False
) -> tuple[float, float]:
    """Fit Platt scaling P(y=1|s) = σ(a·s + b) by minimising the log loss with L-BFGS (float64).

    ``labels`` are 0/1. ``platt_targets=True`` uses Platt's (1999) smoothed targets
    (N₊+1)/(N₊+2) and 1/(N₋+2) instead of hard 0/1. Returns (a, b).
    """
    s = logits.detach().reshape(-1).to(torch.float64)
    y = labels.detach().reshape(-1).to(torch.float64)
    if platt_targets:
        n_pos = float(y.sum())
        n_neg = float(y.numel()) - n_pos
        y = torch.where(
            y > 0.5, torch.full_like(y, (n_pos + 1) / (n_pos + 2)), torch.full_like(y, 1 / (n_neg + 2))
        )
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [params], lr=1.0, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(params[0] * s + params[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = params.detach().tolist()
    return float(a), float(b)


def platt_apply(logits: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Calibrated logit a·s + b (σ of it is the calibrated probability; keep logits, METHODS §4.3)."""
    return a * logits + b


def center_rewards(rewards: torch.Tensor, reference_rewards: torch.Tensor) -> torch.Tensor:
    """InstructGPT bias shift: subtract the mean RM score of the demonstrations (METHODS §3.1).

    For the helpfulness RM only: shifting the safety RM would move Llama 2's 0.15 gate (§4.3).
    """
    return rewards - reference_rewards.mean()
