"""Seed-level claim statistics (alignstack.eval.claims) against hand-computed values."""
import math

import pytest

from alignstack.eval import claims as C


@pytest.mark.parametrize("df,q", [(1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445), (10, 2.228139),
                                  (30, 2.042272)])
def test_t_quantile_matches_tables(df, q):
    assert C.t_quantile(0.975, df) == pytest.approx(q, abs=1e-5)
    assert C.t_quantile(0.025, df) == pytest.approx(-q, abs=1e-5)


def test_t_cdf_closed_forms():
    # df = 1 is Cauchy: F(t) = ½ + atan(t)/π ; df = 2: F(t) = ½ + t / (2·√(2 + t²))
    for t in (-3.0, -0.5, 0.0, 0.7, 4.0):
        assert C.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert C.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_seed_level_ci_hand_values():
    # per-seed means 0.2, 0.1, 0.4 → mean 0.23333; sd = √(0.046667/2) = 0.152753; se = 0.088192;
    # t(0.975, 2) = 4.302653 → half-width 0.379458
    r = C.seed_level_ci([[0.1, 0.3], [0.0, 0.2], [0.3, 0.5]])
    assert r["per_seed"] == pytest.approx([0.2, 0.1, 0.4])
    assert r["mean"] == pytest.approx(0.233333, abs=1e-6)
    assert r["se"] == pytest.approx(0.088192, abs=1e-6)
    assert (r["lo"], r["hi"]) == pytest.approx((-0.146125, 0.612791), abs=1e-6)
    assert r["n_seeds"] == 3 and r["df"] == 2


def test_seeds_weigh_equally_whatever_their_prompt_count():
    # seed 0 has 4 prompts (mean 1.0), seed 1 has 1 prompt (mean 3.0): combined mean 2.0, not the pooled 1.4
    r = C.seed_level_ci([[1.0, 1.0, 1.0, 1.0], [3.0]])
    assert r["mean"] == pytest.approx(2.0)
    # sd of (1, 3) = √2, se = 1, t(0.975, 1) = 12.706205
    assert (r["lo"], r["hi"]) == pytest.approx((2.0 - 12.706205, 2.0 + 12.706205), abs=1e-5)


def test_seed_variance_counts_where_pooled_prompts_would_not():
    # two seeds whose prompts agree perfectly within each seed but disagree across seeds: a pooled per-prompt CI
    # would be narrow around 0.05; the seed-level CI is wide and includes 0
    r = C.seed_level_ci([[0.15] * 500, [-0.05] * 500])
    assert r["lo"] < 0 < r["hi"]
    assert C.ci_verdict(r["lo"], r["hi"], "greater") == C.INCONCLUSIVE


def test_one_seed_has_no_seed_level_interval():
    r = C.seed_level_ci_from_means([0.03])
    assert r["mean"] == 0.03 and math.isnan(r["lo"]) and math.isnan(r["hi"]) and r["n_seeds"] == 1
    with pytest.raises(ValueError):
        C.seed_level_ci([[0.1], []])


def test_combine_independent_hand_values():
    # X = 0.10 ± 0.0392 (se 0.02), Y = 0.04 ± 0.0588 (se 0.03): X − Y = 0.06, se = √(0.0004 + 0.0009) = 0.036056
    z = C.Z95
    r = C.combine_independent([(1.0, 0.10, 0.10 - 0.02 * z, 0.10 + 0.02 * z), (-1.0, 0.04, 0.04 - 0.03 * z, 0.04 + 0.03 * z)])
    assert r["mean"] == pytest.approx(0.06)
    assert r["se"] == pytest.approx(0.036056, abs=1e-6)
    assert r["lo"] == pytest.approx(0.06 - z * 0.036056, abs=1e-6)


@pytest.mark.parametrize("lo,hi,direction,thr,want", [
    (0.01, 0.05, "greater", 0.0, "holds"),
    (-0.01, 0.05, "greater", 0.0, "inconclusive"),
    (-0.05, -0.01, "greater", 0.0, "does not hold"),
    (0.52, 0.60, "greater", 0.5, "holds"),
    (-0.03, -0.01, "less", 0.0, "holds"),
    (0.01, 0.03, "less", 0.0, "does not hold"),
    (-0.011, 0.015, "within", 0.02, "holds"),
    (-0.011, 0.025, "within", 0.02, "inconclusive"),
    (0.021, 0.05, "within", 0.02, "does not hold"),
    (float("nan"), float("nan"), "greater", 0.0, "inconclusive"),
])
def test_ci_verdict(lo, hi, direction, thr, want):
    assert C.ci_verdict(lo, hi, direction, thr) == want


def test_ci_verdict_rejects_bad_input():
    with pytest.raises(ValueError):
        C.ci_verdict(0.0, 1.0, "up")
    with pytest.raises(ValueError):
        C.ci_verdict(0.0, 1.0, "within", 0.0)


def test_claim_verdict_needs_seeds_and_the_protocol():
    assert C.claim_verdict(0.01, 0.05, "greater", n_seeds=3) == ("holds", "holds")
    assert C.claim_verdict(-0.05, -0.01, "greater", n_seeds=4) == ("does not hold", "does not hold")
    status, text = C.claim_verdict(0.01, 0.05, "greater", n_seeds=1, gaps=["world v2"])
    assert status == "inconclusive" and text == "inconclusive (1 seed, world v2; this CI: holds)"
    status, text = C.claim_verdict(-0.03, -0.02, "less", n_seeds=3, gaps=["world v2"])
    assert status == "inconclusive" and text == "inconclusive (world v2; this CI: holds)"


def test_conjunction():
    assert C.conjunction(["holds", "holds"]) == "holds"
    assert C.conjunction(["holds", "inconclusive"]) == "inconclusive"
    assert C.conjunction(["holds", "does not hold", "inconclusive"]) == "does not hold"
    assert C.conjunction([]) == "inconclusive"


def test_interpolation_bracket_by_hand():
    xs = [0.2, 0.5, 1.0]
    i, j, w = C.interpolation_bracket(xs, 0.7)              # 0.7 = 0.6·0.5 + 0.4·1.0
    assert (i, j) == (1, 2) and math.isclose(w, 0.4)
    assert C.interpolation_bracket(xs, 0.2) == (0, 1, 0.0) and C.interpolation_bracket(xs, 1.0)[2] == 1.0
    assert C.interpolation_bracket(xs, 0.1) is None and C.interpolation_bracket(xs, 1.2) is None
    assert C.interpolation_bracket([0.3], 0.3) == (0, 0, 0.0) and C.interpolation_bracket([], 0.3) is None
