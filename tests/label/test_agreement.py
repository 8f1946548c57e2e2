"""Krippendorff's alpha against hand-computed and published values."""
import pytest

from alignstack.label.agreement import krippendorff_alpha, signed_strength


def test_nominal_alpha_hand_computed():
    # 4 units, 2 coders:  (a,a) (a,b) (b,b) (b,b)
    # coincidences (each unit has m=2, so each ordered pair counts 1/(m-1) = 1):
    #   o_aa = 2, o_ab = o_ba = 1, o_bb = 4  ->  n_a = 3, n_b = 5, n = 8
    # alpha = 1 - (n-1) * sum(o_ck * d_ck) / sum(n_c * n_k * d_ck)
    #       = 1 - 7 * (1 + 1) / (3*5 + 5*3) = 1 - 14/30 = 8/15
    units = [["a", "a"], ["a", "b"], ["b", "b"], ["b", "b"]]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(8 / 15)


def test_ordinal_alpha_hand_computed():
    # 3 units, 2 coders, values 1 < 2 < 3:  (1,1) (1,2) (3,3)
    # o_11 = 2, o_12 = o_21 = 1, o_33 = 2  ->  n_1 = 3, n_2 = 1, n_3 = 2, n = 6
    # ordinal d(c,k) = (sum_{g=c..k} n_g - (n_c + n_k)/2)^2:
    #   d(1,2) = (4 - 2)^2 = 4,  d(1,3) = (6 - 2.5)^2 = 12.25,  d(2,3) = (3 - 1.5)^2 = 2.25
    # observed: 2 * o_12 * d(1,2) = 8
    # expected: 2 * (n1 n2 d12 + n1 n3 d13 + n2 n3 d23) = 2 * (12 + 73.5 + 4.5) = 180
    # alpha = 1 - 5 * 8 / 180 = 7/9
    assert krippendorff_alpha([[1, 1], [1, 2], [3, 3]], "ordinal") == pytest.approx(7 / 9)


def test_published_example_with_missing_values():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders, 12 units,
    # missing values; published alphas: nominal .743, ordinal .815, interval .849.
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    units = list(zip(a, b, c, d))
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_degenerate_cases():
    assert krippendorff_alpha([[1], [2]]) is None  # nothing pairable
    assert krippendorff_alpha([[1, 1], [1, 1]]) is None  # no variation: undefined
    assert krippendorff_alpha({"t1": ["x", "x"], "t2": ["y", "y"]}) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        krippendorff_alpha([[1, 2]], "ratio")


def test_signed_strength_scale():
    assert signed_strength(0, "significantly_better") == -4
    assert signed_strength(0, "negligibly_better") == -1
    assert signed_strength(1, "negligibly_better") == 1
    assert signed_strength(1, "significantly_better") == 4
