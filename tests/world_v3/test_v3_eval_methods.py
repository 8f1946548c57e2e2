"""World v3 outside its package: `alignstack eval --world 3` (the claims protocol's columns at T = 1 and
greedily, per-prompt arrays and paired CIs in the JSON), `alignstack world --version 3`, pipelines with
`world: 3`, and a few GRPO steps on world3 prompts and reward. Nano models only; nothing here trains for
more than a few steps."""
import json

import pytest

from alignstack.cli import main
from alignstack.eval import world_v3 as E
from alignstack.eval.ground_truth import _average_runs
from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T

COLUMNS = ("benign_helpfulness", "unsafe_seen", "unsafe_unseen", "unsafe", "leak", "over_refusal",
           "lookalike_helpfulness")


def test_scores_keep_per_prompt_arrays_and_average_over_samples():
    tasks = S.prompt_set(0, "dev", 120)
    refuse = E.score_responses(tasks, [T.REFUSAL] * len(tasks))
    import random
    rng = random.Random(0)
    good = E.score_responses(tasks, [T.good_response(t, rng) for t in tasks])
    for c in COLUMNS:
        n = len(refuse["per_prompt"][c])
        assert n > 0 and n == len(good["per_prompt"][c])
    assert len(refuse["per_prompt"]["unsafe_seen"]) == refuse["n_harmful_seen"]
    avg = _average_runs([refuse, good])        # two draws of the same prompts: per-prompt means, counts kept
    assert avg["benign_helpfulness"] == pytest.approx(0.5) and avg["over_refusal"] == pytest.approx(0.5)
    assert avg["per_prompt"]["over_refusal"] == [0.5] * refuse["n_lookalike"]
    assert avg["n_benign"] == refuse["n_benign"] and isinstance(avg["n_benign"], int)
    assert avg["n_samples"] == 2


def test_compare_is_paired_per_column():
    res = {m: {"per_prompt": {c: [1.0, 0.0, 1.0, 1.0] for c in COLUMNS}} for m in E.MODES}
    base = {m: {"per_prompt": {c: [0.0, 0.0, 1.0, 0.0] for c in COLUMNS}} for m in E.MODES}
    res["greedy"]["per_prompt"]["leak"] = base["greedy"]["per_prompt"]["leak"] = []
    c = E.compare(res, base)
    d = c["sampled"]["unsafe_unseen"]
    # differences 1, 0, 0, 1: mean 0.5, sd 0.577, se 0.289
    assert d["diff"] == pytest.approx(0.5) and d["n"] == 4 and d["win_rate"] == pytest.approx(0.75)
    assert d["ci"] == pytest.approx([0.5 - 1.959964 * 0.288675, 0.5 + 1.959964 * 0.288675], abs=1e-5)
    assert c["greedy"]["leak"] == {"diff": None, "ci": None, "n": 0}


def test_eval_world3_sealed_test_split_end_to_end(nano, tmp_path, capsys):
    out = tmp_path / "ev.json"
    rc = main(["eval", "--world", "3", "--split", "test", "--model", str(nano["path"]), "--baseline",
               str(nano["path"]), "--n-prompts", "30", "--max-new-tokens", "6", "--samples", "2", "--seed", "3",
               "--json", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0 and "SEALED test split" in cap.err
    rep = json.loads(cap.out)
    assert rep == json.loads(out.read_text())
    assert (rep["world_version"], rep["split"], rep["sealed"], rep["seed"], rep["temperature"], rep["samples"]) == \
        ("3", "test", True, 3, 1.0, 2)
    assert len(rep["prompt_ids"]) == rep["n_prompts"] == 30
    assert [p.split("|")[0] for p in rep["prompt_ids"]] == [t.problem_id for t in S.sealed_test_set(3, 30)]
    for scores in (rep["scores"], rep["baseline_scores"]):
        assert set(scores) == {"sampled", "greedy"}
        for mode in ("sampled", "greedy"):
            s = scores[mode]
            assert all(c in s for c in COLUMNS)
            assert len(s["per_prompt"]["benign_helpfulness"]) == s["n_benign"]
            assert len(s["per_prompt"]["unsafe_unseen"]) == s["n_harmful_unseen"]
            assert len(s["per_prompt"]["over_refusal"]) == s["n_lookalike"]
    for mode in ("sampled", "greedy"):        # the same model as its own baseline: every paired difference is 0
        for c in COLUMNS:
            v = rep["vs_baseline"][mode][c]
            assert v["n"] == 0 or (v["diff"] == 0.0 and v["ci"] == [0.0, 0.0])
    assert rep["kl_to_baseline"]["kl"] == pytest.approx(0.0, abs=1e-5)
    # the text form shows both decodings of both models
    assert main(["eval", "--world", "3", "--model", str(nano["path"]), "--n-prompts", "8",
                 "--max-new-tokens", "4"]) == 0
    text = capsys.readouterr()
    assert "SEALED" not in text.err and "split dev" in text.out and "greedy" in text.out


@pytest.mark.parametrize("argv, msg", [
    (["--world", "2", "--split", "test"], "sealed test split is world 3's"),
    (["--world", "3", "--split", "eval"], "world 3 evaluates on --split dev or test"),
    (["--world", "3", "--reward", "exact"], "--prompts/--reward are for your task"),
    (["--world", "4"], "unknown world version"),
])
def test_eval_argument_errors(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "x", *argv])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_generate_refuses_the_sealed_split(tmp_path, capsys):
    assert main(["generate", "--model", "x", "--prompts", "world3:test", "--out", str(tmp_path / "g.jsonl")]) == 2
    assert "test split is sealed" in capsys.readouterr().err


def test_world_command_writes_v3_files_without_the_test_split(tmp_path):
    assert main(["world", "--version", "3", "--out", str(tmp_path), "--docs", "20", "--sft", "10",
                 "--prompts", "5"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "prompts_dev.jsonl",
                                                          "prompts_train.jsonl", "sft.jsonl", "world.json"]
    rows = [json.loads(x) for x in (tmp_path / "prompts_train.jsonl").read_text().splitlines()]
    assert {r["meta"]["world_version"] for r in rows} == {"3"} and {r["meta"]["split"] for r in rows} == {"train"}


def test_pipeline_with_world_3_evaluates_on_the_dev_split(nano, tmp_path, capsys):
    from alignstack.pipeline import load_pipeline, run_pipeline
    y = tmp_path / "p.yaml"
    y.write_text(f"""out: {tmp_path}/run
world: 3
eval_prompts: 16
eval_max_new_tokens: 4
kl_prompts: 4
stages:
  - {{name: world, method: world, overrides: [n_docs=10, n_sft=5, n_prompts=3]}}
  - {{name: sft, method: checkpoint, overrides: [path={nano['path']}], eval: true}}
  - {{name: again, method: checkpoint, overrides: [path={nano['path']}], eval: true}}
""")
    summary = run_pipeline(load_pipeline(y), tmp_path)
    assert json.loads((tmp_path / "run" / "world" / "world.json").read_text())["world_version"] == "3"
    row = summary["stages"]["again"]
    assert row["world_version"] == "3" and row["split"] == "dev" and "helpfulness" not in row
    assert all(c in row and "greedy_" + c in row for c in COLUMNS)
    assert row["vs_baseline"]["greedy"]["benign_helpfulness"]["diff"] == 0.0
    rep = json.loads((tmp_path / "run" / "again" / "eval_v3_report.json").read_text())
    assert rep["split"] == "dev" and not rep["sealed"] and len(rep["prompt_ids"]) == 16
    assert "Δbenign" in capsys.readouterr().out
    with pytest.raises(Exception, match="unknown world version"):
        load_pipeline(y, ["world=5"])


def test_pipeline_with_eval_split_test_reports_the_sealed_split_and_the_demo_bar(nano, tmp_path, capsys):
    from alignstack.pipeline import load_pipeline, run_pipeline
    y = tmp_path / "p.yaml"
    y.write_text(f"""out: {tmp_path}/run
world: 3
eval_split: test
eval_prompts: 12
eval_max_new_tokens: 4
kl_prompts: 4
stages:
  - {{name: sft, method: checkpoint, overrides: [path={nano['path']}], eval: true}}
  - {{name: ppo, method: checkpoint, overrides: [path={nano['path']}], eval: true}}
""")
    summary = run_pipeline(load_pipeline(y), tmp_path)
    rep = json.loads((tmp_path / "run" / "ppo" / "eval_v3_report.json").read_text())
    assert rep["split"] == "test" and rep["sealed"] and len(rep["prompt_ids"]) == 12
    assert summary["eval_split"] == "test" and summary["stages"]["ppo"]["split"] == "test"
    from alignstack.world.v3.files import fingerprint  # which world it ran on, for the stale-result test
    assert summary["world_fingerprint"] == fingerprint()
    # the same model twice: every difference is 0, so it cannot beat SFT and the bar is not met
    bar = summary["demo_bar"]
    assert not bar["met"] and bar["stages"]["ppo"]["parts"]["benign_helpfulness"]["verdict"] != "holds"
    out = capsys.readouterr().out
    assert "sealed test split" in out and "bar NOT MET: no RLHF and no DPO stage" in out
    # `alignstack report` on a v3 run: its own stages in v3's columns, the figure and the bar, not an empty table
    from alignstack.report import build_report
    page = build_report(tmp_path / "run").read_text()
    assert "World v3, sealed test split" in page and "unsafe, unseen styles" in page
    assert "does not meet it" in page and "<b class='bad'>not met</b>" in page
    assert (tmp_path / "run" / "report_png" / "v3_stages.png").stat().st_size > 1000


def test_demo_world_3_fast_end_to_end(tmp_path):
    from alignstack.pipeline import DemoConfig, run_demo
    s = run_demo(DemoConfig(out=str(tmp_path / "d"), fast=True, eval_prompts=8, progress=False, world=3))
    assert s["eval_split"] == "test" and s["config"]["world"] == 3
    for stage in ("sft", "ppo", "rejection_sampling", "dpo"):
        assert s["stages"][stage]["split"] == "test" and "benign_helpfulness" in s["stages"][stage]
    assert set(s["demo_bar"]["stages"]) == {"ppo", "rejection_sampling", "dpo"}
    with pytest.raises(Exception, match="demo --all runs on world 2 only"):
        run_demo(DemoConfig(out=str(tmp_path / "x"), all=True, world=3))


def test_grpo_few_steps_on_world3_prompts_and_reward(nano, tmp_path):
    import torch

    from alignstack.config import load
    from alignstack.methods import grpo
    torch.set_num_threads(1)
    cfg = load(grpo.GRPOConfig, overrides=[f"out={tmp_path}", f"model.path={nano['path']}", "prompts=world3:train",
                                           "reward=world3:helpfulness", "steps=2", "prompts_per_step=2",
                                           "num_generations=2", "max_new_tokens=6", "log.progress=false"])
    assert grpo.train(cfg)["steps"] == 2
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in rows if "reward" in r and "gt" in r]) == 2      # v3's ground truth logged beside it
    cfg = load(grpo.GRPOConfig, overrides=[f"out={tmp_path}/t", f"model.path={nano['path']}", "prompts=world3:test"])
    from alignstack.tasks import TaskSpecError
    with pytest.raises(TaskSpecError, match="test split is sealed"):
        grpo.train(cfg)


def test_rest_grows_with_world3_behaviour_data(nano, tmp_path):
    """ReST's original data D comes from v3's source (correct answers, refusals; no noise here): its rows score 1
    on v3's ground truth."""
    import torch

    from alignstack.config import load
    from alignstack.methods import rest
    torch.set_num_threads(1)
    res = rest.train(load(rest.ReSTConfig, overrides=[
        f"out={tmp_path}", f"model.path={nano['path']}", "prompts=world3:train", "reward=world3:helpfulness",
        "n_prompts=4", "n_samples=2", "grow_steps=1", "improve_steps=1", "max_new_tokens=6", "original_noise=0",
        "log.progress=false"]))
    rows = [json.loads(x) for x in (tmp_path / "grow1" / "samples.jsonl").read_text().splitlines()]
    original = [r for r in rows if r["meta"]["origin"] == "original"]
    assert len(original) == 4 and all(r["meta"]["gt"] == 1.0 for r in original)
    assert res["wall_s"] > 0
