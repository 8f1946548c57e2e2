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
from alignstack.losses.logprob import TokenLogprobs
from alignstack.losses.logprob import token_entropy as chunked_entropy


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


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log π(x_t | x_<t) for t ≥ 1, shape (B, T-1), in fp32 (float64 for float64 logits). Memory-lean: no fp32
    copy of the logits outlives a chunk of positions (:class:`~alignstack.losses.logprob.TokenLogprobs`).

    ``logits`` may cover the last k ≤ T positions only (a forward with ``logits_to_keep=k``): the
    positions without logits are 0."""
    T, k = input_ids.shape[1], logits.shape[1]
    labels = input_ids[:, T - k + 1:]
    return _pad_front(TokenLogprobs.apply(logits, labels, float(temperature)), T - 1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0, seq_len: int | None = None) -> torch.Tensor:
    """Entropy of each next-token distribution, (B, T-1); with ``seq_len`` T, logits covering the last k
    positions only are zero-filled to T-1 like :func:`token_logprobs`. The maths, in chunks of positions, is
    :func:`alignstack.losses.logprob.token_entropy` (over every position: flattening the logits without the last
    one would copy them, so it is dropped after)."""
    ent = chunked_entropy(logits, temperature)[:, :-1]
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
    lp = torch.cat([TokenLogprobs.apply(first[:, None], cids[:, :1], float(temperature)),
                    TokenLogprobs.apply(out.logits, cids[:, 1:], float(temperature))], 1)
    # token j of row b is column p_b + j, predicted at position p_b + j - 1 of the (B, T-1) convention
    res = torch.zeros((B, T - 1), dtype=lp.dtype, device=dev)
    rows, js = valid.nonzero(as_tuple=True)
    return res.index_put((rows, p[rows] - 1 + js), lp[rows, js])
