"""Judge distillation as a method (``alignstack judge``, alignstack/methods/judge.py): graders through the task
seam, rows written exactly as the judge reads them, a tiny end-to-end run from the CLI, and a pipeline whose
RLAIF stage labels with the judge an earlier stage built. Tiny sizes only; the recipe's agreement (0.784) is
measured by experiments/judge.py, not here."""
import json
import sys

import pytest

from alignstack.config import ConfigError, load
from alignstack.methods import judge as J
from alignstack.tasks import Example, TaskSpecError, example_from_row, resolve
from alignstack.world import corpus as C
from alignstack.world import tasks as T
from alignstack.world.plugin import example_of

SORT = T.Task(family="sort", prompt="Sort the letters a g e f", answer="a e f g")


@pytest.fixture
def one_thread(trained_world):
    """Tiny models: a second thread only fights the other processes for the cores (the fixture sets two)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield trained_world
    torch.set_num_threads(n)


def test_world_row_is_written_as_the_judge_reads_it():
    """Hand-checked: the world grader's row in the default template, identical to the world's own graded row."""
    row = J.judge_row(J.load_template(None), resolve("world", "grader"), example_of(SORT), "a f f g.", "Sure! a e f g.")
    assert row == {
        "prompt": "<|judge|>Question: Sort the letters a g e f\n(A) a f f g.\n(B) Sure! a e f g.\n"
                  "Let's think step by step about which response is better.\nRationale:",
        "completion": " The correct answer is a e f g. (A): a/a f/e f/f g/g, partly right. (B): a/a e/e f/f g/g, right."
                      "\nBetter:<|B|>"}
    assert row == C.graded_judge_row(SORT, "a f f g.", "Sure! a e f g.", layout="pairs")
    assert J.judge_row(J.load_template(None), resolve("world", "grader"), example_of(SORT), "a e f g.",
                       "Sure! a e f g.") is None                      # equally good: nothing to learn


def test_verifier_grader_writes_the_reference_and_grades():
    g = resolve("verifier:exact", "grader")
    ex = example_from_row({"prompt": [{"role": "user", "content": "What is 2+2?"}], "answer": "4"})
    assert g.grade(ex, "5", "4") == ("The correct answer is 4. (A): wrong. (B): right.", False)
    assert g.grade(ex, "4", "4") is None
    row = J.judge_row(J.load_template("pairwise_plain"), g, ex, "4", "5")
    assert row["prompt"].endswith("[Response B]\n5\n\nReply with a single letter: \"A\" if Response A is better, "
                                  "\"B\" if Response B is better.\nLet's think step by step about which response is "
                                  "better.\nRationale:")
    assert row["completion"] == " The correct answer is 4. (A): right. (B): wrong.\nBetter response:A"
    no_ref = Example([{"role": "user", "content": "q"}], {})
    assert resolve("verifier:regex:yes", "grader").grade(no_ref, "yes", "no") == ("(A): right. (B): wrong.", True)


def test_grader_specs_resolve_and_bad_ones_name_the_key(tmp_path, monkeypatch):
    assert resolve("world", "grader").spec == "world:pairs"
    assert resolve("world:echo", "grader").layout == "echo"
    (tmp_path / "my_grader_mod.py").write_text(
        "def grade(example, a, b):\n    return None if a == b else ('longer wins', len(a) > len(b))\n"
        "class Grader:\n    truth = None\n    def __init__(self, seed=0):\n        self.seed = seed\n"
        "    def grade(self, example, a, b):\n        return ('seeded', True)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_grader_mod", raising=False)
    fn = resolve("import:my_grader_mod:grade", "grader")
    assert fn.grade(None, "aa", "b") == ("longer wins", True) and fn.truth is None
    assert resolve("import:my_grader_mod:Grader", "grader", seed=3).seed == 3
    for spec, msg in [("bogus", r"^grader: cannot resolve 'bogus' as a grader; tried .*verifier:SPEC"),
                      ("world:bogus", r"^grader: cannot build a grader from 'world:bogus': unknown world grader layout"),
                      ("verifier:", r"^grader: 'verifier:SPEC' needs a verifier spec"),
                      ("verifier:nope", r"^grader: cannot resolve 'nope' as a verifier"),
                      ("file:x.txt", r"^grader: a grader cannot come from a file"),
                      ("world3:bogus", r"^grader: cannot build a grader from 'world3:bogus': unknown world v3")]:
        with pytest.raises(TaskSpecError, match=msg) as e:
            resolve(spec, "grader", key="grader")
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"grader: cannot resolve 'bogus' as a grader"):
        load(J.JudgeDistillConfig, None, ["grader=bogus"])          # checked when the config is built
    with pytest.raises(ConfigError, match="temperatures"):
        load(J.JudgeDistillConfig, None, ["temperatures=[]"])


def test_rows_files_hold_out_the_rows_not_trained_on():
    exs = [Example([{"role": "user", "content": str(i)}]) for i in range(10)]
    assert J.held_out(exs, exs[:6]) == exs[6:]                      # no splits: the rows after the trained ones
    other = [Example([{"role": "user", "content": f"e{i}"}]) for i in range(3)]
    assert J.held_out(other, exs[:6]) == other                      # an eval split: all of it


def test_judge_method_end_to_end_from_the_cli(one_thread, tmp_path):
    trained_world = one_thread
    """40 prompts, 2 steps: a loadable judge with its card, rows in both orders matching the world's graded rows for
    the same samples, and an agreement report on held-out prompts."""
    from alignstack.cli import main
    from alignstack.feedback.judges import judge_card
    from alignstack.methods.rlaif import sample_pairs
    from alignstack.models.load import load_model, load_tokenizer
    out = tmp_path / "judge"
    assert main(["judge", f"model.path={trained_world['sft']}", f"out={out}", "n_prompts=40", "optim.max_steps=2",
                 "eval_prompts=6", "cot_max_tokens=8", "log.progress=false"]) == 0
    res = json.loads((out / "metrics.json").read_text())
    assert res["trained_as"] == J.TRAINED_AS and res["grader"] == "world:pairs" and res["train"]["steps"] == 2
    assert res["path"] == str(out / "model") and load_model(out / "model") is not None
    card = judge_card(out / "model")
    assert card["cot"] is True and card["agreement"] == res["agreement"] == res["eval"]["agreement"]
    assert res["eval"]["prompts"] == 6 and res["eval"]["eval_prompts_from"] == "world:eval"
    assert len((out / "eval_pairs.jsonl").read_text().splitlines()) == 6

    rows = [json.loads(x) for x in (out / "judge_rows.jsonl").read_text().splitlines()]
    stats = json.loads((out / "judge_rows.json").read_text())
    assert stats["pairs"] == 40 and stats["rows"] == len(rows) == 2 * stats["decided_pairs"] > 0
    assert stats["too_long"] == 0
    pol, tok = load_model(trained_world["sft"]).eval(), load_tokenizer(trained_world["sft"])
    tasks = C.prompt_set(0, "train", 40)
    want = []
    for r, t in zip(sample_pairs(pol, tok, [example_of(t) for t in tasks], 1.0, 24, 0), tasks):
        x, y = r["completions"]
        want += [w for w in (C.graded_judge_row(t, x, y, "pairs"), C.graded_judge_row(t, y, x, "pairs")) if w]
    assert rows == want
    assert all(r["prompt"].endswith(C.JUDGE_COT) and r["completion"][-5:] in (C.OPT_A, C.OPT_B) for r in rows)
    assert [r["completion"][-5:] for r in rows[:2]] in ([C.OPT_A, C.OPT_B], [C.OPT_B, C.OPT_A])   # both orders


def test_pipeline_judge_stage_feeds_rlaif(one_thread, tmp_path):
    trained_world = one_thread
    """A `method: judge` stage, then RLAIF labelling with `judge.path={out}/judge/model`; the RLAIF report carries
    the judge's card and the summary the judge's agreement."""
    from alignstack.pipeline import load_pipeline, run_pipeline
    sft = trained_world["sft"]
    p = tmp_path / "p.yaml"
    p.write_text(f"""out: {tmp_path / 'run'}
stages:
  - name: judge
    method: judge
    overrides: [model.path={sft}, n_prompts=16, optim.max_steps=1, eval_prompts=4, cot_max_tokens=8]
  - name: rlaif
    method: rlaif
    overrides: [model.path={sft}, "judge.path={{out}}/judge/model", judge.cot=true, judge.cot_max_tokens=8,
                n_pairs=4, rl.steps=1, rl.prompts_per_step=2, rl.num_generations=2, rm_optim.max_steps=1]
""")
    cfg = load_pipeline(p)
    assert [s.method for s in cfg.stages] == ["judge", "rlaif"]
    summary = run_pipeline(cfg, tmp_path, progress=False)
    run = tmp_path / "run"
    assert (run / "judge" / "model" / "config.json").is_file()
    assert summary["stages"]["judge"]["result"]["agreement"]["n"] >= 0
    rl = json.loads((run / "rlaif" / "done.json").read_text())
    assert rl["judge"]["judge_model"]["trained_as"] == J.TRAINED_AS
    assert rl["judge"]["judge_model"]["use_with"] == f"judge.path={run / 'judge' / 'model'} judge.cot=true"
