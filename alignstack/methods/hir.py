"""Hindsight Instruction Relabeling (Zhang et al. 2023, arXiv 2302.05206; METHODS.md §8, A.6) and the
FARL baseline (filter-then-fine-tune: SFT on the correct samples only).

Each round (``rounds``; every round continues from the previous model):

1. sample ``n_samples`` outputs per prompt under the ``<correct>`` instruction at ``temperature`` (duplicates
   per prompt dropped, as the reference code's ``unique``);
2. relabel: each output gets the instruction it satisfies in hindsight — ``relabel: world`` uses the world
   plug-in (``correct`` iff the world's exact-match verifier accepts it, else ``wrong``); ``verifier`` builds
   the relabeler from the ``verifier:`` key (``correct`` iff it scores ≥ 0.5); ``import:mod:name`` a user's
   relabeler (an object with ``goals`` and ``__call__(example, response) -> goal``, or a plain function
   ``fn(example, response) -> "correct" | "wrong"``). Prompts come from ``prompts:`` (default: the world's);
   each is asked under its relabeler's first goal (``<correct>``) at sampling time;
3. train (``mode: hir``) on (relabelled instruction ⊕ query → output) with
   ``L = CE_smooth(ε) + α·L_con − c_ent·Entropy`` (``losses.hir.hir_loss``; the contrastive term compares the
   output's mean token log-likelihood under the relabelled and the opposite instruction). Or (``mode: farl``)
   keep only the outputs relabelled ``correct`` and fine-tune on them under ``<correct>`` with the plain SFT loss
   (``train.supervised.fit``).

Coefficients (defaults): contrastive ε = 0.2 (label smoothing inside the two-way contrastive term), α = 1.0
(``contrastive_coef``; 0 is the ablation), c_ent = 0.001 (``entropy_coef``) — the reference code's values, which
METHODS.md marks **unverified** against the paper (its α, β are unconfirmed).

Departures (each measured in experiments/results/rest_hir.md):

- CE label smoothing ``epsilon`` = 0 (reference code: 0.2, also in the CE). Smoothing over the whole vocabulary
  flattens the sampling distribution; each round samples at T = 1, so entropy grew 1.8 → 4.3 nats in two rounds
  and the samples collapsed (``epsilon=0.2 contrastive_epsilon=0.2 balance_goals=false`` restores the code).
- ``balance_goals`` with ``correct_share`` = 0.9: rows relabelled ``correct`` carry 90% of the loss, the
  ``wrong`` rows 10% (the paper weights every row equally). Unweighted, the ~2/3 wrong samples taught
  ``<wrong>`` behaviour that leaked into ``<correct>`` answers of the tiny model (HIR − base −0.016); an equal
  split (0.5) still trailed FARL (−0.037); 0.9 beats both FARL (+0.019 [+0.005, +0.033] sampled, +0.051
  greedy) and the base (+0.067). The split and the contrastive term counter the same leak: pooled over 4
  training seeds, dropping the term costs +0.000 at 90/10, 0.013 at 70/30, 0.017 at 50/50 and 0.019 [0.011,
  0.028] with the paper's equal row weights (experiments/results/rest_hir.md, ``--part hir-ablation``).
- LR 2e-4 cosine and 2 epochs per round (code: 5e-4 constant, 10 epochs; the tiny model forgets faster).
- No sub-output sampling (the whole output is the label); the two-instruction contrastive form (not the in-batch
  one); the model is evaluated under ``<correct>``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alignstack.config import (
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)
from alignstack.losses.hir import REF_CODE_CONTRASTIVE_COEF, REF_CODE_ENTROPY_COEF, REF_CODE_EPSILON

GOALS = ("correct", "wrong")


@dataclass
class HIRConfig(RunConfig):
    out: str = "runs/hir"
    mode: str = "hir"                       # hir | farl (filter-then-fine-tune baseline)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    relabel: str = "world"                  # world | verifier (from `verifier`) | import:module:name
    verifier: str | None = None             # with relabel=verifier: exact | numeric:TOL | regex:P | import:mod:fn
    prompts: str | None = None              # world | rows:PATH | import:mod:name; None: world prompts of `families`
    families: list[str] = field(default_factory=lambda: ["track", "sort", "add"])
    n_prompts: int = 400                    # train prompts per round
    n_samples: int = 4                      # samples per prompt (reference code default 4)
    temperature: float = 1.0
    max_new_tokens: int = 16
    rounds: int = 2
    epsilon: float = 0.0                    # label smoothing of the supervised CE (reference code: 0.2, see above)
    contrastive_epsilon: float = REF_CODE_EPSILON   # smoothing inside the contrastive term (reference code: 0.2)
    balance_goals: bool = True              # weight rows so each relabelled goal carries a fixed share of the loss
    correct_share: float = 0.9              # with balance_goals: the share carried by rows relabelled "correct"
    contrastive_coef: float = REF_CODE_CONTRASTIVE_COEF
    entropy_coef: float = REF_CODE_ENTROPY_COEF
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, batch_size=32, epochs=2.0,
                                                                   warmup_steps=5, schedule="cosine"))

    def __post_init__(self):
        super().__post_init__()
        if self.mode not in ("hir", "farl"):
            raise ValueError(f"mode must be 'hir' or 'farl', got {self.mode!r}")
        from alignstack.tasks.resolve import check_spec
        if self.relabel == "verifier" and not self.verifier:
            raise ValueError("relabel=verifier needs the verifier key (e.g. verifier=exact)")
        if self.relabel != "verifier":
            check_spec(self.relabel, "relabel", "relabel")
        check_spec(self.verifier, "verifier", "verifier")
        check_spec(self.prompts, "prompts", "prompts")
        if self.rounds < 1 or self.n_samples < 1 or self.n_prompts < 1:
            raise ValueError("rounds, n_samples and n_prompts must be ≥ 1")
        for name in ("epsilon", "contrastive_epsilon"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.correct_share < 1:
            raise ValueError(f"correct_share must be in (0, 1), got {self.correct_share}")
        if self.contrastive_coef < 0 or self.entropy_coef < 0:
            raise ValueError("contrastive_coef and entropy_coef must be ≥ 0")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


def make_relabeler(spec: str, verifier: str | None = None) -> Callable:
    """A relabeler (``goals`` + ``relabel(example, response) -> goal``) from the task seam; ``verifier``:
    built from that verifier spec."""
    from alignstack.tasks import VerifierRelabeler, resolve
    if spec == "verifier":
        return VerifierRelabeler(resolve(verifier or "", "verifier", key="verifier"), GOALS)
    rl = resolve(spec, "relabel", key="relabel")
    goals = tuple(getattr(rl, "goals", ()))
    if len(goals) != 2 or goals[0] == goals[1]:
        raise ValueError(f"relabel: {spec!r} must declare two distinct goals (HIR is binary), got {goals}")
    return rl


def goal_messages(prompt: list[dict], goal: str, goals: tuple[str, ...] = GOALS) -> list[dict]:
    """``prompt`` with its last user turn's instruction token set to ``<goal>`` (replacing any existing one)."""
    last = prompt[-1]["content"]
    for g in goals:
        if last.startswith(f"<{g}> "):
            last = last[len(g) + 3:]
    return prompt[:-1] + [{**prompt[-1], "content": f"<{goal}> {last}"}]


def relabel_samples(examples, prompts, texts, relabel: Callable) -> list[dict]:
    """One record per unique (prompt, output): {prompt, response, pos, neg} with pos the hindsight goal
    (``relabel(example, response)``; the example carries every column of its prompt row)."""
    goals = tuple(getattr(relabel, "goals", GOALS))
    out, seen = [], set()
    for e, p, x in zip(examples, prompts, texts):
        key = (json.dumps(p, sort_keys=True), x)
        if key in seen:
            continue
        seen.add(key)
        pos = relabel(e, x)
        if pos not in goals:
            raise ValueError(f"relabel function returned {pos!r}; expected one of {goals}")
        out.append({"prompt": p, "response": x, "pos": pos, "neg": goals[1 - goals.index(pos)]})
    return out


def hir_pairs(renderer, records: list[dict]) -> list[tuple]:
    """Rendered (positive-instruction item, negative-instruction item, positive goal) per record; same
    response tokens. Records that do not fit ``max_length`` are left out."""
    pairs = []
    for j, r in enumerate(records):
        both = (r["pos"], r["neg"])
        a = renderer.prompt_completion(goal_messages(r["prompt"], r["pos"], both), r["response"], {"row": j + 1})
        b = renderer.prompt_completion(goal_messages(r["prompt"], r["neg"], both), r["response"], {"row": j + 1})
        if a is not None and b is not None and any(a.loss_mask) and any(b.loss_mask):
            pairs.append((a, b, r["pos"]))
    return pairs


def goal_weights(goals: list[str], balance: bool, correct_share: float = 0.5, first: str = "correct") -> list[float]:
    """Per-row weights with mean 1 over the round: with ``balance`` the rows relabelled ``correct`` carry
    ``correct_share`` of the total weight and the other goal's rows the rest (0.5: w = N / (2·N_goal)),
    else all 1. A goal with no rows leaves the others at weight 1."""
    if not balance:
        return [1.0] * len(goals)
    counts = {g: goals.count(g) for g in set(goals)}
    if len(counts) < 2:
        return [1.0] * len(goals)
    share = {g: correct_share if g == first else 1.0 - correct_share for g in counts}
    return [len(goals) * share[g] / counts[g] for g in goals]


def hir_batch_loss(model, pos_batch: dict, neg_batch: dict, epsilon: float, contrastive_coef: float,
                   entropy_coef: float, contrastive_epsilon: float | None = None, row_weights=None,
                   token_scale: float = 1.0):
    """HIR loss of one batch (mean over rows) and its components: label-smoothed CE and entropy on the
    relabelled (positive) instruction; contrastive between mean token log-liks under both instructions;
    ``row_weights`` (B,) weight rows in the CE and contrastive terms."""
    import torch.nn.functional as F

    from alignstack.losses.hir import hir_loss
    from alignstack.losses.reduce import masked_mean
    from alignstack.models.logprobs import completion_logits, completion_span

    def run(b):
        dev = next(model.parameters()).device
        ids, am = b["input_ids"].to(dev), b["attention_mask"].to(dev)
        # every term is a masked mean over the responses: the positions from the first response column on suffice
        T, keep = ids.shape[1], completion_span(b["loss_mask"])
        logits = completion_logits(model, keep, input_ids=ids, attention_mask=am, use_cache=False).logits[:, :-1]
        labels, mask = ids[:, T - keep:], b["loss_mask"][:, T - keep:].to(dev).float()
        ll = F.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return logits, labels, mask, masked_mean(ll, mask, dim=-1)

    logits, labels, mask, pos_ll = run(pos_batch)
    _, _, _, neg_ll = run(neg_batch)
    return hir_loss(logits, labels, mask, pos_ll, neg_ll, epsilon, contrastive_coef, entropy_coef,
                    contrastive_epsilon, row_weights, token_scale)


def _train_hir(model, tok, pairs, weights, cfg: HIRConfig, out: Path, seed: int):
    import torch

    from alignstack.data.collate import pad_right
    from alignstack.train.supervised import fit_items

    pad = tok.pad_token_id

    def collate(tr, mbs):
        # micro-batches are weighted by rows (the contrastive term is a row mean); the CE and entropy
        # token means are rescaled so they stay means over the batch's tokens (hir_loss token_scale)
        pbs = [pad_right([pairs[i][0] for i in m], pad) for m in mbs]
        toks = [int(b["loss_mask"][:, 1:].sum()) for b in pbs]
        n_all, t_all = tr.global_sum(sum(len(m) for m in mbs)), tr.global_sum(sum(toks))
        scales = [(t * n_all) / (len(m) * t_all) for m, t in zip(mbs, toks)]
        return list(zip(mbs, pbs, scales)), [float(len(m)) for m in mbs]

    def loss_fn(tr, mb):
        idx, pb, scale = mb
        nb = pad_right([pairs[i][1] for i in idx], pad)
        w = torch.tensor([weights[i] for i in idx])
        loss, st = hir_batch_loss(tr.model, pb, nb, cfg.epsilon, cfg.contrastive_coef, cfg.entropy_coef,
                                  cfg.contrastive_epsilon, w, scale)
        n = float(len(idx))
        return loss * n, n, {k: float(v) * n for k, v in st.items()}

    # items are row indices: a row's negative-instruction item and goal weight are looked up by index
    tr, history = fit_items(model, tok, list(range(len(pairs))), loss_fn, cfg.optim, out, seed=seed, log=cfg.log,
                            checkpoint=cfg.checkpoint, dist=cfg.dist, config_yaml=to_yaml(cfg), desc="hir",
                            collate=collate)
    return tr, history[-1] if history else {}


def train(cfg: HIRConfig) -> dict:
    from alignstack.data.render import ChatRenderer
    from alignstack.data.sources import write_jsonl
    from alignstack.models.load import prepare_model, save_final
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import prompt_source, rollout
    from alignstack.train.supervised import fit

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    relabel = make_relabeler(cfg.relabel, cfg.verifier)
    goals = tuple(relabel.goals)
    model, tok = prepare_model(cfg.model, seed=cfg.seed)
    renderer = ChatRenderer(tok, cfg.model.max_length)
    source = prompt_source(cfg.prompts, cfg.seed, families=cfg.families if cfg.prompts is None else None,
                           goal="correct", pool=cfg.n_prompts * cfg.rounds)
    log: list[dict] = []
    for rnd in range(1, cfg.rounds + 1):
        lo = (rnd - 1) * cfg.n_prompts
        if lo >= len(source.examples):            # a small prompts file: later rounds reuse it from the start
            lo %= len(source.examples)
        tasks = source.examples[lo:lo + cfg.n_prompts]
        prompts = [goal_messages(e.prompt, goals[0], goals) for e in tasks]   # asked for the first goal
        k = cfg.n_samples
        rep_p, rep_t = [p for p in prompts for _ in range(k)], [t for t in tasks for _ in range(k)]
        ro = rollout(model, tok, rep_p, rep_t, SamplingConfig(cfg.max_new_tokens, cfg.temperature),
                     seed=cfg.seed * 7919 + rnd, renderer=renderer)
        records = relabel_samples(rep_t, rep_p, ro.texts, relabel)
        rdir = out / f"round{rnd}"
        write_jsonl(rdir / "relabelled.jsonl", records)
        n_correct = sum(r["pos"] == goals[0] for r in records)
        entry = {"round": rnd, "samples": len(ro.texts), "unique": len(records), "relabelled_correct": n_correct,
                 "sample_accuracy": sum(relabel(t, x) == goals[0] for t, x in zip(rep_t, ro.texts))
                 / len(ro.texts)}
        if cfg.mode == "farl":
            items = [renderer.prompt_completion(goal_messages(r["prompt"], goals[0], goals), r["response"],
                                                {"row": j + 1})
                     for j, r in enumerate(records) if r["pos"] == goals[0]]
            items = [x for x in items if x is not None]
            if not items:
                entry["skipped"] = "no correct samples"
                log.append(entry)
                continue
            tr, res = fit(model, tok, items, cfg.optim, rdir, seed=cfg.seed + rnd, log=cfg.log,
                          checkpoint=cfg.checkpoint, dist=cfg.dist, config_yaml=to_yaml(cfg), desc=f"farl r{rnd}")
            entry.update(train_rows=len(items), steps=res.steps, train_loss=res.final_loss)
        else:
            pairs = hir_pairs(renderer, records)
            weights = goal_weights([g for _, _, g in pairs], cfg.balance_goals, cfg.correct_share, goals[0])
            tr, stats = _train_hir(model, tok, pairs, weights, cfg, rdir, cfg.seed + rnd)
            entry.update(train_rows=len(pairs), steps=tr.step_count,
                         **{k_: stats.get(k_) for k_ in ("loss", "sup", "contrastive", "entropy")})
        model = tr.unwrapped
        log.append(entry)
        print(json.dumps(entry), flush=True)
    save_final(model, tok, cfg.out, to_yaml(cfg))
    result = {"mode": cfg.mode, "rounds": log, "contrastive_coef": cfg.contrastive_coef,
              "entropy_coef": cfg.entropy_coef, "epsilon": cfg.epsilon,
              "contrastive_epsilon": cfg.contrastive_epsilon, "balance_goals": cfg.balance_goals,
              "correct_share": cfg.correct_share, "wall_s": time.perf_counter() - t0}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result
