"""Reduced ground-truth check (CI version of experiments/rl.py): GRPO with the exact-match
verifier raises the true score of the cached SFT model on held-out prompts of the trained family."""
import pytest
import torch

from alignstack.config import load
from alignstack.eval.ground_truth import EvalConfig, compare, evaluate
from alignstack.methods import grpo
from alignstack.models.load import load_model, load_tokenizer
from alignstack.world import corpus as C


@pytest.mark.slow
def test_grpo_beats_sft_on_ground_truth(trained_world, tmp_path):
    torch.set_num_threads(2)
    cfg = load(grpo.GRPOConfig, overrides=[f"out={tmp_path}", f"model.path={trained_world['sft']}", "families=[sort]",
                                           "steps=60", "prompts_per_step=16", "num_generations=8", "beta=0.0",
                                           "optim.lr=3e-4", "log.progress=false", "max_new_tokens=16"])
    grpo.train(cfg)
    tok = load_tokenizer(trained_world["sft"])
    tasks = C.prompt_set(0, "eval", 600, {"sort": 1.0})
    ecfg = EvalConfig(greedy=False, max_new_tokens=16)
    after = evaluate(load_model(tmp_path / "model"), tok, ecfg, tasks)
    before = evaluate(load_model(trained_world["sft"]), tok, ecfg, tasks)
    c = compare(after, before)
    assert c["diff"]["lo"] > 0, c   # paired per-prompt improvement with a 95% CI clear of zero
