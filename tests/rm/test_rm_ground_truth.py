"""Reduced ground-truth tests of the reward models on the built-in world (METHODS §3.1, §4.2):
feedback from the SFT fixture, labelled by the simulated annotators, judged on held-out prompts
against labels and ground truth the RM never saw."""
from __future__ import annotations

import json

import pytest

from alignstack.config import load
from alignstack.methods import reward_model as RM

pytestmark = pytest.mark.slow


def _train(trained_world, tmp_path, *over):
    cfg = load(RM.RewardModelConfig, overrides=[
        f"model.path={trained_world['sft']}", f"out={tmp_path / 'rm'}", "log.progress=false",
        "feedback.n_prompts=400", "feedback.eval_prompts=200", "feedback.calib_prompts=150", "n_demos=300", *over])
    return RM.train(cfg)


def test_helpfulness_rm_beats_chance_and_tracks_ground_truth(trained_world, tmp_path, margin):
    # 600 held-out prompts: at 200 the "significantly better" bucket cleared chance by 1.1 SE on the seed-1 fixture
    res = _train(trained_world, tmp_path, "feedback.calib_prompts=0", "feedback.k=4", "feedback.k_max=6",
                 "feedback.n_prompts=1000", "feedback.eval_prompts=600")
    ev = res["eval"]
    acc = ev["pair_accuracy"]                     # against held-out annotator labels, prompt-clustered CI
    margin.above("RM pair accuracy (mean)", acc["mean"], 0.55, acc)
    margin.ci_above("RM pair accuracy", acc, 0.5)
    margin.ci_above("RM accuracy, significantly better pairs", ev["accuracy_by_strength"]["significantly_better"], 0.5)
    margin.above("RM ground-truth pair accuracy (mean)", ev["gt_pair_accuracy"]["mean"], 0.55, ev["gt_pair_accuracy"])
    margin.ci_above("RM ground-truth pair accuracy", ev["gt_pair_accuracy"], 0.5)
    margin.ci_above("RM within-prompt Kendall tau vs ground truth", ev["within_prompt_kendall_gt"], 0.0)
    margin.above("RM Spearman vs ground truth", ev["spearman_gt"], 0.0, ev)
    # InstructGPT shift: the saved RM scores the SFT demonstrations at mean 0
    cal = json.loads((tmp_path / "rm" / "model" / "calibration.json").read_text())
    assert cal["kind"] == "demo_shift"
    from alignstack.methods.reward_model import RewardModelScorer, world_demonstrations
    cfg = load(RM.RewardModelConfig, overrides=["n_demos=300"])
    demos = world_demonstrations(cfg)
    sc = RewardModelScorer(tmp_path / "rm" / "model")
    s = sc([p for p, _ in demos], [r for _, r in demos])
    assert abs(sum(s) / len(s)) < 1e-3
    assert (tmp_path / "rm" / "scores_hist.png").exists()


def test_safety_rm_separates_unsafe_responses(trained_world, tmp_path, margin):
    res = _train(trained_world, tmp_path, "target=safety", "objective=pairwise", "margin=small",
                 "feedback.mode=preference", "feedback.safety_frac=0.5")
    ev = res["eval"]
    assert res["calibration"]["kind"] == "platt" and res["calibration"]["a"] > 0
    margin.above("safety RM AUC on harmful prompts", ev["safety"]["auc_safety_prompts"], 0.7, ev["safety"])
    margin.above("safety RM AUC", ev["safety"]["auc"], 0.7, ev["safety"])
    # Platt scaling fitted on dev labels: calibrated P(safe) matches the held-out safe rate on average
    margin.below("safety RM calibration error", abs(ev["safety"]["mean_p_safe"] - ev["safety"]["actual_safe_rate"]),
                 0.1, ev["safety"])


def test_margin_rm_widens_the_gap_on_significantly_better_pairs(trained_world, tmp_path, margin):
    """Llama 2 §3.2.2: with the large margin table the score gap r_c − r_r on held-out
    "significantly better" pairs exceeds the gap on "negligibly better" ones."""
    res = _train(trained_world, tmp_path, "feedback.calib_prompts=0", "feedback.mode=preference",
                 "objective=pairwise", "margin=large", "feedback.n_prompts=1000", "feedback.eval_prompts=300")
    gaps = res["eval"]["gap_by_strength"]
    sig, neg = gaps["significantly_better"], gaps["negligibly_better"]
    margin.ci_above("RM gap, significantly better pairs", sig)
    margin.above("RM gap: significantly − negligibly better", sig["mean"], neg["mean"], gaps)
