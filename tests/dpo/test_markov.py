"""T1 exact testbed (METHODS §12.2): backward-DP optimum vs brute force, exact evaluation, and
the IPO-vs-DPO two-action bandit under deterministic preferences (METHODS §6.4)."""
from __future__ import annotations

import math

import pytest
import torch

from alignstack.world import markov as M


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # thousands of tiny ops: extra threads only add contention on a shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("beta", [0.3, 1.0, 4.0])
def test_dp_optimum_matches_brute_force_enumeration(beta):
    w = M.make_world(seed=1, n_tokens=12, horizon=3)
    lp_star, V = M.optimal_policy(w, beta)
    seqs = M.all_sequences(w)
    assert seqs.shape == (12 ** 3, 3)
    r = M.sequence_rewards(w, seqs)
    lref = M.sequence_logprobs(w, w.log_ref, seqs)
    log_z = torch.logsumexp(lref + r / beta, 0)
    # optimal value of E[r] − β·KL over all sequence distributions is β·log Σ π_ref·exp(r/β)
    assert float(V[M.BOS]) == pytest.approx(beta * float(log_z), abs=1e-10)
    # the DP's Markov policy is exactly the Gibbs distribution π_ref·exp(r/β)/Z over sequences
    brute = lref + r / beta - log_z
    torch.testing.assert_close(M.sequence_logprobs(w, lp_star, seqs), brute, atol=1e-10, rtol=0)
    p = brute.exp()
    ev = M.evaluate_policy(w, lp_star)
    assert ev["reward"] == pytest.approx(float((p * r).sum()), abs=1e-10)
    assert ev["kl"] == pytest.approx(float((p * (brute - lref)).sum()), abs=1e-10)
    assert ev["reward"] - beta * ev["kl"] == pytest.approx(float(V[M.BOS]), abs=1e-10)


def test_exact_evaluation_of_any_tabular_policy():
    w = M.make_world(seed=2, n_tokens=12, horizon=3)
    g = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(12 + 1, 12, generator=g, dtype=M.DT), -1)   # a stationary policy
    seqs = M.all_sequences(w)
    lpi = M.sequence_logprobs(w, lp, seqs)
    p = lpi.exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    ev = M.evaluate_policy(w, lp)
    assert ev["reward"] == pytest.approx(float((p * M.sequence_rewards(w, seqs)).sum()), abs=1e-10)
    assert ev["kl"] == pytest.approx(float((p * (lpi - M.sequence_logprobs(w, w.log_ref, seqs))).sum()), abs=1e-10)
    assert M.evaluate_policy(w, w.log_ref)["kl"] == pytest.approx(0.0, abs=1e-12)


def test_frontier_is_monotone_in_beta():
    f = M.frontier(M.make_world(seed=0), [0.1, 0.3, 1.0, 3.0, 10.0])
    rewards, kls = [p["reward"] for p in f], [p["kl"] for p in f]
    assert rewards == sorted(rewards, reverse=True)
    assert kls == sorted(kls, reverse=True)


@pytest.mark.parametrize("tau", [0.25, 0.5, 1.0])
def test_bandit_deterministic_preferences_ipo_vs_dpo(tau):
    """p* = 1 (action 0 always preferred): DPO drives π(1) → 0 for any β; IPO stays at σ(1/(2τ))."""
    w = M.bandit()
    chosen, rejected = torch.zeros(16, 1, dtype=torch.long), torch.ones(16, 1, dtype=torch.long)
    ipo = M.fit_tabular_preference(w, chosen, rejected, beta=tau, loss="ipo", steps=300, lr=0.1)
    dpo = M.fit_tabular_preference(w, chosen, rejected, beta=tau, loss="sigmoid", steps=300, lr=0.1)
    p_ipo = float(ipo[0, M.BOS, 0].exp())
    p_dpo = float(dpo[0, M.BOS, 0].exp())
    assert p_ipo == pytest.approx(1.0 / (1.0 + math.exp(-1.0 / (2.0 * tau))), abs=1e-3)
    assert p_dpo > 0.99
    # ... and DPO keeps going: more optimisation only makes it more deterministic
    dpo2 = M.fit_tabular_preference(w, chosen, rejected, beta=tau, loss="sigmoid", steps=600, lr=0.1)
    assert float(dpo2[0, M.BOS, 1]) < float(dpo[0, M.BOS, 1])


def test_tabular_dpo_recovers_the_optimum_with_enough_pairs():
    """Bradley–Terry labels on r: DPO's population optimum is π_ref·exp(r/β)/Z, the frontier point.

    On a finite sample the fit is early-stopped: run to convergence, DPO pushes sequences that
    only ever lose towards probability 0 and its KL grows well past the optimum's (the IPO
    paper's over-fitting argument; experiments/dpo.py shows it)."""
    w = M.make_world(seed=0, n_tokens=12, horizon=2)
    beta = 1.0
    chosen, rejected = M.preference_pairs(w, 40000, seed=3)
    lp = M.fit_tabular_preference(w, chosen, rejected, beta=beta, steps=200, lr=0.1)
    got = M.evaluate_policy(w, lp)
    want = M.evaluate_policy(w, M.optimal_policy(w, beta)[0])
    assert got["reward"] == pytest.approx(want["reward"], abs=0.1)
    assert got["kl"] == pytest.approx(want["kl"], abs=0.1)


def test_label_noise_acts_like_a_larger_beta_and_rdpo_overshoots():
    """Reduced experiments/dpo_noise_t1.py (β = 1, 10k pairs, 20% flips): plain DPO on flipped labels
    moves less than on clean ones (attenuated implicit reward), cDPO (ε = 0.2) less still, and rDPO, whose
    per-pair loss is unbounded below, spends more KL than clean DPO and leaves more reward on the table."""
    w = M.make_world(seed=0)
    clean, noisy = M.preference_pairs(w, 10000, seed=1), M.preference_pairs(w, 10000, seed=1, flip=0.2)
    fit = {name: M.evaluate_policy(w, M.fit_tabular_preference(w, *d, beta=1.0, loss=loss, label_smoothing=eps,
                                                               steps=150))
           for name, (d, loss, eps) in {"clean": (clean, "sigmoid", 0.0), "dpo": (noisy, "sigmoid", 0.0),
                                        "cdpo": (noisy, "sigmoid", 0.2), "rdpo": (noisy, "robust", 0.2)}.items()}
    kl = {k: v["kl"] for k, v in fit.items()}
    assert kl["cdpo"] < 0.5 * kl["dpo"] and kl["dpo"] < 0.5 * kl["clean"] < kl["rdpo"] / 2, kl
    front = sorted((p["kl"], p["reward"]) for p in M.frontier(w, [10 ** (-2 + 3.5 * i / 99) for i in range(100)]))

    def gap(name: str) -> float:   # frontier reward at the fit's KL minus the fit's reward
        k, r = fit[name]["kl"], fit[name]["reward"]
        (k0, r0), (k1, r1) = next((a, b) for a, b in zip(front, front[1:]) if a[0] <= k <= b[0])
        return r0 + (r1 - r0) * (k - k0) / (k1 - k0) - r

    assert gap("rdpo") > 3 * max(gap("dpo"), gap("clean")), {k: gap(k) for k in fit}


def test_rdpo_recovers_the_clean_fit_with_enough_pairs():
    """Reduced size sweep of experiments/dpo_noise_t1.py (β = 1, 100k pairs, 20% flips): rDPO's loss is
    unbiased for the clean loss, so with enough pairs per sequence it lands near the clean fit, while
    plain DPO's attenuation (a bias, not variance) stays: rDPO holds up better than plain DPO."""
    w = M.make_world(seed=0)
    clean, noisy = M.preference_pairs(w, 100000, seed=1), M.preference_pairs(w, 100000, seed=1, flip=0.2)
    v_star = float(M.optimal_policy(w, 1.0)[1][M.BOS])
    fit = {name: M.evaluate_policy(w, M.fit_tabular_preference(w, *d, beta=1.0, loss=loss, label_smoothing=eps,
                                                               steps=150))
           for name, (d, loss, eps) in {"clean": (clean, "sigmoid", 0.0), "dpo": (noisy, "sigmoid", 0.0),
                                        "rdpo": (noisy, "robust", 0.2)}.items()}
    gap = {k: v_star - (v["reward"] - v["kl"]) for k, v in fit.items()}     # objective gap at β = 1
    assert gap["clean"] < 0.05 and gap["rdpo"] < 0.5 * gap["dpo"], gap
    assert abs(fit["rdpo"]["reward"] / fit["clean"]["reward"] - 1) < 0.15, fit
    assert fit["dpo"]["reward"] < 0.6 * fit["clean"]["reward"], fit


def test_cdpo_keeps_plain_dpo_from_overfitting_few_flipped_pairs():
    """Reduced overfit part of experiments/dpo_noise_t1.py (β = 1, 2k pairs with 20% flips, 2,000
    full-batch steps): plain DPO overfits the pairs (KL of several nats), cDPO's bounded target keeps it
    close to the β-optimum: smaller objective gap and more reward per nat of KL."""
    w = M.make_world(seed=0)
    noisy = M.preference_pairs(w, 2000, seed=1, flip=0.2)
    v_star = float(M.optimal_policy(w, 1.0)[1][M.BOS])
    fit = {name: M.evaluate_policy(w, M.fit_tabular_preference(w, *noisy, beta=1.0, label_smoothing=eps, steps=2000))
           for name, eps in (("dpo", 0.0), ("cdpo", 0.2))}
    gap = {k: v_star - (v["reward"] - v["kl"]) for k, v in fit.items()}
    assert fit["dpo"]["kl"] > 3.0 and fit["cdpo"]["kl"] < 1.0, fit
    assert gap["cdpo"] < 0.2 * gap["dpo"], gap
    front = sorted((p["kl"], p["reward"]) for p in M.frontier(w, [10 ** (-2 + 3.5 * i / 99) for i in range(100)]))

    def frontier_gap(name: str) -> float:
        k, r = fit[name]["kl"], fit[name]["reward"]
        if k >= front[-1][0]:                 # beyond the solved range: the frontier is flat at max reward
            return front[-1][1] - r
        (k0, r0), (k1, r1) = next((a, b) for a, b in zip(front, front[1:]) if a[0] <= k <= b[0])
        return r0 + (r1 - r0) * (k - k0) / (k1 - k0) - r

    assert frontier_gap("cdpo") < frontier_gap("dpo"), {k: frontier_gap(k) for k in fit}
