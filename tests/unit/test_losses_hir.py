"""Hand-computed checks for alignstack.losses.hir (+ parity with transformers' LabelSmoother,
which the HIR reference code uses, and TRL's entropy_from_logits)."""

import math

import pytest
import torch

from alignstack.losses import hir as H

# one real token with p = [0.75, 0.25] (logits [log 3, 0]) and one padded token
LOGITS = torch.tensor([[[math.log(3.0), 0.0], [5.0, -5.0]]], dtype=torch.float64)
LABELS = torch.tensor([[0, -100]])
MASK = torch.tensor([[1, 0]])


def test_label_smoothed_nll_hand_value():
    # nll = −log 0.75 = 0.287682 ; uniform part = mean(0.287682, 1.386294) = 0.836988
    # ε = 0.2: 0.8·0.287682 + 0.2·0.836988 = 0.397543
    out = H.label_smoothed_nll(LOGITS, LABELS, MASK, epsilon=0.2)
    assert out.item() == pytest.approx(0.397543, abs=1e-6)
    assert H.label_smoothed_nll(LOGITS, LABELS, MASK, epsilon=0.0).item() == pytest.approx(0.287682, abs=1e-6)


def test_label_smoothed_nll_matches_transformers_label_smoother():
    ts = pytest.importorskip("transformers.trainer_pt_utils")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    labels = torch.randint(0, 7, (3, 5), generator=g)
    mask = torch.ones(3, 5, dtype=torch.long)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    hf_labels = labels.masked_fill(mask == 0, -100)
    ref = ts.LabelSmoother(epsilon=0.2)({"logits": logits}, hf_labels)
    ours = H.label_smoothed_nll(logits, labels, mask, epsilon=0.2)
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)


def test_hir_contrastive_hand_value():
    # p_pos = 0.3, p_neg = 0.1 -> shares 0.75 / 0.25: −0.8·log 0.75 − 0.2·log 0.25 = 0.230146 + 0.277259 = 0.507405
    out = H.hir_contrastive_loss(torch.tensor([math.log(0.3)]), torch.tensor([math.log(0.1)]), epsilon=0.2)
    assert out.item() == pytest.approx(0.507405, abs=1e-6)
    # log space: extreme log-liks stay finite (the ref code's exp() would underflow to 0/0)
    out = H.hir_contrastive_loss(torch.tensor([-800.0]), torch.tensor([-900.0]), epsilon=0.2)
    assert out.item() == pytest.approx(0.2 * 100.0, rel=1e-4)


def test_in_batch_contrastive():
    # row 0: −log(3/(3+1)) = 0.287682 ; row 1: −log(1/2) = 0.693147
    P = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    assert torch.allclose(H.in_batch_contrastive_loss(P), torch.tensor([0.287682, 0.693147]), atol=1e-6)
    # two instructions, ε = 0: row i of the in-batch form equals the two-instruction form
    two = H.hir_contrastive_loss(P[0, 0:1], P[0, 1:2], epsilon=0.0)
    assert two.item() == pytest.approx(H.in_batch_contrastive_loss(P)[0].item(), abs=1e-6)


def test_entropy_bonus():
    # H([0.75, 0.25]) = 0.75·0.287682 + 0.25·1.386294 = 0.562335 ; padded token ignored
    assert H.entropy_bonus(LOGITS, MASK).item() == pytest.approx(0.562335, abs=1e-6)


def test_entropy_matches_trl():
    tu = pytest.importorskip("trl.trainer.utils")
    logits = torch.randn(2, 6, 11, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 6)
    assert H.entropy_bonus(logits, mask).item() == pytest.approx(
        tu.entropy_from_logits(logits).mean().item(), abs=1e-6
    )


def test_hir_loss_combines_terms():
    pos, neg = torch.tensor([math.log(0.3)]), torch.tensor([math.log(0.1)])
    loss, stats = H.hir_loss(LOGITS, LABELS, MASK, pos, neg)
    # defaults: 0.397543 + 1·0.507405 − 0.001·0.562335 = 0.904386
    assert loss.item() == pytest.approx(0.397543 + 0.507405 - 0.001 * 0.562335, abs=1e-6)
    assert set(stats) == {"sup", "contrastive", "entropy"}
    loss2, _ = H.hir_loss(LOGITS, LABELS, MASK, pos, neg, contrastive_coef=0.0, entropy_coef=0.0)
    assert loss2.item() == pytest.approx(0.397543, abs=1e-6)
