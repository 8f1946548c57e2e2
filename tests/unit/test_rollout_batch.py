"""The typed rollout batch: rows from the sampling pass keep the logprobs masking convention, and a
micro-batch is trimmed to its own longest row (per-token arrays to T-1, per-row arrays untouched)."""
import torch

from alignstack.rollout.engine import Generation


def test_tensors_select_rows_by_hand():
    g = Generation(prompt_ids=[[1, 2], [3], [4, 5, 6]], completion_ids=[[7], [8, 9, 10], [11]],
                   logprobs=[[-0.1], [-0.2, -0.3, -0.4], [-0.5]], finished=[True, False, True])
    b = g.tensors(pad_id=0)
    assert len(b) == 3 and b.input_ids.shape == (3, 4) and b.old_logprobs.shape == (3, 3)
    assert b.input_ids.tolist() == [[1, 2, 7, 0], [3, 8, 9, 10], [4, 5, 6, 11]]
    assert b.loss_mask.tolist() == [[0, 0, 1, 0], [0, 1, 1, 1], [0, 0, 0, 1]]
    # old_logprobs[t] is the log-prob of input_ids[t + 1]: non-zero exactly where the response mask is 1
    assert b.mask.tolist() == [[0, 1, 0], [1, 1, 1], [0, 0, 1]]
    assert torch.equal(b.old_logprobs != 0, b.mask.bool())
    s = b.select([0, 2])                      # longest of these rows: 4 tokens → nothing to trim
    assert s.input_ids.shape == (2, 4) and s.old_logprobs.shape == (2, 3) and s.has_eos.tolist() == [True, True]
    s = b.select([0])                         # 3 tokens: (1, 3) ids, (1, 2) per-token log-probs
    assert s.input_ids.tolist() == [[1, 2, 7]] and torch.equal(s.old_logprobs, torch.tensor([[0.0, -0.1]]))
    assert s.mask.tolist() == [[0.0, 1.0]] and s.has_eos.tolist() == [True]
    r = b.rows(slice(1, 3))                   # rows kept at full length (chunked log-prob passes concatenate)
    assert r.input_ids.shape == (2, 4) and r.has_eos.tolist() == [False, True]
    assert torch.equal(r.to("cpu").old_logprobs, b.old_logprobs[1:3])
