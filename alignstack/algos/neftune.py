"""NEFTune's noise (Jain et al. 2023, arXiv 2310.05914, Algorithm 1), as pure functions of tensors.

For embedded tokens ``X_emb`` of shape ``(B, L, d)``, training sees ``X_emb + (α / sqrt(L·d)) · ε`` with
``ε ~ Uniform(-1, 1)`` elementwise. The scale keeps the expected Frobenius norm of one sequence's noise at
``α / sqrt(3)`` whatever its length and width. Where the noise is applied (a hook on the input embeddings,
training mode only) is ``alignstack/models/neftune.py``.
"""
from __future__ import annotations

import math

import torch


def neftune_scale(seq_len: int, dim: int, alpha: float) -> float:
    """The half-width ``α / sqrt(L·d)`` of the uniform noise (Algorithm 1)."""
    return alpha / math.sqrt(seq_len * dim)


def neftune_noise(embeds: torch.Tensor, alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``embeds`` (``(B, L, d)``) plus elementwise ``Uniform(-s, s)`` noise, ``s = neftune_scale(L, d, α)``."""
    s = neftune_scale(embeds.size(1), embeds.size(2), alpha)
    return embeds + torch.zeros_like(embeds).uniform_(-s, s, generator=generator)
