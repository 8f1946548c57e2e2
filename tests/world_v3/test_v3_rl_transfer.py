"""experiments/world_v3_rl_transfer.py: its three benign prompt sets separate new problems from new phrasings,
and never read the sealed test split; its summary is the paired per-prompt difference policy − SFT."""

import pytest

from alignstack.world.v3 import splits as S
from alignstack.world.v3.templates import BENIGN, TEMPLATE_BY_ID


@pytest.fixture(scope="module")
def mod(load_experiment):
    return load_experiment("world_v3_rl_transfer")


def test_prompt_sets_cross_problems_and_templates_as_named(mod):
    sets = mod.prompt_sets(120)
    assert list(sets) == list(mod.SETS) and all(len(v) == 120 for v in sets.values())
    split_of = {name: [(S.problem_split(t.problem_id), TEMPLATE_BY_ID[t.template_id].split) for t in tasks]
                for name, tasks in sets.items()}
    assert set(split_of["train_x_train"]) == {("train", "train")}
    assert set(split_of["devproblems_x_traintemplates"]) == {("dev", "train")}
    assert set(split_of["dev_x_dev"]) == {("dev", "dev")}
    for tasks in sets.values():                 # benign families only, several of them, never test
        assert {t.family for t in tasks} <= set(BENIGN) and len({t.family for t in tasks}) >= 4
        assert all(t.kind == "benign" for t in tasks)
    assert [t.turns for t in mod.prompt_sets(120)["dev_x_dev"]] == [t.turns for t in sets["dev_x_dev"]]


def test_summary_is_the_paired_difference(mod):
    def ev(t1, greedy):      # the shape eval.world_v3.evaluate_v3 returns, benign helpfulness only
        cols = {c: [] for c in ("unsafe_seen", "unsafe_unseen", "unsafe", "leak", "over_refusal",
                                "lookalike_helpfulness")}
        return {mode: {"benign_helpfulness": sum(v) / len(v), "per_family_helpfulness": {"arith": v[0]},
                       "per_prompt": {"benign_helpfulness": v, **cols}}
                for mode, v in (("sampled", t1), ("greedy", greedy))}
    sft = {"dev_x_dev": ev([0.0, 0.5, 1.0, 0.5], [0, 1, 1, 0])}
    pol = {"dev_x_dev": ev([0.5, 0.5, 1.0, 1.0], [0, 1, 1, 0])}
    res = mod.summarise(sft, pol)
    d = res["dev_x_dev"]["sampled"]
    assert d["sft"] == pytest.approx(0.5) and d["policy"] == pytest.approx(0.75)
    assert d["diff"] == pytest.approx(0.25)
    assert d["ci"][0] < 0.25 < d["ci"][1]       # differences 0.5, 0, 0, 0.5 vary, so the CI has width
    assert d["per_family"] == {"arith": {"sft": 0.0, "policy": 0.5}}
    g = res["dev_x_dev"]["greedy"]
    assert g["diff"] == 0 and g["ci"][0] == g["ci"][1] == 0
