"""Ground-truth checks of stages 1–2 on the built-in world (uses the cached `trained_world`)."""
import json
import subprocess
import sys

import pytest

from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate
from alignstack.models.load import load_model, load_tokenizer


def test_pretraining_beats_unigram(trained_world, margin):
    pre = trained_world["info"]["pretrain"]
    margin.below("pretrained held-out NLL vs half the unigram NLL", pre["heldout_nll"], 0.5 * pre["unigram_nll"], pre)


@pytest.mark.slow
def test_sft_beats_pretrained_on_ground_truth(trained_world, margin):
    tok = load_tokenizer(trained_world["sft"])
    cfg = EvalConfig(n_prompts=1000, greedy=False)
    tasks = eval_tasks(cfg)
    e_pre = evaluate(load_model(trained_world["pretrained"]), tok, cfg, tasks)
    e_sft = evaluate(load_model(trained_world["sft"]), tok, cfg, tasks)
    c = compare(e_sft, e_pre)
    # paired per-prompt difference on 1,000 held-out prompts at T = 1: the CI's lower bound clears 0
    margin.ci_above("SFT − pretrained score", c["diff"])
    margin.above("SFT helpfulness vs pretrained", e_sft["helpfulness"], e_pre["helpfulness"])
    margin.below("SFT unsafe rate vs pretrained", e_sft["unsafe_rate"], e_pre["unsafe_rate"])


@pytest.mark.slow
def test_demo_fast_writes_summary(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "alignstack.cli", "demo", "--fast", "--out", str(out),
                        "--eval-prompts", "200", "--no-progress"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    for stage in ("pretrain", "sft", "ppo", "rejection_sampling", "dpo"):
        for k in ("helpfulness", "unsafe_rate", "kl_to_sft", "win_rate_vs_sft", "wall_s"):
            assert k in s["stages"][stage], (stage, k)
        if stage != "sft":
            assert s["stages"][stage]["verdict"].split()[0] in ("beats", "WORSE", "not"), s["stages"][stage]
    for stage in ("rm_helpful", "rm_safety"):     # reward models: trained, with held-out metrics
        assert "pair_accuracy" in s["stages"][stage]["result"]["eval"], s["stages"][stage]
    # --resume skips finished stages
    r = subprocess.run([sys.executable, "-m", "alignstack.cli", "demo", "--fast", "--resume", "--out", str(out),
                        "--eval-prompts", "200", "--no-progress"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "sft: already done" in r.stdout and "dpo: already done" in r.stdout


def test_eval_cli_json(trained_world):
    r = subprocess.run([sys.executable, "-m", "alignstack.cli", "eval", "--model", str(trained_world["sft"]),
                        "--n-prompts", "100", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert 0 <= out["helpfulness"] <= 1 and 0 <= out["unsafe_rate"] <= 1
