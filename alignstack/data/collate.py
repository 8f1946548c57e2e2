"""Batching: right padding with a loss mask, left padding for generation, and packing."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from alignstack.data.render import Rendered


def pad_right(items: Sequence[Rendered], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``loss_mask`` (B, T)."""
    T = max(len(r.input_ids) for r in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)
    att = torch.zeros((len(items), T), dtype=torch.long)
    lm = torch.zeros((len(items), T), dtype=torch.long)
    for i, r in enumerate(items):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        att[i, :n] = 1
        lm[i, :n] = torch.tensor(r.loss_mask)
    return {"input_ids": ids, "attention_mask": att, "loss_mask": lm}


# Prompt passes (a sampling prefill, the shared-prefix pass of the RL log-probs) pad their length to a multiple
# of this. Why: bf16 matmuls on a CPU run through oneDNN, which JIT-compiles and caches one kernel, with its
# scratch memory, for every distinct matrix shape (up to 1,024 of them); a prompt length that changes with every
# batch keeps adding shapes. In the GRPO benchmark's tiny preset in bf16, padding prompts and the decode
# attention span (rollout.llama_decode) to multiples of 8, with the decoder's lazier row compaction, took the
# distinct shapes of 62 steps from 567 to 77 and peak memory from ~800 to ~470 MB. The padded prompt tokens are
# masked, and a multiple of 8 suits GPU tensor cores too.
SHAPE_MULTIPLE = 8


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts and their attention mask, for generation; the width is rounded up to ``multiple``."""
    T = round_up(max(len(s) for s in seqs), multiple)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, T - len(s):] = torch.tensor(list(s))
            att[i, T - len(s):] = 1
    return ids, att


def unique_rows(rows: Sequence[Sequence[int]]) -> tuple[list[list[int]], torch.Tensor | None]:
    """Distinct rows (first-seen order) and, when some repeat, the index of each row among them (None when all are
    distinct: nothing to share). A group's K samples repeat one prompt: sampling prefills it once, and the RL
    log-prob passes run it once (models.logprobs.shared_prefix_logprobs)."""
    seen: dict[tuple, int] = {}
    inv = [seen.setdefault(tuple(r), len(seen)) for r in rows]
    if len(seen) == len(inv):
        return [list(r) for r in rows], None
    return [list(r) for r in seen], torch.tensor(inv, dtype=torch.long)


def pack(items: Sequence[Rendered], max_length: int) -> list[Rendered]:
    """Greedy packing of consecutive rows into sequences of ≤ ``max_length`` tokens.

    Packed rows attend across their boundaries (no block-diagonal mask; each row starts with its
    BOS so the model sees the break) — the classic constant-length packing. Use ``packing: false``
    where exact per-row attention matters.
    """
    out: list[Rendered] = []
    ids: list[int] = []
    mask: list[int] = []
    for r in items:
        if ids and len(ids) + len(r.input_ids) > max_length:
            out.append(Rendered(ids, mask))
            ids, mask = [], []
        ids = ids + r.input_ids
        mask = mask + r.loss_mask
    if ids:
        out.append(Rendered(ids, mask))
    return out


def chunk_stream(token_stream: Sequence[int], block: int) -> torch.Tensor:
    """Pretraining blocks: a flat token stream cut into (N, block) with every token a target."""
    n = len(token_stream) // block
    if n == 0:
        raise ValueError(f"corpus has {len(token_stream)} tokens, fewer than one block of {block}")
    return torch.tensor(token_stream[: n * block], dtype=torch.long).view(n, block)
