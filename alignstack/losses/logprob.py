"""Log-probabilities of target tokens from logits, a chunk of positions at a time: the core shared by the language
modelling loss (``losses.lm``) and every method's per-token log-probs (``models.logprobs.token_logprobs``).

A causal LM's logits are its largest activation (positions × vocabulary: a 150k vocabulary over 8k tokens is 4.9
GB in fp32), and the plain autograd formulas keep fp32 copies of them from the forward to the backward. Here they
are normalised in chunks of positions, and the backward writes one gradient in the logits' dtype.
"""
from __future__ import annotations

import torch

# elements of (positions × vocabulary) normalised at once, so the fp32 temporaries stay small whatever the batch, the
# length and the vocabulary (a 150k vocabulary over 8k tokens is 4.9 GB in fp32). On a CPU a chunk that stays in the
# core's cache (1 MB in fp32) makes each pass over it cheap: the forward and backward over 8 × 512 positions of a 32k
# vocabulary in bf16 took 1.9 s in chunks of a batch row (16M elements) and 0.5 s in these (2^16: 0.58 s, 2^20:
# 0.51 s; benchmarks/logprob_bench.py). On a GPU each chunk costs a kernel launch per operation: larger chunks.
LOGPROB_CHUNK = {"cpu": 1 << 18}
LOGPROB_CHUNK_OTHER = 1 << 24


class TokenLogprobs(torch.autograd.Function):
    """``log softmax(logits[:, t] / T)[labels[:, t]]`` (B, k) from logits (B, n ≥ k, V) (positions k … n-1
    predict nothing: a sequence's last), in fp32 (float64 for float64 logits) whatever the logits' dtype, a chunk
    of positions at a time.

    Why not autograd over ``gather − logsumexp``: that keeps an fp32 copy of the logits (after the temperature)
    from the forward to the backward, and its backward makes three more full (B, k, V) tensors (the
    gather's zeros, the softmax, their sum) before casting to the logits' dtype, plus the zeros and copy of the
    slice dropping the last position. Here the forward keeps the logits (already alive) and the log-normaliser
    (B, n); the backward writes ∂/∂x_j = g·(1[j = label] − softmax(x / T)_j) / T into one gradient tensor in the
    logits' dtype, chunk by chunk. The positions are taken flat, (B·n, V), those predicting nothing included (their
    label a placeholder, their gradient weight 0), so a chunk is any run of positions. The forward's values are
    the autograd version's bit for bit (the same ops per position); the gradient agrees to float rounding (tested,
    with ``gradcheck`` in float64)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
        (B, k), (n, V) = labels.shape, logits.shape[1:]
        ct = torch.promote_types(logits.dtype, torch.float32)
        flat = logits.reshape(-1, V)                                  # a view of the model's (contiguous) logits
        lab = torch.nn.functional.pad(labels, (0, n - k)).reshape(-1, 1)   # placeholder 0 where nothing is predicted
        out = torch.empty(flat.shape[0], dtype=ct, device=logits.device)
        lse = torch.empty_like(out)
        for r in chunks(flat.shape[0], V, logits.device):
            x = flat[r].to(ct)
            if temperature != 1.0:
                x = x / temperature
            lse[r] = torch.logsumexp(x, dim=-1)
            out[r] = x.gather(-1, lab[r]).squeeze(-1) - lse[r]
        ctx.save_for_backward(logits, lab, lse)
        ctx.temperature = temperature
        return out.view(B, n)[:, :k]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        logits, lab, lse = ctx.saved_tensors
        T = ctx.temperature
        n, V = logits.shape[1:]
        flat = logits.reshape(-1, V)
        # per-position weight g / T; 0 at the positions predicting nothing
        gt = torch.nn.functional.pad(g.to(lse.dtype) / T, (0, n - g.shape[1])).reshape(-1, 1)
        grad = torch.empty(flat.shape, dtype=logits.dtype, device=logits.device)
        for r in chunks(flat.shape[0], V, logits.device):
            x = flat[r].to(lse.dtype)
            if T != 1.0:
                x = x / T
            # −softmax · g / T, then + g / T at the label (x may be the logits themselves: nothing in place on it)
            p = (x - lse[r, None]).exp_().mul_(-gt[r])
            grad[r] = p.scatter_add_(-1, lab[r], gt[r])
        return grad.view(logits.shape), None, None


def chunks(rows: int, per_row: int, device: torch.device) -> list[slice]:
    """Slices of rows holding at most the device's chunk of elements (at least one row each)."""
    n = max(1, LOGPROB_CHUNK.get(device.type, LOGPROB_CHUNK_OTHER) // max(1, per_row))
    return [slice(i, min(i + n, rows)) for i in range(0, rows, n)]


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / T) at every position, (B, n), in fp32 (float64 for float64 logits), a chunk of
    positions at a time as :class:`TokenLogprobs` (bounded fp32 temporaries whatever the vocabulary)."""
    B, n, V = logits.shape
    ct = torch.promote_types(logits.dtype, torch.float32)
    flat = logits.reshape(-1, V)

    def entropy(x: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(x.to(ct) / temperature, dim=-1)
        return -(logp.exp() * logp).sum(-1)
    return torch.cat([entropy(flat[r]) for r in chunks(flat.shape[0], V, logits.device)]).view(B, n)
