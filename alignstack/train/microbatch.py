"""Micro-batches of one optimizer step, and the weights that keep their loss normalisation exact.

Every method's update goes through ``Trainer.step(loss_fn, micro_batches, weights)``: ``loss_fn`` returns a
micro-batch's loss **sum** (its mean times its weight) and the step divides the accumulated gradient by the
sum of the weights over the whole (global) batch. So a token-mean over the batch stays a token-mean over the
batch however it is split — never a mean of micro-batch means — provided each micro-batch's weight is what
its mean was taken over: :func:`aggregation_weight`.

``optim.micro_batch_size`` (rows per forward/backward; 0 = no split beyond ``optim.grad_accum``) bounds the
activation memory of an update at a fixed size, whatever the rollout or batch size.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from alignstack.train.loop import microbatches


def split(items: Sequence, optim) -> list[list]:
    """This process's rows of one step, cut into micro-batches: ``optim.micro_batch_size`` rows each when
    set (the last one may be smaller), else ``optim.grad_accum`` nearly equal parts."""
    size = getattr(optim, "micro_batch_size", 0) or 0
    if size > 0:
        return [list(items[i:i + size]) for i in range(0, len(items), size)]
    return microbatches(items, optim.grad_accum)


def aggregation_weight(mask: torch.Tensor, mode: str) -> float:
    """What :func:`alignstack.losses.reduce.aggregate` divides by for ``mask`` (B, T): the number of unmasked
    tokens (``token``) or of rows with at least one (``sequence``, ``sequence_sum``)."""
    if mode == "token":
        return float(mask.sum())
    if mode in ("sequence", "sequence_sum"):
        return float((mask.sum(-1) > 0).sum())
    raise ValueError(f"unknown aggregation mode {mode!r}; expected token, sequence or sequence_sum")
