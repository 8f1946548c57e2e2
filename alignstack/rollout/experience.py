"""Online-RL plumbing shared by PPO, GRPO and RLOO: prompt batches, rollouts, log-prob passes.

A rollout keeps everything an update needs as tensors aligned with the logprobs convention
(``(B, T-1)`` per-token arrays matching ``input_ids[:, 1:]``): the sampling pass's log-probs are
the "old" log-probs, so no extra forward pass is spent on them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from alignstack.data.render import ChatRenderer
from alignstack.models.tokenizer import stop_token_ids
from alignstack.rollout.engine import Generation, SamplingConfig, sample
from alignstack.world import corpus as C
from alignstack.world import tasks as T


@dataclass
class Rollout:
    prompts: list[list[dict]]              # chat messages per row
    tasks: list[T.Task] | None             # world tasks per row (None for user prompts)
    texts: list[str]
    gen: Generation
    batch: dict[str, torch.Tensor]         # input_ids, attention_mask, loss_mask, old_logprobs, has_eos

    @property
    def mask(self) -> torch.Tensor:
        """(B, T-1) response-token mask aligned with per-token log-probs."""
        return self.batch["loss_mask"][:, 1:].float()

    def select(self, idx: list[int]) -> dict[str, torch.Tensor]:
        """Rows ``idx`` of the batch, trimmed to their longest sequence."""
        b = {k: v[idx] for k, v in self.batch.items()}
        T = int(b["attention_mask"].sum(-1).max())
        return {k: (v[:, :T] if k in ("input_ids", "attention_mask", "loss_mask") else
                    v[:, :T - 1] if v.dim() == 2 else v) for k, v in b.items()}


class PromptSource:
    """Deterministic prompt batches: the world's train prompts (optionally some families only) or
    validated ``prompt`` rows from a file; batch ``step`` is a pure function of (seed, step)."""

    def __init__(self, seed: int = 0, families: list[str] | None = None, path: str | None = None,
                 goal: str | None = None, pool: int = 20000, split: str = "train"):
        self.seed = seed
        if path is not None:
            from alignstack.data.sources import read_rows
            self.rows = read_rows(path, "prompt")
            self.tasks = [T.Task.from_row(r) if (r.get("meta") or {}).get("family") else None for r in self.rows]
        else:
            fam = {f: C.MIX.get(f, 0.1) for f in families} if families else None
            self.tasks = C.prompt_set(seed, split, pool, fam, goal=goal)
            self.rows = [t.to_row() for t in self.tasks]

    def batch(self, step: int, n: int) -> tuple[list[list[dict]], list[T.Task | None]]:
        rng = random.Random(f"prompts|{self.seed}|{step}")
        idx = [rng.randrange(len(self.rows)) for _ in range(n)]
        return [self.rows[i]["prompt"] for i in idx], [self.tasks[i] for i in idx]


def rollout(model, tokenizer, prompts: list[list[dict]], tasks, sampling: SamplingConfig, seed: int,
            renderer: ChatRenderer | None = None) -> Rollout:
    renderer = renderer or ChatRenderer(tokenizer)
    ids = [renderer.prompt_ids(p) for p in prompts]
    gen = sample(model, ids, sampling, stop_token_ids(tokenizer), tokenizer.pad_token_id,
                 torch.Generator().manual_seed(seed))
    return Rollout(prompts, tasks, gen.texts(tokenizer), gen, gen.tensors(tokenizer.pad_token_id))


def policy_logprobs(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Per-token log-probs (B, T-1) of the batch's tokens under ``model`` at ``temperature``."""
    from alignstack.models.logprobs import forward_logprobs
    dev = next(model.parameters()).device
    return forward_logprobs(model, batch["input_ids"].to(dev), batch["attention_mask"].to(dev), temperature)


@torch.no_grad()
def frozen_logprobs(model, batch: dict[str, torch.Tensor], temperature: float, chunk: int = 128) -> torch.Tensor:
    out = []
    for s in range(0, batch["input_ids"].shape[0], chunk):
        sub = {k: v[s:s + chunk] for k, v in batch.items()}
        out.append(policy_logprobs(model, sub, temperature))
    return torch.cat(out)


def ground_truth(r: Rollout) -> list[float] | None:
    """World ground truth of the same rollouts (logged beside the proxy reward; never trained on)."""
    if r.tasks is None or any(t is None for t in r.tasks):
        return None
    return [T.helpfulness(t, x) for t, x in zip(r.tasks, r.texts)]
