"""Causal language-modelling loss on masked targets (pretraining, SFT, ReST/RS fine-tuning)."""
from __future__ import annotations

import torch

from alignstack.losses.logprob import TokenLogprobs
from alignstack.losses.reduce import masked_sum


def lm_loss_sum(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL over target tokens and their count: −Σ_t m_t·log π(x_t | x_<t).

    Returning (sum, count) lets the training step normalise by the *global* batch's token count,
    which makes gradient accumulation and data parallelism exactly equivalent to one big batch.

    The log-probs come from :class:`~alignstack.losses.logprob.TokenLogprobs` (a chunk of positions at a time, no
    fp32 copy of the logits kept for the backward) rather than ``F.cross_entropy`` over an fp32 copy, which keeps
    the fp32 log-softmax of every position until the backward. The same loss to float rounding (tested).
    """
    m = loss_mask[:, 1:] != 0
    labels = input_ids[:, 1:].masked_fill(~m, 0)          # a placeholder where nothing is counted (weight 0)
    lp = TokenLogprobs.apply(logits, labels, 1.0)
    return -masked_sum(lp, m), m.sum()
