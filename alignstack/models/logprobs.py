"""Per-token log-probabilities and entropies from a causal LM.

Masking convention (the one used everywhere): ``loss_mask[b, t] = 1`` iff token ``input_ids[b, t]``
is a training target. Token ``t`` is predicted from position ``t - 1``, so per-token outputs here
have shape ``(B, T - 1)`` and align with ``input_ids[:, 1:]`` / ``loss_mask[:, 1:]``.
Logits are divided by the sampling temperature (METHODS.md §5.5 item 8) before the softmax.

Completion-only passes (``keep``): an RL update or reference pass needs the log-probs of the completion
tokens only, so the forward asks the model for the logits of the last ``keep + 1`` positions
(``logits_to_keep``, as TRL does) and the LM head and softmax skip the prompt. The result keeps the
(B, T-1) shape, zero at the positions not computed, so callers and masks are unchanged.

Shared-prefix passes (:func:`shared_prefix_logprobs`): the K completions of a GRPO/RLOO group share one prompt,
so the prompt's hidden states and keys/values are the same in each of the K rows. The pass runs every distinct
prompt once, expands its KV cache to its rows (an index, so the backward sums the K rows' gradients into the one
prompt pass), and runs the completions on top. The log-probs and gradients are those of the plain pass up to
float rounding (tested); the prompt tokens' share of the arithmetic falls by K×. Prefix sharing in the update
is the idea of Prefix Grouper (Liu et al. 2025, arXiv 2506.05433), which splits each attention layer into the
prefix's own attention and the suffixes' attention over prefix ⊕ suffix; here it is two forwards through the
model's own KV cache instead, so every architecture whose forward takes a cache works unchanged (Llama, Qwen2 and
GPT-2 are tested), with any attention backend.
"""
from __future__ import annotations

import inspect

import torch

from alignstack.data.collate import SHAPE_MULTIPLE, pad_left, unique_rows


def forward_params(model) -> set[str]:
    """Named parameters of the (unwrapped) model's forward."""
    base = getattr(model, "module", model)                                          # DDP wrapper
    base = base.get_base_model() if hasattr(base, "get_base_model") else base       # peft: forward(*a, **kw)
    return set(inspect.signature(base.forward).parameters)


def cache_kwarg(model) -> str:
    """The forward keyword for the KV cache: ``cache`` in newer transformers 5.x, ``past_key_values`` in older
    ones (deprecated there, to be removed in 5.40)."""
    return "cache" if "cache" in forward_params(model) else "past_key_values"


def completion_span(loss_mask: torch.Tensor) -> int:
    """How many trailing per-token positions (of the T-1) hold every row's targets: T minus the first column
    where any row's ``loss_mask`` is set (0 when none is). With right-padded ``prompt ⊕ completion`` rows that
    column is the shortest prompt's length."""
    T = loss_mask.shape[1]
    cols = loss_mask.any(0).nonzero()
    # a target at column 0 has no position predicting it (the convention drops it): T-1 at most
    return 0 if len(cols) == 0 else min(T - int(cols[0]), T - 1)


def keep_kwargs(model, keep: int | None, seq_len: int) -> dict:
    """``{"logits_to_keep": keep + 1}`` when the model's forward takes it and it saves anything, else {}.
    The logits at position t predict token t + 1, so the last ``keep`` next-token log-probs (positions
    T-1-keep … T-2) need the logits of positions T-1-keep … T-1: ``keep + 1`` of them, the last one unused."""
    if keep is None or keep + 1 >= seq_len or "logits_to_keep" not in forward_params(model):
        return {}
    return {"logits_to_keep": keep + 1}


def trailing_logits(logits: torch.Tensor, keep: int | None) -> torch.Tensor:
    """The logits of the last ``keep + 1`` positions: a model without ``logits_to_keep`` returned them all, and
    cutting them here gives every model the same output (0 before the last ``keep``) and skips their softmax."""
    return logits if keep is None or keep + 1 >= logits.shape[1] else logits[:, -(keep + 1):]


def completion_logits(model, keep: int | None, **inputs):
    """The model's output for ``inputs`` with ``logits`` cut to the last ``keep + 1`` positions (all of them when
    ``keep`` is None): asked of the model (``logits_to_keep``) when it takes it, else cut afterwards. The one way
    every completion-only pass runs the model."""
    out = model(**inputs, **keep_kwargs(model, keep, inputs["input_ids"].shape[1]))
    out.logits = trailing_logits(out.logits, keep)
    return out


def _pad_front(x: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-fill (B, k) per-token values on the left to (B, width): positions whose logits were not computed."""
    return x if x.shape[1] == width else torch.nn.functional.pad(x, (width - x.shape[1], 0))


# elements of (positions × vocabulary) normalised at once, so the fp32 temporaries stay small whatever the batch, the
# length and the vocabulary (a 150k vocabulary over 8k tokens is 4.9 GB in fp32). On a CPU a chunk that stays in the
# core's cache (1 MB in fp32) makes each pass over it cheap: the forward and backward over 8 × 512 positions of a 32k
# vocabulary in bf16 took 1.9 s in chunks of a batch row (16M elements) and 0.5 s in these (2^16: 0.58 s, 2^20:
# 0.51 s; benchmarks/logprob_bench.py). On a GPU each chunk costs a kernel launch per operation: larger chunks.
LOGPROB_CHUNK = {"cpu": 1 << 18}
LOGPROB_CHUNK_OTHER = 1 << 24


class _TokenLogprobs(torch.autograd.Function):
    """``log softmax(logits[:, t] / T)[labels[:, t]]`` (B, k) from logits (B, n ≥ k, V) (positions k … n-1
    predict nothing: a sequence's last), in fp32 (float64 for float64 logits) whatever the logits' dtype, a chunk of positions at a
    time.

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
        for r in _chunks(flat.shape[0], V, logits.device):
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
        for r in _chunks(flat.shape[0], V, logits.device):
            x = flat[r].to(lse.dtype)
            if T != 1.0:
                x = x / T
            # −softmax · g / T, then + g / T at the label (x may be the logits themselves: nothing in place on it)
            p = (x - lse[r, None]).exp_().mul_(-gt[r])
            grad[r] = p.scatter_add_(-1, lab[r], gt[r])
        return grad.view(logits.shape), None, None


def _chunks(rows: int, per_row: int, device: torch.device) -> list[slice]:
    """Slices of rows holding at most the device's chunk of elements (at least one row each)."""
    n = max(1, LOGPROB_CHUNK.get(device.type, LOGPROB_CHUNK_OTHER) // max(1, per_row))
    return [slice(i, min(i + n, rows)) for i in range(0, rows, n)]


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log π(x_t | x_<t) for t ≥ 1, shape (B, T-1), in fp32 (float64 for float64 logits). Memory-lean: no fp32 copy of the logits outlives a
    chunk of rows (:class:`_TokenLogprobs`).

    ``logits`` may cover the last k ≤ T positions only (a forward with ``logits_to_keep=k``): the
    positions without logits are 0."""
    T, k = input_ids.shape[1], logits.shape[1]
    labels = input_ids[:, T - k + 1:]
    return _pad_front(_TokenLogprobs.apply(logits, labels, float(temperature)), T - 1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0, seq_len: int | None = None) -> torch.Tensor:
    """Entropy of each next-token distribution, (B, T-1); with ``seq_len`` T, logits covering the last k
    positions only are zero-filled to T-1 like :func:`token_logprobs`. Computed a chunk of positions at a time (as
    :class:`_TokenLogprobs`), so its fp32 temporaries stay small whatever the vocabulary: the positions are taken
    flat, the last one included and dropped after (flattening the logits without it would copy them)."""
    B, n, V = logits.shape
    ct = torch.promote_types(logits.dtype, torch.float32)
    flat = logits.reshape(-1, V)

    def entropy(x: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(x.to(ct) / temperature, dim=-1)
        return -(logp.exp() * logp).sum(-1)
    ent = torch.cat([entropy(flat[r]) for r in _chunks(flat.shape[0], V, logits.device)]).view(B, n)[:, :-1]
    return ent if seq_len is None else _pad_front(ent, seq_len - 1)


def forward_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0,
                     position_ids: torch.Tensor | None = None, keep: int | None = None) -> torch.Tensor:
    """Run the model and return per-token log-probs (B, T-1).

    ``keep``: only the last ``keep`` positions are needed (e.g. :func:`completion_span` of the loss mask);
    a model whose forward takes ``logits_to_keep`` then computes no logits for the others, and the output is 0
    there. Another model computes them all and they are cut afterwards (the LM head and what precedes it
    differ between architectures, so the hidden states are not sliced by hand)."""
    if position_ids is None:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = completion_logits(model, keep, input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids, use_cache=False)
    return token_logprobs(out.logits, input_ids, temperature)


def sequence_logprobs(token_lp: torch.Tensor, loss_mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Σ_t (or mean over) response-token log-probs; ``loss_mask`` is the full (B, T) mask."""
    m = loss_mask[:, 1:].to(token_lp.dtype)
    s = (token_lp * m).sum(-1)
    return s / m.sum(-1).clamp(min=1) if average else s


def prefix_groups(input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor):
    """The rows' shared prompts, for :func:`shared_prefix_logprobs`: ``(prompt_len (B,), inverse (B,), prompts)``
    with ``prompts`` the distinct prompt token lists in first-seen order and ``inverse[b]`` row b's index among
    them; None when no two rows share a prompt, or when a row is not ``prompt ⊕ completion`` (right-padded, its
    targets one contiguous run after a non-empty prompt), where the plain pass is the right one."""
    n = attention_mask.sum(-1)
    has = loss_mask.any(-1)
    p = torch.where(has, loss_mask.long().argmax(-1), n)                  # first target column (or the length)
    cols = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
    if bool((p < 1).any()) or not torch.equal(loss_mask.bool(), (cols >= p[:, None]) & (cols < n[:, None])) \
            or not torch.equal(attention_mask.bool(), cols < n[:, None]):
        return None
    prompts, inv = unique_rows([row[:k] for row, k in zip(input_ids.tolist(), p.tolist())])
    return None if inv is None else (p, inv.to(input_ids.device), prompts)


def shared_prefix_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor,
                           temperature: float = 1.0) -> torch.Tensor | None:
    """Per-token log-probs (B, T-1) as :func:`forward_logprobs` with ``keep`` at the completions, with each
    distinct prompt run once (module docstring). Zero outside ``loss_mask[:, 1:]``. None when nothing is shared
    (:func:`prefix_groups`): the caller runs the plain pass.

    Two forwards: the distinct prompts, left-padded (to a multiple of ``data.collate.SHAPE_MULTIPLE``), with a
    KV cache (and the logits of their last position, which predict each completion's first token); then every
    row's completion, right-padded, at positions continuing its prompt's, over the cache rows of its prompt.
    Padding positions hold token 0: under a zero attention mask no other position sees them, and their outputs
    are dropped."""
    groups = prefix_groups(input_ids, attention_mask, loss_mask)
    if groups is None:
        return None
    from transformers import DynamicCache
    p, inv, prompts = groups
    dev, (B, T) = input_ids.device, input_ids.shape
    pids, patt = pad_left(prompts, 0, SHAPE_MULTIPLE)                    # left-padded: every prompt ends together
    pids, patt = pids.to(dev), patt.to(dev)
    kw = cache_kwarg(model)
    last = {"logits_to_keep": 1} if "logits_to_keep" in forward_params(model) else {}
    cache = DynamicCache()
    out = model(input_ids=pids, attention_mask=patt, position_ids=(patt.cumsum(-1) - 1).clamp(min=0),
                use_cache=True, **{kw: cache}, **last)
    first = out.logits[:, -1][inv]                                        # (B, V): predicts token p_b
    cache.batch_select_indices(inv)                                       # an index: the backward sums the rows
    L = attention_mask.sum(-1) - p                                        # completion lengths
    C = int(L.max())
    ar = torch.arange(C, device=dev)[None]
    valid = ar < L[:, None]
    cids = torch.where(valid, input_ids.gather(1, (p[:, None] + ar).clamp(max=T - 1)), 0)
    out = model(input_ids=cids, attention_mask=torch.cat([patt[inv], valid.long()], -1),
                position_ids=p[:, None] + ar, use_cache=True, **{kw: cache})
    # lp[:, j] = log π(cids[:, j]): column 0 from the prompt's last position (``first``), column j ≥ 1 from the
    # completion's position j - 1 (its last predicts nothing). Two calls, not one over their concatenation, which
    # would copy every logit once more
    lp = torch.cat([_TokenLogprobs.apply(first[:, None], cids[:, :1], float(temperature)),
                    _TokenLogprobs.apply(out.logits, cids[:, 1:], float(temperature))], 1)
    # token j of row b is column p_b + j, predicted at position p_b + j - 1 of the (B, T-1) convention
    res = torch.zeros((B, T - 1), dtype=lp.dtype, device=dev)
    rows, js = valid.nonzero(as_tuple=True)
    return res.index_put((rows, p[rows] - 1 + js), lp[rows, js])
