"""Reduced ground-truth checks (CI versions of experiments/rest_hir.py), from the cached SFT model:
ReST raises the true score on the translation family; HIR beats the base model on goal-conditioned tasks
(evaluated under ``<correct>``). Paired per-prompt differences with a 95% CI clear of zero."""
import pytest
import torch

from alignstack.config import load
from alignstack.eval.ground_truth import EvalConfig, compare, evaluate
from alignstack.methods import hir, rest
from alignstack.models.load import load_model, load_tokenizer
from alignstack.world import corpus as C


@pytest.mark.slow
def test_rest_beats_sft_on_translation(trained_world, tmp_path):
    torch.set_num_threads(2)
    cfg = load(rest.ReSTConfig, overrides=[f"out={tmp_path}", f"model.path={trained_world['sft']}",
                                           "families=[translate]", "n_prompts=250", "n_samples=8", "grow_steps=1",
                                           "improve_steps=2", "lr_decay=0.7", "log.progress=false"])
    res = rest.train(cfg)
    kept = [e["kept_gt_mean"] for e in res["improve"]]
    assert kept == sorted(kept), res["improve"]      # rising thresholds keep better samples (logged GT)
    tok = load_tokenizer(trained_world["sft"])
    tasks = C.prompt_set(0, "eval", 600, {"translate": 1.0})
    ecfg = EvalConfig(greedy=False, max_new_tokens=24)
    after = evaluate(load_model(tmp_path / "model"), tok, ecfg, tasks)
    before = evaluate(load_model(trained_world["sft"]), tok, ecfg, tasks)
    c = compare(after, before)
    assert c["diff"]["lo"] > 0, c


@pytest.mark.slow
@pytest.mark.xfail(reason="HIR does not beat the base model on the tiny world yet (experiments/results/rest_hir.md: "
                          "entropy grows, <correct> accuracy collapses; ε = 0 run: −0.048 [−0.092, −0.004])",
                   strict=False)
def test_hir_beats_base_on_goal_conditioned_tasks(trained_world, tmp_path):
    # ε = 0: with the reference code's label smoothing ε = 0.2 over the whole vocabulary the tiny model's
    # entropy grows every round and its samples collapse (experiments/results/rest_hir.md)
    torch.set_num_threads(2)
    cfg = load(hir.HIRConfig, overrides=[f"out={tmp_path}", f"model.path={trained_world['sft']}",
                                         "families=[track,sort]", "n_prompts=200", "rounds=2", "epsilon=0.0",
                                         "log.progress=false"])
    hir.train(cfg)
    tok = load_tokenizer(trained_world["sft"])
    tasks = C.prompt_set(0, "eval", 600, {"track": 1.0, "sort": 1.0}, goal="correct")
    ecfg = EvalConfig(greedy=False, max_new_tokens=16)
    after = evaluate(load_model(tmp_path / "model"), tok, ecfg, tasks)
    before = evaluate(load_model(trained_world["sft"]), tok, ecfg, tasks)
    c = compare(after, before)
    assert c["diff"]["lo"] > 0, c
