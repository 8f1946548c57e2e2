"""Checks for alignstack.algos.advantages: whitening, GAE, GRPO/RLOO advantages."""

import itertools
import math
import threading

import pytest
import torch

from alignstack.algos import advantages as A
from alignstack.losses.policy import reinforce_loss

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, float("nan"), 123.0]], dtype=torch.float64)
M = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_whiten_hand_values():
    # unmasked 1,2,3,4: μ = 2.5, population σ² = 1.25 -> (x − 2.5)/sqrt(1.25 + 1e-8)
    s = math.sqrt(1.25 + 1e-8)
    out = A.whiten(X, M)
    expected = torch.tensor([[-1.5 / s, -0.5 / s, 0.5 / s], [1.5 / s, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(out, expected)
    assert out[1, 1].item() == 0.0 and out[1, 2].item() == 0.0  # masked -> 0, even where x was nan


def test_whiten_shift_mean_false():
    # adds μ = 2.5 back: 1 -> −1.341641 + 2.5 = 1.158359 ; masked stay 0
    out = A.whiten(X, M, shift_mean=False)
    assert out[0, 0].item() == pytest.approx(2.5 - 1.5 / math.sqrt(1.25 + 1e-8))
    assert out[1, 2].item() == 0.0
    # mean of unmasked result is μ, variance ≈ 1
    vals = out[M.bool()]
    assert vals.mean().item() == pytest.approx(2.5)
    assert vals.var(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)


def test_whiten_no_mask_and_empty_mask():
    x = torch.tensor([2.0, 4.0])
    assert torch.allclose(A.whiten(x), torch.tensor([-1.0, 1.0]), atol=1e-6)
    assert A.whiten(x, torch.zeros(2)).tolist() == [0.0, 0.0]


def _fake_group(world):
    """Thread-backed sum all-reduce across ``world`` simulated ranks."""
    barrier, lock, store = threading.Barrier(world), threading.Lock(), {}

    def for_rank(rank, in_place=False):
        calls = [0]

        def all_reduce(t):
            k = calls[0]
            calls[0] += 1
            with lock:
                store.setdefault(k, {})[rank] = t.clone()
            barrier.wait()
            total = sum(store[k].values())
            barrier.wait()
            if in_place:
                t.copy_(total)
                return None
            return total

        return all_reduce

    return for_rank


@pytest.mark.parametrize("in_place", [False, True])
def test_whiten_all_reduce_gives_global_statistics(in_place):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64) * 3 + 1
    mask = (torch.rand(6, 5, generator=g) > 0.3).long()
    full = A.whiten(x, mask)
    shards = [(x[:2], mask[:2]), (x[2:], mask[2:])]
    group = _fake_group(2)
    results = [None, None]

    def run(rank):
        results[rank] = A.whiten(*shards[rank], all_reduce=group(rank, in_place))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert torch.allclose(torch.cat(results), full)
    # without the reduction the shard statistics differ
    assert not torch.allclose(A.whiten(*shards[0]), full[:2])


def test_gae_hand_values_and_padding():
    # γ=1, λ=0.95, r = [0, 0, 1], V = [0.5, 0.4, 0.3]
    # δ2 = 1 − 0.3 = 0.7 ; δ1 = 0.3 − 0.4 = −0.1 ; δ0 = 0.4 − 0.5 = −0.1
    # A2 = 0.7 ; A1 = −0.1 + 0.95·0.7 = 0.565 ; A0 = −0.1 + 0.95·0.565 = 0.43675 ; returns = A + V
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 9.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.4, 0.3, 0.0], [0.5, 0.4, 0.3, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])  # row 1 holds garbage in the padding
    adv, ret = A.gae(rewards, values, mask, gamma=1.0, lam=0.95)
    exp_adv = torch.tensor([0.43675, 0.565, 0.7, 0.0], dtype=torch.float64)
    exp_ret = torch.tensor([0.93675, 0.965, 1.0, 0.0], dtype=torch.float64)
    for b in range(2):
        assert torch.allclose(adv[b], exp_adv) and torch.allclose(ret[b], exp_ret)


def test_gae_gamma1_lambda1_is_reward_to_go_minus_value():
    g = torch.Generator().manual_seed(3)
    r = torch.randn(4, 6, generator=g, dtype=torch.float64)
    v = torch.randn(4, 6, generator=g, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1, 4])
    mask = (torch.arange(6)[None] < lengths[:, None]).long()
    adv, ret = A.gae(r, v, mask, gamma=1.0, lam=1.0)
    rm = r * mask
    to_go = rm.flip(-1).cumsum(-1).flip(-1)
    assert torch.allclose(adv, (to_go - v) * mask)
    assert torch.allclose(ret, to_go * mask)


def test_gae_discount_and_gapped_masks_rejected():
    # γ = 0.5, λ = 0: A_t = δ_t ; δ0 = 0 + 0.5·2 − 1 = 0 ; δ1 = 1 − 2 = −1
    adv, _ = A.gae(
        torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 2.0]]), torch.ones(1, 2), gamma=0.5, lam=0.0
    )
    assert adv.tolist() == [[0.0, -1.0]]
    # a response block after prompt positions is the same as the block alone
    shifted, _ = A.gae(torch.tensor([[5.0, 0.0, 1.0]]), torch.tensor([[9.0, 1.0, 2.0]]), torch.tensor([[0, 1, 1]]),
                       gamma=0.5, lam=0.0)
    assert shifted.tolist() == [[0.0, 0.0, -1.0]]
    with pytest.raises(ValueError, match="contiguous"):
        A.gae(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([[1, 0, 1]]))


def test_group_advantages():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    # group 0: mean 0.5, unbiased std = sqrt((4·0.25)/3) = 0.577350 -> ±0.5/0.577450 = ±0.865875
    out = A.group_advantages(r)
    assert out[0, 0].item() == pytest.approx(0.5 / (math.sqrt(1 / 3) + 1e-4))
    assert out[1].tolist() == [0.0] * 4  # all equal -> zero signal
    assert A.group_advantages(r, scale=None)[0].tolist() == [0.5, -0.5, -0.5, 0.5]  # Dr. GRPO
    # batch std over all 8 values: mean 0.75, unbiased var = (6·0.0625 + 2·0.5625)/7 = 0.2142857
    assert A.group_advantages(r, scale="batch")[0, 0].item() == pytest.approx(
        0.5 / (math.sqrt(1.5 / 7) + 1e-4)
    )
    assert A.group_advantages(torch.tensor([[3.0]])).tolist() == [[0.0]]
    with pytest.raises(ValueError):
        A.group_advantages(r, scale="mad")


def test_zero_signal_fraction():
    r = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert A.zero_signal_fraction(r) == pytest.approx(2 / 3)


def test_rloo_advantages():
    # [1, 2, 3]: 1 − (2+3)/2 = −1.5 ; 2 − 2 = 0 ; 3 − 1.5 = 1.5 ; = K/(K−1)·(r − mean) = 1.5·[−1, 0, 1]
    out = A.rloo_advantages(torch.tensor([[1.0, 2.0, 3.0]]))
    assert out.tolist() == [[-1.5, 0.0, 1.5]]
    with pytest.raises(ValueError):
        A.rloo_advantages(torch.tensor([[1.0]]))


def _expected_grad(theta, f, K, baseline):
    """E over all K-tuples of samples of ∇θ of the RLOO loss, by exact enumeration."""
    probs = torch.softmax(theta.detach(), 0)
    total = torch.zeros_like(theta)
    for tup in itertools.product(range(len(f)), repeat=K):
        idx = torch.tensor(tup)
        weight = probs[idx].prod()
        th = theta.detach().clone().requires_grad_(True)
        logp = torch.log_softmax(th, 0)[idx]
        rewards = f[idx][None]
        adv = A.rloo_advantages(rewards)[0] if baseline == "loo" else (rewards - rewards.mean())[0]
        reinforce_loss(logp, adv).backward()
        total += weight * th.grad
    return total


def test_leave_one_out_baseline_is_unbiased():
    theta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    f = torch.tensor([1.0, 0.0, 2.5], dtype=torch.float64)
    # true gradient of the loss −E_π[f]:  −Σ_a π(a) f(a) ∇log π(a) = −π ⊙ (f − E f)
    probs = torch.softmax(theta, 0)
    true = -(probs * (f - (probs * f).sum()))
    K = 3
    assert torch.allclose(_expected_grad(theta, f, K, "loo"), true, atol=1e-12)
    # contrast: the batch-mean baseline (own sample included) shrinks the gradient by (K−1)/K
    assert torch.allclose(_expected_grad(theta, f, K, "mean"), true * (K - 1) / K, atol=1e-12)


def test_explained_variance_by_hand():
    # returns [1, 3] (var 1), values [1, 2] → residuals [0, 1] (var 0.25) → 1 − 0.25 = 0.75; masked entry ignored
    ev = A.explained_variance(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[1.0, 3.0, 0.0]]),
                              torch.tensor([[1, 1, 0]]))
    assert ev == pytest.approx(0.75)
