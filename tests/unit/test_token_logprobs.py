"""``models.logprobs.token_logprobs``: the per-token log-probs every method trains on, computed by a hand-written
autograd function a chunk of positions at a time (``losses.logprob.TokenLogprobs``). Checked against hand values, against the plain
autograd formula it replaces (``gather − logsumexp`` over an fp32 copy), with ``gradcheck``, and for what it keeps
between the forward and the backward (the point of it: no fp32 copy of the logits)."""
import math

import pytest
import torch

from alignstack.losses import logprob as logprobs
from alignstack.models.logprobs import token_logprobs


def reference(logits: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """The formula as plain autograd (what token_logprobs computed before): (B, T-1)."""
    T, k = ids.shape[1], logits.shape[1]
    x = logits[:, :-1].float()
    x = x / temperature if temperature != 1.0 else x
    lp = x.gather(-1, ids[:, T - k + 1:, None]).squeeze(-1) - torch.logsumexp(x, dim=-1)
    return torch.nn.functional.pad(lp, (T - k, 0))


def case(dtype, B=5, T=7, k=None, V=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, k or T, V, generator=g)).to(dtype).requires_grad_()
    ids = torch.randint(0, V, (B, T), generator=g)
    return logits, ids


def test_hand_values():
    # softmax([0, ln 2, 0]) = (1/4, 1/2, 1/4); at T = 2 the logits [0, 2 ln 2, 0] give the same distribution
    logits = torch.tensor([[[0.0, math.log(2), 0.0], [5.0, 5.0, 5.0]]])
    ids = torch.tensor([[2, 1]])                           # token 1 (id 1) is predicted at position 0
    assert token_logprobs(logits, ids).tolist()[0] == pytest.approx([math.log(0.5)])
    assert token_logprobs(2 * logits, ids, 2.0).tolist()[0] == pytest.approx([math.log(0.5)])
    ids = torch.tensor([[2, 0]])
    assert token_logprobs(logits, ids).tolist()[0] == pytest.approx([math.log(0.25)])
    # logits for the last k positions only: the first T - k columns are 0
    out = token_logprobs(logits, torch.tensor([[7, 7, 2, 1]]))
    assert out.tolist()[0] == pytest.approx([0.0, 0.0, math.log(0.5)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk", [None, 4 * 11])             # one chunk; chunks of 4 positions (a ragged last one)
def test_forward_equals_the_autograd_formula_and_gradient_agrees(monkeypatch, dtype, temperature, chunk):
    if chunk:
        monkeypatch.setattr(logprobs, "LOGPROB_CHUNK", {"cpu": chunk})
        assert len(logprobs.chunks(5 * 7, 11, torch.device("cpu"))) == 9            # 35 positions, 4 at a time
    logits, ids = case(dtype)
    ours = token_logprobs(logits, ids, temperature)
    ref = reference(logits, ids, temperature)
    assert ours.dtype == torch.float32 and ours.shape == (5, 6)
    assert torch.equal(ours, ref)                               # the same ops per row
    w = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))   # a loss weighting every position
    (g_ours,) = torch.autograd.grad((ours * w).sum(), logits)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), logits)
    assert g_ours.dtype == dtype and g_ours.shape == logits.shape
    assert torch.equal(g_ours[:, -1], torch.zeros_like(g_ours[:, -1]))    # the last position predicts nothing
    if dtype == torch.float32:
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-6)
    else:                                                       # both round an fp32 gradient to bf16 once
        torch.testing.assert_close(g_ours.float(), g_ref.float(), rtol=1e-2, atol=1e-3)


def test_gradcheck_in_float64(monkeypatch):
    monkeypatch.setattr(logprobs, "LOGPROB_CHUNK", {"cpu": 4 * 6})
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 6, dtype=torch.float64, generator=g).requires_grad_()
    labels = torch.randint(0, 6, (3, 4), generator=g)
    assert token_logprobs(logits, torch.cat([labels[:, :1], labels], 1)).dtype == torch.float64   # float64 stays
    assert torch.autograd.gradcheck(lambda x: logprobs.TokenLogprobs.apply(x, labels, 0.8), (logits,))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_no_fp32_copy_of_the_logits_is_kept_for_the_backward(temperature):
    """What autograd keeps between forward and backward: the bf16 logits themselves (already alive) and (B, k)
    vectors, never an fp32 (B, k, V) copy. The formula it replaces keeps one."""
    logits, ids = case(torch.bfloat16, B=4, T=9, V=50)
    full = logits[:, :-1].numel()

    def kept(fn):
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            fn(logits, ids, temperature)
        return [t for t in saved if t.numel() >= full]

    big = kept(token_logprobs)
    assert big and all(t.dtype == torch.bfloat16 and t.data_ptr() == logits.data_ptr() for t in big)
    old = kept(reference)
    assert len({t.data_ptr() for t in old if t.dtype == torch.float32}) == 1     # one copy (saved by two ops)


def test_positions_past_the_labels_predict_nothing():
    """The function takes logits with more positions than labels (a completion's, or a prompt's single last one):
    the extra positions get no log-prob and a zero gradient; the labelled ones match token_logprobs."""
    logits, ids = case(torch.float32, B=3, T=6, V=9)
    labels = ids[:, 1:3]                                        # two labelled positions of six
    lp = logprobs.TokenLogprobs.apply(logits, labels, 0.8)
    assert lp.shape == (3, 2)
    assert torch.equal(lp, token_logprobs(logits[:, :3], ids[:, :3], 0.8))
    (g,) = torch.autograd.grad(lp.sum(), logits)
    assert torch.equal(g[:, 2:], torch.zeros_like(g[:, 2:])) and bool((g[:, :2] != 0).all())
    one = logprobs.TokenLogprobs.apply(logits[:, :1], ids[:, :1], 0.8)       # n = k = 1
    want = torch.log_softmax(logits[:, 0].detach() / 0.8, -1).gather(-1, ids[:, :1])
    assert one.shape == (3, 1) and torch.allclose(one, want, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_token_entropy_in_chunks_equals_the_formula(monkeypatch, dtype):
    """token_entropy runs a chunk of positions at a time (bounded fp32 temporaries); per position the same ops as
    the whole-tensor formula, so the same values, and the zero-filled front for logits of the last k positions."""
    from alignstack.models.logprobs import token_entropy
    monkeypatch.setattr(logprobs, "LOGPROB_CHUNK", {"cpu": 3 * 11})        # 3 positions a chunk
    logits, _ = case(dtype, B=4, T=6, V=11)
    logp = torch.log_softmax(logits[:, :-1].float() / 0.7, -1)
    want = -(logp.exp() * logp).sum(-1)
    got = token_entropy(logits.detach(), 0.7)
    assert got.shape == (4, 5) and torch.equal(got, want)
    padded = token_entropy(logits.detach(), 0.7, seq_len=9)
    assert padded.shape == (4, 8) and torch.equal(padded[:, 3:], want) and not padded[:, :3].any()
    uniform = token_entropy(torch.zeros(1, 2, 11), 1.0)                     # log V nats for a uniform distribution
    assert uniform.item() == pytest.approx(math.log(11))



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lm_loss_equals_cross_entropy_with_ignored_positions(dtype):
    """losses.lm.lm_loss_sum over the chunked log-probs: F.cross_entropy's summed NLL with ignore_index at the
    unmasked targets, its count, and its gradient (zero on positions that count nothing)."""
    import torch.nn.functional as F

    from alignstack.losses.lm import lm_loss_sum
    logits, ids = case(dtype, B=3, T=7, V=13)
    mask = torch.zeros(3, 7, dtype=torch.long)
    mask[0, 2:] = 1
    mask[1, 4:6] = 1                                           # row 2 counts nothing
    s, n = lm_loss_sum(logits, ids, mask)
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    want = F.cross_entropy(logits[:, :-1].reshape(-1, 13).float(), labels.reshape(-1), ignore_index=-100,
                           reduction="sum")
    assert int(n) == 7 and s.dtype == torch.float32
    torch.testing.assert_close(s, want, rtol=1e-5, atol=1e-5)
    (g,) = torch.autograd.grad(s, logits)
    (gw,) = torch.autograd.grad(want, logits)
    torch.testing.assert_close(g.float(), gw.float(), rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-5)
    assert not g[2].any() and not g[:, -1].any() and not g[0, :1].any()
