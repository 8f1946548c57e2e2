"""DPO and its family (METHODS §6, pseudo-code A.10): sigmoid (DPO / cDPO), IPO, hinge, robust
DPO, SimPO, ORPO and KTO, from preference rows.

The loop, top to bottom:

1. **Data.** ``preference`` rows ``{prompt, chosen, rejected}`` (``data.path``), ``unpaired``
   rows ``{prompt, completion, label}`` for KTO, or — with ``data.path`` unset — pairs generated on
   the built-in world: two T = 1 samples per training prompt from the starting model, compared by a
   simulated annotator (``feedback.collect``; identical pairs are dropped; ``world_version=3``: world
   v3's train prompts, each labelled by one member of v3's annotator pool). KTO given preference
   rows splits each pair into a desirable (chosen) and an undesirable (rejected) example.
2. **Reference.** ``reference: precomputed`` (default) scores every chosen/rejected response
   once with the starting model and caches the log-probs in ``out/ref_logps/<hash>.pt``, keyed
   by the data's token ids and the model's fingerprint, so a rerun skips the pass; ``live`` keeps a
   frozen copy and scores each batch; ``lora_base`` scores with the LoRA adapters disabled
   (``with model.disable_adapter():``, no second model); SimPO and ORPO are reference-free (any
   ``reference`` setting is ignored; ``none`` is only valid for them).
3. **Step.** Chosen and rejected share **one concatenated forward pass**; sequence log-probs are
   response-only **sums** (DPO, cDPO, robust, hinge, KTO) or **length averages** (IPO, SimPO,
   ORPO) — METHODS §2. The losses are the pure functions of ``losses/preference.py``. An optional
   RPO-style NLL on the chosen response (``rpo_alpha``) keeps tiny models from collapsing
   (DESIGN §4). Each pair has weight 1, so gradient accumulation and DDP match one big batch.
   Logged: ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracy``, ``rewards/margins``.
4. ``out/model`` is saved with ``save_final`` (LoRA merged).

Departures from the papers (documented choices):
- Optimiser: the shared AdamW step (paper and reference code: RMSprop).
- Defaults are sized for the world's tiny models: β 0.1, lr 1e-4 (10 warm-up steps, linear decay),
  batch 32, one epoch, ``rpo_alpha`` 0 — plain DPO (paper/TRL: lr 5e-7–1e-6 for 1B–7B models; at
  1e-6 a 0.5M-parameter model barely moves). DESIGN §4: plain DPO at too high an lr, or for two
  epochs, collapsed on the world; lr ≤ 1e-4 for one epoch, or a small chosen-NLL term, kept it
  stable. ``configs/dpo.yaml`` ships the recipe measured in experiments/dpo.py (lr 3e-4 with
  ``rpo_alpha`` 0.2).
- KTO's KL reference point uses a fixed mismatched pairing of the dataset (item i with the
  completion of another item, a seeded cyclic shift, as TRL does at dataset level) and the mean
  over the **microbatch** (no cross-process reduction).
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alignstack.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)
from alignstack.data.collate import pad_right
from alignstack.data.formats import DataError
from alignstack.data.render import ChatRenderer, Rendered, training_renderer
from alignstack.losses import preference as P
from alignstack.models.logprobs import forward_logprobs, sequence_logprobs

LOSSES = ("sigmoid", "ipo", "hinge", "robust", "simpo", "orpo", "kto")
REFERENCES = ("precomputed", "live", "lora_base", "none")
REFERENCE_FREE = ("simpo", "orpo")
AVERAGED = ("ipo", "simpo", "orpo")          # length-averaged sequence log-probs (METHODS §2)
CACHE_VERSION = 1


@dataclass
class DPOConfig(RunConfig):
    out: str = "runs/dpo"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    # data.path: preference (or, for KTO, unpaired) rows; unset: world pairs (n_rows prompts, 1 pair each)
    data: DataConfig = field(default_factory=lambda: DataConfig(n_rows=2000))
    loss: str = "sigmoid"             # sigmoid | ipo | hinge | robust | simpo | orpo | kto
    beta: float = 0.1                 # DPO β; IPO τ; hinge 1/margin; SimPO β (≈2); KTO β
    label_smoothing: float = 0.0      # ε: cDPO with loss=sigmoid, the flip rate with loss=robust
    rpo_alpha: float = 0.0            # + α·(mean per-token NLL of the chosen response), RPO-style; 0 = off.
                                      # ~0.2 keeps tiny models from collapsing at higher lr (DESIGN §4)
    simpo_gamma: float = 0.5          # SimPO target margin γ
    orpo_lambda: float = 0.1          # ORPO λ (TRL's `beta`)
    kto_lambda_d: float = 1.0         # KTO λ_D (desirable)
    kto_lambda_u: float = 1.0         # KTO λ_U (undesirable)
    reference: str = "precomputed"    # precomputed | live | lora_base | none (SimPO/ORPO only)
    ref_batch_size: int = 64
    world_k: int = 4                  # world-generated pairs: samples per prompt (k // 2 pairs each)
    world_max_new_tokens: int = 32    # world-generated pairs: sampling length
    world_version: int = 2            # world-generated pairs: 2, or 3 = v3's train prompts labelled by its
                                      # annotator pool (pipelines with `world: 3` set it)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, batch_size=32, epochs=1.0,
                                                                   warmup_steps=10, schedule="linear",
                                                                   min_lr_ratio=0.0, grad_clip=10.0))

    def __post_init__(self):
        super().__post_init__()
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        if self.reference == "none" and self.loss not in REFERENCE_FREE:
            raise ValueError(f"loss={self.loss!r} needs a reference model; reference=none is only for "
                             f"{REFERENCE_FREE}")
        if self.label_smoothing and self.loss not in ("sigmoid", "robust"):
            raise ValueError(f"label_smoothing applies to loss=sigmoid (cDPO) and loss=robust only, "
                             f"not {self.loss!r}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.rpo_alpha < 0:
            raise ValueError(f"rpo_alpha must be ≥ 0, got {self.rpo_alpha}")
        from alignstack.feedback.collect import check_world
        check_world(self.world_version)


# --------------------------------------------------------------------------- data


def world_pairs(model, tokenizer, data: DataConfig, k: int = 4, max_new_tokens: int = 32,
                world: int | str = 2) -> list[dict]:
    """Preference rows on the built-in world: ``k`` samples at T = 1 per train prompt, split into
    k // 2 annotated pairs (``feedback.collect``); pairs of two identical responses are dropped.
    ``world=3``: v3's train prompts, each labelled by one member of v3's annotator pool."""
    from alignstack.feedback.collect import CollectConfig, collect

    cc = CollectConfig(n_prompts=data.n_rows, split="train", seed=data.world_seed, mode="preference", k=k,
                       max_new_tokens=max_new_tokens, world=str(world))
    rows = collect(model, tokenizer, cc, model_name="dpo-start")
    return [r for r in rows if r["chosen"] != r["rejected"]]


def load_rows(cfg: DPOConfig, model=None, tokenizer=None) -> tuple[list[dict], str, str]:
    """(rows, their kind — preference | unpaired, a source name for error messages)."""
    from alignstack.data.sources import read_rows

    if cfg.data.path is None:
        if model is None:
            raise ValueError("world-generated pairs need the starting model")
        pairs = world_pairs(model, tokenizer, cfg.data, cfg.world_k, cfg.world_max_new_tokens, cfg.world_version)
        return pairs, "preference", "world3:pairs" if str(cfg.world_version) == "3" else "world:pairs"
    raw = read_rows(cfg.data.path, limit=None)
    from alignstack.data.formats import resolve_kind
    kind = resolve_kind(cfg.data.kind, raw[0], ("unpaired", "preference"), file=cfg.data.path,
                        what="DPO-family rows (preference; unpaired for KTO)")
    if kind == "unpaired" and cfg.loss != "kto":
        raise DataError(f"unpaired rows (prompt, completion, label) only train loss=kto, not {cfg.loss!r}",
                        file=cfg.data.path)
    from alignstack.data.formats import validate_row
    rows = [validate_row(kind, r, file=cfg.data.path, row_number=i + 1) for i, r in enumerate(raw)]
    return rows, kind, cfg.data.path


@dataclass
class PairItems:
    chosen: list[Rendered]
    rejected: list[Rendered]


@dataclass
class UnpairedItems:
    items: list[Rendered]
    kl_items: list[Rendered]          # prompt i with a mismatched completion (KTO's z0)
    desirable: list[bool]


def render_pairs(renderer: ChatRenderer, rows: list[dict], source: str) -> PairItems:
    ch, rj = [], []
    for i, r in enumerate(rows):
        where = {"file": source, "row": i + 1}
        c = renderer.prompt_completion(r["prompt"], r["chosen"], where)
        j = renderer.prompt_completion(r["prompt"], r["rejected"], where)
        if c is not None and j is not None:   # overlong=drop removes the whole pair
            ch.append(c)
            rj.append(j)
    return PairItems(ch, rj)


def render_unpaired(renderer: ChatRenderer, rows: list[dict], kind: str, source: str, seed: int) -> UnpairedItems:
    """KTO examples: unpaired rows as they are, or each preference pair split into a desirable
    (chosen) and an undesirable (rejected) example; plus the fixed mismatched KL pairing."""
    ex = []  # (row index, prompt, completion, label)
    for i, r in enumerate(rows):
        if kind == "unpaired":
            ex.append((i, r["prompt"], r["completion"], r["label"]))
        else:
            ex += [(i, r["prompt"], r["chosen"], True), (i, r["prompt"], r["rejected"], False)]
    order = list(range(len(ex)))
    random.Random(f"kto-kl|{seed}").shuffle(order)
    partner = {order[k]: order[(k + 1) % len(order)] for k in range(len(order))}
    items, kl_items, des = [], [], []
    for k, (i, prompt, comp, lab) in enumerate(ex):
        where = {"file": source, "row": i + 1}
        x = renderer.prompt_completion(prompt, comp, where)
        y = renderer.prompt_completion(prompt, ex[partner[k]][2], where)
        if x is not None and y is not None:
            items.append(x)
            kl_items.append(y)
            des.append(bool(lab))
    return UnpairedItems(items, kl_items, des)


# --------------------------------------------------------------------------- log-probs and reference


def batch_logps(model, items: list[Rendered], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs and response lengths of ``items`` in one forward pass."""
    b = pad_right(items, pad_id)
    if device is not None:
        b = {k: v.to(device) for k, v in b.items()}
    tok = forward_logprobs(model, b["input_ids"], b["attention_mask"])
    return sequence_logprobs(tok, b["loss_mask"]), b["loss_mask"][:, 1:].sum(-1)


def _ref_context(model, reference: str):
    if reference == "lora_base":
        if not hasattr(model, "disable_adapter"):
            raise ValueError("reference=lora_base needs a LoRA model (model.lora.enabled=true)")
        return model.disable_adapter()
    return torch.no_grad()  # placeholder context; the caller already runs without grad


@torch.no_grad()
def score_items(model, items: list[Rendered], pad_id: int, batch_size: int = 64, reference: str = "live",
                device=None) -> torch.Tensor:
    """Summed response log-probs of every item (reference pass: eval mode, no grad)."""
    was = model.training
    model.eval()
    out = []
    with _ref_context(model, reference):
        for s in range(0, len(items), batch_size):
            out.append(batch_logps(model, items[s:s + batch_size], pad_id, device)[0].float().cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0)


def model_fingerprint(model, model_cfg: ModelConfig) -> str:
    """What identifies the reference: the checkpoint files (name, size, mtime) when loaded from a
    path, else a hash of the weights."""
    h = hashlib.sha256()
    if model_cfg.path is not None and Path(model_cfg.path).exists():
        p = Path(model_cfg.path).resolve()
        h.update(str(p).encode())
        for f in sorted(p.iterdir()):
            if f.suffix in (".safetensors", ".json", ".bin"):
                st = f.stat()
                h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def items_fingerprint(*groups: list[Rendered]) -> str:
    h = hashlib.sha256()
    for g in groups:
        h.update(b"|group|")
        for r in g:
            h.update(json.dumps([r.input_ids, r.loss_mask]).encode())
    return h.hexdigest()


def precomputed_reference(model, model_cfg: ModelConfig, groups: dict[str, list[Rendered]], pad_id: int,
                          out_dir: Path, batch_size: int, reference: str = "precomputed") -> tuple[dict, str]:
    """Reference log-probs of every item group, from ``out/ref_logps/<key>.pt`` when cached."""
    key = hashlib.sha256(json.dumps([CACHE_VERSION, model_fingerprint(model, model_cfg),
                                     items_fingerprint(*groups.values()), sorted(groups)]).encode()).hexdigest()[:16]
    path = Path(out_dir) / "ref_logps" / f"{key}.pt"
    if path.exists():
        cached = torch.load(path)
        if sorted(cached) == sorted(groups) and all(len(cached[k]) == len(v) for k, v in groups.items()):
            return cached, "hit"
    ctx_ref = "lora_base" if hasattr(model, "disable_adapter") else reference
    res = {k: score_items(model, v, pad_id, batch_size, ctx_ref) for k, v in groups.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(res, tmp)
    tmp.replace(path)
    return res, "miss"


# --------------------------------------------------------------------------- losses


def pair_losses(cfg: DPOConfig, pc, pr, lc, lr_, rc=None, rr=None):
    """Per-pair losses and detached implicit rewards for a paired loss type (no maths here: the
    pure functions of ``losses/preference.py``)."""
    lc, lr_ = lc.to(pc.dtype).clamp(min=1), lr_.to(pr.dtype).clamp(min=1)
    if cfg.loss == "simpo":
        return P.simpo_loss(pc / lc, pr / lr_, beta=cfg.beta, gamma=cfg.simpo_gamma)
    if cfg.loss == "orpo":
        losses, cw, cl = P.orpo_loss(pc / lc, pr / lr_, lam=cfg.orpo_lambda)
        return losses + P.nll_term(pc, lc), cw, cl                      # L_SFT(y_w) + λ·L_OR
    fn = P.DPO_LOSSES[cfg.loss]
    if cfg.loss == "ipo":
        pc, pr, rc, rr = pc / lc, pr / lr_, rc / lc, rr / lr_
    return fn(pc, pr, rc, rr, beta=cfg.beta, label_smoothing=cfg.label_smoothing)


# --------------------------------------------------------------------------- the method


def train(cfg: DPOConfig) -> dict:
    from alignstack.models.load import frozen_copy, prepare_model, save_final
    from alignstack.train.loop import make_accelerator
    from alignstack.train.supervised import fit_items

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)                         # LoRA adapter init draws from the global RNG
    out = Path(cfg.out)
    if cfg.data.path is not None:                       # validate user data before the (slow) model load
        rows, kind, source = load_rows(cfg)
    model, tokenizer = prepare_model(cfg.model, seed=cfg.seed)
    if cfg.data.path is None:
        rows, kind, source = load_rows(cfg, model, tokenizer)
        from alignstack.data.sources import write_jsonl
        write_jsonl(out / "pairs.jsonl", rows)
    from dataclasses import replace

    from alignstack.data.splits import eval_split
    rows, eval_rows = eval_split(rows, cfg.data, lambda p: load_rows(replace(cfg, data=replace(cfg.data, path=p)))[0],
                                 cfg.seed)
    pad = tokenizer.pad_token_id
    renderer = training_renderer(tokenizer, cfg.model, cfg.data)
    kto = cfg.loss == "kto"
    if kto:
        data = render_unpaired(renderer, rows, kind, source, cfg.seed)
        groups = {"items": data.items, "kl": data.kl_items}
        n = len(data.items)
    else:
        data = render_pairs(renderer, rows, source)
        groups = {"chosen": data.chosen, "rejected": data.rejected}
        n = len(data.chosen)
    renderer.warn_dropped(source)
    if n == 0:
        raise ValueError(f"{source}: nothing to train on (no rows survived rendering)")

    # the reference: computed from the starting weights, before any resume
    mode = "none" if cfg.loss in REFERENCE_FREE else cfg.reference
    ref_model, ref_cache, ref = None, None, {}
    if mode == "precomputed":
        ref, ref_cache = precomputed_reference(model, cfg.model, groups, pad, out, cfg.ref_batch_size)
    elif mode == "live":
        ref_model = frozen_copy(model)
    elif mode == "lora_base" and not hasattr(model, "disable_adapter"):
        raise ValueError("reference=lora_base needs model.lora.enabled=true")

    # the trainer's device is known before the loop starts: a live reference sits there from the first step
    acc = make_accelerator(cfg.dist)
    dev = acc.device
    if ref_model is not None:
        ref_model.to(dev)

    def reference_logps(tr, idx: list[int], names: tuple[str, ...]) -> list[torch.Tensor]:
        if mode == "precomputed":
            return [ref[k][idx].to(dev) for k in names]
        its = [it for k in names for it in (groups[k][i] for i in idx)]
        with torch.no_grad():
            if mode == "live":
                s, _ = batch_logps(ref_model, its, pad, dev)
            else:
                with tr.unwrapped.disable_adapter():
                    s, _ = batch_logps(tr.model, its, pad, dev)
        return list(s.float().chunk(len(names)))

    def pair_step(tr, idx: list[int]):
        # chosen and rejected in ONE concatenated forward pass
        s, lens = batch_logps(tr.model, [data.chosen[i] for i in idx] + [data.rejected[i] for i in idx], pad, dev)
        pc, pr = s.chunk(2)
        lc, lr_ = lens.chunk(2)
        rc, rr = reference_logps(tr, idx, ("chosen", "rejected")) if mode != "none" else (None, None)
        losses, cw, cl = pair_losses(cfg, pc, pr, lc, lr_, rc, rr)
        loss = losses.sum()
        nll = P.nll_term(pc, lc)
        if cfg.rpo_alpha > 0:
            loss = loss + cfg.rpo_alpha * nll.sum()
        stats = {"rewards/chosen": cw.sum(), "rewards/rejected": cl.sum(),
                 "rewards/accuracy": (cw > cl).float().sum(), "rewards/margins": (cw - cl).sum(),
                 "logps/chosen": pc.detach().sum(), "logps/rejected": pr.detach().sum(),
                 "nll/chosen": nll.detach().sum()}
        return loss, float(len(idx)), stats

    des_t = torch.tensor(data.desirable) if kto else None

    def kto_step(tr, idx: list[int]):
        s, lens = batch_logps(tr.model, [data.items[i] for i in idx], pad, dev)
        with torch.no_grad():
            kl_pol, _ = batch_logps(tr.model, [data.kl_items[i] for i in idx], pad, dev)
        ref_s, ref_kl = reference_logps(tr, idx, ("items", "kl"))
        z0 = P.kto_kl_estimate(kl_pol.float(), ref_kl)
        d = des_t[idx].to(dev)
        losses, rewards = P.kto_loss(s, ref_s, d, z0, beta=cfg.beta, lambda_d=cfg.kto_lambda_d,
                                     lambda_u=cfg.kto_lambda_u)
        sign = d.float() * 2 - 1
        stats = {"kto/kl": z0 * len(idx), "rewards/signed": (sign * rewards).sum(),
                 "rewards/accuracy": ((sign * rewards) > 0).float().sum(), "logps/all": s.detach().sum()}
        return losses.sum(), float(len(idx)), stats

    # items are pair (or example) indices: the reference log-probs and KTO labels are looked up by index;
    # each pair weighs 1
    tr, history = fit_items(model, tokenizer, list(range(n)), kto_step if kto else pair_step, cfg.optim, out,
                            seed=cfg.seed, log=cfg.log, checkpoint=cfg.checkpoint, dist=cfg.dist,
                            config_yaml=to_yaml(cfg), desc="dpo", accelerator=acc)
    stats = {k: v for k, v in history[-1].items() if k != "step"} if history else {}
    if tr.is_main:
        save_final(tr.unwrapped, tokenizer, cfg.out, to_yaml(cfg))
    first = history[0] if history else {}
    res = {"steps": tr.step_count, "examples": n, "rows": len(rows), "loss_type": cfg.loss,
           "reference": mode, "ref_cache": ref_cache, "first_loss": first.get("loss"),
           "train_loss": stats.get("loss"), "final_stats": stats, "history": history,
           "render": vars(renderer.stats), "wall_s": time.perf_counter() - t0}
    if eval_rows and kind == "preference" and tr.is_main and cfg.model.path is not None:
        # held-out plain-DPO loss and implicit-reward accuracy against the starting model
        from alignstack.models.load import load_model
        ref_eval = ref_model if ref_model is not None else load_model(cfg.model.path).eval()
        ev = heldout_pair_metrics(tr.unwrapped.eval(), ref_eval, tokenizer, eval_rows, cfg.beta, cfg.model.max_length)
        res.update(eval_loss=ev["loss"], eval_accuracy=ev["accuracy"], eval_rows=ev["n"])
    return res


# --------------------------------------------------------------------------- held-out metrics


@torch.no_grad()
def heldout_pair_metrics(model, ref_model, tokenizer, rows: list[dict], beta: float = 0.1,
                         max_length: int = 128, batch_size: int = 64) -> dict:
    """Held-out plain-DPO loss and implicit-reward accuracy of ``model`` against ``ref_model``
    on preference rows (noise-robustness comparisons use clean held-out labels)."""
    r = ChatRenderer(tokenizer, max_length)
    d = render_pairs(r, rows, "heldout")
    pad = tokenizer.pad_token_id
    pc = score_items(model, d.chosen, pad, batch_size)
    pr = score_items(model, d.rejected, pad, batch_size)
    rc = score_items(ref_model, d.chosen, pad, batch_size)
    rr = score_items(ref_model, d.rejected, pad, batch_size)
    losses, cw, cl = P.dpo_loss(pc, pr, rc, rr, beta=beta)
    return {"loss": float(losses.mean()), "accuracy": float((cw > cl).float().mean()), "n": len(losses)}
