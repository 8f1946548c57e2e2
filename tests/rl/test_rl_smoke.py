"""CPU smoke tests of the online RL methods on a random nano model: they run end to end, every
trainable parameter of the policy changes, and the logs carry proxy reward and ground truth."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from alignstack.config import load
from alignstack.methods import grpo, ppo


def length_reward(prompts, completions, **meta):
    """A reward with variance even for a random model (exercises `import:module:function` too)."""
    return [min(len(c), 20) / 20 for c in completions]


def _changed(before_dir, after_dir):
    a, b = load_file(str(before_dir / "model.safetensors")), load_file(str(after_dir / "model.safetensors"))
    return {k: not torch.equal(a[k], b[k]) for k in a}


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_group_rl_runs_and_updates_all_params(nano, tmp_path, algo):
    torch.set_num_threads(1)
    cfg = load(grpo.GRPOConfig, overrides=[f"out={tmp_path}", f"model.path={nano['path']}", f"algorithm={algo}",
                                           "steps=3", "prompts_per_step=4", "num_generations=4", "max_new_tokens=8",
                                           "reward=import:test_rl_smoke:length_reward", "optim.lr=1e-2", "log.progress=false"])
    res = grpo.train(cfg)
    assert res["steps"] == 3
    changed = _changed(nano["path"], tmp_path / "model")
    assert all(changed.values()), [k for k, v in changed.items() if not v]
    rows = [r for r in _rows(tmp_path) if "reward" in r]
    assert len(rows) == 3 and all("gt" in r and "zero_signal" in r for r in rows)


def test_group_rl_in_bf16_mixed_precision_on_cpu(nano, tmp_path):
    """dist.mixed_precision=bf16 on a CPU: the prefill runs under autocast (a bf16 KV cache) and the lean decode
    must still work (it once failed with a dtype mismatch); sampling, reference and update all run, and train."""
    torch.set_num_threads(1)
    cfg = load(grpo.GRPOConfig, overrides=[f"out={tmp_path}", f"model.path={nano['path']}", "steps=2",
                                           "prompts_per_step=2", "num_generations=4", "max_new_tokens=8",
                                           "reward=import:test_rl_smoke:length_reward", "optim.lr=1e-2",
                                           "dist.mixed_precision=bf16", "log.progress=false"])
    from accelerate.state import AcceleratorState
    # accelerate keeps one precision per process: this test's bf16 must neither meet nor leave behind fp32 state
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        assert grpo.train(cfg)["steps"] == 2
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    rows = [r for r in _rows(tmp_path) if "reward" in r]
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)
    assert any(_changed(nano["path"], tmp_path / "model").values())


def test_a_bf16_group_rl_update_casts_each_policy_weight_once(nano, tmp_path, monkeypatch):
    """The shared-prefix update runs two forwards of the policy (the prompts, then the completions) under one
    autocast, so each linear weight is cast to bf16 once a micro-batch: the backward saves one bf16 copy of each
    MLP weight, used by both passes (with an autocast per forward it kept two copies of each)."""
    from alignstack.train import loop
    m = nano["model"]
    L, shape = m.config.num_hidden_layers, sorted(m.model.layers[0].mlp.up_proj.weight.shape)
    assert shape[0] != shape[1]
    seen, real = [], loop.Trainer.step

    def step(self, loss_fn, mbs, weights):
        ptrs, saves = set(), [0]
        mlp = [p.detach().to(torch.bfloat16) for n, p in self.unwrapped.named_parameters() if ".mlp." in n]

        def pack(t):
            if t.dtype == torch.bfloat16 and sorted(t.shape) == shape and \
                    any(torch.equal(x, w) for x in (t, t.T) for w in mlp if x.shape == w.shape):
                ptrs.add(t.data_ptr())                  # a bf16 copy of a gate, up or down projection weight
                saves[0] += 1
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = real(self, loss_fn, mbs, weights)
        seen.append((len(ptrs), saves[0]))
        return out
    monkeypatch.setattr(loop.Trainer, "step", step)
    cfg = load(grpo.GRPOConfig, overrides=[f"out={tmp_path}", f"model.path={nano['path']}", "steps=2",
                                           "prompts_per_step=2", "num_generations=4", "max_new_tokens=8",
                                           "reward=import:test_rl_smoke:length_reward", "dist.mixed_precision=bf16",
                                           "log.progress=false"])
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)     # one precision per process (see above)
    try:
        grpo.train(cfg)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert seen == [(3 * L, 6 * L)] * 2          # 3 MLP weights a layer, one copy each, saved by both passes


def test_ppo_in_bf16_mixed_precision_on_cpu(nano, tmp_path):
    """PPO under dist.mixed_precision=bf16: sampling, reference, old values and update under one autocast; the
    GAE inputs stay fp32 and the run trains with finite losses."""
    torch.set_num_threads(1)
    cfg = load(ppo.PPOConfig, overrides=[f"out={tmp_path}", f"model.path={nano['path']}", "steps=2", "batch_size=4",
                                         "minibatches=2", "max_new_tokens=8", "optim.lr=1e-2",
                                         "reward=import:test_rl_smoke:length_reward", "dist.mixed_precision=bf16",
                                         "log.progress=false"])
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)     # one precision per process (see the GRPO test)
    try:
        assert ppo.train(cfg)["iterations"] == 2
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    rows = [r for r in _rows(tmp_path) if "iteration" in r]
    assert len(rows) == 2 and all(math.isfinite(r["value_loss"]) and math.isfinite(r["kl"]) for r in rows)
    assert any(_changed(nano["path"], tmp_path / "model").values())


@pytest.mark.parametrize("value_model", ["separate", "shared"])
def test_ppo_runs_and_logs(nano, tmp_path, value_model):
    torch.set_num_threads(1)
    cfg = load(ppo.PPOConfig, overrides=[f"out={tmp_path}", f"model.path={nano['path']}", f"value_model={value_model}",
                                         "steps=2", "batch_size=8", "minibatches=2", "ppo_epochs=2", "max_new_tokens=8",
                                         "optim.lr=1e-2", "log.progress=false", "adaptive_kl=true", "ptx_coef=0.5",
                                         "reward=import:test_rl_smoke:length_reward",
                                         "ptx_rows=2"])
    res = ppo.train(cfg)
    assert res["iterations"] == 2
    changed = _changed(nano["path"], tmp_path / "model")
    assert all(changed.values()), [k for k, v in changed.items() if not v]
    rows = [r for r in _rows(tmp_path) if "iteration" in r]
    for k in ("reward", "kl", "beta", "entropy", "clipfrac", "value_loss", "explained_variance", "gt", "ptx_nll"):
        assert k in rows[-1], k
    assert rows[0]["beta"] == pytest.approx(0.05)


def test_ppo_config_errors():
    from alignstack.config import ConfigError
    with pytest.raises(ConfigError, match="multiple of minibatches"):
        load(ppo.PPOConfig, overrides=["batch_size=10", "minibatches=4"])
    with pytest.raises(ConfigError, match="num_generations"):
        load(grpo.GRPOConfig, overrides=["num_generations=1"])
    from alignstack.rollout.scorers import make_scorer
    with pytest.raises(ValueError, match="unknown reward"):
        make_scorer("bogus:1")
