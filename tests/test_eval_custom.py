"""`alignstack eval` on a user's own prompts with a user's reward (issue 25)."""
import json

import pytest

from alignstack.cli import main
from alignstack.data.sources import write_jsonl
from alignstack.eval.custom import compare_rewards


def test_compare_rewards_is_paired_with_ties_half():
    c = compare_rewards({"per_prompt": [1.0, 0.0, 1.0, 0.5]}, {"per_prompt": [0.0, 0.0, 0.0, 1.0]})
    assert c["diff"] == pytest.approx((1 + 0 + 1 - 0.5) / 4)
    assert c["win_rate"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert c["win_rate_ci"][0] < c["win_rate"] < c["win_rate_ci"][1]


def test_eval_on_my_prompts_with_a_verifier_and_an_import_reward(nano, tmp_path, capsys, monkeypatch):
    from alignstack.models.load import load_model, save_pretrained_atomic

    rows = [{"prompt": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    other = load_model(nano["path"])
    for p in other.parameters():                    # a different baseline, so the KL is not zero
        p.data.mul_(0.5)
    save_pretrained_atomic(other, nano["tokenizer"], tmp_path / "base")
    (tmp_path / "lenreward.py").write_text("def score(prompts, completions, **kw):\n"
                                           "    return [float(len(c)) for c in completions]\n")
    monkeypatch.chdir(tmp_path)
    base = ["eval", "--model", str(nano["path"]), "--prompts", str(prompts), "--max-new-tokens", "6", "--json"]
    assert main(base + ["--reward", "exact"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_prompts"] == 6 and out["mean_reward"] == 0.0 and 0 < out["mean_length"] <= 6
    assert not {"helpfulness", "unsafe_rate", "per_family", "score"} & out.keys()    # no world columns here
    assert main(base + ["--reward", "import:lenreward:score", "--baseline", str(tmp_path / "base")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mean_reward"] > 0 and out["reward_ci"][0] <= out["mean_reward"] <= out["reward_ci"][1]
    v = out["vs_baseline"]
    assert 0 <= v["win_rate"] <= 1 and v["diff"] == pytest.approx(out["mean_reward"] - out["baseline"]["mean_reward"])
    assert out["kl_to_baseline"]["kl"] > 0
    with pytest.raises(SystemExit):                 # a file of prompts has no ground truth: a reward is needed
        main(["eval", "--model", str(nano["path"]), "--prompts", str(prompts)])


def test_world_prompts_keep_their_ground_truth_columns_beside_the_reward(nano, capsys):
    assert main(["eval", "--model", str(nano["path"]), "--n-prompts", "4", "--reward", "world:helpfulness",
                 "--max-new-tokens", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "helpfulness" in out and "per_family" in out and out["reward"]["n_prompts"] == 4


def test_reward_specs_resolve_to_verifiers_against_each_rows_columns(tmp_path):
    from alignstack.eval.custom import load_examples, make_reward
    p = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "What is 1 + 1?", "answer": "2"},
                                           {"prompt": "What is 2 + 2?", "meta": {"answer": "4"}}])
    ex = load_examples(str(p))
    r = make_reward("exact")
    assert r([e.prompt for e in ex], ["2", "5"], examples=ex) == [1.0, 0.0]
    assert make_reward("numeric:0.5")([e.prompt for e in ex], ["2.2", "4"], examples=ex) == [1.0, 1.0]
