"""Micro-batched updates: one step over 1 × 32 rows equals 4 × 8 (gradient accumulation) for every online
method, with the loss normalised over the whole batch; the activations held for backward stay flat as the
rollout batch grows at a fixed micro-batch size."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignstack.config import OptimConfig, load
from alignstack.train.microbatch import aggregation_weight, split


def digit_reward(prompts, completions, **_) -> list[float]:
    """A cheap non-constant reward (share of characters that are digits or vowels)."""
    return [sum(ch.isdigit() or ch in "aeiou" for ch in c) / max(1, len(c)) for c in completions]


def test_split_and_weights_by_hand():
    assert split(list(range(7)), OptimConfig(micro_batch_size=3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert split(list(range(6)), OptimConfig(grad_accum=2)) == [[0, 1, 2], [3, 4, 5]]
    assert split(list(range(6)), OptimConfig()) == [list(range(6))]
    m = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    assert aggregation_weight(m, "token") == 3.0
    assert aggregation_weight(m, "sequence") == 2.0 and aggregation_weight(m, "sequence_sum") == 2.0
    # token mean over a batch = Σ_k mean_k·w_k / Σ_k w_k (what Trainer.step computes) — not a mean of means
    x = torch.tensor([[1.0, 2.0, 0.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    from alignstack.losses.reduce import aggregate
    parts = [([0], m[:1]), ([1, 2], m[1:])]
    for mode in ("token", "sequence"):
        acc = sum(float(aggregate(x[i], mm, mode)) * aggregation_weight(mm, mode) for i, mm in parts)
        assert acc / sum(aggregation_weight(mm, mode) for _, mm in parts) == pytest.approx(float(aggregate(x, m, mode)))
    assert float(aggregate(x[:1], m[:1], "token") + aggregate(x[1:], m[1:], "token")) / 2 != pytest.approx(7 / 3)


@pytest.fixture
def varied_stops(monkeypatch):
    """Every 9th token id stops a completion, so completion lengths differ between rows (a token mean and a
    mean of micro-batch means then differ) even for a random model."""
    from alignstack.rollout import experience
    monkeypatch.setattr(experience, "stop_token_ids", lambda tok: list(range(3, len(tok), 9)))


# AdamW's first step is lr·g/(|g|+eps): with eps ≫ |g| it is lr/eps·g, linear in the gradient, so the
# one-step parameter change compares gradients (no clipping, which would hide a wrong scale)
LINEAR_ADAM = ["optim.lr=10000.0", "optim.eps=10000.0", "optim.grad_clip=0.0", "optim.weight_decay=0.0",
               "optim.warmup_steps=0", "optim.schedule=constant", "log.progress=false"]


def _one_step(module, cls, nano, tmp_path, name, micro, extra):
    out = tmp_path / f"{name}-{micro}"
    cfg = load(cls, overrides=[f"out={out}", f"model.path={nano['path']}", f"optim.micro_batch_size={micro}",
                               *LINEAR_ADAM, *extra])
    module.train(cfg)
    return load_file(str(Path(out) / "model" / "model.safetensors"))


def _assert_same_update(nano, a, b):
    base = load_file(str(Path(nano["path"]) / "model.safetensors"))
    da = torch.cat([(a[k] - base[k]).flatten() for k in base])
    db = torch.cat([(b[k] - base[k]).flatten() for k in base])
    assert float(da.abs().max()) > 1e-6                   # the step moved the weights
    assert float((da - db).abs().max()) <= 1e-4 * float(da.abs().max()) + 1e-9


@pytest.mark.parametrize("algorithm,aggregation", [("grpo", "token"), ("grpo", "sequence"), ("rloo", "sequence")])
def test_grpo_rloo_one_by_32_equals_four_by_8(nano, tmp_path, varied_stops, algorithm, aggregation):
    from alignstack.methods import grpo
    extra = ["steps=1", "prompts_per_step=4", "num_generations=8", "max_new_tokens=10", f"algorithm={algorithm}",
             f"aggregation={aggregation}", "reward=import:test_microbatch:digit_reward", "beta=0.1"]
    a, b = (_one_step(grpo, grpo.GRPOConfig, nano, tmp_path, algorithm, m, extra) for m in (0, 8))
    _assert_same_update(nano, a, b)


def test_ppo_policy_and_critic_one_by_32_equals_four_by_8(nano, tmp_path, varied_stops):
    from alignstack.methods import ppo
    extra = ["steps=1", "batch_size=32", "minibatches=1", "ppo_epochs=1", "max_new_tokens=10",
             "reward=import:test_microbatch:digit_reward", "missing_eos_penalty=null"]
    outs = {}
    for m in (0, 8):
        outs[m] = _one_step(ppo, ppo.PPOConfig, nano, tmp_path, "ppo", m, extra)
    _assert_same_update(nano, outs[0], outs[8])


def test_rest_one_by_32_equals_four_by_8(nano, tmp_path):
    from alignstack.methods import rest
    extra = ["n_prompts=8", "n_samples=4", "max_new_tokens=10", "improve_steps=0", "original=none",
             "reward=import:test_microbatch:digit_reward", "optim.batch_size=32", "optim.max_steps=1"]
    a, b = (_one_step(rest, rest.ReSTConfig, nano, tmp_path, "rest", m, extra) for m in (0, 8))
    _assert_same_update(nano, a, b)


def test_hir_one_by_32_equals_four_by_8(nano, tmp_path):
    from alignstack.methods import hir
    extra = ["n_prompts=8", "n_samples=4", "max_new_tokens=10", "rounds=1", "optim.batch_size=32",
             "optim.max_steps=1", "entropy_coef=0.05"]
    a, b = (_one_step(hir, hir.HIRConfig, nano, tmp_path, "hir", m, extra) for m in (0, 8))
    _assert_same_update(nano, a, b)


class SavedActivations:
    """Peak bytes of tensors saved for backward by one micro-batch's forward (distinct storages; the
    weights, saved too, count the same at every batch size)."""

    def __init__(self):
        self.peak, self._seen, self._bytes = 0, set(), 0

    def pack(self, t):
        st = t.untyped_storage()
        if st.data_ptr() not in self._seen:
            self._seen.add(st.data_ptr())
            self._bytes += st.nbytes()
        return t

    def wrap(self, loss_fn):
        def run(mb):
            self._seen, self._bytes = set(), 0
            with torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
                out = loss_fn(mb)
            self.peak = max(self.peak, self._bytes)
            return out
        return run


def test_update_activation_memory_is_flat_in_the_rollout_batch_at_fixed_micro_batch(nano, tmp_path, monkeypatch):
    from alignstack.methods import grpo
    from alignstack.train.loop import Trainer
    meters = []
    real = Trainer.step

    def step(self, loss_fn, mbs, weights=None):
        return real(self, meters[-1].wrap(loss_fn), mbs, weights)

    monkeypatch.setattr(Trainer, "step", step)
    peak = {}
    for prompts in (4, 8, 16):                      # 32, 64, 128 completions per step
        for micro in (0, 8):
            meters.append(SavedActivations())
            cfg = load(grpo.GRPOConfig, overrides=[
                f"out={tmp_path / f'm{prompts}-{micro}'}", f"model.path={nano['path']}", "steps=1",
                f"prompts_per_step={prompts}", "num_generations=8", "max_new_tokens=8",
                "reward=import:test_microbatch:digit_reward", f"optim.micro_batch_size={micro}", "log.progress=false"])
            grpo.train(cfg)
            peak[prompts, micro] = meters[-1].peak
    print({k: round(v / 2**20, 2) for k, v in peak.items()})   # MiB, shown with -s
    # whole-batch update: activations grow with the batch (~2x per doubling, weights aside) ...
    assert peak[16, 0] > 2.5 * peak[4, 0]
    # ... micro-batches of 8: flat (prompt lengths differ a little between batches)
    assert max(peak[p, 8] for p in (4, 8, 16)) < 1.25 * min(peak[p, 8] for p in (4, 8, 16))
    assert peak[16, 8] < 0.4 * peak[16, 0]
