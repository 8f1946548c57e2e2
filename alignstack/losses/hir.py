"""Hindsight Instruction Relabeling losses (Zhang et al. 2023, arXiv 2302.05206; METHODS §8, A.6).

The two-instruction form follows the authors' code ``tianjunz/HIR`` *(ref. code)*; the
in-batch form is the paper's general contrastive loss *(unverified)*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignstack.losses.reduce import masked_mean


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast to float32; float32/float64 are kept."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# Coefficients shipped in the reference code (METHODS §8 "As implemented"); not verified
# against the paper, whose α and β are unconfirmed (METHODS §13).
REF_CODE_EPSILON = 0.2
REF_CODE_CONTRASTIVE_COEF = 1.0
REF_CODE_ENTROPY_COEF = 0.001


def label_smoothed_nll(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, epsilon: float = REF_CODE_EPSILON,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Label-smoothed token cross-entropy, mean over unmasked tokens (scalar); with ``row_weights`` (B,)
    each row's tokens count ``w_i`` times in the numerator (the denominator stays the token count).

    Per token: (1−ε)·(−log p(label)) + ε·mean_a(−log p(a)) — the form of Hugging Face's
    ``LabelSmoother``, which the HIR code uses (ε mass spread uniformly over the whole
    vocabulary, the target included). ``logits (B, T, V)``, ``labels``/``mask`` (B, T); labels
    at masked positions may hold any value (e.g. −100).
    """
    logp = F.log_softmax(_upcast(logits), dim=-1)
    safe_labels = torch.where(mask.bool(), labels, torch.zeros_like(labels)).long()
    nll = -logp.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)
    smooth = -logp.mean(-1)
    per_token = (1.0 - epsilon) * nll + epsilon * smooth
    if row_weights is not None:
        per_token = per_token * row_weights.to(per_token.dtype).unsqueeze(-1)
    return masked_mean(per_token, mask)


def hir_contrastive_loss(
    pos_mean_logliks: torch.Tensor, neg_mean_logliks: torch.Tensor, epsilon: float = REF_CODE_EPSILON
) -> torch.Tensor:
    """Two-instruction HIR contrastive term, per example (B,).

    With p_pos = exp(mean token log-lik of the label under the relabeled instruction) and p_neg
    under the opposite one: −(1−ε)·log(p_pos/(p_pos+p_neg)) − ε·log(p_neg/(p_pos+p_neg)),
    computed in log space with logsumexp (i.e. a label-smoothed 2-way cross-entropy).
    """
    stacked = torch.stack([pos_mean_logliks, neg_mean_logliks], dim=-1)
    logz = torch.logsumexp(stacked, dim=-1)
    return -(1.0 - epsilon) * (pos_mean_logliks - logz) - epsilon * (neg_mean_logliks - logz)


def in_batch_contrastive_loss(P: torch.Tensor) -> torch.Tensor:
    """Paper's general form: per-row −log[exp(P_ii)/Σ_k exp(P_ik)], P (B, B) -> (B,).

    ``P[i, k]`` = log-likelihood of output o_i under instruction p_k. The paper sums over rows;
    the caller reduces.
    """
    target = torch.arange(P.shape[0], device=P.device)
    return F.cross_entropy(P, target, reduction="none")


def entropy_bonus(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token entropy −Σ_a p(a)·log p(a) over unmasked positions (scalar, nats)."""
    logp = F.log_softmax(_upcast(logits), dim=-1)
    ent = -(logp.exp() * logp).sum(-1)
    return masked_mean(ent, mask)


def hir_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    pos_mean_logliks: torch.Tensor,
    neg_mean_logliks: torch.Tensor,
    epsilon: float = REF_CODE_EPSILON,
    contrastive_coef: float = REF_CODE_CONTRASTIVE_COEF,
    entropy_coef: float = REF_CODE_ENTROPY_COEF,
    contrastive_epsilon: float | None = None,
    row_weights: torch.Tensor | None = None,
    token_scale: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = L_sup + α·L_con − c_ent·Entropy (METHODS §8 "As implemented").

    ``logits/labels/mask`` are for the label span under the relabeled (positive) instruction;
    the mean log-liks feed :func:`hir_contrastive_loss` (mean over the batch). Defaults
    (ε 0.2, α 1, c_ent 0.001) are the reference-code values, unverified against the paper;
    ``contrastive_epsilon`` (default: ``epsilon``, as the code) smooths the contrastive term separately.
    ``row_weights`` (B,) weight each example in the supervised and contrastive terms (goal balancing).
    ``token_scale`` multiplies the two token-mean terms (CE, entropy) in the loss: a micro-batch weighted by
    its rows passes (its tokens / its rows)·(batch rows / batch tokens), so that they stay token means over the
    whole batch under gradient accumulation (alignstack.train.microbatch).
    Returns (loss, detached components).
    """
    ce = epsilon if contrastive_epsilon is None else contrastive_epsilon
    sup = label_smoothed_nll(logits, labels, mask, epsilon, row_weights)
    con = hir_contrastive_loss(pos_mean_logliks, neg_mean_logliks, ce)
    con = (con * row_weights.to(con.dtype)).mean() if row_weights is not None else con.mean()
    ent = entropy_bonus(logits, mask)
    loss = sup * token_scale + contrastive_coef * con - entropy_coef * (ent * token_scale)
    stats = {"sup": sup.detach(), "contrastive": con.detach(), "entropy": ent.detach()}
    return loss, stats
