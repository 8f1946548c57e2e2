"""Lean single-token decode steps for Llama-architecture Hugging Face models.

Why: for small models the per-call overhead of the generic ``model(...)`` forward (mask building,
cache bookkeeping, kwargs plumbing) is ~95% of a decode step on CPU. This path calls the model's own
modules (embeddings, RMSNorms, projections, rotary embedding, MLP, LM head) — so the weights and the
numerics are the model's — but keeps the KV cache in preallocated tensors, the padding as one additive
bias, and computes single-query attention as two matmuls (:func:`attend`). The prompt (prefill) still goes through the model's regular forward; its cache is
copied in. Used by :func:`alignstack.rollout.engine.sample` when :func:`supports` says so; any other
architecture (or a PEFT-wrapped model) takes the generic path. ``ALIGNSTACK_FAST_DECODE=0`` turns it off.
"""
from __future__ import annotations

import os

import torch


def supports(model) -> bool:
    cfg = getattr(model, "config", None)
    return (os.environ.get("ALIGNSTACK_FAST_DECODE", "1") != "0"
            and type(model).__name__ == "LlamaForCausalLM"
            and getattr(cfg, "model_type", None) == "llama"
            and getattr(cfg, "pretraining_tp", 1) == 1
            and getattr(cfg, "_attn_implementation", "sdpa") in ("sdpa", "eager"))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of one query token per row over the cache, as two batched matmuls.

    ``q`` (B, H, 1, D); ``k``, ``v`` (B, H_kv, S, D) with H a multiple of H_kv (grouped-query attention: query
    heads ``j·G … j·G+G-1`` share kv head ``j``, as Hugging Face's ``repeat_kv``); ``bias`` (B, 1, 1, S) additive
    (0 or −inf). Returns (B, 1, H·D)-ready output of shape (B, H_kv, G, D). Why not SDPA: for a single
    query its CPU kernel (flash attention) pays tiling overhead for no reuse, and grouping the G query heads
    of a kv head into one (G × D)·(D × S) matmul uses the cache without expanding it."""
    B, H, _, D = q.shape
    # the cache may be bf16 (a prefill under mixed-precision autocast) while this step runs in fp32: the matmuls
    # take the cache's dtype, the softmax runs in fp32, and the output returns in the query's dtype (no-ops in fp32)
    qg = q.reshape(B, k.shape[1], H // k.shape[1], D).to(k.dtype)           # (B, H_kv, G, D)
    s = torch.matmul(qg, k.transpose(-1, -2)).float().mul_(scale).add_(bias)   # (B, H_kv, G, S)
    return torch.matmul(torch.softmax(s, -1).to(v.dtype), v).to(q.dtype)   # (B, H_kv, G, D)


class LlamaDecoder:
    """KV-cached decode state for one batch. ``step(tokens, positions)`` feeds one token per row and
    returns next-token logits (B, V); ``select(keep)`` drops finished rows."""

    def __init__(self, model, cache, attention_mask: torch.Tensor, max_new_tokens: int,
                 rows: torch.Tensor | None = None):
        """``rows``: when given, row ``b`` of this batch starts from row ``rows[b]`` of ``cache`` (a prompt
        prefilled once for a group of samples is copied straight into each sample's buffer)."""
        self.model, self.inner = model, model.model
        self.layers = list(self.inner.layers)
        B, P = attention_mask.shape
        cap = P + max_new_tokens
        self.K, self.V = [], []
        for i in range(len(self.layers)):
            k, v = cache.layers[i].keys, cache.layers[i].values          # (B, H_kv, P, D), RoPE applied
            if rows is not None:
                k, v = k[rows], v[rows]
            Kb = k.new_empty(B, k.shape[1], cap, k.shape[3])
            Vb = v.new_empty(B, v.shape[1], cap, v.shape[3])
            Kb[:, :, :P] = k
            Vb[:, :, :P] = v
            self.K.append(Kb)
            self.V.append(Vb)
        # additive attention bias over cache slots: 0 where a row attends, -inf on its left padding
        dtype = self.K[0].dtype if self.K else torch.float32
        self.bias = torch.zeros(B, cap, dtype=dtype, device=attention_mask.device)
        self.bias[:, :P].masked_fill_(~attention_mask.bool(), float("-inf"))
        self.t = P
        a = self.layers[0].self_attn
        self.head_dim, self.scaling = a.head_dim, a.scaling
        self.groups = a.num_key_value_groups

    def select(self, keep: torch.Tensor) -> None:
        self.K = [k.index_select(0, keep) for k in self.K]
        self.V = [v.index_select(0, keep) for v in self.V]
        self.bias = self.bias.index_select(0, keep)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        B, D, t = tokens.shape[0], self.head_dim, self.t
        h = self.inner.embed_tokens(tokens[:, None])                       # (B, 1, H)
        cos, sin = self.inner.rotary_emb(h, positions.view(B, 1))          # (B, 1, D)
        cos, sin = cos[:, None], sin[:, None]                              # broadcast over heads
        bias = self.bias[:, None, None, : t + 1]                          # (B, 1, 1, t+1); slot t is 0
        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            x = layer.input_layernorm(h)
            q = a.q_proj(x).view(B, 1, -1, D).transpose(1, 2)
            k = a.k_proj(x).view(B, 1, -1, D).transpose(1, 2)
            v = a.v_proj(x).view(B, 1, -1, D).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            self.K[i][:, :, t: t + 1] = k
            self.V[i][:, :, t: t + 1] = v
            o = attend(q, self.K[i][:, :, : t + 1], self.V[i][:, :, : t + 1], bias, self.scaling)
            h = h + a.o_proj(o.reshape(B, 1, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        self.t = t + 1
        return self.model.lm_head(self.inner.norm(h))[:, -1]
