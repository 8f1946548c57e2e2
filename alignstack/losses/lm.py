"""Causal language-modelling loss on masked targets (pretraining, SFT, ReST/RS fine-tuning)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def lm_loss_sum(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL over target tokens and their count: −Σ_t m_t·log π(x_t | x_<t).

    Returning (sum, count) lets the training step normalise by the *global* batch's token count,
    which makes gradient accumulation and data parallelism exactly equivalent to one big batch.
    """
    labels = input_ids[:, 1:].masked_fill(loss_mask[:, 1:] == 0, -100)
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                          ignore_index=-100, reduction="sum")
    return nll, (labels != -100).sum()
