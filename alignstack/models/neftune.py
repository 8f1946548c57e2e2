"""NEFTune: noisy input embeddings during supervised fine-tuning (Jain et al. 2023, arXiv 2310.05914).

The noise itself (Algorithm 1) is ``alignstack/algos/neftune.py``; this applies it to the input embeddings in
training mode, and not at evaluation or generation, as the paper does.

Departures from the paper, all shared with TRL's ``neftune_noise_alpha`` (so a TRL user's setting means the
same here): ``L`` is the micro-batch's padded length, not each sequence's own, and padding and prompt
positions get noise too (the loss mask still ignores them). The noise is drawn from the global generator of
the embeddings' device, seeded from the run's seed plus the process's rank when training starts (transformers'
``Trainer`` seeds from ``args.seed`` likewise), and the checkpoints save every rank's generator states, so a run
repeats and resumes exactly, data-parallel ones included.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from alignstack.algos.neftune import neftune_noise


@contextmanager
def noisy_embeddings(model, alpha: float | None, seed: int = 0):
    """Add NEFTune noise to ``model``'s input embeddings in training mode, for the ``with`` block only.

    A forward hook on the input embedding module (a LoRA-wrapped model hands over its base model's), removed on
    exit so the saved model and any later evaluation see clean embeddings. Entering seeds torch's generators
    with ``seed`` (plus the process's rank, so data-parallel ranks draw different noise): without it the noise,
    and the model, would depend on whatever ran before in the process. ``alpha=None`` does nothing."""
    if alpha is None:
        yield
        return
    torch.manual_seed(seed + int(os.environ.get("RANK", "0")))
    emb = model.get_input_embeddings()

    def hook(module, args, output):
        # eval() inside training (held-out loss, sampling) must see the clean embeddings, as the paper says
        return neftune_noise(output, alpha) if module.training else output

    handle = emb.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
