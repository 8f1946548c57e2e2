"""Eval splits with an eval loss for SFT, DPO and reward models: data.eval_path or data.eval_frac (issue 25)."""
import math

import pytest

from alignstack.config import DataConfig, load
from alignstack.data.sources import write_jsonl
from alignstack.data.splits import eval_split


def test_eval_split_is_seeded_disjoint_and_complete():
    rows = list(range(20))
    tr, ev = eval_split(rows, DataConfig(eval_frac=0.25), lambda p: 1 / 0, seed=3)
    assert len(ev) == 5 and sorted(tr + ev) == rows and not set(tr) & set(ev)
    assert eval_split(rows, DataConfig(eval_frac=0.25), None, seed=3) == (tr, ev)
    assert eval_split(rows, DataConfig(eval_frac=0.25), None, seed=4) != (tr, ev)
    assert eval_split(rows, DataConfig(), None) == (rows, [])
    assert eval_split(rows, DataConfig(eval_path="e.jsonl"), lambda p: [p]) == (rows, ["e.jsonl"])
    with pytest.raises(ValueError, match="eval_frac must be in"):
        eval_split(rows, DataConfig(eval_frac=1.5), None)


PAIRS = [{"prompt": f"What is {i} + 1?", "chosen": f"It is {i + 1}.", "rejected": "No idea.",
          "strength": "better"} for i in range(12)]
COMMON = ["optim.max_steps=2", "optim.batch_size=4", "log.progress=false"]


def test_sft_reports_a_held_out_loss(nano, tmp_path):
    from alignstack.methods import sft
    rows = [{"prompt": r["prompt"], "completion": r["chosen"]} for r in PAIRS]
    d = write_jsonl(tmp_path / "sft.jsonl", rows)
    res = sft.train(load(sft.SFTConfig, overrides=[f"out={tmp_path}/sft", f"model.path={nano['path']}",
                                                   f"data.path={d}", "data.eval_frac=0.25", *COMMON]))
    assert res["eval_rows"] == 3 and 0 < res["eval_loss"] < 20 and math.isfinite(res["eval_loss"])


def test_dpo_reports_held_out_loss_and_accuracy(nano, tmp_path):
    from alignstack.methods import dpo
    d = write_jsonl(tmp_path / "train.jsonl", PAIRS[:8])
    e = write_jsonl(tmp_path / "eval.jsonl", PAIRS[8:])
    res = dpo.train(load(dpo.DPOConfig, overrides=[f"out={tmp_path}/dpo", f"model.path={nano['path']}",
                                                   f"data.path={d}", f"data.eval_path={e}", *COMMON]))
    assert res["eval_rows"] == 4 and 0 <= res["eval_accuracy"] <= 1
    assert res["eval_loss"] == pytest.approx(math.log(2), abs=0.3)      # two small steps from the reference


def test_reward_model_evaluates_on_the_held_out_share(nano, tmp_path):
    from alignstack.methods import reward_model
    d = write_jsonl(tmp_path / "prefs.jsonl", PAIRS)
    res = reward_model.train(load(reward_model.RewardModelConfig, overrides=[
        f"out={tmp_path}/rm", f"model.path={nano['path']}", f"data.path={d}", "data.eval_frac=0.25", *COMMON]))
    assert res["train_rows"] == 9 and math.isfinite(res["eval"]["pair_loss"]) and "pair_accuracy" in res["eval"]
