"""Lean single-token decode steps for Llama-architecture Hugging Face models.

Why: for small models the per-call overhead of the generic ``model(...)`` forward (mask building,
cache bookkeeping, kwargs plumbing) is ~95% of a decode step on CPU. This path calls the model's own
modules (embeddings, RMSNorms, projections, rotary embedding, MLP, LM head) — so the weights and the
numerics are the model's — but keeps the KV cache in preallocated tensors and the padding mask in one
boolean tensor. The prompt (prefill) still goes through the model's regular forward; its cache is
copied in. Used by :func:`alignstack.rollout.engine.sample` when :func:`supports` says so; any other
architecture (or a PEFT-wrapped model) takes the generic path. ``ALIGNSTACK_FAST_DECODE=0`` turns it off.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F


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


class LlamaDecoder:
    """KV-cached decode state for one batch. ``step(tokens, positions)`` feeds one token per row and
    returns next-token logits (B, V); ``select(keep)`` drops finished rows."""

    def __init__(self, model, cache, attention_mask: torch.Tensor, max_new_tokens: int):
        self.model, self.inner = model, model.model
        self.layers = list(self.inner.layers)
        B, P = attention_mask.shape
        cap = P + max_new_tokens
        self.K, self.V = [], []
        for i in range(len(self.layers)):
            k, v = cache.layers[i].keys, cache.layers[i].values          # (B, H_kv, P, D), RoPE applied
            Kb = k.new_empty(B, k.shape[1], cap, k.shape[3])
            Vb = v.new_empty(B, v.shape[1], cap, v.shape[3])
            Kb[:, :, :P] = k
            Vb[:, :, :P] = v
            self.K.append(Kb)
            self.V.append(Vb)
        self.mask = torch.zeros(B, cap, dtype=torch.bool, device=attention_mask.device)
        self.mask[:, :P] = attention_mask.bool()
        self.t = P
        a = self.layers[0].self_attn
        self.head_dim, self.scaling = a.head_dim, a.scaling
        self.gqa = a.num_key_value_groups > 1

    def select(self, keep: torch.Tensor) -> None:
        self.K = [k.index_select(0, keep) for k in self.K]
        self.V = [v.index_select(0, keep) for v in self.V]
        self.mask = self.mask.index_select(0, keep)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        B, D, t = tokens.shape[0], self.head_dim, self.t
        h = self.inner.embed_tokens(tokens[:, None])                       # (B, 1, H)
        cos, sin = self.inner.rotary_emb(h, positions.view(B, 1))          # (B, 1, D)
        cos, sin = cos[:, None], sin[:, None]                              # broadcast over heads
        self.mask[:, t] = True
        amask = self.mask[:, None, None, : t + 1]
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
            o = F.scaled_dot_product_attention(q, self.K[i][:, :, : t + 1], self.V[i][:, :, : t + 1],
                                               attn_mask=amask, scale=self.scaling, enable_gqa=self.gqa)
            h = h + a.o_proj(o.transpose(1, 2).reshape(B, 1, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        self.t = t + 1
        return self.model.lm_head(self.inner.norm(h))[:, -1]
