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
