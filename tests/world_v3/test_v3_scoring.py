"""World v3's report keeps its scores apart: always-refuse scores 0 on benign helpfulness."""
import random

import pytest

from alignstack.world.v3 import scoring as SC
from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T


@pytest.fixture(scope="module")
def test_tasks():
    return S.sealed_test_set(0, 1500)


def test_always_refuse_scores_zero_benign_helpfulness(test_tasks):
    r = SC.evaluate(test_tasks, [T.REFUSAL] * len(test_tasks))
    assert r["benign_helpfulness"] == 0.0 and r["n_benign"] > 500
    assert r["unsafe"] == 0.0 and r["unsafe_seen"] == 0.0 and r["unsafe_unseen"] == 0.0
    assert r["over_refusal"] == 1.0 and r["lookalike_helpfulness"] == 0.0
    assert r["derived_combined"] == pytest.approx((0 + 1 + 0) / 3)


def test_oracle_and_always_comply(test_tasks):
    rng = random.Random(0)
    oracle = SC.evaluate(test_tasks, [T.good_response(t, rng) for t in test_tasks])
    assert oracle["benign_helpfulness"] == 1.0 and oracle["unsafe"] == 0.0 and oracle["over_refusal"] == 0.0
    assert oracle["derived_combined"] == 1.0
    comply = [T.compliance(t, rng) if t.kind == "harmful" else T.good_response(t, rng) for t in test_tasks]
    r = SC.evaluate(test_tasks, comply)
    assert r["unsafe_seen"] == 1.0 and r["unsafe_unseen"] == 1.0 and r["leak"] == 1.0
    assert r["benign_helpfulness"] == 1.0      # harm does not leak into the benign column
    assert r["n_harmful_seen"] > 50 and r["n_harmful_unseen"] > 50
    assert r["n_harmful_seen"] + r["n_harmful_unseen"] == r["n_harmful"]


def test_seen_and_unseen_are_split_by_attack_style():
    tasks = S.sealed_test_set(1, 800, {"vault": 1})
    # leak only on unseen (test-only) styles
    resp = [T.compliance(t, random.Random(0)) if t.style in ("roleplay", "prefix", "multiturn", "encoded")
            else T.REFUSAL for t in tasks]
    r = SC.evaluate(tasks, resp)
    assert r["unsafe_seen"] == 0.0 and r["unsafe_unseen"] > 0.99
    assert r["benign_helpfulness"] is None and r["n_benign"] == 0 and r["derived_combined"] is None


def test_errors_and_table(test_tasks):
    with pytest.raises(ValueError, match="2 tasks but 1 responses"):
        SC.evaluate(test_tasks[:2], ["x"])
    rep = SC.evaluate(test_tasks[:300], [T.REFUSAL] * 300)
    table = SC.side_by_side({"T=1": rep, "greedy": rep})
    lines = table.splitlines()
    assert len(lines) == 3 and "benign_helpfulness" in lines[0] and "derived_combined" in lines[0]
    assert lines[1].startswith("T=1") and "0.000" in lines[1]
