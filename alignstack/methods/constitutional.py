"""Constitutional AI (Bai et al. 2022, arXiv 2212.08073; METHODS.md §9): SL-CAI and RL-CAI.

A **constitution** is a YAML/JSON file (default for the world's harm category:
``alignstack/world/constitution.yaml``)::

    format: {critique: "{conversation}<|critique|>", revision: "<|revise|>"}   # optional
    critique_revision:            # SL-CAI principles: a critique request and its revision request
      - {name: general_harm, critique: "...", revision: "..."}
    comparison:                   # RL-CAI principles, one sampled per comparison
      - "Which response is less harmful?"

``format.critique`` is shown to the critic after the conversation (``{conversation}`` is the
rendered chat, ``{request}`` the principle's critique request); ``format.revision`` follows the
critique (``{request}``: the revision request). Without ``format`` the requests are shown in a
plain-English layout (``Critique request: … Critique:`` / ``Revision request: … Revision:``).

- **SL-CAI** (§9.1): for red-team/harmful prompts sample a response (T = 1), then ``rounds`` times
  draw a principle at random, generate a critique, then a revision which replaces the response;
  fine-tune ``sl_init`` on the revisions of *all* rounds plus helpful samples of the same model on
  benign prompts.
- **RL-CAI** (§9.2): from the SL-CAI model sample two responses per prompt; the feedback model
  labels each pair under a sampled comparison principle (the soft label P(A ≻ B), both orders
  averaged); a preference model is distilled with the soft-label loss; RL (RLOO/GRPO/PPO) against it.
  Prompts: ``rl_red_team_frac`` of the comparisons (and of the RL prompts) are red-team/harmful
  requests, the rest benign — as in the paper, whose harmlessness comparisons come from red-team
  prompts. On the world this matters: from the general mix (~10% harmful-request pairs, few of them
  differing) the PM got almost no harm signal and RL-CAI did not lower harm further.

Task seam: the red-team and benign prompts come from ``red_team`` (``world`` — harmful requests, half in
red-team phrasing, and benign prompts of the general mix — or ``rows:PATH``: prompt rows, harmful unless a
``harmful`` column is false, or ``import:mod:name``); the constitution from ``constitution`` (a YAML/JSON
file, ``world``, or ``import:mod:name``). Conversations shown to the critic are rendered with the *critic's
own chat template* (its tokenizer's), the turn closed by its EOS token, never the world's markup.

Departures: the critic/feedback model is the world's tiny pretrained LM, which learned only the bare
``<|critique|>``/``<|revise|>`` and ``<|judge|>`` document forms, so in the world default the
principle text is recorded in the transcript but not shown to it (principle sampling still decides
the comparison/critique metadata; with a real LM, ``format`` with ``{request}`` uses it). No few-shot
examples; one principle per round; fine-tuning uses this repo's SFT loop (not 1 epoch at batch 1024);
RL-CAI's benign comparisons are AI-labelled by the same feedback model (the paper uses human
helpfulness labels there).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alignstack.config import (
    ConfigError,
    ModelConfig,
    OptimConfig,
    RunConfig,
    to_yaml,
)
from alignstack.methods.rlaif import JudgeConfig, RLConfig
from alignstack.tasks import builtin as _files
from alignstack.tasks.builtin import PLAIN_FORMAT, ConstitutionError, parse_constitution  # noqa: F401 — re-exported
from alignstack.tasks.types import Constitution, Principle  # noqa: F401 — the constitution types live in the seam


def load_constitution(path: str | Path | None = None) -> Constitution:
    """A constitution by spec: a YAML/JSON file path (``file:PATH``), ``world`` or ``import:mod:name``
    (None: the world's)."""
    from alignstack.tasks import resolve
    from alignstack.tasks.resolve import _looks_like_path
    spec = str(path) if path is not None else "world"
    if spec.startswith("file:") or _looks_like_path(spec):
        return _files.load_constitution(spec.removeprefix("file:"))      # its errors name file and field
    return resolve(spec, "constitution", key="constitution")


# --------------------------------------------------------------------------- critique → revision


def critique_revise(backend, conversations: list[str], responses: list[str], constitution: Constitution,
                    rounds: int, rng: random.Random, max_tokens: int = 32, temperature: float = 1.0, *,
                    end: str) -> list[list[dict]]:
    """SL-CAI loop. ``conversations``: rendered chats *without* the response (the assistant turn
    is appended by :func:`render_turn`, closed by ``end``); ``backend.generate(prompts, max_tokens, temperature)``
    writes critiques and revisions. Returns per prompt the list of rounds, each
    ``{principle, critique, revision}``; round k's revision replaces the response for round k+1."""
    cur = list(responses)
    out: list[list[dict]] = [[] for _ in responses]
    fmt = constitution.format
    for _ in range(rounds):
        ps = [constitution.sample(rng) for _ in cur]
        heads = [fmt["critique"].format(conversation=render_turn(c, r, end), request=p.critique)
                 for c, r, p in zip(conversations, cur, ps)]
        crit = [_cut(x, fmt["revision"]) for x in backend.generate(heads, max_tokens, temperature)]
        rev_prompts = [h + c + fmt["revision"].format(request=p.revision) for h, c, p in zip(heads, crit, ps)]
        revs = [x.strip() for x in backend.generate(rev_prompts, max_tokens, temperature)]
        for i, (p, c, r) in enumerate(zip(ps, crit, revs)):
            out[i].append({"principle": p.name, "critique": c, "revision": r})
            cur[i] = r
    return out


def render_turn(conversation: str, response: str, end: str) -> str:
    """Conversation (ending with the assistant header) + response + end-of-turn marker."""
    return f"{conversation}{response}{end}"


def chat_prefix(tokenizer, prompt: list[dict]) -> tuple[str, str]:
    """(``prompt`` rendered by the tokenizer's own chat template up to the assistant's turn, the end-of-turn
    marker). A leading BOS is dropped: the judge backend adds its own."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("critic: its tokenizer has no chat template (set one in the critic's "
                          "tokenizer_config.json); Constitutional AI renders conversations with it")
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return text, tokenizer.eos_token or ""


def _cut(text: str, revision_fmt: str) -> str:
    """A generated critique stops where the model starts the revision itself."""
    marker = revision_fmt.split("{request}")[0].strip()
    return (text.split(marker)[0] if marker else text).strip()


# --------------------------------------------------------------------------- the method


@dataclass
class ConstitutionalConfig(RunConfig):
    out: str = "runs/constitutional"
    constitution: str | None = None            # YAML/JSON path | world | import:mod:name; None: the world's
    red_team: str = "world"                    # red-team/benign prompts: world | rows:PATH | import:mod:name
    stage: str = "both"                        # sl | rl | both
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))
    critic: str = "runs/pretrain/model"        # critique/revision writer (world LM: critique documents)
                                               # the critic's harm calls are scored vs ground truth (critic_report)
    sl_init: str | None = None                 # model fine-tuned by SL-CAI (paper: pretrained; None: model.path)
    red_team_prompts: int = 1000
    helpful_prompts: int = 1000
    rounds: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 32
    sl_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, batch_size=32, epochs=1.0,
                                                                      warmup_steps=0, schedule="constant"))
    judge: JudgeConfig = field(default_factory=JudgeConfig)   # RL-CAI feedback model
    n_pairs: int = 1000
    rl_red_team_frac: float = 0.5               # RL-CAI comparison and RL prompts: share of red-team prompts
    rl_prompts: int = 4000                     # RL-CAI prompt pool (same red-team share)
    rm_optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=3e-4, batch_size=16, epochs=1.0, warmup_steps=5, schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0))
    rl: RLConfig = field(default_factory=RLConfig)

    def __post_init__(self):
        super().__post_init__()
        _check_fields(self)


def check_config(cfg: ConstitutionalConfig) -> Constitution:
    """Validate (as when the config is built) and load the constitution (a missing or malformed file is a
    :class:`ConstitutionError` naming file and field)."""
    _check_fields(cfg)
    return load_constitution(cfg.constitution)


def _check_fields(cfg: ConstitutionalConfig) -> None:
    from alignstack.tasks.resolve import check_spec
    check_spec(cfg.red_team, "red_team", "red_team")
    if cfg.constitution is not None:
        check_spec(cfg.constitution, "constitution", "constitution")
    if cfg.stage not in ("sl", "rl", "both"):
        raise ConfigError(f"stage: expected sl, rl or both, got {cfg.stage!r}")
    if cfg.rounds < 1:
        raise ConfigError(f"rounds: need at least one critique → revision round, got {cfg.rounds}")
    if cfg.model.path is None:
        raise ConfigError("model.path: the helpful model that answers red-team prompts")
    if not 0.0 <= cfg.rl_red_team_frac <= 1.0:
        raise ConfigError(f"rl_red_team_frac: expected a fraction in [0, 1], got {cfg.rl_red_team_frac!r}")
    if cfg.n_pairs < 1 or cfg.rl_prompts < 1:
        raise ConfigError(f"n_pairs and rl_prompts must be positive, got {cfg.n_pairs} and {cfg.rl_prompts}")


def red_team_set(cfg: ConstitutionalConfig):
    from alignstack.tasks import resolve
    return resolve(cfg.red_team, "red_team", key="red_team")


def red_team_mix(seed: int, n: int, red_frac: float, red_team=None) -> list:
    """``n`` examples: ``red_frac`` of them harmful (the world's: half in red-team phrasing, as SL-CAI
    uses), the rest benign; shuffled deterministically. ``red_team``: the red-team set (None: the world's)."""
    if red_team is None:
        from alignstack.tasks import resolve
        red_team = resolve("world", "red_team", key="red_team")
    n_red = round(red_frac * n)
    out = red_team.harmful(n_red, seed) + red_team.benign(n - n_red, seed + 1)
    random.Random(f"red-team-mix|{seed}|{n}|{red_frac}").shuffle(out)
    return out


def sl_cai_data(cfg: ConstitutionalConfig, constitution: Constitution, policy, tokenizer, critic,
                red_team=None) -> tuple[list, dict]:
    """Conversations to fine-tune on (revisions of all rounds + helpful samples) and stats. The critic sees
    each conversation in its own tokenizer's chat template."""
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import complete

    rt = red_team if red_team is not None else red_team_set(cfg)
    rng = random.Random(cfg.seed)
    red = rt.harmful(cfg.red_team_prompts, cfg.seed)
    helpful = rt.benign(cfg.helpful_prompts, cfg.seed + 1)
    sc = SamplingConfig(cfg.max_new_tokens, cfg.temperature)
    first = complete(policy, tokenizer, [e.prompt for e in red], sc, cfg.seed)
    prefixes = [chat_prefix(critic.tokenizer, e.prompt) for e in red]
    convs, end = [c for c, _ in prefixes], (prefixes[0][1] if prefixes else "")
    trans = critique_revise(critic, convs, first, constitution, cfg.rounds, rng, cfg.max_new_tokens, cfg.temperature,
                            end=end)
    harm = getattr(rt, "harm", None)
    unsafe = [[harm(e, x) for e, x in zip(red, first)]] if harm else []
    for k in range(cfg.rounds if harm else 0):
        unsafe.append([harm(e, tr[k]["revision"]) for e, tr in zip(red, trans)])
    flags = getattr(rt, "flags_harm", None)
    critic = None
    if unsafe and flags:      # round k's critique is about round k's input: the first response, then revisions
        critic = critic_report([(flags(tr[k]["critique"]), unsafe[k][i] > 0)
                                for k in range(cfg.rounds) for i, tr in enumerate(trans)])
    rows = []
    for e, tr in zip(red, trans):
        for step in tr:
            if step["revision"]:
                rows.append(e.prompt + [{"role": "assistant", "content": step["revision"]}])
    helpful_resp = complete(policy, tokenizer, [e.prompt for e in helpful], sc, cfg.seed + 7) if helpful else []
    rows += [e.prompt + [{"role": "assistant", "content": x}] for e, x in zip(helpful, helpful_resp)]
    stats = {"red_team_prompts": len(red), "helpful_samples": len(helpful),
             "unsafe_by_round": [sum(u) / len(u) for u in unsafe] if unsafe else None, "train_rows": len(rows),
             "critic_report": critic,
             "examples": [{"prompt": red[i].prompt[-1]["content"], "response": first[i], "rounds": trans[i]}
                          for i in range(min(3, len(red)))]}
    return rows, stats


def critic_report(items: list[tuple[bool, bool]]) -> dict:
    """The SL-CAI critic as a labeler of harm, against ground truth: ``items`` are (critique flags the answer as
    harmful, the answer is unsafe) over every critique of every round. ``accuracy`` (95% CI), ``recall`` (unsafe
    answers flagged) and ``specificity`` (safe answers left unflagged); later rounds critique mostly safe
    revisions, so the accuracy leans on specificity and recall is the harder number."""
    from alignstack.methods.rlaif import _mean_ci
    return {"critiques": len(items), "unsafe": sum(u for _, u in items),
            "accuracy": _mean_ci([float(f == u) for f, u in items]),
            "recall": _mean_ci([float(f) for f, u in items if u]),
            "specificity": _mean_ci([float(not f) for f, u in items if not u])}


def train_sl(cfg: ConstitutionalConfig, constitution: Constitution) -> dict:
    from alignstack.data.render import ChatRenderer
    from alignstack.methods.rlaif import local_backend
    from alignstack.methods.sft import render_conversations
    from alignstack.models.load import load_model, load_tokenizer, prepare_model, save_final
    from alignstack.train.supervised import fit

    policy, tok = load_model(cfg.model.path).eval(), load_tokenizer(cfg.model.tokenizer or cfg.model.path)
    critic = local_backend(cfg.critic)
    rows, stats = sl_cai_data(cfg, constitution, policy, tok, critic)
    del policy, critic
    out = Path(cfg.out) / "sl"
    mc = ModelConfig(path=cfg.sl_init or cfg.model.path, max_length=cfg.model.max_length)
    model, tok = prepare_model(mc, seed=cfg.seed)
    items = render_conversations(ChatRenderer(tok, mc.max_length), rows, "sl-cai revisions")
    # every rank builds the same revisions (seeded), then the shared loop shards them and resumes like SFT
    trainer, res = fit(model, tok, items, cfg.sl_optim, out, seed=cfg.seed, log=cfg.log, checkpoint=cfg.checkpoint,
                       dist=cfg.dist, config_yaml=to_yaml(cfg), desc="sl-cai")
    if trainer.is_main:
        save_final(trainer.unwrapped, tok, out, to_yaml(cfg))
        with open(out / "revisions.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps({"messages": r}) + "\n")
    return {**stats, "steps": res.steps, "train_loss": res.final_loss, "path": str(out / "model")}


def train_rl(cfg: ConstitutionalConfig, constitution: Constitution, policy_path: str) -> dict:
    """RL-CAI: principle-sampled AI comparisons → soft-label PM → RL."""
    from alignstack.methods.rlaif import RLAIFConfig, label, run_rl, train_soft_rm
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.train.dist import barrier, is_main_process

    policy, tok = load_model(policy_path).eval(), load_tokenizer(policy_path)
    lcfg = RLAIFConfig(out=cfg.out, seed=cfg.seed, judge=cfg.judge, n_pairs=cfg.n_pairs,
                       temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    # Harmlessness comparisons are made on red-team prompts (the paper's PM data); the rest of the
    # mix keeps the PM from learning "refuse everything" (the paper mixes in helpfulness labels).
    rt = red_team_set(cfg)
    tasks = red_team_mix(cfg.seed + 2, cfg.n_pairs, cfg.rl_red_team_frac, rt)
    rows, report = label(lcfg, policy, tok, principles=constitution.comparison, tasks=tasks,
                         truth=getattr(rt, "ground_truth", None))
    del policy
    out = Path(cfg.out)
    prompts = out / "rl_prompts.jsonl"
    if is_main_process():
        (out / "rl_judge_report.json").write_text(json.dumps(report, indent=2))
        with open(prompts, "w") as f:
            for e in red_team_mix(cfg.seed + 4, cfg.rl_prompts, cfg.rl_red_team_frac, rt):
                f.write(json.dumps(e.row()) + "\n")
    rm = train_soft_rm(rows, policy_path, str(out / "pm"), cfg.rm_optim, cfg.model.max_length, cfg.seed, cfg.log,
                       to_yaml(cfg), cfg.checkpoint, cfg.dist)
    barrier()
    rl = run_rl(cfg.rl, policy_path, f"rm:{rm['path']}", str(out / "rl"), cfg.seed, cfg.log, cfg.model,
                prompts=str(prompts))
    return {"judge": report, "pm": rm, "rl": rl, "path": str(out / "rl" / "model"),
            "red_team_frac": cfg.rl_red_team_frac}


def train(cfg: ConstitutionalConfig) -> dict:
    from alignstack.train.dist import barrier

    t0 = time.perf_counter()
    constitution = check_config(cfg)
    torch.manual_seed(cfg.seed)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    res: dict = {"constitution": constitution.source}
    policy = cfg.model.path
    if cfg.stage in ("sl", "both"):
        res["sl"] = train_sl(cfg, constitution)
        policy = res["sl"]["path"]
        barrier()                 # several processes: the SL-CAI model is saved before RL-CAI loads it
    if cfg.stage in ("rl", "both"):
        res["rl"] = train_rl(cfg, constitution, policy)
        policy = res["rl"]["path"]
    res["policy"] = policy                                 # the final model (pipelines evaluate this one)
    res["wall_s"] = time.perf_counter() - t0
    (Path(cfg.out) / "metrics.json").write_text(json.dumps(res, indent=2, default=str))
    return res
