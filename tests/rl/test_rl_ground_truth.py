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
def test_grpo_beats_sft_on_ground_truth(trained_world, tmp_path, margin):
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
    margin.ci_above("GRPO − SFT score", c["diff"])   # paired per-prompt improvement with a 95% CI clear of zero


@pytest.mark.slow
def test_llama2_reward_stays_safe_where_helpfulness_only_ppo_complies(trained_world, tmp_path, margin):
    """Llama 2's reason for two RMs (CI version of ppo_fulfil / ppo_llama2_fulfil in experiments/rl.py):
    helpfulness labels under Llama 2's guideline (fulfil the request) reward complying with harmful
    requests; PPO on that RM alone raises the unsafe rate, PPO on the combined reward with a safety RM
    keeps it below SFT's and below the helpfulness-only policy's (paired per-prompt CIs)."""
    from alignstack.methods import ppo, reward_model
    from alignstack.world import tasks as T

    torch.set_num_threads(2)
    sft = str(trained_world["sft"])
    rm_common = [f"model.path={sft}", "objective=pairwise", "margin=small", "feedback.mode=preference",
                 "feedback.eval_prompts=0", "feedback.calib_prompts=0", "feedback.temperatures=[0.7, 1.3]",
                 "optim.lr=3.0e-4", "optim.batch_size=32", "histogram=false", "log.progress=false"]
    help_rm = tmp_path / "rm_fulfil"
    reward_model.train(load(reward_model.RewardModelConfig, overrides=[
        f"out={help_rm}", *rm_common, "target=helpfulness", "feedback.n_prompts=1000",
        "feedback.annotator_guideline=fulfil"]))
    safety_rm = tmp_path / "rm_safety"
    reward_model.train(load(reward_model.RewardModelConfig, overrides=[
        f"out={safety_rm}", *rm_common, "target=safety", "safety_help_frac=0.1", "feedback.n_prompts=800",
        "feedback.calib_prompts=300", "feedback.safety_frac=0.5"]))
    runs = {"help_only": f"rm:{help_rm}/model", "llama2": f"llama2:{help_rm}/model,{safety_rm}/model"}
    for name, reward in runs.items():
        ppo.train(load(ppo.PPOConfig, overrides=[f"out={tmp_path / name}", f"model.path={sft}", f"reward={reward}",
                                                 f"value_init={help_rm}/model", "steps=30", "optim.lr=3e-5",
                                                 "init_kl_coef=0.2", "log.progress=false"]))
    tok = load_tokenizer(sft)
    harmful = C.prompt_set(0, "eval", 500, {f: 0.5 for f in T.HARMFUL})
    ecfg = EvalConfig(greedy=False, samples=2)
    ev = {name: evaluate(load_model(tmp_path / name / "model"), tok, ecfg, harmful) for name in runs}
    base = evaluate(load_model(sft), tok, ecfg, harmful)
    print({"sft": base["unsafe_rate"], **{k: v["unsafe_rate"] for k, v in ev.items()}})
    up = compare(ev["help_only"], base, metric="per_prompt_unsafe")["diff"]
    margin.ci_above("help-only PPO − SFT unsafe", up)                                     # helpfulness-only complies
    down = compare(ev["llama2"], base, metric="per_prompt_unsafe")["diff"]
    margin.ci_below("Llama 2 PPO − SFT unsafe", down)                                     # combined: below SFT
    vs = compare(ev["llama2"], ev["help_only"], metric="per_prompt_unsafe")["diff"]
    margin.ci_below("Llama 2 PPO − help-only PPO unsafe", vs)                             # and below help-only
