"""Advantage estimators: whitening and GAE (METHODS §2, §5.3), GRPO group normalisation and the
RLOO leave-one-out baseline (§11)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def _reduce(fn: Callable[[torch.Tensor], torch.Tensor | None], t: torch.Tensor) -> torch.Tensor:
    out = fn(t)  # in-place reducers such as torch.distributed.all_reduce return None
    return t if out is None or not isinstance(out, torch.Tensor) else out


def whiten(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    shift_mean: bool = True,
    eps: float = 1e-8,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(x − μ)/sqrt(σ² + eps) over the unmasked entries (METHODS §2; ref. code).

    σ² is the **population** (biased, divide-by-n) variance. ``shift_mean=False`` adds μ back
    (rescale only; used for rewards). Masked positions are 0 in the result.
    ``all_reduce``: optional callable that sums a tensor across data-parallel ranks (returning it,
    or reducing in place like ``torch.distributed.all_reduce``), so μ and σ² are global. Two reductions are made: (Σx, n), then Σ(x − μ)² — the
    two-pass form avoids the cancellation of E[x²] − μ² (departure from a single
    (sum, sum-of-squares, count) reduction, same result in exact arithmetic).
    No unmasked entry anywhere -> zeros.
    """
    if mask is None:
        mask = torch.ones_like(x, dtype=torch.bool)
    m = mask.expand_as(x).bool()
    xz = torch.where(m, x, torch.zeros_like(x))
    stats = torch.stack([xz.sum(), m.sum().to(x.dtype)])
    if all_reduce is not None:
        stats = _reduce(all_reduce, stats)
    total, n = stats[0], stats[1]
    if float(n) == 0:
        return torch.zeros_like(x)
    mean = total / n
    sq = torch.where(m, (x - mean) ** 2, torch.zeros_like(x)).sum().reshape(1)
    if all_reduce is not None:
        sq = _reduce(all_reduce, sq)
    var = sq[0] / n
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(m, out, torch.zeros_like(out))


def _check_contiguous(mask: torch.Tensor) -> None:
    m = mask.to(torch.int8)
    starts = (m[:, 1:] > m[:, :-1]).sum(-1) + m[:, 0]
    if bool((starts > 1).any()):
        raise ValueError("gae expects one contiguous block of valid tokens per row (e.g. the response of a "
                         "prompt ⊕ response sequence: zeros, ones, zeros)")


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, Eq. 16) on (B, T) rows whose valid
    tokens form one contiguous block (the response, after prompt positions and before padding).

    δ_t = r_t + γ·V_{t+1} − V_t with V = 0 beyond the last valid token; A_t = δ_t + γλ·A_{t+1};
    returns = A + V. Both outputs are 0 at masked positions and carry no gradient.
    """
    _check_contiguous(mask)
    with torch.no_grad():
        m = mask.bool()
        r = torch.where(m, rewards, torch.zeros_like(rewards))
        v = torch.where(m, values, torch.zeros_like(values))
        T = r.shape[-1]
        adv = torch.zeros_like(r)
        last = torch.zeros_like(r[:, 0])
        for t in reversed(range(T)):
            next_v = v[:, t + 1] if t + 1 < T else torch.zeros_like(last)
            delta = r[:, t] + gamma * next_v - v[:, t]
            last = (delta + gamma * lam * last) * m[:, t].to(r.dtype)
            adv[:, t] = last
        returns = torch.where(m, adv + v, torch.zeros_like(adv))
    return adv, returns


def group_advantages(rewards: torch.Tensor, scale: str | None = "std", eps: float = 1e-4) -> torch.Tensor:
    """GRPO outcome advantages (DeepSeekMath §4.1.2): (R − mean_group)/(std_group + eps), (B, G).

    std is the **unbiased** (Bessel-corrected, ``torch.std`` default) standard deviation, as
    TRL's GRPOTrainer (``nanstd`` applies count/(count−1)). ``scale=None`` is Dr. GRPO (no std
    division); ``scale="batch"`` divides by the std over the whole batch (TRL
    ``scale_rewards="batch"``). A group of size 1 gets advantage 0.
    """
    if scale not in ("std", "batch", None):
        raise ValueError(f"unknown scale {scale!r}; expected 'std', 'batch' or None")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale is None:
        return centred
    if scale == "std":
        if rewards.shape[1] < 2:
            return torch.zeros_like(rewards)
        std = rewards.std(dim=1, keepdim=True)
    else:
        if rewards.numel() < 2:
            return torch.zeros_like(rewards)
        std = rewards.std()
    return centred / (std + eps)


def zero_signal_fraction(rewards: torch.Tensor) -> float:
    """Share of groups (rows of (B, G)) whose rewards are all equal, hence zero advantage."""
    if rewards.shape[0] == 0:
        return 0.0
    spread = rewards.max(dim=1).values - rewards.min(dim=1).values
    return float((spread == 0).float().mean())


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO leave-one-out advantages r_i − mean_{j≠i} r_j = K/(K−1)·(r_i − mean r); (B, K), K ≥ 2."""
    K = rewards.shape[1]
    if K < 2:
        raise ValueError("rloo_advantages needs K >= 2 samples per prompt")
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (K - 1)
    return rewards - baseline


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 − Var[returns − values] / Var[returns] over unmasked entries (value-model diagnostic)."""
    m = mask.bool()
    r, v = returns[m].double(), values[m].double()
    var_r = r.var(unbiased=False)
    return float(1 - (r - v).var(unbiased=False) / var_r.clamp(min=1e-8))
