"""ReST: Reinforced Self-Training, Grow and Improve (Gulcehre et al. 2023, arXiv 2308.08998; METHODS.md §7, A.5).

    for g in 1..G:                                    # Grow
        D_g = D ∪ {(x, y): y ~ π(·|x), T = temperature, n_samples per x};  R(x, y) scored ONCE, stored
        for step, τ in enumerate(thresholds[:I+1]):   # Improve
            π = finetune(π, {(x, y) ∈ D_g : F(x, y; τ)}, NLL, lr = lr₀·lr_decay^k)

with F(x, y; τ) = 1[R̂ ≥ 0] at Improve step 0 (the whole grown set, plain BC) and 1[R̂ > τ] at steps ≥ 1
(``algos.selection.rest_filter``), R̂ the normalised reward (``normalise``: ``range`` — (R − lo)/(hi − lo) with
the known ``reward_range`` [0, 1] of the world's ground truth, the default; or ``minmax`` over D_g). Each Improve
step fine-tunes the previous step's model (the update continues; the optimizer and schedule restart) at the
learning rate ``optim.lr · lr_decay^k`` (k = number of Improve steps run before, counted across Grow steps).
Only the final policy of an Improve sequence generates the next D_g (METHODS §7).

Loss: BC (the masked NLL of ``train.supervised.fit``) — the paper's best loss. The other offline losses of the
paper (GOLD, BVMPO, offline actor-critic) are **not** implemented; ``loss`` accepts only ``bc``.

Original data D: with ``original: world`` the world's noisy behaviour data for the same prompts (the reference
answer, corrupted with probability ``original_noise`` — the ReST testbed's noisy pairs) is added to every D_g and
scored by the same reward, as the paper's D_g = D ∪ samples. ``original: none`` grows from samples only;
``auto`` (the default) is ``world`` when the prompt source has behaviour data (the world's) and ``none`` else,
so a user's prompts file never fails mid-run.

Written: ``grow{g}/samples.jsonl`` (every grown row with its reward, normalised reward and — for world prompts —
ground truth), ``grow{g}/improve{i}/model`` (each step's policy), ``result.json`` (per step: threshold, rows kept,
mean reward and mean ground truth of the kept samples, learning rate, loss). The final policy is ``out/model``.

Departures from the paper: no early stopping on a dev reward and no best-checkpoint selection (each step trains a
fixed number of epochs); far fewer samples per source (8–20 instead of 25–1000); the reward on the world is the
ground truth unless ``reward`` names a learned reward model (``rm:PATH``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from alignstack.algos.selection import REST_SCHEDULE
from alignstack.config import (
    ConfigError,
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)


@dataclass
class ReSTConfig(RunConfig):
    out: str = "runs/rest"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    reward: str = "world:helpfulness"       # see alignstack.rollout.scorers.make_scorer (rm:PATH for a learned RM)
    verifier: str | None = None             # task verifier (exact | numeric:TOL | regex:P | import:mod:fn); wins over reward
    prompts: str | None = None              # world | rows:PATH | import:mod:name; None: world train prompts of `families`
    families: list[str] | None = field(default_factory=lambda: ["translate"])
    n_prompts: int = 500
    n_samples: int = 8                      # samples per prompt per Grow step (paper: 25-1000)
    temperature: float = 0.8                # paper: T = 0.8
    max_new_tokens: int = 24
    grow_steps: int = 1                     # G
    improve_steps: int = 3                  # I: Improve steps 0..I use thresholds[:I+1]
    thresholds: list[float] = field(default_factory=lambda: list(REST_SCHEDULE))
    normalise: str = "range"                # range: (R - lo)/(hi - lo) with reward_range | minmax: over D_g
    reward_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    original: str = "auto"                  # auto | world: mix in the noisy behaviour data D | none
    original_noise: float = 0.2
    lr_decay: float = 0.5                   # Improve step k trains at optim.lr * lr_decay**k
    loss: str = "bc"                        # only BC (see module docstring)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, batch_size=32, epochs=1.0,
                                                                   warmup_steps=5, schedule="cosine"))

    def __post_init__(self):
        super().__post_init__()
        if self.grow_steps < 1:
            raise ValueError(f"grow_steps (G) must be ≥ 1, got {self.grow_steps}")
        if self.improve_steps < 0 or self.improve_steps + 1 > len(self.thresholds):
            raise ValueError(f"improve_steps={self.improve_steps} needs {self.improve_steps + 1} thresholds; "
                             f"thresholds has {len(self.thresholds)}")
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:])):
            raise ValueError(f"thresholds must rise strictly, got {self.thresholds}")
        if self.normalise not in ("range", "minmax"):
            raise ValueError(f"normalise must be 'range' or 'minmax', got {self.normalise!r}")
        if len(self.reward_range) != 2 or self.reward_range[1] <= self.reward_range[0]:
            raise ValueError(f"reward_range must be [lo, hi] with lo < hi, got {self.reward_range}")
        if self.loss != "bc":
            raise ValueError(f"loss {self.loss!r} is not implemented; only 'bc' (the paper's best loss)")
        if self.original not in ("auto", "world", "none"):
            raise ValueError(f"original must be 'auto', 'world' or 'none', got {self.original!r}")
        # the built-in worlds' sources (world, world3) carry behaviour data; train() checks any other source
        if self.original == "world" and self.prompts is not None and self.prompts.partition(":")[0] not in ("world", "world3"):
            raise ValueError(f"original=world needs the world's prompts (prompts={self.prompts!r} has no behaviour "
                             "data); set original=none or auto")
        if self.n_samples < 1 or self.n_prompts < 1:
            raise ValueError("n_samples and n_prompts must be ≥ 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        from alignstack.tasks.resolve import check_spec
        check_spec(self.prompts, "prompts", "prompts")
        check_spec(self.verifier, "verifier", "verifier")


def improve_plan(cfg: ReSTConfig) -> list[tuple[int, int, float, float]]:
    """(grow g, improve step i, threshold τ_i, learning rate) for every Improve step, in order."""
    from alignstack.algos.selection import rest_thresholds
    taus = rest_thresholds(cfg.improve_steps, tuple(cfg.thresholds))
    plan, k = [], 0
    for g in range(1, cfg.grow_steps + 1):
        for i, tau in enumerate(taus):
            plan.append((g, i, tau, cfg.optim.lr * cfg.lr_decay ** k))
            k += 1
    return plan


def original_rows(source, examples, seed: int, noise: float) -> list[str]:
    """The prompt source's noisy behaviour answers for ``examples`` (the world's: reference answer, corrupted
    w.p. ``noise``); a source without behaviour data is a config error."""
    behaviour = getattr(source, "behaviour", None)
    if behaviour is None:
        raise ConfigError("original=world needs a prompt source with behaviour data (the world's); set original=none")
    return behaviour(examples, seed, noise)


def select(normalised, step: int, thresholds: list[float]) -> list[int]:
    """Indices of grown rows kept by Improve step ``step`` (rest_filter)."""
    import torch

    from alignstack.algos.selection import rest_filter
    keep = rest_filter(torch.as_tensor(normalised, dtype=torch.float32), step, thresholds)
    return [int(i) for i in keep.nonzero().flatten()]


def train(cfg: ReSTConfig) -> dict:
    import torch

    from alignstack.algos.selection import normalise_rewards, rest_thresholds
    from alignstack.data.render import ChatRenderer
    from alignstack.data.sources import write_jsonl
    from alignstack.models.load import prepare_model, save_final
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import prompt_source, rollout
    from alignstack.rollout.scorers import make_scorer
    from alignstack.train.supervised import fit

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    scorer = make_scorer(cfg.reward, cfg.verifier)
    model, tok = prepare_model(cfg.model, seed=cfg.seed)
    renderer = ChatRenderer(tok, cfg.model.max_length)
    source = prompt_source(cfg.prompts, cfg.seed, families=cfg.families if cfg.prompts is None else None,
                           pool=cfg.n_prompts)
    tasks = source.examples[:cfg.n_prompts]
    prompts = [e.prompt for e in tasks]
    truth = source.ground_truth                       # logged beside the reward (None: the source has none)
    original = cfg.original if cfg.original != "auto" else ("world" if hasattr(source, "behaviour") else "none")
    if original == "world" and not hasattr(source, "behaviour"):      # before any sampling
        raise ConfigError("original=world needs a prompt source with behaviour data (the world's); set original=none")
    taus = rest_thresholds(cfg.improve_steps, tuple(cfg.thresholds))
    plan = improve_plan(cfg)
    steps_log: list[dict] = []
    grows: list[dict] = []
    for g in range(1, cfg.grow_steps + 1):
        gdir = out / f"grow{g}"
        # ---- Grow: sample from the current policy, add D, score everything once
        k = cfg.n_samples
        rep_p = [p for p in prompts for _ in range(k)]
        rep_t = [t for t in tasks for _ in range(k)]
        ro = rollout(model, tok, rep_p, rep_t, SamplingConfig(cfg.max_new_tokens, cfg.temperature),
                     seed=cfg.seed * 7919 + g, renderer=renderer)
        texts, rows_p, rows_t = list(ro.texts), list(rep_p), list(rep_t)
        origin = ["sample"] * len(texts)
        if original == "world":
            texts += original_rows(source, tasks, cfg.seed * 31 + g, cfg.original_noise)
            rows_p += prompts
            rows_t += tasks
            origin += ["original"] * len(prompts)
        r = torch.tensor(scorer(rows_p, texts, examples=rows_t), dtype=torch.float32)
        lo, hi = cfg.reward_range
        rn = normalise_rewards(r, cfg.normalise, lo, hi)
        gt = [truth(t, x) for t, x in zip(rows_t, texts)] if truth is not None else None
        grown = [{"messages": p + [{"role": "assistant", "content": x}],
                  "meta": {"reward": float(r[j]), "reward_norm": float(rn[j]), "origin": origin[j],
                           **({"gt": gt[j]} if gt else {})}}
                 for j, (p, x) in enumerate(zip(rows_p, texts))]
        write_jsonl(gdir / "samples.jsonl", grown)
        items = [renderer.messages(row["messages"], {"file": str(gdir / "samples.jsonl"), "row": j + 1})
                 for j, row in enumerate(grown)]
        n_s = len(ro.texts)
        grows.append({"grow": g, "rows": len(grown), "samples": n_s, "reward_mean_samples": float(r[:n_s].mean()),
                      **({"gt_mean_samples": sum(gt[:n_s]) / n_s} if gt else {})})
        # ---- Improve: rising thresholds, each step from the previous model at a lower LR
        for gg, i, tau, lr in plan:
            if gg != g:
                continue
            keep = [j for j in select(rn, i, taus) if items[j] is not None]
            sdir = gdir / f"improve{i}"
            entry = {"grow": g, "improve": i, "threshold": tau, "lr": lr, "kept": len(keep),
                     "kept_samples": sum(1 for j in keep if origin[j] == "sample"),
                     "kept_reward_mean": float(r[keep].mean()) if keep else None}
            if gt:
                entry["kept_gt_mean"] = sum(gt[j] for j in keep) / len(keep) if keep else None
            if not keep:
                entry["skipped"] = "no rows above the threshold"
                steps_log.append(entry)
                continue
            trainer, res = fit(model, tok, [items[j] for j in keep], replace(cfg.optim, lr=lr), sdir,
                               seed=cfg.seed + 1000 * g + i, log=cfg.log, checkpoint=cfg.checkpoint, dist=cfg.dist,
                               config_yaml=to_yaml(cfg), desc=f"rest g{g} i{i}")
            model = trainer.unwrapped
            if trainer.is_main:
                save_final(model, tok, sdir, to_yaml(cfg))
            entry.update(steps=res.steps, train_loss=res.final_loss)
            steps_log.append(entry)
            print(json.dumps(entry), flush=True)
    save_final(model, tok, cfg.out, to_yaml(cfg))
    result = {"grow": grows, "improve": steps_log, "normalise": cfg.normalise, "lr_decay": cfg.lr_decay,
              "loss": cfg.loss, "wall_s": time.perf_counter() - t0}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result
