"""Masked reductions shared by every loss (METHODS §1, §11).

One masking convention everywhere: ``mask`` has the same shape as the values and 1 (or True)
marks an entry that counts. Masked entries are *replaced* by zero before any arithmetic, so
padding that holds ``nan``/``inf`` (e.g. ``-inf`` log-probs) never leaks into a result.
Counts are clamped to at least 1, so an all-masked reduction returns 0 instead of ``nan``.
"""

from __future__ import annotations

import torch

AGGREGATION_MODES = ("token", "sequence", "sequence_sum")


def _zero_masked(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x * mask with masked entries exactly 0, mask as x.dtype)``."""
    if mask.shape != x.shape:
        mask = mask.expand_as(x)
    m = mask.to(x.dtype)
    return torch.where(mask.bool(), x * m, torch.zeros_like(x)), m


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x * mask`` over ``dim`` (all dims if None)."""
    xm, _ = _zero_masked(x, mask)
    return xm.sum() if dim is None else xm.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over the unmasked entries; 0 where nothing is unmasked."""
    xm, m = _zero_masked(x, mask)
    if dim is None:
        return xm.sum() / m.sum().clamp(min=1.0)
    return xm.sum(dim) / m.sum(dim).clamp(min=1.0)


def masked_var(
    x: torch.Tensor, mask: torch.Tensor, unbiased: bool = False, dim: int | None = None
) -> torch.Tensor:
    """Variance over the unmasked entries (two-pass: mean first, then squared deviations).

    ``unbiased=False`` is the population variance (divide by n); ``unbiased=True`` applies
    Bessel's correction n/(n-1) and raises ValueError if fewer than 2 entries count (over the
    whole tensor when ``dim`` is None).
    """
    xm, m = _zero_masked(x, mask)
    if dim is None:
        n = m.sum()
        mean = xm.sum() / n.clamp(min=1.0)
        dev = torch.where(mask.expand_as(x).bool(), (x - mean) ** 2, torch.zeros_like(x))
        var = (dev * m).sum() / n.clamp(min=1.0)
        if unbiased:
            if float(n) < 2:
                raise ValueError("masked_var(unbiased=True) needs at least 2 unmasked entries")
            var = var * n / (n - 1)
        return var
    n = m.sum(dim, keepdim=True)
    mean = xm.sum(dim, keepdim=True) / n.clamp(min=1.0)
    dev = torch.where(mask.expand_as(x).bool(), (x - mean) ** 2, torch.zeros_like(x))
    var = (dev * m).sum(dim, keepdim=True) / n.clamp(min=1.0)
    if unbiased:
        if bool((n < 2).any()):
            raise ValueError("masked_var(unbiased=True) needs at least 2 unmasked entries per slice")
        var = var * n / (n - 1)
    return var.squeeze(dim)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Reduce a ``(B, T)`` per-token loss to a scalar.

    - ``"token"``: mean over all unmasked tokens of the batch (DAPO / "bnpo").
    - ``"sequence"``: mean over each sequence's tokens, then mean over sequences (GRPO's 1/|o_i|,
      DeepSeekMath Eq. 3).
    - ``"sequence_sum"``: sum over each sequence's tokens, then mean over sequences.

    Departure (edge case only): in the two sequence modes, rows with no unmasked token are left
    out of the mean over sequences (TRL's GRPO counts them as 0). All rows empty -> 0.
    """
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"unknown aggregation mode {mode!r}; expected one of {AGGREGATION_MODES}")
    xm, m = _zero_masked(per_token, mask)
    if mode == "token":
        return xm.sum() / m.sum().clamp(min=1.0)
    if per_token.dim() < 2:
        raise ValueError("sequence aggregation needs per-token values of shape (B, T)")
    tokens = m.sum(-1)
    seq = xm.sum(-1)
    if mode == "sequence":
        seq = seq / tokens.clamp(min=1.0)
    nonempty = (tokens > 0).to(per_token.dtype)
    return (seq * nonempty).sum() / nonempty.sum().clamp(min=1.0)
