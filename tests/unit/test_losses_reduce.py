"""alignstack.losses.reduce: masked reductions and aggregation modes."""

import pytest
import torch

from alignstack.losses.reduce import aggregate, masked_mean, masked_sum, masked_var

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, float("nan"), float("-inf")]])
M = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_masked_sum_mean_ignore_padding_garbage():
    assert masked_sum(X, M).item() == 10.0  # 1+2+3+4
    assert masked_sum(X, M, dim=1).tolist() == [6.0, 4.0]
    assert masked_mean(X, M).item() == 2.5  # 10/4
    assert masked_mean(X, M, dim=1).tolist() == [2.0, 4.0]
    assert masked_mean(X, M.bool()).item() == 2.5


def test_all_masked_rows_give_zero_not_nan():
    m = torch.tensor([[1, 1, 1], [0, 0, 0]])
    assert masked_mean(X, m, dim=1).tolist() == [2.0, 0.0]
    assert masked_mean(X, torch.zeros_like(m)).item() == 0.0
    assert masked_var(X, torch.zeros_like(m)).item() == 0.0


def test_masked_var():
    # values 1,2,3,4: mean 2.5, squared deviations 2.25+0.25+0.25+2.25 = 5 -> 5/4 = 1.25 (pop), 5/3 (unbiased)
    assert masked_var(X, M).item() == pytest.approx(1.25)
    assert masked_var(X, M, unbiased=True).item() == pytest.approx(5 / 3)
    with pytest.raises(ValueError):
        masked_var(X, torch.tensor([[1, 0, 0], [0, 0, 0]]), unbiased=True)
    v = masked_var(X, M, dim=1)  # row 0: var(1,2,3) = 2/3; row 1: single value -> 0
    assert torch.allclose(v, torch.tensor([2 / 3, 0.0]))


def test_aggregate_modes():
    # row 0: tokens 1,2,3 ; row 1: token 4
    assert aggregate(X, M, "token").item() == pytest.approx(2.5)  # 10/4
    assert aggregate(X, M, "sequence").item() == pytest.approx(3.0)  # (2 + 4)/2
    assert aggregate(X, M, "sequence_sum").item() == pytest.approx(5.0)  # (6 + 4)/2
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(X, M, "mean")


def test_aggregate_skips_empty_rows_and_keeps_grad():
    x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], requires_grad=True)
    m = torch.tensor([[1, 1], [0, 0]])
    out = aggregate(x, m, "sequence")
    assert out.item() == 2.0  # the empty row is left out of the mean over sequences
    out.backward()
    assert x.grad.tolist() == [[0.5, 0.5], [0.0, 0.0]]
    assert aggregate(x, torch.zeros_like(m), "sequence").item() == 0.0
