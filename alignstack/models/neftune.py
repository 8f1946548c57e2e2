"""NEFTune: noisy input embeddings during supervised fine-tuning (Jain et al. 2023, arXiv 2310.05914).

Algorithm 1 of the paper: for a batch of embedded tokens ``X_emb`` of shape ``(B, L, d)``, train on
``X_emb + (α / sqrt(L·d)) · ε`` with ``ε ~ Uniform(-1, 1)`` elementwise, and nothing at evaluation or
generation. The scale keeps the expected Frobenius norm of one sequence's noise at ``α / sqrt(3)`` whatever
its length and width.

Departures from the paper, all shared with TRL's ``neftune_noise_alpha`` (so a TRL user's setting means the
same here): ``L`` is the micro-batch's padded length, not each sequence's own, and padding and prompt
positions get noise too (the loss mask still ignores them). The noise is drawn from the global generator of
the embeddings' device, seeded from the run's seed when training starts (as transformers' ``Trainer`` seeds
from ``args.seed`` plus the process's rank), and the checkpoints save every rank's generator states, so a run
repeats and resumes exactly, data-parallel ones included.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager

import torch


def neftune_scale(seq_len: int, dim: int, alpha: float) -> float:
    """The half-width ``α / sqrt(L·d)`` of the uniform noise (Algorithm 1)."""
    return alpha / math.sqrt(seq_len * dim)


def neftune_noise(embeds: torch.Tensor, alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``embeds`` (``(B, L, d)``) plus elementwise ``Uniform(-s, s)`` noise, ``s = neftune_scale(L, d, α)``."""
    s = neftune_scale(embeds.size(1), embeds.size(2), alpha)
    return embeds + torch.zeros_like(embeds).uniform_(-s, s, generator=generator)


@contextmanager
def noisy_embeddings(model, alpha: float | None, seed: int = 0):
    """Add NEFTune noise to ``model``'s input embeddings in training mode, for the ``with`` block only.

    A forward hook on the input embedding module (a LoRA-wrapped model hands over its base model's), removed on
    exit so the saved model and any later evaluation see clean embeddings. Entering seeds torch's generators
    with ``seed`` (plus the process's rank, so data-parallel ranks draw different noise): without it the noise,
    and the model, would depend on whatever ran before in the process. ``alpha=None`` does nothing."""
    if alpha is None:
        yield
        return
    torch.manual_seed(seed + int(os.environ.get("RANK", "0")))
    emb = model.get_input_embeddings()

    def hook(module, args, output):
        # eval() inside training (held-out loss, sampling) must see the clean embeddings, as the paper says
        return neftune_noise(output, alpha) if module.training else output

    handle = emb.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
