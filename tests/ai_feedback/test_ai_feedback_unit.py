"""Unit tests: constitution files, principle sampling, the critique → revision loop on a scripted
model, the judge error report, soft-label RM pieces, configs and the judge: reward spec."""
import json
import math
import random
from collections import Counter

import pytest
import torch

from alignstack.config import ConfigError, load
from alignstack.losses.preference import soft_label_loss
from alignstack.methods import constitutional as K
from alignstack.methods import rlaif
from alignstack.world import tasks as T


def _const(**over):
    d = {"critique_revision": [{"name": "p1", "critique": "C1?", "revision": "R1!"},
                               {"name": "p2", "critique": "C2?", "revision": "R2!"}],
         "comparison": ["less harmful?", "more polite?"]}
    d.update(over)
    return d


def test_default_constitution_loads():
    c = K.load_constitution()
    assert len(c.critique_revision) >= 4 and len(c.comparison) >= 2
    assert c.format["critique"].startswith("{conversation}")


def test_principle_sampling_uniform_and_seeded():
    c = K.parse_constitution(_const())
    draws = [c.sample(random.Random(7)).name for _ in range(3)]
    assert len(set(draws)) == 1                     # same seed → same principle
    rng = random.Random(0)
    counts = Counter(c.sample(rng).name for _ in range(4000))
    assert set(counts) == {"p1", "p2"}
    assert abs(counts["p1"] / 4000 - 0.5) < 0.03    # uniform
    comp = Counter(c.sample_comparison(rng) for _ in range(2000))
    assert set(comp) == {"less harmful?", "more polite?"}


@pytest.mark.parametrize("data, field", [
    ({"comparison": ["x"]}, "critique_revision"),
    (_const(critique_revision=[{"name": "a", "critique": "c"}]), "critique_revision[0].revision"),
    (_const(critique_revision=[{"critique": "", "revision": "r"}]), "critique_revision[0].critique"),
    (_const(comparison=[]), "comparison"),
    (_const(comparison=["ok", 3]), "comparison[1]"),
    (_const(format={"critique": "no conversation", "revision": "r"}), "format.critique"),
    (_const(format={"critique": "{conversation}{oops}", "revision": "r"}), "format.critique"),
    (_const(principles=[]), "principles"),
])
def test_bad_constitution_names_file_and_field(tmp_path, data, field):
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(data))
    with pytest.raises(K.ConstitutionError) as e:
        K.load_constitution(p)
    assert str(p) in str(e.value) and f"'{field}'" in str(e.value)


def test_constitution_file_errors(tmp_path):
    with pytest.raises(K.ConstitutionError, match="not found"):
        K.load_constitution(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("critique_revision: [unclosed")
    with pytest.raises(K.ConstitutionError, match="bad.yaml: cannot parse"):
        K.load_constitution(bad)
    assert issubclass(K.ConstitutionError, ConfigError)       # the CLI prints it without a traceback


class ScriptedCritic:
    """Critique: names the principle's request it saw; revision: 'rev<k>' (k = call count)."""

    def __init__(self):
        self.prompts, self.n = [], 0

    def generate(self, prompts, max_tokens=64, temperature=0.0):
        self.prompts.append(list(prompts))
        out = []
        for p in prompts:
            if p.endswith("Critique:"):
                out.append(" bad answer <REV> should not appear")
            else:
                self.n += 1
                out.append(f" rev{self.n}")
        return out


def test_critique_revision_loop_scripted():
    c = K.parse_constitution(_const(format={"critique": "{conversation}\nCR: {request}\nCritique:",
                                            "revision": "<REV> {request}\nRevision:"}))
    critic = ScriptedCritic()
    out = K.critique_revise(critic, ["<|user|>q<|end|><|assistant|>"], ["bad"], c, rounds=3, rng=random.Random(1),
                            end="<|end|>")
    assert len(out[0]) == 3 and len(critic.prompts) == 6           # critique + revision per round
    assert [r["revision"] for r in out[0]] == ["rev1", "rev2", "rev3"]
    assert all(r["critique"] == "bad answer" for r in out[0])      # cut at the revision marker
    # round k+1 critiques round k's revision, with a randomly drawn principle's request
    assert "<|assistant|>bad<|end|>" in critic.prompts[0][0]
    assert "<|assistant|>rev1<|end|>" in critic.prompts[2][0]
    assert "<|assistant|>rev2<|end|>" in critic.prompts[4][0]
    names = [r["principle"] for r in out[0]]
    for k, name in enumerate(names):
        req = {"p1": ("C1?", "R1!"), "p2": ("C2?", "R2!")}[name]
        assert f"CR: {req[0]}" in critic.prompts[2 * k][0]
        assert critic.prompts[2 * k + 1][0].endswith(f"bad answer<REV> {req[1]}\nRevision:")


def test_world_format_matches_critique_documents():
    """The default format reproduces the corpus layout the world critic learned."""
    from alignstack.world import corpus as C
    c = K.load_constitution()
    conv = C.render_chat([{"role": "user", "content": "q"}]) + C.CHAT["assistant"]
    head = c.format["critique"].format(conversation=K.render_turn(conv, "r", C.CHAT["end"]), request="x")
    assert head == C.render_chat([{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]) + C.CRITIQUE
    assert c.format["revision"].format(request="x") == C.REVISE


def test_soft_label_loss_hand_values():
    r1, r2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    got = soft_label_loss(r1, r2, torch.tensor([0.8, 0.3]))
    s = 1 / (1 + math.exp(-1.0))
    want0 = -0.8 * math.log(s) - 0.2 * math.log(1 - s)
    assert got[0].item() == pytest.approx(want0, abs=1e-6)
    assert got[1].item() == pytest.approx(math.log(2), abs=1e-6)       # d = 0 → log 2 for any q
    # minimised where σ(r1 − r2) = q
    d = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([d], lr=1.0)
    for _ in range(500):
        opt.zero_grad()
        soft_label_loss(d, torch.zeros(1), 0.7).sum().backward()
        opt.step()
    assert torch.sigmoid(d).item() == pytest.approx(0.7, abs=1e-3)


def test_soft_pairs_validate_soft_label():
    from alignstack.data.formats import DataError

    class R:
        def prompt_completion(self, p, c, where):
            return c
    ok = rlaif.soft_pairs([{"prompt": "q", "chosen": "a", "rejected": "b", "soft_label": 0.7}], R())
    assert ok[0].q == 0.7 and ok[0].items == ["a", "b"]
    with pytest.raises(DataError, match="soft_label"):
        rlaif.soft_pairs([{"prompt": "q", "chosen": "a", "rejected": "b", "soft_label": 1.5}], R(), "x.jsonl")


def test_soft_rm_kill_and_resume_is_bit_identical(nano, tmp_path, monkeypatch):
    """The soft-label RM trains through the shared fit loop: a run stopped by SIGTERM after step 3 and resumed
    from its checkpoint ends with the same weights as one uninterrupted run."""
    import os
    import signal

    from safetensors.torch import load_file

    from alignstack.config import CheckpointConfig, LogConfig, OptimConfig
    from alignstack.train import checkpoint as ckpt
    from alignstack.train.loop import Interrupted, Trainer
    from alignstack.world.corpus import sft_rows

    torch.set_num_threads(1)
    conv = [r["messages"] for r in sft_rows(0, 13)]
    rows = [{"prompt": m[:-1], "chosen": m[-1]["content"], "rejected": o[-1]["content"], "soft_label": 0.6 + 0.03 * i}
            for i, (m, o) in enumerate(zip(conv, conv[1:]))]
    optim = OptimConfig(lr=1e-3, batch_size=4, max_steps=6, warmup_steps=1)
    log = LogConfig(progress=False)

    def run(out, resume=False):
        return rlaif.train_soft_rm(rows, str(nano["path"]), str(out), optim, 96, 0, log,
                                   checkpoint=CheckpointConfig(resume=resume))

    a = run(tmp_path / "a")
    orig = Trainer.step

    def step(self, *args, **kw):
        if self.step_count == 2:
            os.kill(os.getpid(), signal.SIGTERM)      # arrives during step 3: checkpoint after it, then exit
        return orig(self, *args, **kw)

    monkeypatch.setattr(Trainer, "step", step)
    with pytest.raises(Interrupted):
        run(tmp_path / "b")
    assert ckpt.latest_checkpoint(tmp_path / "b").name == "step-00000003"
    calls = []
    monkeypatch.setattr(Trainer, "step", lambda self, *args, **kw: calls.append(1) or orig(self, *args, **kw))
    b = run(tmp_path / "b", resume=True)
    assert len(calls) == 3                              # resumed at step 3: only the last three steps ran
    assert a["steps"] == b["steps"] == 6 and a["train_loss"] == b["train_loss"]
    wa, wb = (load_file(str(tmp_path / x / "model" / "model.safetensors")) for x in "ab")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_judge_report_counts_biases():
    import random as _r
    rng = _r.Random(0)
    task = T.make_task("add", rng)
    good, bad = T.good_response(task, rng), T.wrong_answer(task, rng)
    tasks = [task] * 4
    a, b = [good, bad, good, bad], [bad, good, bad, good]
    # judge always prefers the first position (p_first 0.9), averaging both orders → 0.5 ties
    res = [{"p_a": 0.5, "p_a_first_order": 0.9, "p_a_second_order": 0.1}] * 4
    rep = rlaif.judge_report(tasks, a, b, res)
    assert rep["agreement_first_order_only"]["mean"] == 0.5
    assert rep["position_bias_mean_p_first"] == pytest.approx(0.4)
    assert rep["order_flip_rate"] == 1.0
    assert rep["per_family_agreement"]["add"]["n"] == 4


def test_configs_and_errors():
    c = load(rlaif.RLAIFConfig, "configs/rlaif.yaml")
    assert c.mode == "distilled" and c.rl.algorithm == "rloo"
    with pytest.raises(ConfigError, match="mode"):
        rlaif.check_config(load(rlaif.RLAIFConfig, None, ["mode=bogus"]))
    with pytest.raises(ConfigError, match="rl.algorithm"):
        rlaif.check_config(load(rlaif.RLAIFConfig, None, ["rl.algorithm=dqn"]))
    k = load(K.ConstitutionalConfig, "configs/constitutional.yaml")
    assert k.rounds == 4 and k.stage == "both"
    with pytest.raises(ConfigError, match="rounds"):
        K.check_config(load(K.ConstitutionalConfig, None, ["rounds=0"]))
    with pytest.raises(K.ConstitutionError, match="nowhere.yaml"):
        K.check_config(load(K.ConstitutionalConfig, None, ["constitution=nowhere.yaml"]))


def test_cli_bad_constitution_is_clean(tmp_path, capsys):
    from alignstack.cli import main
    p = tmp_path / "c.yaml"
    p.write_text("comparison: [x]\n")
    assert main(["constitutional", f"constitution={p}"]) == 2
    err = capsys.readouterr().err
    assert "c.yaml" in err and "critique_revision" in err and "Traceback" not in err


def test_judge_reward_spec_errors():
    from alignstack.rollout.scorers import make_scorer
    with pytest.raises(ValueError, match="judge:PATH"):
        make_scorer("judge:")
