"""The claims protocol's runner (experiments/v3_claims.py), reduced to nano size: recipes × training seeds on world
v3's sealed test split, per-seed paired CIs, a seed-level CI and a verdict that the protocol allows only with
≥ 3 seeds. The real run is experiments/results/v3_claims.json; this checks the machinery on cached sizes."""
import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def claims_mod():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        spec = importlib.util.spec_from_file_location("v3_claims", ROOT / "experiments" / "v3_claims.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
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
