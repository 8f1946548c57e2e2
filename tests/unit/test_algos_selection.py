"""Checks for alignstack.algos.selection."""

import itertools
import json
import statistics

import pytest
import torch

from alignstack.algos import selection as S


def test_best_of_k_ties_lowest_index():
    r = torch.tensor([[0.1, 0.9, 0.9], [2.0, 1.0, 2.0], [-1.0, -3.0, -2.0]])
    assert S.best_of_k(r).tolist() == [1, 0, 0]


def _brute(row, k):
    subs = list(itertools.combinations(row, k))
    return sum(max(s) for s in subs) / len(subs), sum(statistics.median(s) for s in subs) / len(subs)


def test_max_median_exact_matches_enumeration():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(3, 7, generator=g, dtype=torch.float64)
    out = S.max_median_curve(r, [1, 2, 3, 4, 7])
    for k, (mx, med) in out.items():
        per = [_brute(r[b].tolist(), k) for b in range(3)]
        assert mx == pytest.approx(sum(p[0] for p in per) / 3, abs=1e-12)
        assert med == pytest.approx(sum(p[1] for p in per) / 3, abs=1e-12)
    # k = 1: both are the mean reward ; k = N: max and median of the whole row
    assert out[1][0] == pytest.approx(r.mean().item()) and out[1][1] == pytest.approx(r.mean().item())


def test_max_median_hand_value():
    # rewards {0, 1, 2}, k = 2: subsets {0,1},{0,2},{1,2} -> max mean (1+2+2)/3 = 5/3 ; median mean (0.5+1+1.5)/3 = 1
    out = S.max_median_curve(torch.tensor([[0.0, 1.0, 2.0]]), [2])
    assert out[2][0] == pytest.approx(5 / 3) and out[2][1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        S.max_median_curve(torch.tensor([[0.0, 1.0]]), [3])


def test_max_median_bootstrap_close_and_gap_widens():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(4, 50, generator=g, dtype=torch.float64)
    boot = S.max_median_curve(
        r, [1, 4, 16], method="bootstrap", n_boot=400, generator=torch.Generator().manual_seed(1)
    )
    exact = S.max_median_curve(r, [1, 4, 16])
    for k in (1, 4, 16):
        assert boot[k][0] == pytest.approx(exact[k][0], abs=0.05)
    gaps = [exact[k][0] - exact[k][1] for k in (1, 4, 16)]
    assert gaps[0] == pytest.approx(0.0) and gaps[0] < gaps[1] < gaps[2]


def test_pooled_best_keeps_earlier_round_best():
    pool = S.PooledBest()
    pool.update(1, ["p1", "p2"], ["a1", "b1"], torch.tensor([0.9, 0.1]))
    pool.update(2, ["p1", "p2", "p3"], ["a2", "b2", "c2"], [0.5, 0.7, 0.3])
    best = pool.best()
    assert best["p1"] == ("a1", pytest.approx(0.9), 1)  # round-1 sample survives a worse round 2
    assert best["p2"] == ("b2", pytest.approx(0.7), 2)
    assert best["p3"][2] == 2
    # equal reward from a newer round: the newer sample replaces it
    pool.update(3, ["p2"], ["b3"], [0.7])
    assert pool.best()["p2"] == ("b3", pytest.approx(0.7), 3)


def test_pooled_best_last_round_only():
    pool = S.PooledBest(last_round_only=True)
    pool.update(1, ["p1", "p2"], ["a1", "b1"], [0.9, 0.1])
    pool.update(2, ["p1"], ["a2"], [0.5])
    pool.update(2, ["p1"], ["a2b"], [0.6])  # same round: best within the round
    assert pool.best() == {"p1": ("a2b", 0.6, 2)}  # p2 was not sampled in the latest round


def test_pooled_best_json_roundtrip():
    pool = S.PooledBest()
    pool.update(0, [("task", 3), "p2"], [[1, 2, 3], "txt"], [1.0, 2.0])
    state = json.loads(json.dumps(pool.to_dict()))
    back = S.PooledBest.from_dict(state)
    assert back.best() == pool.best()
    assert back.to_dict() == pool.to_dict() or json.dumps(back.to_dict()) == json.dumps(pool.to_dict())
    with pytest.raises(ValueError):
        back.update(-1, ["p"], ["x"], [0.0])


def test_rest_thresholds():
    assert S.rest_thresholds(4) == [0.0, 0.7, 0.8, 0.9, 0.95]
    assert S.rest_thresholds(0) == [0.0]
    with pytest.raises(ValueError):
        S.rest_thresholds(6)


def test_normalise_rewards():
    r = torch.tensor([2.0, 4.0, 3.0])
    assert S.normalise_rewards(r).tolist() == [0.0, 1.0, 0.5]
    assert S.normalise_rewards(r, "range", lo=0.0, hi=8.0).tolist() == [0.25, 0.5, 0.375]
    assert S.normalise_rewards(torch.tensor([9.0, 10.0]), "range", lo=0.0, hi=9.5).tolist() == pytest.approx(
        [9 / 9.5, 1.0]
    )
    assert S.normalise_rewards(torch.tensor([3.0, 3.0])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        S.normalise_rewards(r, "range")


def test_rest_filter_step0_keeps_zero_reward():
    th = S.rest_thresholds(2)  # [0.0, 0.7, 0.8]
    r = torch.tensor([0.0, 0.7, 0.75, 1.0])
    assert S.rest_filter(r, 0, th).tolist() == [True, True, True, True]  # ≥ 0: reward-0 kept
    assert S.rest_filter(r, 1, th).tolist() == [False, False, True, True]  # > 0.7 strictly
    assert S.rest_filter(r, 2, th).tolist() == [False, False, False, True]
    with pytest.raises(ValueError):
        S.rest_filter(r, 3, th)
