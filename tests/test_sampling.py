"""The inverse-CDF sampler draws from the same categorical distribution as torch.multinomial."""
import math
from types import SimpleNamespace

import torch

from alignstack.rollout.sampling import inverse_cdf, pick, truncate


def chi2_critical(df: int, z: float = 3.29) -> float:
    """Upper critical value of chi-square(df) at the normal quantile ``z`` (3.29: p = 0.0005), by the
    Wilson–Hilferty approximation (accurate to ~1% for df ≥ 3)."""
    a = 2.0 / (9 * df)
    return df * (1 - a + z * math.sqrt(a)) ** 3


def test_inverse_cdf_maps_the_uniform_through_the_cdf():
    # hand-computed: p = [0.2, 0.3, 0.5] -> cdf [0.2, 0.5, 1.0]; token = first index with cdf > u
    p = torch.tensor([[0.2, 0.3, 0.5]])
    for seed in range(20):
        u = float(torch.rand(1, 1, generator=torch.Generator().manual_seed(seed)))
        want = 0 if u < 0.2 else 1 if u < 0.5 else 2
        assert int(inverse_cdf(p, torch.Generator().manual_seed(seed))) == want
    # unnormalised rows and zero-probability tokens (also a zero tail, as after top-k) are handled
    q = torch.tensor([[0.0, 2.0, 0.0, 6.0, 0.0, 0.0]]).repeat(4000, 1)
    idx = inverse_cdf(q, torch.Generator().manual_seed(0))
    assert set(idx.tolist()) == {1, 3}
    assert abs(float((idx == 3).float().mean()) - 0.75) < 0.03
    # u rounding up to the total must not land on the zero tail
    assert int(inverse_cdf(torch.tensor([[1.0, 0.0]]) * 1e-30)) == 0


def _counts(draw, probs, n_rows, seed):
    idx = draw(probs.expand(n_rows, -1).contiguous(), torch.Generator().manual_seed(seed))
    return torch.bincount(idx, minlength=probs.shape[-1]).double()


def test_inverse_cdf_passes_chi_square_against_the_distribution_and_multinomial():
    V, N = 50, 200_000
    probs = torch.softmax(torch.randn(1, V, generator=torch.Generator().manual_seed(1)) * 2, -1)
    ours = _counts(inverse_cdf, probs, N, 7)
    ref = _counts(lambda p, g: torch.multinomial(p, 1, generator=g).squeeze(-1), probs, N, 8)
    exp = probs[0].double() * N
    keep = exp >= 5                                  # the usual validity rule for the chi-square test
    crit = chi2_critical(int(keep.sum()) - 1)
    stat_ours = float(((ours - exp) ** 2 / exp)[keep].sum())
    stat_ref = float(((ref - exp) ** 2 / exp)[keep].sum())
    assert stat_ours < crit and stat_ref < crit
    # two-sample test (homogeneity) of ours vs torch.multinomial
    tot = ours + ref
    m = tot >= 10
    e_o, e_r = tot * ours.sum() / (2 * N), tot * ref.sum() / (2 * N)
    stat2 = float((((ours - e_o) ** 2 / e_o) + ((ref - e_r) ** 2 / e_r))[m].sum())
    assert stat2 < chi2_critical(int(m.sum()) - 1)
    # and the test has power: a slightly wrong distribution is rejected
    bad = torch.softmax(torch.log(probs) * 1.1, -1)
    wrong = _counts(inverse_cdf, bad, N, 9)
    assert float(((wrong - exp) ** 2 / exp)[keep].sum()) > crit


def test_pick_respects_top_k_top_p_and_reports_full_vocab_logprobs():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(3000, 1)
    cfg = SimpleNamespace(greedy=False, temperature=0.5, top_k=2, top_p=1.0)
    tok, lp = pick(logits, cfg, torch.Generator().manual_seed(0))
    assert set(tok.tolist()) == {0, 1}
    full = torch.log_softmax(logits[0] / 0.5, -1)
    assert torch.allclose(lp, full[tok])
    # top_p: softmax(logits/0.5) = [.865, .117, .016, ...]; 0.9 keeps the smallest prefix reaching it: {0, 1}
    filt = truncate(logits[:1] / 0.5, 0, 0.9)
    assert torch.isfinite(filt).tolist() == [[True, True, False, False, False]]
    cfg = SimpleNamespace(greedy=True, temperature=1.0, top_k=0, top_p=1.0)
    tok, lp = pick(logits[:2], cfg)
    assert tok.tolist() == [0, 0] and torch.allclose(lp, torch.log_softmax(logits[0], -1)[0].expand(2))
