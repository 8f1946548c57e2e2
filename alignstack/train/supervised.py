"""The supervised fit loop (:func:`fit_items`) every fixed-data objective trains with — DPO and its family,
reward models, the soft-label RM, HIR — and :func:`fit`, the masked-LM case of it: pretraining, SFT and every
generate-then-fine-tune method (rejection sampling, ReST, SL-CAI, FARL).

Data order is a deterministic function of (seed, global example index), so the data position of
a resumed run is just its step count.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from alignstack.config import CheckpointConfig, DistConfig, LogConfig, OptimConfig
from alignstack.data.collate import pad_right
from alignstack.data.render import Rendered
from alignstack.losses.lm import lm_loss_sum
from alignstack.train.loop import Trainer, shard
from alignstack.train.microbatch import split


@dataclass
class FitResult:
    steps: int
    final_loss: float
    tokens: int
    seconds: float


class IndexStream:
    """Global example index → item index: consecutive seeded permutations of ``n`` items."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self._perms = n, seed, {}

    def __call__(self, g: int) -> int:
        epoch, pos = divmod(g, self.n)
        if epoch not in self._perms:
            perm = list(range(self.n))
            random.Random(f"{self.seed}|{epoch}").shuffle(perm)
            self._perms = {epoch: perm}
        return self._perms[epoch][pos]


class BatchPlan:
    """Item indices of each batch, a pure function of (seed, step) so a resumed run sees the same data.

    With ``group`` > 0 (``optim.group_by_length``), ``group`` consecutive batches' worth of stream items
    form a mega-batch that is sorted by length and cut into batches, served in a seeded random order:
    rows of similar length share a batch (less padding, more real tokens per second) while every
    item is still seen once per epoch.
    """

    def __init__(self, n: int, seed: int, batch_size: int, lengths: list[int] | None = None, group: int = 0):
        self.stream, self.seed, self.bs = IndexStream(n, seed), seed, batch_size
        self.lengths, self.group = lengths, group if lengths is not None else 0
        self._mega: tuple[int, list[list[int]]] | None = None

    def __call__(self, step: int) -> list[int]:
        bs, G = self.bs, self.group
        if not G:
            return [self.stream(step * bs + j) for j in range(bs)]
        m, r = divmod(step, G)
        if self._mega is None or self._mega[0] != m:
            items = sorted((self.stream(m * G * bs + j) for j in range(G * bs)), key=lambda i: self.lengths[i])
            batches = [items[k * bs:(k + 1) * bs] for k in range(G)]
            random.Random(f"{self.seed}|group|{m}").shuffle(batches)
            self._mega = (m, batches)
        return self._mega[1][r]


def total_steps(n_items: int, optim: OptimConfig) -> int:
    if optim.max_steps is not None:
        return optim.max_steps
    return max(1, math.ceil(optim.epochs * n_items / optim.batch_size))


def fit_items(model, tokenizer, items: Sequence, loss_fn: Callable, optim: OptimConfig, out_dir, *, seed: int = 0,
              log: LogConfig | None = None, checkpoint: CheckpointConfig | None = None,
              dist: DistConfig | None = None, config_yaml: str = "", desc: str = "train",
              collate: Callable | None = None, lengths: list[int] | None = None, on_step=None,
              accelerator=None) -> tuple[Trainer, list[dict]]:
    """The one supervised fit loop (SFT and pretraining, DPO and its family, reward models, the soft-label
    RM of RLAIF/CAI, HIR): ``optim.epochs`` (or ``optim.max_steps``) over ``items`` through the shared
    ``Trainer`` — resume, data parallelism, checkpoints and the progress bar are the trainer's.

    A step's global batch is ``BatchPlan(step)`` (a pure function of seed and step, so a resumed run sees
    the same data; ``lengths`` with ``optim.group_by_length`` groups rows of similar length); this process
    takes its strided share and cuts it into micro-batches of items (``optim.micro_batch_size`` or
    ``grad_accum``). ``collate(trainer, micro_batches) -> (inputs, weights)`` turns them into what
    ``loss_fn(trainer, inputs)`` takes and weights each by what its loss sum is a sum over; without it the
    micro-batches go to ``loss_fn`` as they are, weighted by their item counts (a mean over batch
    elements). ``loss_fn`` returns ``(loss_sum, weight, stats)`` as ``Trainer.step`` expects; it gets the
    trainer because the model it must run is the prepared (wrapped, moved) one. ``on_step(trainer,
    stats)`` runs after every step. Returns the trainer (holding the trained model) and one
    ``{"step", **stats}`` row per step of this run."""
    if not items:
        raise ValueError("nothing to train on: no items")
    steps = total_steps(len(items), optim)
    tr = Trainer(model, tokenizer, optim, steps, out_dir, config_yaml, log, checkpoint, dist, desc, accelerator)
    tr.resume_if_requested()
    plan = BatchPlan(len(items), seed, optim.batch_size, lengths, optim.group_by_length)
    rank, world = tr.acc.process_index, tr.acc.num_processes
    history: list[dict] = []
    with tr:
        while not tr.done:
            mbs = [[items[i] for i in mb] for mb in split(shard(plan(tr.step_count), rank, world), optim)]
            inputs, weights = collate(tr, mbs) if collate is not None else (mbs, [float(len(m)) for m in mbs])
            stats = tr.step(lambda mb: loss_fn(tr, mb), inputs, weights)
            history.append({"step": tr.step_count, **stats})
            if on_step is not None:
                on_step(tr, stats)
    return tr, history


def fit(model, tokenizer, items: list[Rendered], optim: OptimConfig, out_dir, *, seed: int = 0,
        log: LogConfig | None = None, checkpoint: CheckpointConfig | None = None, dist: DistConfig | None = None,
        config_yaml: str = "", desc: str = "sft", on_step=None, accelerator=None) -> tuple[Trainer, FitResult]:
    """Minimise the masked LM loss over ``items``; returns the trainer (holding the trained model)."""
    import time

    if not items:
        raise ValueError("nothing to train on: no rows survived rendering")
    pad = tokenizer.pad_token_id
    tokens, t0 = 0, None

    def collate(tr, mbs):
        # micro-batches weighted by their target tokens: the step's loss is a token mean over the whole batch
        nonlocal tokens, t0
        if t0 is None:          # the clock starts at the first step (not at model preparation or resume)
            t0 = time.perf_counter()
        batches = [pad_right(mb, pad) for mb in mbs]
        tokens += int(sum(b["attention_mask"].sum() for b in batches))
        return batches, [float(b["loss_mask"][:, 1:].sum()) for b in batches]

    def loss_fn(tr, batch):
        dev = tr.acc.device
        out = tr.model(input_ids=batch["input_ids"].to(dev), attention_mask=batch["attention_mask"].to(dev),
                       use_cache=False)
        s, n = lm_loss_sum(out.logits, batch["input_ids"].to(dev), batch["loss_mask"].to(dev))
        return s, n, {}

    tr, history = fit_items(model, tokenizer, items, loss_fn, optim, out_dir, seed=seed, log=log,
                            checkpoint=checkpoint, dist=dist, config_yaml=config_yaml, desc=desc, collate=collate,
                            lengths=[len(x.input_ids) for x in items], on_step=on_step, accelerator=accelerator)
    final = history[-1]["loss"] if history else float("nan")
    return tr, FitResult(tr.step_count, final, tokens, 0.0 if t0 is None else time.perf_counter() - t0)


@torch.no_grad()
def mean_nll(model, tokenizer, items: list[Rendered], batch_size: int = 64) -> float:
    """Mean per-token NLL of ``items`` (held-out loss)."""
    model.eval()
    tot, n = 0.0, 0
    for s in range(0, len(items), batch_size):
        b = pad_right(items[s:s + batch_size], tokenizer.pad_token_id)
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False)
        ls, c = lm_loss_sum(out.logits, b["input_ids"], b["loss_mask"])
        tot, n = tot + float(ls), n + int(c)
    return tot / max(n, 1)
