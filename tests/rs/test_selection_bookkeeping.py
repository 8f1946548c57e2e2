"""What rejection sampling adds on top of algos.selection (whose own tests are in tests/unit):
best-of-K among *finished* responses, pooling across rounds through the JSON file exactly as the
method chains rounds, and the reward-over-K statistics on a hand-computed case."""
import json

import pytest
import torch

from alignstack.algos.selection import PooledBest, max_median_curve
from alignstack.methods.rejection_sampling import _plot_curves, select_finished_best


def test_best_of_finished_skips_truncated_and_flags_all_truncated():
    r = torch.tensor([[0.9, 0.2, 0.5],      # best (0.9) was truncated → 0.5 (index 2)
                      [0.1, 0.3, 0.3],      # tie among finished → lowest index (1)
                      [1.0, 1.0, 1.0]])     # nothing finished → no selection
    fin = torch.tensor([[False, True, True], [True, True, True], [False, False, False]])
    best, ok = select_finished_best(r, fin)
    assert best[:2].tolist() == [2, 1] and ok.tolist() == [True, True, False]


def test_pool_through_json_keeps_best_of_all_rounds_vs_last_round_only():
    # round 1: prompts a, b; round 2: a worse for a, better for b, plus a new prompt c
    r1 = PooledBest()
    r1.update(1, ["a", "b"], ["a1", "b1"], [0.8, 0.2])
    state = json.loads(json.dumps(r1.to_dict()))            # what pool.json holds between runs
    pooled = PooledBest.from_dict(state)
    pooled.update(2, ["a", "b", "c"], ["a2", "b2", "c2"], torch.tensor([0.5, 0.6, 0.1]))
    assert pooled.best() == {"a": ("a1", 0.8, 1), "b": ("b2", pytest.approx(0.6), 2), "c": ("c2", pytest.approx(0.1), 2)}
    last = PooledBest.from_dict(state)
    last.last_round_only = True                              # the method's last_round_only=true
    last.update(2, ["a", "b"], ["a2", "b2"], [0.5, 0.6])
    assert {p: v[0] for p, v in last.best().items()} == {"a": "a2", "b": "b2"}
    # pooled mean reward ≥ last-round-only mean on the shared prompts, by construction
    shared = ["a", "b"]
    assert sum(pooled.best()[p][1] for p in shared) >= sum(last.best()[p][1] for p in shared)


def test_pool_ties_prefer_the_newer_round_within_a_round_the_first():
    pool = PooledBest()
    pool.update(1, ["a", "a", "b"], ["a1", "a1'", "b1"], [1.0, 1.0, 0.5])
    assert pool.best()["a"][0] == "a1"                      # same round: first of the tie
    pool.update(2, ["a", "b"], ["a2", "b2"], [1.0, 0.4])
    assert pool.best() == {"a": ("a2", 1.0, 2), "b": ("b1", 0.5, 1)}


def test_reward_over_k_hand_values_and_gap_grows(tmp_path):
    # one prompt with rewards 0, 1, 2, 3: k=2 subsets: max mean = (1+2+3+2+3+3)/6 = 14/6,
    # median (mean of the two) = mean reward = 1.5; k=4: max 3, median 1.5
    c = max_median_curve(torch.tensor([[0.0, 1.0, 2.0, 3.0]]), [1, 2, 4])
    assert c[1] == pytest.approx((1.5, 1.5)) and c[2] == pytest.approx((14 / 6, 1.5)) and c[4] == pytest.approx((3, 1.5))
    gaps = [c[k][0] - c[k][1] for k in (1, 2, 4)]
    assert gaps == sorted(gaps) and gaps[0] == 0
    _plot_curves({"1.0": c}, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_rescored_selections_compete_on_the_new_scale():
    pool = PooledBest()
    pool.update(1, ["a", "b"], ["a1", "b1"], [10.0, 10.0])          # round 1's RM: a large scale
    # round 2 samples "a" only: its earlier selection is re-scored by round 2's RM before the comparison
    assert pool.earlier(["a", "c"], 2) == ["a"] and pool.earlier(["a"], 1) == []
    pool.rescore(["a"], torch.tensor([0.3]))
    pool.update(2, ["a"], ["a2"], [0.5])
    best = pool.best()
    assert best["a"] == ("a2", 0.5, 2) and best["b"] == ("b1", 10.0, 1)   # "b" was not sampled again: untouched
    with pytest.raises(ValueError, match="same length"):
        pool.rescore(["a", "b"], [1.0])
