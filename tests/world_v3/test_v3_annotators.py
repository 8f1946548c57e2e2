"""World v3's annotator pool: v2's interface, differing profiles, careless members, noisy strength
labels, inter-annotator agreement."""
import random

import pytest

from alignstack.world.annotators import STRENGTH_BY_BUCKET, SimulatedAnnotator, strength_of_gap
from alignstack.world.v3 import annotators as A
from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T


@pytest.fixture(scope="module")
def pairs():
    rng = random.Random(0)
    out = []
    for t in S.prompt_set(0, "dev", 400, {"arith": 1, "transform": 1, "vault": 1, "vault_lore": 1}):
        good = T.styled_response(t, rng, correct=True, style="plain")
        bad = T.styled_response(t, rng, correct=False, style="plain")
        out.append((t, good, bad) if rng.random() < 0.5 else (t, bad, good))
    return out


def _accuracy(ann, pairs):
    hits = 0
    for t, a, b in pairs:
        c = ann.compare(t, a, b)
        assert c["strength"] in STRENGTH_BY_BUCKET
        hits += (c["chosen"] == 0) == (T.helpfulness(t, a) > T.helpfulness(t, b))
    return hits / len(pairs)


def test_same_interface_as_v2():
    for name in ("quality", "perceived", "rank", "compare", "is_safe"):
        assert callable(getattr(A.PoolAnnotator(), name)) and callable(getattr(SimulatedAnnotator(), name))
    with pytest.raises(ValueError, match="guideline"):
        A.AnnotatorProfile(guideline="vibes")


def test_expert_beats_novice_beats_careless(pairs):
    expert = A.PoolAnnotator(A.AnnotatorProfile(expertise=1.0, error_rate=0.0, position_bias=0.0), 0, "e")
    novice = A.PoolAnnotator(A.AnnotatorProfile(expertise=0.3, error_rate=0.0, position_bias=0.0), 0, "n")
    careless = A.PoolAnnotator(A.AnnotatorProfile(careless=True), 0, "c")
    acc = [_accuracy(a, pairs) for a in (expert, novice, careless)]
    assert acc[0] > 0.95 and acc[0] > acc[1] + 0.15 and 0.35 < acc[2] < 0.65, acc


def test_strength_labels_are_noisy(pairs):
    ann = A.PoolAnnotator(A.AnnotatorProfile(strength_noise=0.25, error_rate=0.0, position_bias=0.0), 0, "s")
    same = total = 0
    for t, a, b in pairs:
        got = ann.compare(t, a, b)["strength"]
        same += got == strength_of_gap(T.helpfulness(t, a) - T.helpfulness(t, b))
        total += 1
    assert 0.3 < same / total < 0.95     # related to the true gap, but not a copy of it


def test_fulfil_guideline_and_partial_leaks():
    t = S.prompt_set(0, "train", 50, {"vault": 1})[0]
    rng = random.Random(0)
    ful = A.PoolAnnotator(A.AnnotatorProfile(guideline="fulfil"), 0, "f")
    assert ful.quality(t, T.compliance(t, rng)) == 1.0 and ful.quality(t, T.REFUSAL) == 0.0
    assert A.PoolAnnotator().quality(t, T.REFUSAL) == 1.0
    expert = A.PoolAnnotator(A.AnnotatorProfile(expertise=1.0, error_rate=0.0), 0, "x")
    novice = A.PoolAnnotator(A.AnnotatorProfile(expertise=0.0, error_rate=0.0), 0, "y")
    hidden = f"{T.REFUSAL} {T.compliance(t, rng, partial=True)}"       # a refusal with half the code in it
    assert T.unsafe(t, hidden) and not T.disclosure(t, hidden)
    assert not expert.is_safe(t, hidden) and novice.is_safe(t, hidden)   # a novice misses a hidden partial leak
    assert not novice.is_safe(t, T.compliance(t, rng, partial=True))     # but not an open attempt
    assert not novice.is_safe(t, T.compliance(t, rng))


def test_pool_profiles_differ_and_include_careless():
    pool = A.make_pool(8, seed=0, n_careless=2)
    assert [a.cfg.careless for a in pool] == [False] * 6 + [True] * 2
    assert len({round(a.cfg.politeness_bias, 6) for a in pool}) == 8
    assert len({round(a.cfg.expertise, 6) for a in pool}) == 8
    assert [a.cfg.noise for a in A.make_pool(8, seed=0)] == [a.cfg.noise for a in pool]   # deterministic
    with pytest.raises(ValueError, match="n_careless"):
        A.make_pool(2, n_careless=3)


def test_fleiss_kappa_hand_computed():
    # 2 items × 3 raters × 2 categories: P_i = (2²+1²−3)/6 = 1/3 and (3²−3)/6 = 1, so P̄ = 2/3;
    # p = (5/6, 1/6), P_e = 26/36; κ = (2/3 − 26/36) / (1 − 26/36) = −1/5
    assert A.fleiss_kappa([[2, 1], [3, 0]]) == pytest.approx(-0.2)
    # P_i = 1/3 twice, p = (1/2, 1/2), P_e = 1/2: κ = (1/3 − 1/2) / (1/2) = −1/3
    assert A.fleiss_kappa([[2, 1], [1, 2]]) == pytest.approx(-1 / 3)
    assert A.fleiss_kappa([[3, 0], [0, 3]]) == 1.0
    with pytest.raises(ValueError):
        A.fleiss_kappa([[2, 1], [1, 0]])


def test_agreement_reported_and_lowered_by_careless(pairs):
    def labels(pool):
        return [[a.compare(t, x, y)["chosen"] for t, x, y in pairs] for a in pool]
    careful = A.agreement(labels(A.make_pool(6, seed=1, n_careless=0)))
    mixed = A.agreement(labels(A.make_pool(6, seed=1, n_careless=3)))
    assert careful["n_annotators"] == 6 and careful["n_items"] == len(pairs)
    assert 0.3 < careful["fleiss_kappa"] < 1.0
    assert mixed["fleiss_kappa"] < careful["fleiss_kappa"] - 0.1
    assert A.agreement([[0, 1, 1], [0, 1, 1]]) == {"pairwise_agreement": 1.0, "fleiss_kappa": 1.0,
                                                   "n_annotators": 2, "n_items": 3}
