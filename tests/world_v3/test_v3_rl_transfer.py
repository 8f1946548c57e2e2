"""experiments/world_v3_rl_transfer.py: its three benign prompt sets separate new problems from new phrasings,
and never read the sealed test split; its summary is the paired per-prompt difference policy − SFT."""
import importlib.util
from pathlib import Path

import pytest

from alignstack.world.v3 import splits as S
from alignstack.world.v3.templates import BENIGN, TEMPLATE_BY_ID

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mod():
    spec = importlib.util.spec_from_file_location("world_v3_rl_transfer", ROOT / "experiments" / "world_v3_rl_transfer.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


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
    sets = mod.prompt_sets(4)
    sft = {n: {"t1": [0.0, 0.5, 1.0, 0.5], "greedy": [0, 1, 1, 0]} for n in sets}
    pol = {n: {"t1": [0.5, 0.5, 1.0, 1.0], "greedy": [0, 1, 1, 0]} for n in sets}
    res = mod.summarise(sets, sft, pol)
    d = res["dev_x_dev"]["t1"]
    assert d["sft"] == pytest.approx(0.5) and d["policy"] == pytest.approx(0.75)
    assert d["diff"] == pytest.approx(0.25)
    assert d["ci"][0] < 0.25 < d["ci"][1]       # differences 0.5, 0, 0, 0.5 vary, so the CI has width
    g = res["dev_x_dev"]["greedy"]
    assert g["diff"] == 0 and g["ci"] == [0, 0]
