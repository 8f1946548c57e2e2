"""Roofline of one online-RL step: achieved GFLOP/s of each phase next to a matmul peak measured in the same
process for that phase's shapes.

Phases of a GRPO/PPO step on our engine: **prefill** (one forward over each distinct prompt), **decode** (one
token per row per step through the lean Llama decode path, plus the draw), **reference** (a frozen forward over
prompt ⊕ completion; PPO adds the critic's old values), **update** (forward + backward of the policy, and the
critic for PPO). FLOPs are counted from the model's shapes: 2·rows·Σ(in·out) over the linear layers (LM head
included for the positions whose logits the phase computes: the last one per prompt in the prefill, the positions
from the first completion column on in the reference and update passes) plus attention (causal prefix: 2·S²·d per
row per layer for a sequence of S; a decode step at context c: 4·c·d per row per layer); backward counts 2× forward.
With shared prefixes (GRPO's default) the reference and update passes count each distinct prompt once
(:func:`shared_prefix_flops`). Each phase keeps its fastest of ``repeats`` timings, as each peak keeps its best.

The matmul peak for a phase times the same chain of ``F.linear`` calls (the layers' weight shapes) on M rows —
M = the rows that phase feeds each linear layer — so "share of peak" says how close the phase runs to what the
BLAS gives for its shapes on this machine, now (the machine may be shared: both numbers see the same load).
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F


def linear_shapes(model, head: bool = True) -> list[tuple[int, int]]:
    """(in, out) of every linear layer a forward runs (decoder layers, then the LM head)."""
    shapes = []
    for layer in model.model.layers:
        for m in layer.modules():
            if isinstance(m, torch.nn.Linear):
                shapes.append((m.in_features, m.out_features))
    if head:
        shapes.append((model.lm_head.in_features, model.lm_head.out_features))
    return shapes


def attention_dims(model) -> tuple[int, int]:
    """(query width d = heads × head_dim, layers) for the attention FLOP terms."""
    c = model.config
    return (c.num_attention_heads * c.head_dim if getattr(c, "head_dim", None) else c.hidden_size,
            c.num_hidden_layers)


def forward_flops(model, rows: int, seq: int, head: bool = True, ctx: int | None = None) -> float:
    """FLOPs of a forward over ``rows`` × ``seq`` new tokens; ``ctx`` (decode): cache length attended to."""
    lin = 2.0 * rows * seq * sum(i * o for i, o in linear_shapes(model, head))
    d, L = attention_dims(model)
    att = 4.0 * rows * ctx * d * L if ctx is not None else 2.0 * rows * seq * seq * d * L
    return lin + att


def head_flops(model, rows: int) -> float:
    """FLOPs of the LM head on ``rows`` positions."""
    return 2.0 * rows * model.lm_head.in_features * model.lm_head.out_features


def matmul_peak(model, M: int, head: bool = True, min_time: float = 0.3, dtype=None) -> float:
    """GFLOP/s of the model's chain of linear layers on M rows (in ``dtype``, default the model's), best of a few
    repeats lasting ≥ ``min_time`` s each."""
    dt = dtype or next(model.parameters()).dtype
    ws = [torch.randn(o, i, dtype=dt) for i, o in linear_shapes(model, head)]
    xs = {i: torch.randn(M, i, dtype=dt) for i, _ in linear_shapes(model, head)}
    flops = 2.0 * M * sum(w.numel() for w in ws)

    def chain():
        for w in ws:
            F.linear(xs[w.shape[1]], w)

    chain()
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while True:
            chain()
            n += 1
            el = time.perf_counter() - t0
            if el >= min_time:
                break
        best = max(best, flops * n / el / 1e9)
    return best


def big_matmul_peak(n: int = 1024, dtype=torch.float32) -> float:
    """GFLOP/s of an n³ matmul (fp32 by default): the machine's BLAS peak, for reference."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(3):
        k, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.3:
            a @ b
            k += 1
        best = max(best, 2.0 * n ** 3 * k / (time.perf_counter() - t0) / 1e9)
    return best


def fastest(fn, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn``."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class _Timer:
    def __init__(self):
        self.s, self.calls = 0.0, []

    def wrap(self, fn, record=None):
        def run(*a, **kw):
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            self.s += time.perf_counter() - t0
            if record is not None:
                self.calls.append(record(*a, **kw))
            return out
        return run


def shared_prefix_flops(model, U: int, P: int, B: int, C: int) -> float:
    """FLOPs of a shared-prefix forward (models.logprobs.shared_prefix_logprobs): U distinct prompts of P tokens
    (the LM head on their last position only), then B completions of C tokens over their prompt's cache (the LM
    head on every completion position; attention over P + the causal part of C: 4·C·P·d + 2·C²·d per row per
    layer, the completion's share of the full sequence's 2·(P+C)²·d)."""
    d, L = attention_dims(model)
    return forward_flops(model, U, P, head=False) + head_flops(model, U) + \
        forward_flops(model, B, C, head=False, ctx=0) + head_flops(model, B * C) + (4.0 * C * P + 2.0 * C * C) * d * L * B


def grpo_phases(policy, ref, tokenizer, prompt_ids: list[list[int]], k: int, max_new: int, repeats: int = 3,
                critic=None, share_prefix: bool = True, dtype=None) -> dict:
    """Time each phase of a GRPO-like step (PPO with ``critic``: the critic joins reference and update) on
    ``len(prompt_ids)`` prompts × ``k`` samples; return per phase: seconds, GFLOP, GFLOP/s, peak, share.
    ``share_prefix`` (GRPO's default; PPO's rows have distinct prompts): the reference and update passes run
    each distinct prompt once, and their FLOPs are counted that way. ``dtype`` (bf16): every phase runs under
    CPU autocast to it, as ``dist.mixed_precision=bf16`` runs them, and the peaks are measured in it."""
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        return _phases(policy, ref, tokenizer, prompt_ids, k, max_new, repeats, critic, share_prefix, dtype)


def _phases(policy, ref, tokenizer, prompt_ids, k, max_new, repeats, critic, share_prefix, dtype) -> dict:
    from alignstack.models.logprobs import cache_kwarg, completion_span
    from alignstack.rollout import engine, llama_decode
    from alignstack.rollout.engine import SamplingConfig, sample
    from alignstack.rollout.experience import frozen_logprobs, policy_logprobs

    rep = [p for p in prompt_ids for _ in range(k)]
    cfg = SamplingConfig(max_new, 1.0)
    dec, draw = _Timer(), _Timer()
    real_step, real_pick = llama_decode.LlamaDecoder.step, engine.pick
    res = {}
    try:
        # recorded after the call: the number of cache slots the step attended over
        llama_decode.LlamaDecoder.step = dec.wrap(real_step, lambda self, tok, pos: (tok.shape[0], self.span))
        engine.pick = draw.wrap(real_pick)
        runs = []                                     # (rollout s, decode s incl. the draw, draw s) per repeat
        for r in range(repeats + 1):                  # the first call warms up
            dec.s, draw.s, dec.calls = 0.0, 0.0, []
            t0 = time.perf_counter()
            g = sample(policy, rep, cfg, [], tokenizer.pad_token_id, torch.Generator().manual_seed(r))
            if r:
                runs.append((time.perf_counter() - t0, dec.s + draw.s, draw.s))
        # every phase keeps its fastest repeat, as the peaks beside them keep their best (a busy machine only
        # ever slows a repeat down)
        total, res["decode_s"], res["draw_s"] = min(runs)
        steps = list(dec.calls)
    finally:
        llama_decode.LlamaDecoder.step, engine.pick = real_step, real_pick
    if not steps:
        raise SystemExit("roofline: the lean Llama decode path did not run (set ALIGNSTACK_FAST_DECODE=1)")
    # prefill: the engine's own prefill call (distinct prompts, left-padded), timed alone
    from transformers import DynamicCache

    from alignstack.data.collate import SHAPE_MULTIPLE, pad_left, unique_rows
    ids, att = pad_left(unique_rows(prompt_ids)[0], tokenizer.pad_token_id, SHAPE_MULTIPLE)
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    kw = cache_kwarg(policy)
    with torch.no_grad():
        def prefill():
            policy(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True, **{kw: DynamicCache()})
        prefill()
        pre_s = fastest(prefill, repeats)
    U, P = ids.shape
    batch = g.tensors(tokenizer.pad_token_id)
    B, T = batch.input_ids.shape
    phases = {}
    phases["prefill"] = (pre_s, forward_flops(policy, U, P, head=False) + head_flops(policy, U), U * P)
    dflops = sum(forward_flops(policy, rows, 1, ctx=ctx) for rows, ctx in steps)
    phases["decode"] = (res["decode_s"], dflops, steps[0][0])

    share_prefix = share_prefix and critic is None

    def ref_pass():
        frozen_logprobs(ref, batch, 1.0, share_prefix=share_prefix)
        if critic is not None:
            with torch.no_grad():
                critic.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    ref_pass()
    ref_s = fastest(ref_pass, repeats)
    # the log-prob passes run the LM head from the first completion column on (logprobs.forward_logprobs's keep)
    head_rows = B * min(completion_span(batch.loss_mask) + 1, T)
    C = int(batch.loss_mask.sum(-1).max())                           # the shared pass's completion columns
    lp_flops = shared_prefix_flops(ref, U, P, B, C) if share_prefix else \
        forward_flops(ref, B, T, head=False) + head_flops(ref, head_rows)
    lp_rows = B * C if share_prefix else B * T                       # the rows of the pass's larger matmuls
    ref_flops = lp_flops + (forward_flops(critic, B, T, head=False) if critic is not None else 0.0)
    phases["reference"] = (ref_s, ref_flops, lp_rows)

    policy.train()

    def update():
        lp = policy_logprobs(policy, batch, 1.0, share_prefix)
        loss = -(lp * batch.loss_mask[:, 1:]).sum() / batch.loss_mask.sum()
        if critic is not None:
            h = critic.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
            loss = loss + h.float().pow(2).mean()
        loss.backward()
        policy.zero_grad(set_to_none=True)
        if critic is not None:
            critic.zero_grad(set_to_none=True)
    update()
    upd_s = fastest(update, repeats)
    upd_flops = 3 * lp_flops + (3 * forward_flops(critic, B, T, head=False) if critic else 0.0)
    phases["update"] = (upd_s, upd_flops, lp_rows)
    policy.eval()

    out = {"rollout_s": total, "draw_s": res["draw_s"], "rows": B, "seq": T,
           "prefill_rows": U, "machine_peak_gflops": round(big_matmul_peak(dtype=dtype or torch.float32), 1),
           "dtype": str(dtype or torch.float32).replace("torch.", ""), "threads": torch.get_num_threads(),
           "phases": {}}
    for name, (s, fl, M) in phases.items():
        peak = matmul_peak(policy, M, head=name != "prefill", dtype=dtype)
        out["phases"][name] = {"s": round(s, 5), "gflop": round(fl / 1e9, 4), "gflops": round(fl / s / 1e9, 2),
                               "peak_gflops_same_shapes": round(peak, 2), "share_of_peak": round(fl / s / 1e9 / peak, 3),
                               "matmul_rows": M}
    return out


def print_table(r: dict, title: str) -> None:
    print(f"\nroofline ({title}; {r['rows']} rows × {r['seq']} tokens; {r.get('threads', '?')} threads; machine "
          f"{r.get('dtype', 'float32')} matmul peak {r['machine_peak_gflops']} GFLOP/s):")
    print(f"{'phase':<10}{'ms':>9}{'GFLOP':>9}{'GFLOP/s':>10}{'peak@shape':>12}{'share':>8}{'rows/matmul':>13}")
    for name, p in r["phases"].items():
        print(f"{name:<10}{p['s'] * 1e3:>9.1f}{p['gflop']:>9.3f}{p['gflops']:>10.1f}{p['peak_gflops_same_shapes']:>12.1f}"
              f"{p['share_of_peak']:>8.0%}{p['matmul_rows']:>13}")
    print(f"(decode includes the draw: {r['draw_s'] * 1e3:.1f} ms of {r['phases']['decode']['s'] * 1e3:.1f} ms)")
