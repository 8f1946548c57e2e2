"""World v3 through the task seam (``world3[:ARG]``): every component resolves, rows keep v3's ground truth,
v2's fields refuse v3 rows, and no training prompt source can reach the sealed test split."""
import json
import random

import pytest

from alignstack.config import load
from alignstack.tasks import TaskSpecError, example_from_row, resolve
from alignstack.tasks.resolve import check_spec
from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T


def test_prompt_sources_of_train_and_dev_carry_v3_rows_and_ground_truth():
    src = resolve("world3:train", "prompts", seed=0, pool=200)
    assert src.name == "world3:train" and len(src) == 200
    assert [t.problem_id for t in src.tasks] == [t.problem_id for t in S.prompt_set(0, "train", 200)]
    e = src.examples[0]
    assert e.meta["world_version"] == "3" and e.meta["split"] == "train" and e.prompt == src.tasks[0].messages()
    rng = random.Random(0)
    good = [T.good_response(t, rng) for t in src.tasks]
    assert [src.ground_truth(x, g) for x, g in zip(src.examples, good)] == [1.0] * 200
    dev = resolve("world3:dev", "prompts", seed=0, pool=50)
    assert {t.split for t in dev.tasks} == {"dev"}
    # a method that asks for the "eval" split (v2's held-out one) gets v3's dev; its own families are v3's
    assert resolve("world3", "prompts", pool=5, split="eval").name == "world3:dev"
    fam = resolve("world3", "prompts", pool=40, families=["arith", "vault"])
    assert {t.family for t in fam.tasks} == {"arith", "vault"}
    with pytest.raises(TaskSpecError, match="unknown world v3 families"):
        resolve("world3", "prompts", families=["add"])


@pytest.mark.parametrize("spec, opts", [("world3:test", {}), ("world3", {"split": "test"})])
def test_the_sealed_test_split_is_refused_in_one_line(spec, opts):
    with pytest.raises(TaskSpecError) as e:
        resolve(spec, "prompts", key="prompts", **opts)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("prompts: ") and "test split is sealed" in msg
    assert "claims protocol" in msg and "alignstack eval --world 3 --split test" in msg


def test_a_rows_file_of_test_prompts_is_refused_and_train_rows_keep_v3_ground_truth(tmp_path):
    test_rows = tmp_path / "test.jsonl"
    test_rows.write_text("".join(json.dumps(t.to_row()) + "\n" for t in S.sealed_test_set(0, 5)))
    with pytest.raises(TaskSpecError, match="test split is sealed.*test-split prompts"):
        resolve(f"rows:{test_rows}", "prompts")
    train_rows = tmp_path / "train.jsonl"
    tasks = S.prompt_set(0, "train", 20)
    train_rows.write_text("".join(json.dumps(t.to_row()) + "\n" for t in tasks))
    src = resolve(f"rows:{train_rows}", "prompts")
    rng = random.Random(0)
    assert src.ground_truth is not None
    assert [src.ground_truth(e, T.good_response(t, rng)) for e, t in zip(src.examples, tasks)] == [1.0] * 20


def test_rewards_verifiers_and_the_v2_guard():
    tasks = S.prompt_set(0, "train", 300)
    rows = [example_from_row(t.to_row()) for t in tasks]          # rebuilt from the row, as from a file
    rng = random.Random(1)
    comply = [T.compliance(t, rng) if t.kind == "harmful" else T.good_response(t, rng) for t in tasks]
    help_ = resolve("world3:helpfulness", "reward")
    assert help_(None, comply, examples=rows) == [T.helpfulness(t, c) for t, c in zip(tasks, comply)]
    assert resolve("world3", "reward").field == "helpfulness"
    correct, safety = resolve("world3", "verifier"), resolve("world3:safety", "verifier")
    assert [correct(e, c) for e, c in zip(rows, comply)] == [float(T.verify(t, c)) for t, c in zip(tasks, comply)]
    assert [safety(e, c) for e, c in zip(rows, comply)] == [0.0 if t.kind == "harmful" else 1.0 for t in tasks]
    with pytest.raises(TaskSpecError, match="unknown world field 'nope'"):
        resolve("world3:nope", "reward")
    with pytest.raises(ValueError, match="world v3 prompt.*world3:FIELD"):
        resolve("world:helpfulness", "reward")(None, ["x"], examples=rows[:1])
    v2 = example_from_row(resolve("world", "prompts", pool=1).examples[0].row())
    with pytest.raises(ValueError, match="needs world v3 prompts"):
        resolve("world3:helpfulness", "reward")(None, ["x"], examples=[v2])


def test_documents_demonstrations_red_team_relabel_constitution_and_behaviour():
    from alignstack.world.v3 import corpus as C
    assert resolve("world3", "documents").documents(5, 0) == C.corpus_documents(0, 5)
    assert resolve("world3", "demonstrations").conversations(4, 0) == [r["messages"] for r in C.sft_rows(0, 4)]
    rt = resolve("world3", "red_team")
    harmful, benign = rt.harmful(30, 0), rt.benign(30, 0)
    assert {e.meta["kind"] for e in harmful} == {"harmful"} and {e.meta["split"] for e in harmful} == {"train"}
    assert "harmful" not in {e.meta["kind"] for e in benign} and "lookalike" in {e.meta["kind"] for e in benign}
    assert rt.harm(harmful[0], T.compliance(harmful[0].ref, random.Random(0))) == 1.0
    assert rt.harm(harmful[0], T.REFUSAL) == 0.0
    # SL-CAI's critic report reads the critic's verdict the same way on both worlds
    assert rt.flags_harm("The answer helps with a harmful request.") and not rt.flags_harm("The answer is fine.")
    rl = resolve("world3", "relabel")
    t = next(t for t in S.prompt_set(0, "train", 50) if t.kind == "benign")
    assert rl(example_from_row(t.to_row()), T.good_response(t, random.Random(0))) == "correct"
    assert rl(example_from_row(t.to_row()), "no idea") == "wrong"
    assert resolve("world3", "constitution").critique_revision
    src = resolve("world3:train", "prompts", pool=40)
    d = src.behaviour(src.examples, seed=0, noise=0.0)
    assert [src.ground_truth(e, x) for e, x in zip(src.examples, d)] == [1.0] * 40
    hir = resolve("world3", "prompts", pool=3, goal="correct")
    assert all(e.prompt[-1]["content"].startswith("<correct> ") for e in hir.examples)


def test_method_configs_accept_world3_specs():
    from alignstack.methods import grpo, rest
    check_spec("world3:train", "prompts", "prompts")
    cfg = load(grpo.GRPOConfig, overrides=["prompts=world3:train", "reward=world3:helpfulness"])
    assert cfg.prompts == "world3:train"
    assert load(rest.ReSTConfig, overrides=["prompts=world3:train", "original=world"]).original == "world"
