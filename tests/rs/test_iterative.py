"""Iterative RLHF (Llama 2 V1..Vn): malformed schedules get clear errors before any work; a 2-round
smoke run on the nano model keeps every round's folder, pools selections across rounds and skips
finished rounds on resume; a rows feedback source waits for labels and times out clearly."""
import json
import threading
import time

import pytest
import torch

from alignstack.config import ConfigError, load
from alignstack.methods import iterative as it
from alignstack.methods import rejection_sampling as rs


def _load(*over):
    return load(it.IterativeConfig, overrides=["model.path=/some/sft", *over])


@pytest.mark.parametrize("over, msg", [
    (["rounds=[]"], r"rounds: need at least one round"),
    (["rounds=[{stages: [feedback, rejection_sampling, ppx]}]"], r"unknown stage 'ppx'.*did you mean 'ppo'"),
    (["rounds=[{stages: [feedback, rejection_sampling]}]"],
     r"rounds\[0\]: stage 'rejection_sampling' needs a reward model"),
    (["rounds=[{stages: [feedback]}, {stages: [ppo]}]"], r"rounds\[1\]: stage 'ppo' needs a reward model"),
    (["rounds=[{stages: [reward_model]}]"], r"'reward_model' needs feedback"),
    (["rounds=[{stages: [feedback, feedback]}]"], r"listed twice"),
    (["feedback.source=labelers"], r"feedback.source: expected one of"),
    (["feedback.source=rows"], r"feedback.path: .*needs the rows file"),
    (["rounds=[{stages: [feedback, reward_model, rejection_sampling], rejection_sampling: {kk: 3}}]"],
     r"rounds\[0\].rejection_sampling.*unknown config key 'kk'.*did you mean 'k'"),
    (["reward_model={margin: huge}"], r"margin: expected one of"),
    (["feedback.world=4"], r"feedback.world: world must be one of 2, 3"),
])
def test_malformed_configs_are_clear(over, msg):
    with pytest.raises(ConfigError, match=msg):
        it.check_config(_load(*over))


def test_fixed_reward_needs_no_reward_model_and_shipped_config_is_valid():
    it.check_config(_load("reward=world:helpfulness", "rounds=[{stages: [rejection_sampling]}]"))
    it.check_config(load(it.IterativeConfig, "configs/iterative.yaml"))


def test_rows_source_waits_then_times_out(tmp_path):
    path = tmp_path / "labels.jsonl"
    row = {"prompt": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": "b"}
    with pytest.raises(ConfigError, match=r"0 labelled rows, the round needs feedback.min_rows=2"):
        it.wait_for_rows(str(path), 2, 0.2, 0.05)

    def export_later():      # the labeling app exports two labels after a short while
        time.sleep(0.3)
        path.write_text("\n".join(json.dumps(row) for _ in range(2)) + "\n")
    th = threading.Thread(target=export_later)
    th.start()
    t0 = time.monotonic()
    rows = it.wait_for_rows(str(path), 2, 10.0, 0.05)
    th.join()
    assert len(rows) == 2 and 0.25 < time.monotonic() - t0 < 5


def test_two_rounds_on_nano_keep_folders_pool_and_resume(nano, tmp_path, monkeypatch):
    torch.manual_seed(0)
    orig = rs.sample_and_score

    def all_finished(*a, **k):   # the random nano model rarely ends a response: count every response
        texts, r, fin, gt = orig(*a, **k)
        return texts, r, torch.ones_like(fin), gt
    monkeypatch.setattr(rs, "sample_and_score", all_finished)
    over = [f"out={tmp_path}", f"model.path={nano['path']}", "feedback.n_prompts=6", "feedback.k=2",
            "feedback.max_new_tokens=8", "reward_model={optim: {max_steps: 2, batch_size: 4}, log: {progress: false},"
            " feedback: {calib_prompts: 0, eval_prompts: 0}}",
            "rejection_sampling={n_prompts: 6, k: 2, max_new_tokens: 8, optim: {max_steps: 1, batch_size: 4},"
            " log: {progress: false}}",
            "rounds=[{stages: [feedback, reward_model, rejection_sampling]},"
            " {stages: [feedback, reward_model, rejection_sampling]}]"]
    res = it.train(load(it.IterativeConfig, overrides=over))
    assert [r["round"] for r in res["rounds"]] == [1, 2]
    for k in (1, 2):
        d = tmp_path / f"round_{k}"
        for f in ("feedback.jsonl", "feedback_all.jsonl", "rm_helpfulness/model/config.json",
                  "rejection_sampling/model/config.json", "rejection_sampling/selected.jsonl", "done.json"):
            assert (d / f).exists(), d / f
    n1 = len((tmp_path / "round_1" / "feedback.jsonl").read_text().splitlines())
    n_all2 = len((tmp_path / "round_2" / "feedback_all.jsonl").read_text().splitlines())
    assert n1 > 0 and n_all2 == n1 + res["rounds"][1]["feedback"]["rows"]        # RM 2 sees all feedback
    r2 = res["rounds"][1]
    assert r2["sampled_from"] == str(tmp_path / "round_1" / "rejection_sampling" / "model")   # newest policy
    assert r2["reward"] == f"rm:{tmp_path / 'round_2' / 'rm_helpfulness' / 'model'}"
    pool = json.loads((tmp_path / "round_2" / "rejection_sampling" / "pool.json").read_text())
    assert pool["latest_round"] == 2 and {e["round"] for e in pool["entries"]} <= {1, 2}
    # resume: round 1 is skipped as a whole; a half-done round 2 reuses its finished stages
    (tmp_path / "round_2" / "done.json").unlink()
    (tmp_path / "round_2" / "rejection_sampling.json").unlink()
    mtime_rm = (tmp_path / "round_2" / "rm_helpfulness.json").stat().st_mtime
    res2 = it.train(load(it.IterativeConfig, overrides=over))
    assert res2["rounds"][0].get("skipped") is True and not res2["rounds"][1].get("skipped")
    assert res2["rounds"][1]["rm_helpfulness"].get("resumed") is True
    assert (tmp_path / "round_2" / "rm_helpfulness.json").stat().st_mtime == mtime_rm
    assert (tmp_path / "round_2" / "done.json").exists() and (tmp_path / "summary.json").exists()


def test_simulated_feedback_asks_the_configured_world(monkeypatch):
    """feedback.world=3: each round's simulated feedback is v3's train split labelled by its annotator pool."""
    import alignstack.feedback.collect as collect_mod
    import alignstack.models.load as load_mod
    seen = []
    monkeypatch.setattr(collect_mod, "collect", lambda model, tok, cc, model_name: seen.append(cc) or [])
    monkeypatch.setattr(load_mod, "load_model", lambda path: None)
    monkeypatch.setattr(load_mod, "load_tokenizer", lambda path: None)
    for world in ("2", "3"):
        cfg = _load(f"feedback.world={world}")
        it.check_config(cfg)
        it.collect_feedback(cfg, 2, "/some/policy")
    assert [cc.world for cc in seen] == ["2", "3"] and seen[1].split == "train" and seen[1].annotator_id == "sim-round2"
