"""Completion-only log-prob passes (issue #24): the RL update and reference passes ask the model for the logits
from the first completion column on (``logits_to_keep``), and the (B, T-1) log-probs they return equal the full
computation at every completion position, with 0 before it.

Where both sides run the same shapes (the zeros before the span, the value head over every position) the
outputs are asserted equal with ``torch.equal``. Where the shapes differ
(the LM head on fewer rows, the reference pass in chunks of rows) they are asserted to 1e-6: the values are the
same dot products, but BLAS may block a matmul of another shape differently and round the last bit otherwise
(a fresh clone with 2 threads saw this on GPT-2's chunked reference pass, where 1 thread gave equality).
Gradients and whole training runs are compared to float tolerance: a weight gradient sums over positions, and
summing fewer (zero) terms may round differently."""
import json

import pytest
import torch
from safetensors.torch import load_file

from alignstack.models import logprobs
from alignstack.models.logprobs import completion_span, forward_logprobs, token_entropy, token_logprobs
from alignstack.rollout.engine import Generation
from alignstack.rollout.experience import frozen_logprobs, policy_logprobs


def same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to the last bit's rounding of a matmul of another shape (module docstring)."""
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


V = 61


def tiny(arch: str):
    """A random 2-layer model of each family from its config, dropout off (train mode must be deterministic)."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

    torch.manual_seed(0)
    common = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg = {"llama": lambda: LlamaConfig(**common), "qwen2": lambda: Qwen2Config(**common),
           "gpt2": lambda: GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2)}[arch]()
    return AutoModelForCausalLM.from_config(cfg)


def rollout_batch():
    """Right-padded prompt ⊕ completion rows with prompts of 4–11 tokens and completions of 1–8: the first
    completion column is 4 (the shortest prompt), so 13 of the 16 per-token positions are kept."""
    g = torch.Generator().manual_seed(1)
    P, C = [7, 4, 9, 4, 6, 11], [5, 8, 3, 1, 8, 6]
    gen = Generation([torch.randint(3, V, (p,), generator=g).tolist() for p in P],
                     [torch.randint(3, V, (c,), generator=g).tolist() for c in C], [[-1.0] * c for c in C], [True] * 6)
    return gen.tensors(0)


def spy_keep(model) -> list:
    """Record the ``logits_to_keep`` each forward of ``model`` receives (None: not passed)."""
    seen = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("logits_to_keep")), with_kwargs=True)
    return seen


def assert_same_grads(m, lp_a: torch.Tensor, lp_b: torch.Tensor, mask: torch.Tensor, rtol: float, atol: float):
    """The gradients of the masked sums (the shape every loss takes) of two log-prob tensors of ``m``, per
    parameter, to tolerance."""
    grads = []
    for lp in (lp_a, lp_b):
        m.zero_grad()
        (lp * mask).sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, rtol=rtol, atol=atol, msg=n)


def assert_same_run(rows_a: list[dict], w_a: dict, rows_b: list[dict], w_b: dict) -> None:
    """Two seeded runs' logged metrics (every float but the time) and final weights, to float tolerance."""
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        for k, v in a.items():
            if k != "time" and isinstance(v, float):
                assert v == pytest.approx(b[k], rel=1e-4, abs=1e-5), k
    for k, v in w_b.items():
        torch.testing.assert_close(w_a[k], v, rtol=0, atol=1e-4, msg=k)


def test_completion_span_and_logits_to_keep_by_hand():
    b = rollout_batch()
    assert b.input_ids.shape == (6, 17) and completion_span(b.loss_mask) == 13
    # position t of the (B, T-1) output is the log-prob of token t + 1, from the logits at position t: the first
    # completion token (column 4) needs the logits of position 3 = T - 14, so 13 + 1 logits are kept
    m = tiny("llama")
    seen = spy_keep(m)
    lp = policy_logprobs(m, b, 1.0)
    assert seen == [14] and lp.shape == (6, 16)
    assert torch.equal(lp[:, :3], torch.zeros(6, 3)) and bool((lp[:, 3:] != 0).all())
    assert completion_span(torch.tensor([[0, 1, 1], [0, 0, 1]])) == 2
    assert completion_span(torch.tensor([[1, 1, 0]])) == 2           # a target at column 0 has no prediction
    assert completion_span(torch.zeros(2, 5, dtype=torch.long)) == 0
    # nothing to save: the whole row is kept and the model is called as before
    full = Generation([[5]], [[6, 7, 8]], [[-1.0] * 3], [True]).tensors(0)
    assert completion_span(full.loss_mask) == 3
    policy_logprobs(m, full, 1.0)
    assert seen[-1] is None


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_policy_and_reference_logprobs_equal_the_full_pass(arch):
    b = rollout_batch()
    m = tiny(arch).train()
    mask = b.mask.bool()
    full = forward_logprobs(m, b.input_ids, b.attention_mask, 0.7)       # every position, as before issue #24
    kept = policy_logprobs(m, b, 0.7)
    same(kept[mask], full[mask])
    assert torch.equal(kept[:, :3], torch.zeros(6, 3))
    with torch.no_grad():
        ref = frozen_logprobs(m, b, 0.7, chunk=4)                         # chunks of rows, each its own span
    same(ref[mask], full.detach()[mask])
    # the update's gradient (a masked sum, as every loss takes) to float tolerance
    assert_same_grads(m, full, kept, b.mask, rtol=1e-5, atol=1e-6)


class NoKeep(torch.nn.Module):
    """A causal LM whose forward does not take ``logits_to_keep`` (older or custom models)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=use_cache)


def test_model_without_logits_to_keep_falls_back_to_full_logits():
    b = rollout_batch()
    inner = tiny("llama")
    seen = spy_keep(inner)
    m = NoKeep(inner)
    assert "logits_to_keep" not in logprobs.forward_params(m)
    kept = policy_logprobs(m, b, 0.7)
    full = forward_logprobs(inner, b.input_ids, b.attention_mask, 0.7)
    assert seen == [None, None]
    # the same output as a model that takes it: 0 before the span, the full pass's values after it
    same(kept[b.mask.bool()], full[b.mask.bool()])
    assert torch.equal(kept[:, :3], torch.zeros(6, 3))
    same(kept, policy_logprobs(inner, b, 0.7))        # full logits cut afterwards vs the LM head on fewer rows


@pytest.mark.parametrize("arch, value_model", [("llama", "shared"), ("llama", "separate"), ("qwen2", "separate"),
                                               ("gpt2", "shared")])
def test_ppo_policy_and_value_with_keep(arch, value_model):
    from alignstack.methods.ppo import PolicyAndValue, build_critic

    b = rollout_batch()
    policy = tiny(arch)
    pv = PolicyAndValue(policy, build_critic(policy, None) if value_model == "separate" else None).train()
    if value_model == "shared":      # a non-zero head, so the values say something
        torch.nn.init.normal_(pv.value_head.weight, std=0.1)
    seen = spy_keep(policy)
    T, keep, mask = b.input_ids.shape[1], completion_span(b.loss_mask), b.mask.bool()
    logits_f, v_f = pv(b.input_ids, b.attention_mask)
    logits_k, v_k = pv(b.input_ids, b.attention_mask, keep=keep)
    assert seen == [None, keep + 1] and logits_k.shape[1] == keep + 1
    assert torch.equal(v_k, v_f)                                           # the value head sees every position
    lp_f, lp_k = token_logprobs(logits_f, b.input_ids, 0.9), token_logprobs(logits_k, b.input_ids, 0.9)
    assert lp_k.shape == lp_f.shape == (6, T - 1)
    same(lp_k[mask], lp_f[mask])
    ent_f, ent_k = token_entropy(logits_f, 0.9), token_entropy(logits_k, 0.9, T)
    assert ent_k.shape == (6, T - 1)
    same(ent_k[mask], ent_f[mask])
    with torch.no_grad():      # the old values: for a shared head one position's logits, the same values
        assert torch.equal(pv.values(b.input_ids, b.attention_mask), v_f.detach())


def test_kl_eval_and_hir_loss_equal_the_full_pass(nano, monkeypatch):
    import copy

    from alignstack.eval import ground_truth
    from alignstack.methods import hir

    model, tok = copy.deepcopy(nano["model"]).eval(), nano["tokenizer"]
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    prompts = [[{"role": "user", "content": q}] for q in ("What is 3 + 4?", "Sort: c a b d", "Hi", "Name a fruit.")]
    kept = ground_truth.kl_to_reference(model, ref, tok, prompts, seed=3)
    b = rollout_batch()
    pos = {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "loss_mask": b.loss_mask}
    neg = {**pos, "input_ids": torch.cat([b.input_ids[:, :1].flip(0), b.input_ids[:, 1:]], 1)}
    w = torch.tensor([0.5, 1.5, 1.0, 1.0, 2.0, 0.0])
    hir_kept = hir.hir_batch_loss(model, pos, neg, 0.1, 1.0, 0.01, row_weights=w)
    # the full computation: a span that keeps every position
    monkeypatch.setattr(ground_truth, "completion_span", lambda m: m.shape[1] - 1)
    monkeypatch.setattr(logprobs, "completion_span", lambda m: m.shape[1] - 1)
    full = ground_truth.kl_to_reference(model, ref, tok, prompts, seed=3)
    assert full["kl"] > 0 and kept["kl"] == pytest.approx(full["kl"], rel=1e-6, abs=1e-7)
    hir_full = hir.hir_batch_loss(model, pos, neg, 0.1, 1.0, 0.01, row_weights=w)
    assert hir_kept[0].item() == pytest.approx(hir_full[0].item(), rel=1e-6)
    for k, v in hir_full[1].items():
        assert hir_kept[1][k].item() == pytest.approx(v.item(), rel=1e-6), k


def length_reward(prompts, completions, **meta):
    return [min(len(c), 20) / 20 for c in completions]


RUNS = {
    "grpo": ["algorithm=grpo", "steps=2", "prompts_per_step=4", "num_generations=4", "max_new_tokens=8", "beta=0.04",
             "optim.micro_batch_size=5", "share_prefix=false"],     # shared prefixes: tests/rl/test_shared_prefix.py
    "rloo": ["algorithm=rloo", "steps=2", "prompts_per_step=4", "num_generations=4", "max_new_tokens=8", "beta=0.04",
             "share_prefix=false"],
    "ppo_separate": ["value_model=separate", "steps=2", "batch_size=8", "minibatches=2", "ppo_epochs=2",
                     "max_new_tokens=8"],
    "ppo_shared": ["value_model=shared", "steps=2", "batch_size=8", "minibatches=2", "ppo_epochs=2",
                   "max_new_tokens=8"],
}


@pytest.mark.parametrize("run", list(RUNS))
def test_fixed_seed_runs_equal_the_full_logits_runs(nano, tmp_path, monkeypatch, run):
    """A tiny seeded run with completion-only logits ends where the same run with full logits does (same
    metrics, same weights) to float tolerance. Checked once against the code before issue #24 as well: GRPO and
    PPO (both value models) bit-identical, RLOO within 1.3e-6 on its logged loss and 1.1e-5 on the weights (its
    masked sum adds fewer terms)."""
    from alignstack.config import load
    from alignstack.methods import grpo, ppo

    torch.set_num_threads(1)
    mod, cls = (ppo, ppo.PPOConfig) if run.startswith("ppo") else (grpo, grpo.GRPOConfig)
    real, spans = logprobs.completion_span, []
    real_kw, kws = logprobs.keep_kwargs, []

    def recorded(m):
        spans.append((real(m), m.shape[1] - 1))
        return spans[-1][0]

    def recorded_kw(model, keep, seq_len):      # the trainer's (wrapped) model still shows it takes logits_to_keep
        kws.append((model.training, real_kw(model, keep, seq_len)))
        return kws[-1][1]
    monkeypatch.setattr(logprobs, "keep_kwargs", recorded_kw)      # every completion-only pass goes through it

    def train(out, span):
        monkeypatch.setattr(logprobs, "completion_span", span)
        cfg = load(cls, overrides=[f"out={out}", f"model.path={nano['path']}", "optim.lr=1e-2", "log.progress=false",
                                   "reward=import:test_completion_logits:length_reward", *RUNS[run]])
        mod.train(cfg)
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return rows, load_file(str(out / "model" / "model.safetensors"))

    rows_k, w_k = train(tmp_path / "kept", recorded)
    assert spans and any(s < t for s, t in spans)            # the prompts were skipped somewhere
    assert any(training and "logits_to_keep" in kw for training, kw in kws)      # in the update itself
    rows_f, w_f = train(tmp_path / "full", lambda m: m.shape[1] - 1)
    assert_same_run(rows_k, w_k, rows_f, w_f)
