"""Supervised fine-tuning: instruction → response, loss on the assistant's tokens only.

Rows are ``messages`` conversations or ``prompt``/``completion`` pairs (JSONL, Parquet or a
`datasets` folder); on the built-in world (``data.path`` unset) the world's noisy demonstrations.
The renderer's loss mask puts the loss on assistant tokens (and their end-of-turn token).

``replay_path`` / ``replay_frac`` mix pretraining documents into the demonstrations, with the loss on every
token: SFT on a narrow set of demonstrations makes the model forget what they never show (on world v3, facts
about entities no demonstration asks about: docs/world.md, "What caps best-of-64"). InstructGPT mixes
pretraining gradients into PPO for the same reason (PPO-ptx); this is the same mix applied in SFT.

``neftune_noise_alpha`` adds NEFTune's uniform noise to the input embeddings while training (Jain et al. 2023;
``alignstack/models/neftune.py``), under TRL's name and with TRL's scale.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from alignstack.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    _num,
    _require,
    to_yaml,
)
from alignstack.data.collate import pack
from alignstack.data.render import ChatRenderer, training_renderer
from alignstack.data.sources import read_rows


@dataclass
class SFTConfig(RunConfig):
    out: str = "runs/sft"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/pretrain/model"))
    data: DataConfig = field(default_factory=lambda: DataConfig(n_rows=12000))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, batch_size=32, epochs=2.0,
                                                                   warmup_steps=10, schedule="cosine"))
    replay_path: str | None = None    # pretraining documents ({"text"} rows) replayed during SFT ...
    replay_frac: float = 0.0          # ... this many per demonstration (0.2: one document for every five rows)
    neftune_noise_alpha: float | None = None  # NEFTune's α (TRL's name; the paper tries 5, 10, 15); None: off

    def __post_init__(self):
        super().__post_init__()
        _require(_num(self.replay_frac) and self.replay_frac >= 0, "replay_frac", "a finite number ≥ 0",
                 self.replay_frac)
        _require(self.replay_frac == 0 or self.replay_path is not None, "replay_path",
                 "a file of {\"text\"} rows when replay_frac > 0", self.replay_path)
        _require(self.neftune_noise_alpha is None or (_num(self.neftune_noise_alpha) and self.neftune_noise_alpha > 0),
                 "neftune_noise_alpha", "a number > 0, or null for no noise", self.neftune_noise_alpha)


def load_conversations(data: DataConfig) -> tuple[list[list[dict]], str]:
    """Conversations to train on, and where they came from (for error messages)."""
    if data.path is None:
        from alignstack.tasks import resolve
        return resolve("world", "demonstrations", key="data.path").conversations(data.n_rows, data.world_seed), \
            "world:sft"
    raw = read_rows(data.path)
    if data.raw_text:
        return [_raw_pair(r, data.path, i + 1) for i, r in enumerate(raw)], data.path
    from alignstack.data.formats import resolve_kind, validate_row
    kind = resolve_kind(data.kind, raw[0], ("messages", "completion"), file=data.path, what="SFT rows")
    rows = [validate_row(kind, r, file=data.path, row_number=i + 1) for i, r in enumerate(raw)]
    if kind == "messages":
        return [r["messages"] for r in rows], data.path
    return [r["prompt"] + [{"role": "assistant", "content": r["completion"]}] for r in rows], data.path


def _raw_pair(row, path: str, i: int) -> tuple[str, str]:
    """``data.raw_text``: a ``{prompt, completion}`` row of plain strings (TRL's standard format)."""
    from alignstack.data.formats import DataError

    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object, got {type(row).__name__}", file=path, row=i)
    for k in ("prompt", "completion"):
        if not isinstance(row.get(k), str):
            raise DataError(f"data.raw_text=true needs a string (plain-text prompt/completion rows), got "
                            f"{type(row.get(k)).__name__}", file=path, row=i, field=k)
    return row["prompt"], row["completion"]


def render_conversations(renderer: ChatRenderer, convs: list, source: str, packing: bool = False,
                         max_length: int = 128):
    """Conversations (message lists) through the chat template, or ``(prompt, completion)`` plain-text pairs."""
    items = []
    for i, c in enumerate(convs):
        where = {"file": source, "row": i + 1}
        x = renderer.raw_completion(*c, where) if isinstance(c, tuple) else renderer.messages(c, where)
        if x is not None:
            items.append(x)
    return pack(items, max_length) if packing else items


def replay_documents(cfg: SFTConfig, n_rows: int) -> list[tuple[int, str]]:
    """``round(replay_frac × n_rows)`` (row number, text) documents of ``replay_path``, drawn without replacement
    while the file lasts, then again (seeded by ``cfg.seed``). Read before the model loads, so a bad file fails
    fast."""
    from alignstack.data.formats import DataError

    n = round(cfg.replay_frac * n_rows)
    if n == 0:
        return []
    docs = [row["text"] for row in read_rows(cfg.replay_path, "text")]
    if not docs:
        raise DataError(f"replay_frac={cfg.replay_frac} needs documents to replay, and the file has none",
                        file=cfg.replay_path)
    rng = random.Random(f"replay|{cfg.seed}")
    picked: list[int] = []
    while len(picked) < n:
        order = list(range(len(docs)))
        rng.shuffle(order)
        picked += order[:n - len(picked)]
    return [(i + 1, docs[i]) for i in picked]


def replay_items(renderer: ChatRenderer, cfg: SFTConfig, docs: list[tuple[int, str]]) -> list:
    """The replayed documents rendered as plain text: the loss on every token, as in pretraining."""
    items = (renderer.text(text, {"file": cfg.replay_path, "row": row}) for row, text in docs)
    return [x for x in items if x is not None]


def train(cfg: SFTConfig) -> dict:
    from alignstack.models.load import prepare_model, save_final
    from alignstack.models.neftune import noisy_embeddings
    from alignstack.train.supervised import fit

    t0 = time.perf_counter()
    convs, source = load_conversations(cfg.data)  # validate data before the (slow) model load
    from dataclasses import replace

    from alignstack.data.splits import eval_split
    convs, eval_convs = eval_split(convs, cfg.data, lambda p: load_conversations(replace(cfg.data, path=p))[0],
                                   cfg.seed)
    replay = replay_documents(cfg, len(convs))
    model, tokenizer = prepare_model(cfg.model, seed=cfg.seed)
    r = training_renderer(tokenizer, cfg.model, cfg.data)
    items = render_conversations(r, convs, source, False)
    replayed = replay_items(r, cfg, replay)
    items = pack(items + replayed, cfg.model.max_length) if cfg.data.packing else items + replayed
    r.warn_dropped(source)
    eval_items = render_conversations(r, eval_convs, cfg.data.eval_path or source) if eval_convs else []
    with noisy_embeddings(model, cfg.neftune_noise_alpha, cfg.seed):
        trainer, res = fit(model, tokenizer, items, cfg.optim, Path(cfg.out), seed=cfg.seed, log=cfg.log,
                           checkpoint=cfg.checkpoint, dist=cfg.dist, config_yaml=to_yaml(cfg), desc="sft")
    if trainer.is_main:
        save_final(trainer.unwrapped, tokenizer, cfg.out, to_yaml(cfg))
    out = {"steps": res.steps, "train_loss": res.final_loss, "tokens": res.tokens,
           "tokens_per_s": res.tokens / max(res.seconds, 1e-9), "render": vars(r.stats),
           "replay_rows": len(replayed), "wall_s": time.perf_counter() - t0}
    if eval_items and trainer.is_main:             # held-out per-token NLL of the final model
        from alignstack.train.supervised import mean_nll
        out.update(eval_loss=mean_nll(trainer.unwrapped, tokenizer, eval_items), eval_rows=len(eval_items))
    return out
