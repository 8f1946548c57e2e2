"""Per-token log-probabilities and entropies from a causal LM.

Masking convention (the one used everywhere): ``loss_mask[b, t] = 1`` iff token ``input_ids[b, t]``
is a training target. Token ``t`` is predicted from position ``t - 1``, so per-token outputs here
have shape ``(B, T - 1)`` and align with ``input_ids[:, 1:]`` / ``loss_mask[:, 1:]``.
Logits are divided by the sampling temperature (METHODS.md §5.5 item 8) before the softmax.
"""
from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log π(x_t | x_<t) for t ≥ 1, shape (B, T-1). Memory-lean: gathers before normalising."""
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    labels = input_ids[:, 1:].unsqueeze(-1)
    return logits.gather(-1, labels).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    logits = logits[:, :-1].float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def forward_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0,
                     position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Run the model and return per-token log-probs (B, T-1)."""
    if position_ids is None:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return token_logprobs(out.logits, input_ids, temperature)


def sequence_logprobs(token_lp: torch.Tensor, loss_mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Σ_t (or mean over) response-token log-probs; ``loss_mask`` is the full (B, T) mask."""
    m = loss_mask[:, 1:].to(token_lp.dtype)
    s = (token_lp * m).sum(-1)
    return s / m.sum(-1).clamp(min=1) if average else s
