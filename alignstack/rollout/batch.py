"""The typed rollout batch: the tensors one sampling pass hands to an update (PPO, GRPO, RLOO, and the
KL/log-prob passes beside them).

Masking convention (the logprobs module's, unchanged): ``input_ids``, ``attention_mask`` and ``loss_mask``
are (B, T), right-padded ``prompt ⊕ completion`` rows with ``loss_mask`` 1 on completion tokens;
``old_logprobs`` is (B, T-1), aligned with ``input_ids[:, 1:]`` (position t holds the log-prob of token
t + 1), so the (B, T-1) response mask is ``loss_mask[:, 1:]``. Named fields, not a dict of strings: a
misspelt field fails where it is written, and a per-token array cannot be trimmed like a per-row one.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class RolloutBatch:
    input_ids: torch.Tensor         # (B, T) long, right-padded prompt ⊕ completion
    attention_mask: torch.Tensor    # (B, T) long, 1 on real tokens
    loss_mask: torch.Tensor         # (B, T) long, 1 on completion tokens
    old_logprobs: torch.Tensor      # (B, T-1) float, the sampling pass's log-probs of input_ids[:, 1:]
    has_eos: torch.Tensor           # (B,) bool, the completion ended with a stop token

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def mask(self) -> torch.Tensor:
        """(B, T-1) response-token mask aligned with per-token log-probs."""
        return self.loss_mask[:, 1:].float()

    def rows(self, idx) -> RolloutBatch:
        """Rows ``idx`` (a list of row indices or a slice), every array kept at its full length."""
        return RolloutBatch(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def select(self, idx) -> RolloutBatch:
        """Rows ``idx``, trimmed to their longest sequence (a micro-batch pays for its own length only)."""
        b = self.rows(idx)
        T = int(b.attention_mask.sum(-1).max())
        return RolloutBatch(b.input_ids[:, :T], b.attention_mask[:, :T], b.loss_mask[:, :T],
                            b.old_logprobs[:, :T - 1], b.has_eos)

    def to(self, device) -> RolloutBatch:
        return RolloutBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})
