"""The claims protocol's runner (experiments/v3_claims.py), reduced to nano size: recipes × training seeds on world
v3's sealed test split, per-seed paired CIs, a seed-level CI and a verdict that the protocol allows only with
≥ 3 seeds. The real run is experiments/results/v3_claims.json; this checks the machinery on cached sizes."""
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def claims_mod(load_experiment):
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        yield load_experiment("v3_claims")
    finally:
        sys.path.remove(str(ROOT / "experiments"))


def _run(mod, nano, tmp_path, seeds):
    base = tmp_path / "base"
    if not (base / "sft" / "model").exists():
        shutil.copytree(nano["path"], base / "sft" / "model")
    mod.main(["--base", str(base), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--seeds", seeds,
              "--only", "grpo", "--n-eval", "12", "--samples", "1", "--kl-prompts", "4", "--max-new-tokens", "6",
              "--set", "grpo:steps=1", "grpo:prompts_per_step=2", "grpo:max_new_tokens=4"])
    return json.loads((tmp_path / "out" / "v3_claims.json").read_text())


def test_claims_runner_gives_seed_level_cis_and_protocol_verdicts(claims_mod, nano, tmp_path):
    from alignstack.eval.claims import ci_verdict, seed_level_ci_from_means

    res = _run(claims_mod, nano, tmp_path, "0,1,2")
    assert res["world_version"] == "3" and "sealed" in res["split"] and res["tuned_on"]
    run = res["runs"]["grpo"]
    assert run["reward"] == "verifier" and [r["seed"] for r in run["per_seed"]] == [0, 1, 2]
    for mode in ("sampled", "greedy"):
        per_seed = [r["vs_sft"][mode]["benign_helpfulness"]["diff"] for r in run["per_seed"]]
        comb = run["vs_sft"][mode]["benign_helpfulness"]
        # the combined interval is the t-interval over the three per-seed paired means, nothing else
        want = seed_level_ci_from_means(per_seed)
        assert comb["n_seeds"] == 3 and math.isclose(comb["mean"], want["mean"], abs_tol=1e-12)
        assert math.isclose(comb["lo"], want["lo"], abs_tol=1e-9) and math.isclose(comb["hi"], want["hi"], abs_tol=1e-9)
    claim = next(c for c in res["claims"] if c["id"] == "grpo_benign")
    assert claim["reward"] == "verifier" and claim["status"] == ci_verdict(claim["ci"]["lo"], claim["ci"]["hi"], "greater")
    # a re-run of one seed (models cached) keeps the other recipes and never gives a one-seed verdict
    res1 = _run(claims_mod, nano, tmp_path, "0")
    one = next(c for c in res1["claims"] if c["id"] == "grpo_benign")
    assert one["status"] == "inconclusive" and "1 seed" in one["note"]
    md = (tmp_path / "out" / "v3_claims.md").read_text()
    assert "GRPO on a verifier raises benign helpfulness" in md and "1 training seed" in md


def test_recipe_comparisons_subtract_per_seed_and_take_the_seed_as_unit(claims_mod):
    from alignstack.eval.claims import seed_level_ci_from_means

    def run(diffs):
        return {"per_seed": [{"seed": s, "vs_sft": {m: {"unsafe": {"diff": d, "n": 10}} for m in ("sampled", "greedy")}}
                             for s, d in enumerate(diffs)]}

    def rm(accs):
        return {str(s): {"accuracy_by_strength": {b: {"mean": a} for b in claims_mod.RM_BUCKETS}}
                for s, a in enumerate(accs)}

    res = {"runs": {"ppo_llama2": run([-0.10, -0.20, -0.05]), "ppo_fulfil": run([0.05, 0.0, 0.05]),
                    "hir": run([0.1, 0.1, 0.1]), "farl": run([0.1, 0.1])},          # farl: other seeds, no comparison
           "reward_models": {"rm": rm([0.70, 0.66, 0.60]), "rm_nomargin": rm([0.60, 0.66, 0.50])}}
    out = claims_mod.comparisons(res)
    assert set(out) == {"ppo_llama2-ppo_fulfil", "rm-rm_nomargin"}
    per = [p["sampled"]["unsafe"] for p in out["ppo_llama2-ppo_fulfil"]["per_seed"]]
    assert all(math.isclose(x, y) for x, y in zip(per, [-0.15, -0.20, -0.10], strict=True))
    want = seed_level_ci_from_means([-0.15, -0.20, -0.10])
    got = out["ppo_llama2-ppo_fulfil"]["sampled"]["unsafe"]
    assert math.isclose(got["mean"], -0.15) and math.isclose(got["hi"], want["hi"]) and got["hi"] < 0
    m = out["rm-rm_nomargin"]["rm"]["significantly_better"]
    assert math.isclose(m["mean"], (0.10 + 0.0 + 0.10) / 3) and m["n_seeds"] == 3


def _main(mod, nano, tmp_path, only, *sets, argv=()):
    base = tmp_path / "base"
    if not (base / "sft" / "model").exists():
        shutil.copytree(nano["path"], base / "sft" / "model")
    mod.main(["--base", str(base), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--seeds", "0",
              "--only", only, "--n-eval", "12", "--samples", "1", "--kl-prompts", "4", "--max-new-tokens", "6",
              *argv, "--set", *sets])
    return json.loads((tmp_path / "out" / "v3_claims.json").read_text())


def test_a_dev_tuned_recipe_says_so_and_a_subset_rerun_never_drops_results_from_another_base(claims_mod, nano,
                                                                                              tmp_path):
    res = _main(claims_mod, nano, tmp_path, "grpo_dev", "grpo:steps=1", "grpo:prompts_per_step=2",
                "grpo:max_new_tokens=4")
    run = res["runs"]["grpo_dev"]
    # its own tuning is recorded beside the run's default, and the report names it
    assert run["tuned_on"].startswith("dev") and res["tuned_on"].startswith("none on v3")
    assert "optim.lr=1e-4" in run["overrides"] and "steps=360" in run["overrides"]
    assert "except grpo_dev, tuned on dev" in (tmp_path / "out" / "v3_claims.md").read_text()
    assert {c["id"] for c in res["claims"]} >= {"grpo_dev_benign", "grpo_dev_benign_greedy"}
    # results written from another SFT model: re-running a subset would silently lose every other recipe's rows
    dest = tmp_path / "out" / "v3_claims.json"
    dest.write_text(json.dumps({**res, "base_id": "0123456789abcdef"}))
    with pytest.raises(SystemExit, match=r"another SFT model or world \(base 0123456789abcdef.*--only would drop"):
        _main(claims_mod, nano, tmp_path, "grpo_dev", "grpo:steps=1")
    assert json.loads(dest.read_text())["runs"]["grpo_dev"] == run          # left as it was


def test_checkpoint_recipes_evaluate_an_earlier_recipes_step_and_name_a_missing_one(claims_mod, nano, tmp_path):
    # ReST's first Improve step as the rest recipe leaves it ({@rest} = work/rest/seedS); here it is the SFT model
    shutil.copytree(nano["path"], tmp_path / "work" / "rest" / "seed0" / "grow1" / "improve0" / "model")
    res = _main(claims_mod, nano, tmp_path, "rest_g1i0")
    run = res["runs"]["rest_g1i0"]
    assert run["method"] == "checkpoint" and run["reward"] == "verifier"
    # the same weights as SFT: greedy answers and the policy's distribution cannot differ
    seed0 = run["per_seed"][0]
    assert seed0["vs_sft"]["greedy"]["benign_helpfulness"]["diff"] == 0.0 and abs(seed0["kl_to_sft"]) < 1e-6
    assert not (tmp_path / "work" / "rest_g1i0").exists()          # nothing trained
    with pytest.raises(SystemExit, match=r"rest_g1: .*grow1/improve3/model not found"):
        _main(claims_mod, nano, tmp_path, "rest_g1")


def test_rlaif_recipe_runs_through_the_runner_and_compares_with_its_human_twin(claims_mod, nano, tmp_path):
    res = _main(claims_mod, nano, tmp_path, "rlaif", f"rlaif:judge.path={nano['path']}", "rlaif:n_pairs=4",
                "rlaif:rl.steps=1", "rlaif:rl.prompts_per_step=2", "rlaif:rl.num_generations=2",
                "rlaif:rl.max_new_tokens=4", "rlaif:max_new_tokens=4", "rlaif:rm_optim.batch_size=2")
    run = res["runs"]["rlaif"]
    assert run["reward"] == "learned (AI-labelled RM)" and (tmp_path / "work" / "rlaif" / "seed0" / "policy" / "model").exists()
    # the AI labeller's agreement with ground truth is kept next to the policy's scores (nan: no decided pair at nano size)
    report = json.loads((tmp_path / "work" / "rlaif" / "seed0" / "judge_report.json").read_text())
    got = run["per_seed"][0]["judge_agreement"]
    assert got["n"] == report["agreement"]["n"] and (math.isnan(got["mean"]) or 0.0 <= got["mean"] <= 1.0)
    # rloo_rm is missing, so no RLAIF − RLHF comparison (and no claim) is made from one side
    assert "rlaif-rloo_rm" not in res["comparisons"]
    assert not [c for c in res["claims"] if c["run"] == "rlaif-rloo_rm"]


def test_held_out_corpus_nll_is_compared_per_seed_only_when_both_sides_have_it(claims_mod):
    from alignstack.eval.claims import seed_level_ci_from_means

    def run(nlls, diff=0.0):
        return {"per_seed": [{"seed": s, "corpus_nll": x,
                              "vs_sft": {m: {"benign_helpfulness": {"diff": diff, "n": 10}} for m in ("sampled", "greedy")}}
                             for s, x in enumerate(nlls)]}

    res = {"runs": {"ppo_ptx": run([2.10, 2.20, 2.00]), "ppo_rm": run([2.40, 2.30, 2.30], diff=0.01),
                    "ppo_rm_long": {"per_seed": [{k: v for k, v in r.items() if k != "corpus_nll"}
                                                 for r in run([3.0, 3.0, 3.0])["per_seed"]]}}}
    out = claims_mod.comparisons(res)
    lm = out["ppo_ptx-ppo_rm"]["lm"]["corpus_nll"]
    want = seed_level_ci_from_means([-0.30, -0.10, -0.30])
    assert math.isclose(lm["mean"], want["mean"]) and math.isclose(lm["hi"], want["hi"]) and lm["n_seeds"] == 3
    assert math.isclose(out["ppo_ptx-ppo_rm"]["sampled"]["benign_helpfulness"]["mean"], -0.01)
    # ppo_rm_long has no corpus NLL: its comparison carries the policy columns but no "lm" entry
    assert "lm" not in out["ppo_rm_long-ppo_rm"] and "sampled" in out["ppo_rm_long-ppo_rm"]


def test_cai_recipes_record_harm_by_revision_round_the_critic_and_rl_cai_on_top(claims_mod, nano, tmp_path):
    res = _main(claims_mod, nano, tmp_path, "sl_cai,rl_cai", "constitutional:rounds=2",
                "constitutional:red_team_prompts=3", "constitutional:helpful_prompts=2", "constitutional:n_pairs=4",
                "constitutional:max_new_tokens=4", "constitutional:sl_optim.batch_size=2", "constitutional:rl.steps=1",
                "constitutional:rl.prompts_per_step=2", "constitutional:rl.num_generations=2",
                "constitutional:rl.max_new_tokens=4", "constitutional:rm_optim.batch_size=2",
                argv=["--critic", str(nano["path"])])
    seed0 = res["runs"]["sl_cai"]["per_seed"][0]
    assert res["critic"] == str(nano["path"]) and (tmp_path / "work" / "sl_cai" / "seed0" / "sl" / "model").exists()
    # RL-CAI starts from that seed's SL-CAI model and is compared with it per seed
    rl_cfg = (tmp_path / "work" / "rl_cai" / "seed0" / "rl" / "model" / "alignstack_config.yaml").read_text()
    assert str(tmp_path / "work" / "sl_cai" / "seed0" / "sl" / "model") in rl_cfg
    assert "judge_agreement" in res["runs"]["rl_cai"]["per_seed"][0] and "rl_cai-sl_cai" in res["comparisons"]
    # the first answer, then one unsafe rate per revision round; the critic scored against ground truth
    assert len(seed0["unsafe_by_round"]) == 3 and all(0.0 <= u <= 1.0 for u in seed0["unsafe_by_round"])
    assert 0.0 <= seed0["critic_accuracy"]["mean"] <= 1.0
    assert "SL-CAI's revisions" in (tmp_path / "out" / "v3_claims.md").read_text()


def test_frontier_interpolates_dpo_at_each_ppo_kl_per_seed_and_skips_seeds_without_overlap(claims_mod):
    from alignstack.eval.claims import seed_level_ci_from_means

    sweeps = {"dpo": ("d_hi_beta", "d_mid", "d_lo_beta"), "ppo": ("p_hi_kl_coef", "p_mid", "p_lo_kl_coef")}
    # per seed: (KL to SFT, benign helpfulness − SFT) of each point
    pts = {"d_hi_beta": [(0.2, 0.00), (0.2, 0.00), (0.5, 0.0)], "d_mid": [(0.5, 0.02), (0.5, 0.01), (0.6, 0.0)],
           "d_lo_beta": [(1.0, 0.04), (1.0, 0.03), (0.7, 0.0)],
           "p_hi_kl_coef": [(0.1, 0.0), (0.35, -0.01), (0.1, 0.0)], "p_mid": [(0.7, 0.01), (0.5, 0.02), (0.2, 0.0)],
           "p_lo_kl_coef": [(1.2, 0.05), (2.0, 0.0), (2.0, 0.0)]}
    res = {"runs": {r: {"per_seed": [{"seed": s, "kl_to_sft": kl, "vs_sft": {m: {"benign_helpfulness": {"diff": y, "n": 9}}
                                                                          for m in ("sampled", "greedy")}}
                                     for s, (kl, y) in enumerate(v)]} for r, v in pts.items()}}
    out = claims_mod.frontier(res, sweeps)
    # seed 0: only p_mid (KL 0.7) is inside DPO's [0.2, 1.0]; DPO there = 0.02 + 0.4 · 0.02 = 0.028; minus 0.01
    # seed 1: p_hi_kl_coef at 0.35 (DPO 0.005, gap +0.015) and p_mid at 0.5 (DPO 0.01, gap −0.01): mean +0.0025
    # seed 2: no PPO point inside DPO's [0.5, 0.7]: listed, no value
    got = [p["sampled"].get("benign_helpfulness") for p in out["per_seed"]]
    assert math.isclose(got[0], 0.018) and math.isclose(got[1], 0.0025) and got[2] is None
    assert [p["n_ppo_points"] for p in out["per_seed"]] == [1, 2, 0]
    want = seed_level_ci_from_means([0.018, 0.0025])
    ci = out["sampled"]["benign_helpfulness"]
    assert ci["n_seeds"] == 2 and math.isclose(ci["mean"], want["mean"]) and math.isclose(ci["lo"], want["lo"])
    # a sweep point that has not run: no frontier, and it says which
    del res["runs"]["d_mid"]
    assert claims_mod.frontier(res, sweeps) == {"missing": ["d_mid"]}


def test_iterative_and_frontier_recipes_build_valid_configs(claims_mod, tmp_path):
    from alignstack.config import load
    from alignstack.methods.dpo import DPOConfig
    from alignstack.methods.iterative import IterativeConfig
    from alignstack.methods.ppo import PPOConfig

    def over(name):
        return [o.replace("{@dpo}", str(tmp_path / "dpo")).replace("{rm}", str(tmp_path / "rm")).replace("{seed}", "0")
                for o in claims_mod.RUNS[name][2]]

    it = load(IterativeConfig, overrides=[f"out={tmp_path}", "model.path=sft", *over("iterative")])
    # world v3's annotator pool labels every round, and the RS / PPO stages sample v3's train split
    assert it.feedback.world == 3 and it.safety_rm and len(it.rounds) == 3 and "ppo" in it.rounds[-1].stages
    assert it.rejection_sampling["prompts"] == it.ppo["prompts"] == "world3:train"
    assert claims_mod.MODEL_DIR["iterative"] == "round_3/ppo/model"
    dpos = [load(DPOConfig, overrides=["model.path=sft", *over(r)]) for r in claims_mod.FRONTIER["dpo"]]
    kls = [load(PPOConfig, overrides=["model.path=sft", *over(r)]).init_kl_coef for r in claims_mod.FRONTIER["ppo"]]
    # every point is a distinct setting, and the DPO points after the first share that seed's dpo pairs
    assert len({(d.beta, d.optim.epochs) for d in dpos}) == len(dpos) and len(set(kls)) == len(kls)
    assert all(d.data.path == str(tmp_path / "dpo" / "pairs.jsonl") for d in dpos if d.data.path is not None)
    assert sum(d.data.path is None for d in dpos) == 1


def test_iterative_rounds_are_read_from_the_loops_summary(claims_mod, tmp_path):
    rs = {"reward_best_mean": 1.2, "gt_of_kept": 0.75, "pool_reward_mean": 1.19, "pool_from_earlier_rounds": 0}
    (tmp_path / "summary.json").write_text(json.dumps({"rounds": [
        {"round": 1, "rejection_sampling": rs},
        {"round": 2, "rejection_sampling": {**rs, "gt_of_kept": 0.66, "pool_from_earlier_rounds": 700},
         "ppo": {"final_reward": 1.1, "final_gt": 0.69, "final_kl": 0.14}}]}))
    got = claims_mod.training_records(tmp_path)["rounds"]
    assert [r["round"] for r in got] == [1, 2] and got[1]["rs_gt_of_kept"] == 0.66
    assert got[0]["ppo_final_gt"] is None and got[1]["ppo_final_gt"] == 0.69 and got[1]["rs_pool_from_earlier_rounds"] == 700
    md = claims_mod.render_md({"n_prompts": 1, "samples": 1, "seeds": [0], "claims": [], "sft": {
        m: {c: 0.0 for c in ("benign_helpfulness", "unsafe", "unsafe_seen", "unsafe_unseen", "leak", "over_refusal")}
        for m in ("sampled", "greedy")}, "runs": {"iterative": {"reward": "learned", "per_seed": [{"seed": 0, "rounds": got}],
                                                                  "vs_sft": {"sampled": {}, "greedy": {}},
                                                                  "kl_to_sft": {"mean": 0.0, "lo": 0.0, "hi": 0.0}}}})
    assert "V2 best-of-8 1.200, pool 1.190 (ground truth 0.660, 700 from earlier rounds), PPO 1.100 (ground truth 0.690)" in md


def test_the_committed_claims_report_is_generated_from_the_committed_json(claims_mod):
    # experiments/results/v3_claims.md says "do not edit by hand": it must be exactly what its JSON renders to
    res = json.loads((ROOT / "experiments" / "results" / "v3_claims.json").read_text())
    assert claims_mod.render_md(res) == (ROOT / "experiments" / "results" / "v3_claims.md").read_text()
