"""Pipelines from YAML (validation, placeholders, resume) and the HTML report."""
import json

import pytest

from alignstack.config import ConfigError
from alignstack.pipeline import PipelineConfig, StageConfig, load_pipeline, shipped
from alignstack.report import V3_CLAIMS


def test_shipped_pipelines_load():
    for name in ("demo", "demo_all", "demo_v3"):
        cfg = load_pipeline(shipped(name))
        assert cfg.stages[0].method == "world" and cfg.baseline == "sft"
        assert any(s.method == "ppo" for s in cfg.stages)
    v3 = load_pipeline(shipped("demo_v3"))
    assert (v3.world, v3.eval_split) == (3, "test")


def test_eval_split_test_is_world_3s_sealed_split(tmp_path):
    body = "stages:\n  - {name: sft, method: checkpoint, overrides: [path=x], eval: true}\n"
    with pytest.raises(ConfigError, match="eval_split=test is world 3's sealed test split"):
        load_pipeline(_write(tmp_path, "eval_split: test\n" + body))
    with pytest.raises(ConfigError, match="eval_split: expected dev or test, got 'eval'"):
        load_pipeline(_write(tmp_path, "world: 3\neval_split: eval\n" + body))
    assert load_pipeline(_write(tmp_path, "world: 3\neval_split: test\n" + body)).eval_split == "test"


def _row(benign, unseen, over_refusal):
    """A v3 summary row's sampled comparison with the baseline: (diff, lo, hi) per column."""
    cols = {"benign_helpfulness": benign, "unsafe_unseen": unseen, "over_refusal": over_refusal}
    return {"vs_baseline": {"sampled": {c: {"diff": d, "ci": [lo, hi], "n": 100} for c, (d, lo, hi) in cols.items()}}}


def test_demo_bar_needs_an_rlhf_stage_and_dpo_each_meeting_all_three_parts():
    from alignstack.pipeline import demo_bar, format_demo_bar
    good = _row((0.03, 0.01, 0.05), (-0.05, -0.09, -0.01), (0.01, -0.02, 0.04))
    stages = {"sft": {}, "ppo": good, "dpo": good,
              # over-refusal +0.07 [+0.06, +0.08]: above the +0.05 allowance, so rejection sampling fails the bar
              "rs": _row((0.03, 0.01, 0.05), (-0.05, -0.09, -0.01), (0.07, 0.06, 0.08))}
    methods = {"sft": "sft", "ppo": "ppo", "dpo": "dpo", "rs": "rejection_sampling"}
    bar = demo_bar(stages, methods, "sft")
    assert set(bar["stages"]) == {"ppo", "dpo", "rs"}                 # the baseline is not judged against itself
    assert bar["met"] and bar["rlhf_meeting"] == ["ppo"] and bar["dpo_meeting"] == ["dpo"]
    rs = bar["stages"]["rs"]["parts"]
    assert (rs["benign_helpfulness"]["verdict"], rs["over_refusal"]["verdict"]) == ("holds", "does not hold")
    assert "bar MET: RLHF ppo and DPO dpo" in format_demo_bar(bar, "test")[-1]
    # DPO's benign CI straddles 0: inconclusive, so the bar is not met, and the summary says which side is missing
    stages["dpo"] = _row((0.01, -0.01, 0.03), (-0.05, -0.09, -0.01), (0.0, -0.01, 0.01))
    bar = demo_bar(stages, methods, "sft")
    assert not bar["met"] and bar["dpo_meeting"] == []
    assert bar["stages"]["dpo"]["parts"]["benign_helpfulness"]["verdict"] == "inconclusive"
    lines = format_demo_bar(bar, "test")
    assert lines[-1] == "  bar NOT MET: no DPO stage meets all three parts"
    assert "sealed test split" in lines[0] and "one training seed" in lines[0]


def _write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_unknown_method_suggests(tmp_path):
    p = _write(tmp_path, "stages:\n  - {name: a, method: sfft}\n")
    with pytest.raises(ConfigError, match=r"unknown method 'sfft'; did you mean 'sft'"):
        load_pipeline(p)


def test_bad_pipelines_get_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="duplicate stage names"):
        load_pipeline(_write(tmp_path, "stages:\n  - {name: a, method: sft}\n  - {name: a, method: dpo}\n"))
    with pytest.raises(ConfigError, match="baseline 'sft' must be a stage with eval"):
        load_pipeline(_write(tmp_path, "stages:\n  - {name: pol, method: dpo, eval: true}\n"))
    with pytest.raises(ConfigError, match="at least one stage"):
        load_pipeline(_write(tmp_path, "out: x\n"))
    with pytest.raises(ConfigError, match="a checkpoint stage takes exactly one override, path=DIR"):
        load_pipeline(_write(tmp_path, "stages:\n  - {name: sft, method: checkpoint, overrides: [model=x]}\n"))
    with pytest.raises(ConfigError, match=r"unknown config key 'stages\[0\].overide'"):
        load_pipeline(_write(tmp_path, "stages:\n  - {name: a, method: sft, overide: []}\n"))


def test_stage_overrides_fill_the_run_folder(tmp_path, monkeypatch):
    """`{out}` becomes the run folder; a stage gets out=<run>/<name>; --fast adds the fast overrides;
    finished stages are skipped on resume."""
    import alignstack.methods.sft as sft_mod
    from alignstack import pipeline
    seen = []

    def fake_train(cfg):
        seen.append(cfg)
        return {"steps": 1}
    monkeypatch.setattr(sft_mod, "train", fake_train)
    cfg = PipelineConfig(out=str(tmp_path / "run"), stages=[
        StageConfig(name="s1", method="sft", overrides=["model.path={out}/base/model"], fast=["optim.max_steps=2"])])
    pipeline.run_pipeline(cfg, tmp_path, fast=True, progress=False)
    assert seen[0].out == str(tmp_path / "run" / "s1")
    assert seen[0].model.path == f"{tmp_path / 'run'}/base/model" and seen[0].optim.max_steps == 2
    assert json.loads((tmp_path / "run" / "s1" / "done.json").read_text())["steps"] == 1
    pipeline.run_pipeline(cfg, tmp_path, resume=True, progress=False)
    assert len(seen) == 1, "a finished stage must be skipped on resume"


def _fake_summary(run):
    ci = {"score_diff_ci": [0.01, 0.05], "unsafe_diff_ci": [-0.1, -0.02], "win_rate_ci": [0.5, 0.6]}
    st = {
        "sft": {"method": "sft", "helpfulness": 0.6, "unsafe_rate": 0.1, "kl_to_sft": 0.0, "win_rate_vs_sft": 0.5,
                "score_diff_vs_sft": 0.0, "unsafe_diff_vs_sft": 0.0, "wall_s": 3,
                "samples": [{"prompt": "Sort: b a", "response": "a b."}],
                **{k: [0.0, 0.0] for k in ci}},
        "ppo": {"method": "ppo", "helpfulness": 0.65, "unsafe_rate": 0.05, "kl_to_sft": 1.2, "win_rate_vs_sft": 0.55,
                "score_diff_vs_sft": 0.03, "unsafe_diff_vs_sft": -0.05, "wall_s": 9, "verdict": "beats sft",
                "samples": [{"prompt": "Sort: b a", "response": "Sure. a b."}], **ci},
        "rm_helpful": {"method": "reward_model", "wall_s": 5, "result": {"eval": {
            "pair_accuracy": {"mean": 0.65, "lo": 0.6, "hi": 0.7},
            "accuracy_by_strength": {"significantly_better": {"mean": 0.7, "lo": 0.6, "hi": 0.8},
                                     "negligibly_better": {"mean": 0.52, "lo": 0.45, "hi": 0.6}}}}},
    }
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"config": {"eval_prompts": 1000, "baseline": "sft"},
                                                  "stages": st, "total_wall_s": 17}))
    (run / "ppo").mkdir()
    (run / "ppo" / "metrics.jsonl").write_text("\n".join(json.dumps({"iteration": i, "reward": 0.1 * i, "gt": 0.6})
                                                         for i in range(1, 6)) + "\n{\"trunc")


def test_report_is_self_contained(tmp_path):
    from alignstack.report import build_report
    run = tmp_path / "run"
    _fake_summary(run)
    path = build_report(run)
    page = path.read_text()
    assert "beats sft" in page and "Sure. a b." in page and "rm_helpful" in page
    # world v3 method comparison (when its claims JSON is committed), all methods (committed results), stages,
    # frontier, RM accuracy, curves
    assert page.count("data:image/png;base64,") == 5 + V3_CLAIMS.exists()
    assert (run / "report_png" / "training_curves.png").exists()


def test_report_missing_summary_is_clear(tmp_path):
    from alignstack.cli import main
    assert main(["report", str(tmp_path / "nothing")]) == 2


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path, chrome):
    from alignstack.report import build_report
    run = tmp_path / "run"
    _fake_summary(run)
    path = build_report(run)
    chrome.get(path.as_uri())
    assert "alignstack report" in chrome.title
    widths = chrome.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 5 + V3_CLAIMS.exists() and all(w > 100 for w in widths), widths   # every chart decoded
    assert "beats sft" in chrome.find_element("tag name", "body").text


def test_eval_samples_average_per_prompt_and_scalars(tmp_path):
    from alignstack.eval.ground_truth import EvalConfig, _average_runs
    a = {"helpfulness": 1.0, "unsafe_rate": 0.0, "red_team_unsafe_rate": 0.0, "over_refusal": 0.0, "score": 1.0,
         "per_family": {"add": 1.0}, "per_prompt": [1.0, 0.0], "per_prompt_unsafe": [0.0], "samples": ["s"]}
    b = {"helpfulness": 0.5, "unsafe_rate": 1.0, "red_team_unsafe_rate": 1.0, "over_refusal": 0.5, "score": 0.0,
         "per_family": {"add": 0.0}, "per_prompt": [0.0, 0.0], "per_prompt_unsafe": [1.0], "samples": ["t"]}
    m = _average_runs([a, b])
    assert m["per_prompt"] == [0.5, 0.0] and m["per_prompt_unsafe"] == [0.5] and m["unsafe_rate"] == 0.5
    assert m["helpfulness"] == 0.75 and m["per_family"] == {"add": 0.5} and m["samples"] == ["s"] and m["n_samples"] == 2
    assert _average_runs([a]) is a
    with pytest.raises(ValueError, match="eval samples"):
        EvalConfig(samples=0)
    with pytest.raises(ConfigError, match="eval_samples must be"):
        load_pipeline(_write(tmp_path, "eval_samples: 0\nstages:\n  - {name: a, method: sft}\n"))


def test_task_eval_keys_are_checked_when_the_pipeline_is_built(tmp_path):
    from alignstack.config import ConfigError
    from alignstack.pipeline import load_pipeline
    p = tmp_path / "p.yaml"
    p.write_text("stages: [{name: sft, method: sft, eval: true}]\nbaseline: sft\neval_task: rows:x.jsonl\n")
    with pytest.raises(ConfigError, match="eval_task and eval_verifier go together"):
        load_pipeline(p)
    with pytest.raises(ConfigError, match="eval_verifier: cannot resolve 'nope' as a verifier"):
        load_pipeline(p, ["eval_verifier=nope"])
    assert load_pipeline(p, ["eval_verifier=exact"]).eval_verifier == "exact"
