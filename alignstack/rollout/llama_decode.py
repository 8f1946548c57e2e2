"""Lean single-token decode steps for Llama-architecture Hugging Face models.

Why: for small models the per-call overhead of the generic ``model(...)`` forward (mask building,
cache bookkeeping, kwargs plumbing) is ~95% of a decode step on CPU. This path calls the model's own
modules (embeddings, RMSNorms, projections, rotary embedding, MLP, LM head) — so the weights and the
numerics are the model's — but keeps the KV cache in preallocated, zeroed tensors, the padding and the slots
not yet written as one additive bias, and computes single-query attention as two matmuls (:func:`attend`) over
the slots up to the step's, rounded up to a multiple of ``data.collate.SHAPE_MULTIPLE`` (the extra slots are
masked: a span that grows by one every step would give oneDNN a new bf16 matmul shape, and a cached kernel,
every step). The step also skips work that gives the same bits (tests/test_models_engine.py): RoPE's cos and sin
come from a table of every position made once per batch, plain ``nn.Linear`` layers run through ``F.linear``, and
fp32 RMSNorms through the fused ``F.rms_norm`` (the tiny preset's step: ~8% faster, bit-identical logits). Under
autocast the cache is kept in the autocast dtype and, on the CPU, attended over whole (:func:`cache_dtype`,
``LlamaDecoder.full_span``). The prompt (prefill) still goes through the model's regular
forward; its cache is copied in.
Used by :func:`alignstack.rollout.engine.sample` when :func:`supports` says so; any other architecture (or a
PEFT-wrapped model) takes the generic path. ``ALIGNSTACK_FAST_DECODE=0`` turns it off.

``ALIGNSTACK_COMPILE_DECODE=1`` runs the step through ``torch.compile`` with a **static cache**: every step
attends over the whole preallocated buffer (slots not yet written masked by the bias) and writes its key and
value at a tensor index, so one graph serves every step of every batch of the same size (a batch that shrinks as
rows finish recompiles once, then with a symbolic batch size). If compiling fails (no C++ compiler, an
unsupported op), it warns once and runs the same static step eagerly. Off by default because on the CPUs
measured it pays only on long runs (``benchmarks/decode_compile_bench.py``, ``benchmarks/results/decode_compile.json``):
the tiny preset's step is faster compiled but its compile time takes tens of thousands of decode steps to win
back (a 120-step GRPO run of 24-token completions makes 2,880), and the small preset's step was no faster on one
CPU and 1.14× on another, which wins its compile time back after about one such run. Where per-op launch overhead
dominates (a GPU) it is the switch to try.
"""
from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F

from alignstack.data.collate import SHAPE_MULTIPLE, round_up


def compile_requested() -> bool:
    return os.environ.get("ALIGNSTACK_COMPILE_DECODE", "0") == "1"


def supports(model) -> bool:
    cfg = getattr(model, "config", None)
    return (os.environ.get("ALIGNSTACK_FAST_DECODE", "1") != "0"
            and type(model).__name__ == "LlamaForCausalLM"
            and getattr(cfg, "model_type", None) == "llama"
            and getattr(cfg, "pretraining_tp", 1) == 1
            and getattr(cfg, "_attn_implementation", "sdpa") in ("sdpa", "eager"))


def _signed(sin: torch.Tensor) -> torch.Tensor:
    """``sin`` with its first half negated: ``rotate_half(x) · sin == swap_halves(x) · _signed(sin)`` bit for bit
    (a negation is exact), which saves the step a negation of every query and key."""
    h = sin.shape[-1] // 2
    return torch.cat((-sin[..., :h], sin[..., h:]), dim=-1)


def rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """Rotary embedding as Hugging Face's ``apply_rotary_pos_emb`` (``x·cos + rotate_half(x)·sin``), same bits."""
    h = x.shape[-1] // 2
    return x * cos + torch.cat((x[..., h:], x[..., :h]), dim=-1) * sin_signed


def rope_tables(model, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """cos and signed sin (:func:`_signed`) of positions ``0 … n-1``, (n, D), from the model's own rotary module, so a
    step indexes them instead of running that module (a dozen small ops, a twentieth of a tiny model's step). Its
    element-wise maths gives each position the same bits whether computed alone or in the table. None for the
    rotary types that change their frequencies with the longest position seen (dynamic NTK, LongRoPE): a table
    made up front would use the last step's frequencies at every step."""
    rot = model.model.rotary_emb
    kind = getattr(rot, "rope_type", "default")
    if not isinstance(kind, str) or "dynamic" in kind or kind == "longrope":
        return None
    w = model.model.embed_tokens.weight
    cos, sin = rot(w[:1][None], torch.arange(n, device=w.device)[None])
    return cos[0], _signed(sin[0])


def _linear(mod, x: torch.Tensor) -> torch.Tensor:
    """A plain ``nn.Linear`` through ``F.linear``: the module call's hook plumbing costs ~3 µs, a sixth of a tiny
    model's projection. Anything else (a quantised or adapted layer) keeps its own forward."""
    return F.linear(x, mod.weight, mod.bias) if type(mod) is torch.nn.Linear else mod(x)


def _norm(mod, x: torch.Tensor) -> torch.Tensor:
    """Llama's RMSNorm through the fused ``F.rms_norm`` in fp32, where the two give the same bits. Other dtypes keep
    the module: its half-precision path rounds to the input dtype before the weight multiply."""
    w = getattr(mod, "weight", None)
    if type(mod).__name__ == "LlamaRMSNorm" and x.dtype == torch.float32 and w is not None and w.dtype == x.dtype:
        return F.rms_norm(x, w.shape, w, mod.variance_epsilon)
    return mod(x)


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


def decode_layers(model, tokens: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor, K: list, V: list,
                  t: int | None = None, idx: torch.Tensor | None = None,
                  tables: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """One decode step through the model's own modules: next-token logits (B, V). The key and value of the new
    token go to slot ``t`` (a Python int: attention over the first S slots, ``bias`` (B, 1, 1, S) with S > t
    masking the slots not yet written) or, for the static cache, to the slot in the tensor ``idx`` (attention
    over the whole buffer, ``bias`` (B, 1, 1, cap)), so the compiled graph sees the same shapes at every step.
    ``tables``: :func:`rope_tables` (else the rotary module runs on this step's positions)."""
    inner = model.model
    B = tokens.shape[0]
    h = inner.embed_tokens(tokens[:, None])                             # (B, 1, H)
    if tables is not None:
        p = positions.reshape(B)
        cos, sin = tables[0].index_select(0, p), tables[1].index_select(0, p)     # (B, D)
    else:
        cos, sin = inner.rotary_emb(h, positions.view(B, 1))           # (B, 1, D)
        sin = _signed(sin)
    cos, sin = cos.view(B, 1, 1, -1), sin.view(B, 1, 1, -1)             # broadcast over heads
    for i, layer in enumerate(inner.layers):
        a = layer.self_attn
        D = a.head_dim
        x = _norm(layer.input_layernorm, h)
        # (B, 1, H·D) → (B, H, 1, D): with one token per row, a view is the transpose the full forward makes
        q = _linear(a.q_proj, x).view(B, -1, 1, D)
        k = _linear(a.k_proj, x).view(B, -1, 1, D)
        v = _linear(a.v_proj, x).view(B, -1, 1, D)
        q = rope(q, cos, sin)
        k = rope(k, cos, sin)
        if idx is None:
            K[i][:, :, t: t + 1] = k
            V[i][:, :, t: t + 1] = v
            S = bias.shape[-1]
            o = attend(q, K[i][:, :, :S], V[i][:, :, :S], bias, a.scaling)
        else:
            K[i].index_copy_(2, idx, k.to(K[i].dtype))
            V[i].index_copy_(2, idx, v.to(V[i].dtype))
            o = attend(q, K[i], V[i], bias, a.scaling)
        h = h + _linear(a.o_proj, o.reshape(B, 1, -1))
        h = h + _mlp(layer.mlp, _norm(layer.post_attention_layernorm, h))
    return _linear(model.lm_head, _norm(inner.norm, h))[:, -1]


def _mlp(m, x: torch.Tensor) -> torch.Tensor:
    """Llama's gated MLP (``LlamaMLP.forward``'s maths) with its projections through :func:`_linear`."""
    if type(m).__name__ != "LlamaMLP":
        return m(x)
    return _linear(m.down_proj, m.act_fn(_linear(m.gate_proj, x)) * _linear(m.up_proj, x))


_compiled_layers = None          # torch.compile(decode_layers), made on first use (compiling is lazy anyway)
_compile_failed = False


def _static_step(*args, **kw) -> torch.Tensor:
    """``decode_layers`` compiled, or eagerly (the same static-cache maths) once compiling has failed."""
    global _compiled_layers, _compile_failed
    if not _compile_failed:
        try:
            if _compiled_layers is None:
                _compiled_layers = torch.compile(decode_layers)
            return _compiled_layers(*args, **kw)
        except Exception as e:  # noqa: BLE001 — any compiler failure falls back to the same maths eagerly
            _compile_failed = True
            warnings.warn(f"ALIGNSTACK_COMPILE_DECODE=1: torch.compile failed ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200]}); decoding eagerly", RuntimeWarning, stacklevel=2)
    return decode_layers(*args, **kw)


def cache_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype to keep a KV cache in: the autocast dtype when autocast is on for ``x``'s device and ``x`` is
    fp32, else ``x``'s own. Why: under autocast the attention matmuls round their fp32 operands to that dtype anyway,
    so a cache kept in fp32 is re-cast whole, in every layer, at every step; rounding each key and value once, when
    written, gives the same bits. (Small preset, bf16, on a CPU: with the full span below, a rollout's wall time
    fell by about a tenth, 570–610 → 520–565 ms; the profiler had put these casts and copies at a third of it.)"""
    dev = x.device.type
    if x.dtype == torch.float32 and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return x.dtype


class LlamaDecoder:
    """KV-cached decode state for one batch. ``step(tokens, positions)`` feeds one token per row and
    returns next-token logits (B, V); ``select(keep)`` drops finished rows. ``static`` (default:
    ``ALIGNSTACK_COMPILE_DECODE=1``): the compiled static-cache step (module docstring)."""

    def __init__(self, model, cache, attention_mask: torch.Tensor, max_new_tokens: int,
                 rows: torch.Tensor | None = None, static: bool | None = None):
        """``rows``: when given, row ``b`` of this batch starts from row ``rows[b]`` of ``cache`` (a prompt
        prefilled once for a group of samples is copied straight into each sample's buffer)."""
        self.model = model
        self.static = compile_requested() if static is None else static
        n_layers = len(model.model.layers)
        B, P = attention_mask.shape
        cap = P + max_new_tokens
        self.K, self.V = [], []
        for i in range(n_layers):
            k, v = cache.layers[i].keys, cache.layers[i].values          # (B, H_kv, P, D), RoPE applied
            if rows is not None:
                k, v = k[rows], v[rows]
            # zeroed: slots not yet written are read (then masked) inside a step's attention span
            Kb = k.new_zeros(B, k.shape[1], cap, k.shape[3], dtype=cache_dtype(k))
            Vb = v.new_zeros(B, v.shape[1], cap, v.shape[3], dtype=cache_dtype(v))
            Kb[:, :, :P] = k
            Vb[:, :, :P] = v
            self.K.append(Kb)
            self.V.append(Vb)
        # additive attention bias over cache slots: 0 where a row attends; -inf on its left padding and on the
        # slots not yet written (each step opens its own)
        dtype = cache.layers[0].keys.dtype if self.K else torch.float32
        self.bias = torch.full((B, cap), float("-inf"), dtype=dtype, device=attention_mask.device)
        self.bias[:, :P].masked_fill_(attention_mask.bool(), 0.0)
        self.t = P
        self.tables = rope_tables(model, cap)
        # on the CPU, oneDNN's bf16/fp16 batched matmul copies any operand whose batches are not packed back to back,
        # and a slice of the first S slots of the buffer is such an operand: it would copy the layer's whole cache
        # (slowly: ~1 ns an element) at every step. Attending over the whole buffer costs a few more
        # multiply-adds on masked slots, ~100× cheaper an element than the copy. fp32 matmuls on the CPU take the
        # strided slice as it is (as a GPU's batched matmul takes strided batches), so there the span grows.
        low_cpu = bool(self.K) and self.K[0].device.type == "cpu" and self.K[0].dtype != torch.float32
        self.full_span = self.static or low_cpu

    def select(self, keep: torch.Tensor) -> None:
        self.K = [k.index_select(0, keep) for k in self.K]
        self.V = [v.index_select(0, keep) for v in self.V]
        self.bias = self.bias.index_select(0, keep)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        t = self.t
        self.t = t + 1
        self.bias[:, t] = 0.0                                             # the slot this step writes
        cap = self.bias.shape[1]
        self.span = cap if self.full_span else min(round_up(t + 1, SHAPE_MULTIPLE), cap)   # slots attended over
        if self.static:
            idx = torch.tensor([t], device=tokens.device)
            return _static_step(self.model, tokens, positions, self.bias[:, None, None, :], self.K, self.V, idx=idx,
                                tables=self.tables)
        return decode_layers(self.model, tokens, positions, self.bias[:, None, None, :self.span], self.K, self.V, t=t,
                             tables=self.tables)
