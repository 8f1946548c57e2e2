"""Pretraining: next-token prediction on unlabeled text (stage 1 of a chat model's life).

The corpus is ``corpus`` (a document source of the task seam: ``world`` — the world's mixed-quality
documents, the default — ``file:PATH`` / a ``.txt`` path with documents separated by blank lines, or
``import:mod:name``) or, with ``data.path``, ``text`` rows. Without ``model.path``/``model.tokenizer``
a tokenizer is trained on the corpus first (``out/tokenizer``). Documents are packed into sequences of
≤ ``model.max_length`` tokens. Reports held-out corpus NLL against the unigram baseline (a fixed corpus
holds out ~5% of its documents, the world draws its held-out documents with another seed).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from alignstack.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)
from alignstack.data.collate import pack
from alignstack.data.render import ChatRenderer
from alignstack.data.sources import read_rows


@dataclass
class PretrainConfig(RunConfig):
    out: str = "runs/pretrain"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(preset="tiny", max_length=128))
    data: DataConfig = field(default_factory=lambda: DataConfig(n_rows=40000, packing=True))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-3, batch_size=32, epochs=2.0,
                                                                   warmup_steps=30, weight_decay=0.01))
    corpus: str = "world"                 # document source when data.path is unset (alignstack.tasks)
    vocab_size: int = 768
    heldout_docs: int = 1000

    def __post_init__(self):
        super().__post_init__()
        from alignstack.tasks.resolve import check_spec
        check_spec(self.corpus, "documents", "corpus")


def unigram_nll(train_items, eval_items) -> float:
    """Per-token NLL of a unigram model (add-one smoothed) fitted on the training targets."""
    counts = Counter(t for r in train_items for t, m in zip(r.input_ids, r.loss_mask) if m)
    total, vocab = sum(counts.values()), len(counts) + 1
    nll, n = 0.0, 0
    for r in eval_items:
        for t, m in zip(r.input_ids, r.loss_mask):
            if m:
                nll -= math.log((counts.get(t, 0) + 1) / (total + vocab))
                n += 1
    return nll / max(n, 1)


def _documents(cfg: PretrainConfig) -> tuple[list[str], list[str]]:
    from alignstack.tasks import resolve

    if cfg.data.path is None:
        src = resolve(cfg.corpus, "documents", key="corpus")
        if not getattr(src, "finite", True):
            return (src.documents(cfg.data.n_rows, cfg.data.world_seed),
                    src.documents(cfg.heldout_docs, cfg.data.world_seed + 7919))
        docs = src.documents(None, cfg.data.world_seed)
        n_held = min(cfg.heldout_docs, max(1, len(docs) // 20))
        return docs[n_held:], docs[:n_held]
    rows = read_rows(cfg.data.path, "text")
    n_held = min(cfg.heldout_docs, max(1, len(rows) // 20))
    return [r["text"] for r in rows[n_held:]], [r["text"] for r in rows[:n_held]]


def train(cfg: PretrainConfig) -> dict:
    from alignstack.models.load import prepare_model, save_final
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.train.supervised import fit, mean_nll

    t0 = time.perf_counter()
    out = Path(cfg.out)
    docs, held = _documents(cfg)
    tokenizer = None
    if cfg.model.path is None and cfg.model.tokenizer is None:
        tokenizer = train_tokenizer(docs, cfg.vocab_size)
        tokenizer.save_pretrained(str(out / "tokenizer"))
    model, tokenizer = prepare_model(cfg.model, tokenizer, seed=cfg.seed)
    r = ChatRenderer(tokenizer, cfg.model.max_length, cfg.data.overlong)
    items = [x for x in (r.text(d, {"row": i + 1}) for i, d in enumerate(docs)) if x is not None]
    held_items = [x for x in (r.text(d) for d in held) if x is not None]
    if cfg.data.packing:
        items = pack(items, cfg.model.max_length)
    trainer, res = fit(model, tokenizer, items, cfg.optim, out, seed=cfg.seed, log=cfg.log,
                       checkpoint=cfg.checkpoint, dist=cfg.dist, config_yaml=to_yaml(cfg), desc="pretrain")
    result = {"steps": res.steps, "train_loss": res.final_loss, "tokens": res.tokens,
              "tokens_per_s": res.tokens / max(res.seconds, 1e-9), "render": vars(r.stats)}
    # an FSDP-sharded model gathers its weights in every forward: then all ranks evaluate, the main one saves
    heldout = mean_nll(trainer.unwrapped, tokenizer, held_items) if trainer.is_main or trainer.fsdp else None
    if trainer.is_main:
        m = trainer.unwrapped
        result["heldout_nll"] = heldout
        result["unigram_nll"] = unigram_nll(items, held_items)
        save_final(m, tokenizer, out, to_yaml(cfg))
    result["wall_s"] = time.perf_counter() - t0
    return result
