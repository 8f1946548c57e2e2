"""Iterative RLHF, Llama 2's RLHF-V1 … Vn (Touvron et al. 2023 §3.2.3; METHODS.md §4.4, A.4).

Each round k (folder ``out/round_k``), in this order, with the stages its YAML entry lists:

1. ``feedback``: sample K responses per prompt from the **newest policy** and label them
   (``feedback.source``): ``simulated`` — the world's simulated annotators (feedback/collect.py;
   ``feedback.world: 3`` asks world v3's annotator pool on its train split);
   ``rows`` — a ranking/preference rows file exported from the labeling app or written by an AI
   labeler (same rows); with ``feedback.wait_s`` the round **waits** (polling) until the file holds
   ``feedback.min_rows`` labelled rows. Written: ``feedback.jsonl``; ``feedback_all.jsonl`` = every
   round's feedback so far.
2. ``reward_model``: retrain the helpfulness RM (and with ``safety_rm`` the safety RM) on **all**
   feedback so far (methods/reward_model.py; Llama 2: margin loss, from the SFT checkpoint).
3. ``rejection_sampling``: best-of-K by the reward (the latest RMs, or a fixed ``reward``), pooled
   over all rounds (``pool``), fine-tuned from the SFT model (``finetune_from: sft``, as in A.4)
   or from the newest policy (methods/rejection_sampling.py).
4. ``ppo``: PPO on top of this round's policy against the same reward (Llama 2: from V5 on).

Every stage writes ``<stage>.json`` (its result) when done and is skipped on resume; a finished
round writes ``done.json`` and is skipped as a whole. ``summary.json`` lists all rounds.

Departures from Llama 2: one policy size (no distillation of the largest model's selections into
smaller ones); the reward of RS/PPO is the helpfulness RM, or Llama 2's piecewise combination
(``llama2:HELP,SAFETY``) when ``safety_rm`` is on; no GAtt stage; the RM starts from the SFT model
each round rather than from the newest chat checkpoint.
"""
from __future__ import annotations

import difflib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from alignstack.config import CheckpointConfig, ConfigError, ModelConfig, load, to_yaml

log = logging.getLogger(__name__)

STAGES = ("feedback", "reward_model", "rejection_sampling", "ppo")   # also their order within a round
SOURCES = ("simulated", "rows")
RM_DEFAULTS = {"objective": "pairwise", "margin": "small"}   # Llama 2: pairs with a margin from the strength


@dataclass
class FeedbackSource:
    source: str = "simulated"         # simulated | rows (labeling-app export / AI labeler output)
    path: str | None = None           # rows: a rows file; "{round}" is replaced by the round number
    min_rows: int = 1                 # rows: labelled rows the round needs
    wait_s: float = 0.0               # rows: poll this long for min_rows (0: do not wait)
    poll_s: float = 10.0
    n_prompts: int = 500              # simulated: prompts per round (world train split)
    mode: str = "preference"          # simulated: ranking | preference (Llama 2: pairs with strength)
    k: int = 4
    temperatures: list[float] = field(default_factory=lambda: [0.7, 1.3])
    max_new_tokens: int = 32
    safety_frac: float | None = None
    annotator_noise: float = 0.1
    annotator_error_rate: float = 0.05
    world: int = 2                    # simulated: the built-in world asked: 2, or 3 (v3's train split labelled by its
    #                                   annotator pool; set rejection_sampling/ppo prompts: world3:train to match)


@dataclass
class RoundConfig:
    stages: list[str] = field(default_factory=lambda: ["feedback", "reward_model", "rejection_sampling"])
    rejection_sampling: dict = field(default_factory=dict)   # this round's overrides of the RS config
    ppo: dict = field(default_factory=dict)
    reward_model: dict = field(default_factory=dict)


def _llama2_rounds() -> list[RoundConfig]:
    return [RoundConfig(), RoundConfig(),
            RoundConfig(stages=["feedback", "reward_model", "rejection_sampling", "ppo"])]


@dataclass
class IterativeConfig:
    out: str = "runs/iterative"
    seed: int = 0
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))   # the SFT model
    rounds: list[RoundConfig] = field(default_factory=_llama2_rounds)
    feedback: FeedbackSource = field(default_factory=FeedbackSource)
    reward_model: dict = field(default_factory=dict)   # overrides of RM_DEFAULTS for every round
    safety_rm: bool = False           # also a safety RM; RS / PPO then use llama2:HELP,SAFETY
    reward: str | None = None         # fixed RS / PPO reward (e.g. world:helpfulness); None: the latest RMs
    rejection_sampling: dict = field(default_factory=dict)   # overrides for every round
    ppo: dict = field(default_factory=dict)
    pool: bool = True                 # keep the best of ALL rounds (False: the last round's only)
    finetune_from: str = "sft"        # sft | latest: the model rejection sampling fine-tunes
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)   # resume: an interrupted stage
    #   continues from its last checkpoint (finished rounds and stages are always reused)

    def __post_init__(self):
        check_config(self)             # a malformed schedule fails when the config is built, not after hours


def _stage_config(cfg: IterativeConfig, i: int, stage: str, fixed: dict):
    """The method config of round ``i``'s ``stage``: defaults ← global dict ← round dict ← ``fixed``."""
    from alignstack.config import _merge
    from alignstack.methods import ppo, rejection_sampling, reward_model
    cls = {"rejection_sampling": rejection_sampling.RejectionSamplingConfig, "ppo": ppo.PPOConfig,
           "reward_model": reward_model.RewardModelConfig}[stage]
    base = _merge(RM_DEFAULTS, cfg.reward_model) if stage == "reward_model" else getattr(cfg, stage)
    if cfg.model.lora.enabled:            # the top-level LoRA switch reaches every stage (a stage dict may override)
        from dataclasses import asdict
        base = _merge({"model": {"lora": asdict(cfg.model.lora)}}, base)
    base = _merge(_merge(base, getattr(cfg.rounds[i], stage)), fixed)
    if cfg.checkpoint.resume:
        base = _merge(base, {"checkpoint": {"resume": True}})
    try:
        sub = load(cls, base=base)
        if stage == "reward_model":
            reward_model.check_config(sub)
        return sub
    except ConfigError as e:
        raise ConfigError(f"rounds[{i}].{stage} (with the global '{stage}' settings): {e}") from None


def check_config(cfg: IterativeConfig) -> None:
    """Reject malformed schedules before any work: no rounds, unknown/duplicate stages, a reward
    needed before any reward model exists, a rows source without a path, bad stage settings."""
    if not cfg.rounds:
        raise ConfigError("rounds: need at least one round (e.g. rounds: [{stages: [feedback, reward_model, "
                          "rejection_sampling]}])")
    if cfg.model.path is None:
        raise ConfigError("model.path: the iterative loop starts from an SFT checkpoint")
    if cfg.finetune_from not in ("sft", "latest"):
        raise ConfigError(f"finetune_from: expected sft or latest, got {cfg.finetune_from!r}")
    fb = cfg.feedback
    if fb.source not in SOURCES:
        raise ConfigError(f"feedback.source: expected one of {SOURCES}, got {fb.source!r}")
    from alignstack.feedback.collect import check_world
    try:
        check_world(fb.world)
    except ValueError as e:
        raise ConfigError(f"feedback.world: {e}") from None
    if fb.source == "rows" and not fb.path:
        raise ConfigError("feedback.path: feedback.source=rows needs the rows file (exported from the labeling "
                          "app or written by an AI labeler)")
    if fb.min_rows < 1 or fb.wait_s < 0 or fb.poll_s <= 0:
        raise ConfigError("feedback: need min_rows ≥ 1, wait_s ≥ 0 and poll_s > 0")
    have_feedback = have_rm = False
    for i, rnd in enumerate(cfg.rounds):
        if not rnd.stages:
            raise ConfigError(f"rounds[{i}].stages: empty; expected some of {', '.join(STAGES)}")
        for s in rnd.stages:
            if s not in STAGES:
                near = difflib.get_close_matches(s, STAGES, n=1)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                raise ConfigError(f"rounds[{i}].stages: unknown stage {s!r}; expected one of "
                                  f"{', '.join(STAGES)}{hint}")
        if len(set(rnd.stages)) != len(rnd.stages):
            raise ConfigError(f"rounds[{i}].stages: a stage is listed twice: {rnd.stages}")
        have_feedback |= "feedback" in rnd.stages
        if "reward_model" in rnd.stages:
            if not have_feedback:
                raise ConfigError(f"rounds[{i}]: stage 'reward_model' needs feedback, but no round up to this "
                                  "one has a 'feedback' stage")
            have_rm = True
        for s in ("rejection_sampling", "ppo"):
            if s in rnd.stages and cfg.reward is None and not have_rm:
                raise ConfigError(f"rounds[{i}]: stage {s!r} needs a reward model, but no round up to this one "
                                  "trains one; add 'reward_model' to its stages or set reward (e.g. "
                                  "reward: rm:PATH or world:helpfulness)")
        for s in ("reward_model", "rejection_sampling", "ppo"):   # bad keys fail now, not after hours
            if s in rnd.stages:
                _stage_config(cfg, i, s, {"model": {"path": cfg.model.path}})


# --------------------------------------------------------------------------- feedback sources


def wait_for_rows(path: str, min_rows: int, wait_s: float, poll_s: float) -> list[dict]:
    """The rows file's validated rows once it holds ≥ ``min_rows`` (polling up to ``wait_s`` seconds)."""
    from alignstack.data.formats import DataError
    from alignstack.methods.reward_model import load_rows

    deadline = time.monotonic() + wait_s
    while True:
        rows: list[dict] = []
        problem = None
        if Path(path).exists():
            try:
                rows = load_rows(path)
            except DataError as e:       # e.g. a half-written export: retry until the deadline
                problem = e
        if len(rows) >= min_rows:
            return rows
        if time.monotonic() >= deadline:
            if problem is not None:
                raise problem
            raise ConfigError(f"{path}: {len(rows)} labelled rows, the round needs feedback.min_rows={min_rows} "
                              f"(waited {wait_s:g} s); export more labels or raise feedback.wait_s")
        log.info("waiting for labels: %s has %d/%d rows", path, len(rows), min_rows)
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def collect_feedback(cfg: IterativeConfig, k: int, policy: str) -> list[dict]:
    fb = cfg.feedback
    if fb.source == "rows":
        return wait_for_rows(fb.path.replace("{round}", str(k)), fb.min_rows, fb.wait_s, fb.poll_s)
    from alignstack.feedback.collect import CollectConfig, collect
    from alignstack.models.load import load_model, load_tokenizer
    cc = CollectConfig(n_prompts=fb.n_prompts, split="train", seed=cfg.seed * 1000 + k, mode=fb.mode, k=fb.k,
                       temperatures=list(fb.temperatures), max_new_tokens=fb.max_new_tokens,
                       safety_frac=fb.safety_frac, annotator_id=f"sim-round{k}", annotator_noise=fb.annotator_noise,
                       annotator_error_rate=fb.annotator_error_rate, world=fb.world)
    return collect(load_model(policy), load_tokenizer(cfg.model.tokenizer or policy), cc, model_name=policy)


# --------------------------------------------------------------------------- the loop


def _stage(rdir: Path, name: str, run) -> dict:
    """Run a stage once: its result is kept in ``rdir/<name>.json`` and reused on resume."""
    done = rdir / f"{name}.json"
    if done.exists():
        return {**json.loads(done.read_text()), "resumed": True}
    from alignstack.train.dist import barrier, is_main_process

    t0 = time.perf_counter()
    res = run()
    res["wall_s"] = time.perf_counter() - t0
    barrier()                     # every process: the stage's files are complete before the next stage reads them
    if is_main_process():
        done.write_text(json.dumps(res, indent=2, default=str))
    barrier()
    return res


def _run_round(cfg: IterativeConfig, i: int, state: dict, out: Path) -> dict:
    from alignstack.data.sources import read_rows, write_jsonl
    from alignstack.methods import ppo, rejection_sampling, reward_model
    k, rnd = i + 1, cfg.rounds[i]
    rdir = out / f"round_{k}"
    rdir.mkdir(parents=True, exist_ok=True)
    res: dict = {"round": k, "stages": list(rnd.stages), "sampled_from": state["policy"]}
    stages = [s for s in STAGES if s in rnd.stages]
    if "feedback" in stages:                                                        # 1. fresh feedback
        def fb():
            rows = collect_feedback(cfg, k, state["policy"])
            write_jsonl(rdir / "feedback.jsonl", rows)
            earlier = [r for f in state["feedback_files"] for r in read_rows(f)]
            # a growing export (one rows file for all rounds) must not count its old labels twice
            merged = list({json.dumps(r, sort_keys=True): r for r in earlier + rows}.values())
            write_jsonl(rdir / "feedback_all.jsonl", merged)
            return {"rows": len(rows), "rows_all": len(merged), "source": cfg.feedback.source}
        res["feedback"] = _stage(rdir, "feedback", fb)
        state["feedback_files"] = [*state["feedback_files"], str(rdir / "feedback.jsonl")]
    if "reward_model" in stages:                                                    # 2. RMs on all feedback
        def rm(target):
            fixed = {"out": str(rdir / f"rm_{target}"), "model": {"path": cfg.model.path}, "target": target,
                     "data": {"path": str(rdir / "feedback_all.jsonl")}, "eval_path": None, "histogram": False,
                     "seed": cfg.seed + k}
            if target == "safety":
                fixed["calib_path"] = str(rdir / "feedback_all.jsonl")   # Platt fit on the annotators' safe labels
            r = reward_model.train(_stage_config(cfg, i, "reward_model", fixed))
            return {key: r.get(key) for key in ("steps", "examples", "train_rows", "train_loss")}
        res["rm_helpfulness"] = _stage(rdir, "rm_helpfulness", lambda: rm("helpfulness"))
        state["rm"] = {"helpfulness": str(rdir / "rm_helpfulness" / "model")}
        if cfg.safety_rm:
            res["rm_safety"] = _stage(rdir, "rm_safety", lambda: rm("safety"))
            state["rm"]["safety"] = str(rdir / "rm_safety" / "model")
    reward = cfg.reward or (f"llama2:{state['rm']['helpfulness']},{state['rm']['safety']}"
                            if "safety" in state.get("rm", {}) else f"rm:{state.get('rm', {}).get('helpfulness')}")
    if "rejection_sampling" in stages:                                              # 3. best-of-K, pooled
        start = cfg.model.path if cfg.finetune_from == "sft" else state["policy"]
        fixed = {"out": str(rdir / "rejection_sampling"), "model": {"path": start}, "sampler": state["policy"],
                 "reward": reward, "round": k, "seed": cfg.seed,
                 "pool": state.get("pool") if cfg.pool else None}
        res["rejection_sampling"] = _stage(
            rdir, "rejection_sampling",
            lambda: rejection_sampling.train(_stage_config(cfg, i, "rejection_sampling", fixed)))
        state["policy"] = str(rdir / "rejection_sampling" / "model")
        state["pool"] = str(rdir / "rejection_sampling" / "pool.json")
    if "ppo" in stages:                                                             # 4. PPO on top
        fixed = {"out": str(rdir / "ppo"), "model": {"path": state["policy"]}, "reward": reward,
                 "seed": cfg.seed + k}
        res["ppo"] = _stage(rdir, "ppo", lambda: {key: v for key, v in
                                                  ppo.train(_stage_config(cfg, i, "ppo", fixed)).items()
                                                  if not isinstance(v, (list, dict))})
        state["policy"] = str(rdir / "ppo" / "model")
    res["reward"] = reward if {"rejection_sampling", "ppo"} & set(stages) else None
    res["policy"] = state["policy"]
    return res


def train(cfg: IterativeConfig) -> dict:
    check_config(cfg)
    if not Path(cfg.model.path).exists():
        raise ConfigError(f"model.path: {cfg.model.path} not found (the SFT checkpoint the rounds start from)")
    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    state: dict = {"policy": cfg.model.path, "feedback_files": [], "rm": {}, "pool": None}
    rounds = []
    for i in range(len(cfg.rounds)):
        done = out / f"round_{i + 1}" / "done.json"
        if done.exists():                                     # a finished round is skipped on resume
            saved = json.loads(done.read_text())
            state = saved["state"]
            rounds.append({**saved["result"], "skipped": True})
            continue
        log.info("iterative: round %d/%d, stages %s", i + 1, len(cfg.rounds), cfg.rounds[i].stages)
        res = _run_round(cfg, i, state, out)
        done.write_text(json.dumps({"result": res, "state": state}, indent=2, default=str))
        rounds.append(res)
    summary = {"rounds": rounds, "policy": state["policy"], "reward_models": state["rm"],
               "wall_s": time.perf_counter() - t0}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
