"""LoRA as a switch for every method (`model.lora.enabled=true`): each method trains adapters, saves
them under `<policy dir>/../adapter` and a merged plain-HF model, and the merged weights differ from the
model it started from. Run through the CLI on the cached tiny SFT fixture (the judge/critic of RLAIF
and Constitutional AI: the fixture's pretrained model)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_multiprocess_world import ITERATIVE, RS

SMALL_RL = ["steps=2", "max_new_tokens=8", "log.progress=false"]
# method -> (CLI args given the fixture dir, policy folder relative to the run)
CASES = {
    "pretrain": (lambda f: ["model.preset=nano", "data.n_rows=64", "optim.batch_size=8", "optim.max_steps=2",
                            "heldout_docs=8", "log.progress=false"], "model"),
    "sft": (lambda f: ["data.n_rows=64", "optim.batch_size=8", "optim.max_steps=2", "log.progress=false"], "model"),
    "reward_model": (lambda f: ["feedback.n_prompts=16", "feedback.eval_prompts=8", "feedback.max_new_tokens=8",
                                "optim.batch_size=8", "optim.max_steps=2", "n_demos=8", "histogram=false",
                                "log.progress=false"], "model"),
    "dpo": (lambda f: ["data.n_rows=16", "optim.batch_size=8", "optim.max_steps=2", "world_max_new_tokens=8",
                       "log.progress=false"], "model"),
    "ppo": (lambda f: [*SMALL_RL, "batch_size=8", "minibatches=2"], "model"),
    "grpo": (lambda f: [*SMALL_RL, "prompts_per_step=4", "num_generations=4"], "model"),
    "rloo": (lambda f: [*SMALL_RL, "prompts_per_step=4", "num_generations=4"], "model"),
    "rejection_sampling": (lambda f: [*RS, "log.progress=false"], "model"),
    "rest": (lambda f: ["n_prompts=8", "n_samples=2", "max_new_tokens=8", "improve_steps=2", "optim.max_steps=2",
                        "optim.batch_size=4", "log.progress=false"], "model"),
    "hir": (lambda f: ["n_prompts=8", "n_samples=2", "max_new_tokens=8", "rounds=2", "optim.max_steps=2",
                       "optim.batch_size=4", "log.progress=false"], "model"),
    "farl": (lambda f: ["n_prompts=8", "n_samples=2", "max_new_tokens=8", "rounds=1", "optim.max_steps=2",
                        "optim.batch_size=4", "log.progress=false"], "model"),
    "rlaif": (lambda f: [f"judge.path={f}/pretrain/model", "n_pairs=16", "rl.steps=2", "rl.prompts_per_step=4",
                         "rm_optim.max_steps=2", "log.progress=false"], "policy/model"),
    "constitutional": (lambda f: [f"critic={f}/pretrain/model", f"judge.path={f}/pretrain/model",
                                  "red_team_prompts=8", "helpful_prompts=8", "rounds=1", "n_pairs=8", "rl.steps=2",
                                  "rl.prompts_per_step=4", "sl_optim.max_steps=2", "rm_optim.max_steps=2",
                                  "log.progress=false"], "rl/model"),
    "iterative": (lambda f: ITERATIVE, "round_2/rejection_sampling/model"),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(CASES))
def test_every_method_trains_lora_adapters(trained_world, tmp_path, method):
    args, policy = CASES[method]
    f = Path(trained_world["dir"])
    start = [] if method == "pretrain" else [f"model.path={trained_world['sft']}"]
    r = subprocess.run([sys.executable, "-m", "alignstack.cli", method, f"out={tmp_path / 'run'}", *start,
                        "model.lora.enabled=true", *args(f)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    out = tmp_path / "run" / policy
    assert (out.parent / "adapter" / "adapter_config.json").exists(), "no LoRA adapter saved"
    merged = load_file(str(out / "model.safetensors"))
    assert not any("lora_" in k or "base_layer" in k for k in merged), "the saved model is not merged"
    if method == "pretrain":
        return
    base = load_file(str(Path(trained_world["sft"]) / "model.safetensors"))
    changed = [k for k in base if k in merged and merged[k].shape == base[k].shape and not (merged[k] == base[k]).all()]
    assert any("proj" in k for k in changed), f"LoRA-targeted weights unchanged ({changed[:5]})"
    if method == "reward_model":
        assert "score.weight" in merged and merged["score.weight"].abs().sum() > 0   # the scalar head trained
