"""Scale-out smoke tests for the methods that need a model that already answers (the random nano model
of test_multiprocess.py never ends a response, and these methods keep only finished ones, or need a
judge/critic that learned the world's documents): rejection sampling, the iterative loop, FARL, RLAIF
and Constitutional AI under torchrun with 2 CPU processes, on the cached tiny SFT fixture.
Each run must finish, write its rows once (not once per rank) and change the weights."""
import json
from pathlib import Path

import pytest
from test_multiprocess import _changed, _launch

RS = ["n_prompts=16", "k=2", "max_new_tokens=12", "optim.max_steps=2", "optim.batch_size=4"]
ITERATIVE = ["feedback.n_prompts=8", "feedback.k=2", "feedback.max_new_tokens=8",
             "reward_model={optim: {max_steps: 2, batch_size: 4}, log: {progress: false},"
             " feedback: {calib_prompts: 0, eval_prompts: 0}}",
             "rejection_sampling={n_prompts: 8, k: 2, max_new_tokens: 8, optim: {max_steps: 1, batch_size: 4},"
             " log: {progress: false}}",
             "rounds=[{stages: [feedback, reward_model, rejection_sampling]},"
             " {stages: [feedback, reward_model, rejection_sampling]}]"]
# method -> (overrides given the fixture dir, final policy folder relative to the run,
#            (rows file, most rows a single writer can produce))
CASES = {
    "rejection_sampling": (lambda f: [*RS, "log.progress=false"], "model", ("selected.jsonl", 16)),
    "iterative": (lambda f: ITERATIVE, "round_2/rejection_sampling/model", ("round_2/feedback_all.jsonl", 16)),
    "rlaif": (lambda f: [f"judge.path={f}/pretrain/model", "n_pairs=16", "rl.steps=2", "rl.prompts_per_step=4",
                         "rm_optim.max_steps=2", "log.progress=false"], "policy/model", ("ai_labels.jsonl", 16)),
    "farl": (lambda f: ["n_prompts=8", "n_samples=2", "max_new_tokens=8", "rounds=1", "optim.max_steps=2",
                        "optim.batch_size=4", "log.progress=false"], "model", None),
    "constitutional": (lambda f: [f"critic={f}/pretrain/model", f"judge.path={f}/pretrain/model",
                                  "red_team_prompts=8", "helpful_prompts=8", "rounds=1", "n_pairs=8", "rl.steps=2",
                                  "rl.prompts_per_step=4", "sl_optim.max_steps=2", "rm_optim.max_steps=2",
                                  "log.progress=false"],
                       "rl/model", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(CASES))
def test_world_method_runs_on_two_processes(trained_world, tmp_path, method):
    over, policy, rows_file = CASES[method]
    sft = Path(trained_world["sft"])
    r = _launch([method, f"out={tmp_path}/run", f"model.path={sft}", *over(trained_world["dir"])], tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    out = tmp_path / "run" / policy
    assert (out / "model.safetensors").exists()
    assert _changed(sft, out) > 0.5, "training under 2 processes left the weights unchanged"
    if rows_file:                       # one writer: every row parses, and no rank wrote its own copy
        name, most = rows_file
        rows = [json.loads(x) for x in (tmp_path / "run" / name).read_text().splitlines()]
        assert 0 < len(rows) <= most, len(rows)
