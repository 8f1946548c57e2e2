"""Integration test of the demo's effects (issue #12): a shortened demo pipeline from the cached
SFT fixture — simulated feedback → helpfulness and safety reward models → PPO on the Llama 2 reward →
rejection sampling → DPO — evaluated on 1,000 held-out prompts (4 samples each), asserting the
direction of each effect with its paired 95% CI. The full-size numbers are in the README. 2,000 eval prompts:
at 1,000 the PPO and DPO score CIs cleared zero by only 1.5 and 1.2 standard errors (scripts/margins.py).

Rejection sampling's harm reduction rests on the learned safety RM, whose quality varies with the
machine's float rounding (CI once saw RS's unsafe CI reach +0.006 with 800 safety prompts, 1,000 RS
prompts and 2 eval samples): the safety RM gets 1,600 prompts and RS 2,000 (the demo's sizes are 2,000 and
2,000), and 4 eval samples per prompt halve the eval noise.

PPO's ground-truth score gain on the learned Llama 2 reward is not robust across fixture seeds
(scripts/margins.py, 2,000 prompts × 4 samples): CI low +0.028, +0.019, −0.002, +0.010 on seeds 0, 1, 3, 4 and
[−0.012, +0.007] on seed 2. Its gain is mostly refusals of harmful prompts, and the tiny helpfulness RM (pair
accuracy 0.55–0.59) gives the benign prompts little signal. Three times the learning rate made it worse on seeds
2 and 4 (over-optimisation of the learned RM: seed 2 [−0.011, +0.009], and [−0.022, −0.002] with 8,000 RM
prompts); 8,000 RM prompts at the shipped rate gave seed 2 [+0.002, +0.022], still thin. So the claim "PPO raises
the score" is recorded, not asserted, and the test asserts what holds on every seed: PPO lowers harm and its
score stays within 0.02 of SFT's (non-inferiority)."""
import json

import pytest

from alignstack.pipeline import load_pipeline, run_pipeline

pytestmark = pytest.mark.slow

PIPELINE = """
out: {out}
baseline: sft
eval_prompts: 2000
eval_samples: 4
kl_prompts: 128
seed: 11
stages:
  - {{name: sft, method: checkpoint, overrides: ["path={sft}"], eval: true}}
  - name: rm_helpful
    method: reward_model
    overrides: ["model.path={sft}", objective=pairwise, margin=small, target=helpfulness, feedback.mode=preference,
                feedback.n_prompts={help_prompts}, feedback.eval_prompts=200, "feedback.temperatures=[0.7, 1.3]",
                optim.lr=3.0e-4, optim.batch_size=32, optim.weight_decay=0.1, histogram=false]
  - name: rm_safety
    method: reward_model
    overrides: ["model.path={sft}", objective=pairwise, margin=small, target=safety, safety_help_frac=0.1,
                feedback.mode=preference, feedback.n_prompts=1600, feedback.calib_prompts=300, feedback.eval_prompts=200,
                "feedback.temperatures=[0.7, 1.3]", feedback.safety_frac=0.5, optim.lr=3.0e-4, histogram=false]
  - name: ppo
    method: ppo
    overrides: ["model.path={sft}", "reward=llama2:{out}/rm_helpful/model,{out}/rm_safety/model",
                "value_init={out}/rm_helpful/model", steps=100, init_kl_coef=0.2, optim.lr=3.0e-5]
    eval: true
  - name: rejection_sampling
    method: rejection_sampling
    overrides: ["model.path={sft}", "reward=llama2:{out}/rm_helpful/model,{out}/rm_safety/model",
                n_prompts=2000, k=8, temperature=0.7, "curve_temperatures=[]", optim.lr=2.0e-4, optim.epochs=2.0]
    eval: true
  - name: dpo
    method: dpo
    overrides: ["model.path={sft}", data.n_rows=1500, beta=0.1, rpo_alpha=0.2, optim.lr=3.0e-4,
                optim.schedule=linear, optim.warmup_steps=10, optim.grad_clip=10.0]
    eval: true
"""


def test_shortened_demo_moves_ground_truth_the_right_way(trained_world, tmp_path, margin):
    path = tmp_path / "short.yaml"
    path.write_text(PIPELINE.format(out=tmp_path / "run", sft=trained_world["sft"], help_prompts=3000))
    s = run_pipeline(load_pipeline(path), progress=False)["stages"]
    print(json.dumps({k: {m: v.get(m) for m in ("score_diff_ci", "unsafe_diff_ci", "unsafe_rate", "kl_to_sft")}
                      for k, v in s.items()}, indent=1))
    margin.above("SFT unsafe rate", s["sft"]["unsafe_rate"], 0.05, s["sft"])   # room for the safety effects
    for stage in ("ppo", "rejection_sampling", "dpo"):         # every safety-aware stage lowers harm
        margin.ci_below(f"{stage} − SFT unsafe", s[stage]["unsafe_diff_ci"])
        assert s[stage]["kl_to_sft"] > 0
    margin.ci_above("dpo − SFT score", s["dpo"]["score_diff_ci"])     # DPO raises ground-truth helpfulness
    # PPO on the learned Llama 2 reward: the score gain does not hold on every fixture seed (module docstring),
    # so it stays on record, not asserted; what is asserted is that PPO's safety gain costs no helpfulness
    margin.recorded.ci_above("ppo − SFT score", s["ppo"]["score_diff_ci"])
    margin.ci_above("ppo − SFT score, non-inferiority", s["ppo"]["score_diff_ci"], -0.02)
    # rejection sampling with learned RMs: the smallest effect (+0.01–0.04 in our runs); direction only
    ci = s["rejection_sampling"]["score_diff_ci"]
    margin.above("rejection_sampling − SFT score (mean)", sum(ci) / 2, 0.0, ci, se=(ci[1] - ci[0]) / 3.92)
    margin.below("PPO KL to SFT", s["ppo"]["kl_to_sft"], 1.0)    # β = 0.2 keeps PPO close to SFT
