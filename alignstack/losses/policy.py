"""Policy-gradient losses: PPO (METHODS §5.3, A.3), GRPO (§11, A.9), REINFORCE/RLOO (§11).

Per-token tensors are ``(B, T)`` with a response mask of the same shape. Only ``logprobs``
(and ``values``) carry gradient: old/ref log-probs, advantages and returns are detached here.
Masked entries are zeroed before any arithmetic. Statistics are detached tensors in a dict.
"""

from __future__ import annotations

import torch

from alignstack.losses.reduce import aggregate, masked_mean


def _clean(t: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor | None:
    """Zero the masked entries up front so padding garbage (nan/inf) cannot reach values or grads."""
    if t is None or t.shape != mask.shape:
        return t
    return torch.where(mask.bool(), t, torch.zeros_like(t))


def _const(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def _per_token_adv(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if advantages.dim() == 1 and like.dim() == 2:
        return advantages.unsqueeze(1).expand_as(like)
    return advantages


def _clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    clip_range_high: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high)); also returns ρ, clipped-mask, log-ratio."""
    high = clip_range if clip_range_high is None else clip_range_high
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    adv = _per_token_adv(advantages, logprobs)
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + high)
    return torch.maximum(pg1, pg2), ratio, (pg2 > pg1), log_ratio


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
    aggregation: str = "token",
    clip_range_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate (Schulman et al. 2017, Eq. 7), as a loss to minimize.

    L_t = max(−A_t·ρ_t, −A_t·clip(ρ_t, 1−ε, 1+ε)), ρ_t = exp(log π_θ − log π_old), aggregated
    with :func:`aggregate` (``"token"`` = the reference code's mean over all response tokens).
    ``clip_range_high`` gives DAPO's asymmetric clip [1−ε_low, 1+ε_high]. ``advantages`` may be
    (B, T) or (B,) (broadcast over tokens). Stats: ``clipfrac`` (share of tokens where the clipped
    branch is active), ``approx_kl`` = mean ½(log ρ)² (as TRL's old PPO trainer), ``ratio_mean``.
    """
    old_logprobs, advantages = _const(old_logprobs), _const(advantages)
    logprobs, old_logprobs, advantages = (_clean(t, mask) for t in (logprobs, old_logprobs, advantages))
    per_token, ratio, clipped, log_ratio = _clipped_surrogate(
        logprobs, old_logprobs, advantages, clip_range, clip_range_high
    )
    loss = aggregate(per_token, mask, aggregation)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean(clipped.to(logprobs.dtype), mask),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float | None = 0.2,
    aggregation: str = "token",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss (``openai/lm-human-preferences`` ref. code, METHODS §5.3).

    0.5·max((V − R)², (V_clip − R)²), V_clip = V_old + clip(V − V_old, −c, c);
    ``clip_range=None`` gives the unclipped 0.5·(V − R)². Stats: ``vf_clipfrac`` (share of tokens
    where the clipped branch is larger), ``value_mean``.
    """
    values, old_values, returns = (_clean(t, mask) for t in (values, _const(old_values), _const(returns)))
    unclipped = (values - returns) ** 2
    if clip_range is None:
        per_token = 0.5 * unclipped
        clipped_active = torch.zeros_like(unclipped, dtype=torch.bool)
    else:
        v_clip = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        clipped = (v_clip - returns) ** 2
        per_token = 0.5 * torch.maximum(unclipped, clipped)
        clipped_active = clipped > unclipped
    loss = aggregate(per_token, mask, aggregation)
    with torch.no_grad():
        stats = {
            "vf_clipfrac": masked_mean(clipped_active.to(values.dtype), mask),
            "value_mean": masked_mean(values, mask),
        }
    return loss, stats


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
    beta: float = 0.04,
    aggregation: str = "sequence",
    clip_range_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO loss (DeepSeekMath, arXiv 2402.03300, Eq. 3; METHODS A.9), to minimize.

    Per token: −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) + β·k3, with k3 = π_ref/π_θ − log(π_ref/π_θ) − 1
    (the KL sits in the loss, not the reward). ``aggregation="sequence"`` is the paper's
    (1/G)Σ_i(1/|o_i|)Σ_t; ``"token"`` is DAPO's; Dr. GRPO uses ``"sequence_sum"`` (TRL's
    ``dr_grpo`` divides by a constant max length instead — same up to a constant factor).
    ``advantages`` is (B,) (one per completion) or (B, T). ``ref_logprobs`` may be None if β = 0.
    Stats: ``kl`` (token mean of k3), ``clipfrac``.
    """
    old_logprobs, ref_logprobs, advantages = _const(old_logprobs), _const(ref_logprobs), _const(advantages)
    logprobs, old_logprobs, ref_logprobs, advantages = (
        _clean(t, mask) for t in (logprobs, old_logprobs, ref_logprobs, advantages)
    )
    per_token, _, clipped, _ = _clipped_surrogate(
        logprobs, old_logprobs, advantages, clip_range, clip_range_high
    )
    kl = None
    if beta != 0.0:
        if ref_logprobs is None:
            raise ValueError("grpo_loss: ref_logprobs is required when beta != 0")
        d = ref_logprobs - logprobs
        kl = torch.exp(d) - d - 1.0
        per_token = per_token + beta * kl
    loss = aggregate(per_token, mask, aggregation)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean(clipped.to(logprobs.dtype), mask)}
        if kl is not None:
            stats["kl"] = masked_mean(kl, mask)
    return loss, stats


def reinforce_loss(seq_logprobs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a baseline, whole completion as one action (RLOO, Ahmadian et al. 2024).

    −mean_i(A_i·log π_θ(y_i|x)) with ``seq_logprobs`` (B,) summed over response tokens and
    ``advantages`` (B,) treated as constants (detached here).
    """
    return -(advantages.detach() * seq_logprobs).mean()
