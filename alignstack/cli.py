"""`alignstack <command> [--config x.yaml] [a.b=c ...]` — the command line.

Training commands take a YAML config and dotted overrides; user mistakes (bad data, bad config,
missing files) print one clear paragraph and exit with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

COMMANDS = {
    "world": "write the built-in world's data files (--version 3: v3's; `world stats`: splits and their overlaps)",
    "pretrain": "next-token pretraining (built-in world corpus or your text rows)",
    "sft": "supervised fine-tuning on conversations (loss on assistant tokens)",
    "generate": "sample K completions per prompt from a model (rows for feedback/labeling)",
    "eval": "ground truth on held-out world prompts (--world 3 --split dev|test: v3's unmerged columns), or your "
            "prompts (--prompts) scored by your reward (--reward)",
    "feedback": "collect K responses per prompt and simulated rankings / strength-labelled comparisons",
    "reward_model": "train a reward model (K-way rankings or Llama 2 margin pairs; helpfulness or safety)",
    "dpo": "DPO and its family (IPO, cDPO, robust, hinge, SimPO, ORPO, KTO)",
    "ppo": "PPO with a KL penalty to the SFT policy (and PPO-ptx) against any reward",
    "rejection_sampling": "best-of-K by reward, then fine-tune (Llama 2; keeps the best of all rounds)",
    "iterative": "Llama 2 RLHF-V1..Vn: per round fresh feedback, RMs on all feedback, rejection sampling / PPO",
    "grpo": "GRPO: group-normalised critic-free RL",
    "rloo": "RLOO: leave-one-out REINFORCE",
    "rest": "ReST: Grow (sample, score once) and Improve (fine-tune above rising reward thresholds)",
    "hir": "HIR: sample, relabel instructions in hindsight, train with SFT + contrastive + entropy terms",
    "farl": "FARL baseline: keep only correct samples, fine-tune on them (HIR's comparison)",
    "rlaif": "RLAIF: AI-judge soft labels → distilled RM → RL, or d-RLAIF (judge score as the reward)",
    "constitutional": "Constitutional AI: SL-CAI critique → revision fine-tuning, then RL-CAI from AI comparisons",
    "judge": "distil an AI judge for RLAIF / CAI from a grader's chain-of-thought verdicts on the policy's own samples",
    "demo": "run the seed pipeline end to end on the built-in world (--all: every method)",
    "pipeline": "run a pipeline of stages from YAML (see alignstack/pipelines/demo.yaml)",
    "report": "one self-contained HTML report (and PNGs) of a demo/pipeline run folder",
    "label": "the human feedback web app (serve, import, export, users)",
    "serve": "OpenAI-compatible server for a checkpoint",
}
from alignstack.methods.registry import METHOD_BASE, METHODS  # noqa: E402 — the one registry (pipelines too)


def _method(name: str, argv: list[str]) -> int:
    import importlib

    from alignstack.config import check_extras, describe_keys, load
    mod_name, cls_name = METHODS[name]
    keys = describe_keys(getattr(importlib.import_module(mod_name), cls_name))
    p = argparse.ArgumentParser(prog=f"alignstack {name}", description=COMMANDS[name],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Overrides: dotted keys, e.g. optim.lr=1e-4 model.lora.enabled=true\n\n"
                                       "config keys (defaults):\n  " + "\n  ".join(keys))
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in `out`")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    a = p.parse_intermixed_args(argv)       # overrides may come before or after flags
    mod = importlib.import_module(mod_name)
    over = METHOD_BASE.get(name, []) + list(a.overrides) + (["checkpoint.resume=true"] if a.resume else [])
    cfg = load(getattr(mod, cls_name), a.config, over)
    check_extras(cfg)
    res = mod.train(cfg)
    from alignstack.train.dist import finish, is_main_process
    if is_main_process():
        print(json.dumps(res, indent=2, default=str))
    finish()
    return 0


def _world(argv: list[str]) -> int:
    if argv[:1] == ["stats"]:
        return _world_stats(argv[1:])
    from alignstack.world import world_version
    p = argparse.ArgumentParser(prog="alignstack world", description=COMMANDS["world"])
    p.add_argument("--version", default=None,
                   help="world version (2 or 3; default: the default world). v3 writes train and dev prompts, "
                        "never its sealed test split")
    p.add_argument("--out", default="runs/world")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--docs", type=int, default=40000)
    p.add_argument("--sft", type=int, default=12000)
    p.add_argument("--prompts", type=int, default=1000)
    a = p.parse_args(argv)
    try:
        version = world_version(a.version)
    except ValueError as e:
        p.error(str(e))
    if version == "3":
        from alignstack.world.v3.files import write_world
    else:
        from alignstack.world.files import write_world
    info = write_world(a.out, a.seed, a.docs, a.sft, a.prompts)
    print(json.dumps(info, indent=2))
    return 0


def _world_stats(argv: list[str]) -> int:
    from alignstack.world import world_version
    from alignstack.world.v3.stats import format_stats, world_stats
    p = argparse.ArgumentParser(prog="alignstack world stats",
                                description="each split's families, attack styles, distinct problems and templates, "
                                            "and the overlaps between splits")
    p.add_argument("--version", default=None, help="world version (2 or 3; default: the default world)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-n", "--n-prompts", type=int, default=2000, help="prompts drawn per split")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    a = p.parse_args(argv)
    try:
        version = world_version(a.version)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    st = world_stats(version, a.seed, a.n_prompts)
    print(json.dumps(st, indent=2) if a.json else format_stats(st))
    return 0


def _load_prompt_rows(spec: str, n: int | None):
    from alignstack.data.sources import read_rows
    from alignstack.world import corpus as C
    if spec.startswith("world:"):
        split = spec.split(":", 1)[1]
        return [t.to_row() for t in C.prompt_set(0, split, n or 1000)]
    if spec.startswith("world3:"):                  # through the seam, so the sealed test split is refused
        from alignstack.tasks import resolve
        return [t.to_row() for t in resolve(spec, "prompts", key="--prompts", pool=n or 1000).tasks]
    return read_rows(spec, "prompt", limit=n)


def _generate(argv: list[str]) -> int:
    import torch

    from alignstack.data.render import ChatRenderer
    from alignstack.data.sources import write_jsonl
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.models.tokenizer import stop_token_ids
    from alignstack.rollout.engine import SamplingConfig, sample
    p = argparse.ArgumentParser(prog="alignstack generate", description=COMMANDS["generate"])
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", default="world:train", help="prompt rows (JSONL/Parquet), world:train|dev|eval or world3:train|dev")
    p.add_argument("--n-prompts", type=int, default=None)
    p.add_argument("-k", "--num-samples", type=int, default=4)
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 means greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.temperature < 0:
        p.error(f"--temperature must be ≥ 0 (0: greedy), got {a.temperature}")
    rows = _load_prompt_rows(a.prompts, a.n_prompts)
    tok, model = load_tokenizer(a.model), load_model(a.model)
    r = ChatRenderer(tok)
    prompts = [r.prompt_ids(row["prompt"]) for row in rows for _ in range(a.num_samples)]
    sc = SamplingConfig(a.max_new_tokens, a.temperature or 1.0, a.top_p, greedy=a.temperature == 0)
    g = sample(model, prompts, sc, stop_token_ids(tok),
               tok.pad_token_id, torch.Generator().manual_seed(a.seed))
    texts = g.texts(tok)
    out = [{"prompt": row["prompt"], "completions": texts[i * a.num_samples:(i + 1) * a.num_samples],
            "meta": {**(row.get("meta") or {}), "is_safety": bool(row.get("is_safety")), "model": a.model,
                     "temperature": a.temperature}} for i, row in enumerate(rows)]
    write_jsonl(a.out, out)
    print(f"wrote {len(out)} rows × {a.num_samples} completions to {a.out}")
    return 0


def _eval(argv: list[str]) -> int:
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate, kl_to_reference
    from alignstack.models.load import load_model, load_tokenizer
    p = argparse.ArgumentParser(prog="alignstack eval", description=COMMANDS["eval"])
    p.add_argument("--model", required=True)
    p.add_argument("--baseline", help="second model: paired per-prompt comparison (model − baseline) and KL")
    p.add_argument("--n-prompts", type=int, default=1000)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=1, help="samples per prompt at the temperature, averaged")
    p.add_argument("--prompts", default=None,
                   help="your prompt rows (JSONL/Parquet; extra columns reach the reward); default: world held-out")
    p.add_argument("--reward", default=None,
                   help="reward to report: a verifier (exact, numeric:TOL, regex:P), rm:PATH, llama2:HELP,SAFETY, "
                        "judge:PATH or import:module:fn")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--world", default=None, help="world version (2 or 3; default: the default world)")
    p.add_argument("--split", default=None,
                   help="world 2: eval (default) or dev; world 3: dev (default) or test, the sealed split "
                        "(final evaluation only)")
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.samples < 1:
        p.error("--samples must be ≥ 1")
    if a.temperature < 0:
        p.error(f"--temperature must be ≥ 0 (0: greedy), got {a.temperature}")
    from alignstack.world import world_version
    try:
        world = world_version(a.world)
    except ValueError as e:
        p.error(str(e))
    splits = ("dev", "test") if world == "3" else ("eval", "dev")
    split = a.split or splits[0]
    if split not in splits:
        hint = "; the sealed test split is world 3's (--world 3 --split test)" if split == "test" else ""
        p.error(f"world {world} evaluates on --split {' or '.join(splits)}, got {split!r}{hint}")
    if world == "3":
        if a.prompts is not None or a.reward:
            p.error("--world 3 scores world v3's own prompts by its ground truth; --prompts/--reward are for your task")
        if a.temperature == 0:
            p.error("--world 3 always reports greedy decoding beside the sampled one; --temperature must be > 0")
        return _eval_v3(a, split)
    if a.prompts is not None and not a.prompts.startswith("world"):
        if not a.reward:
            p.error("--prompts FILE needs --reward SPEC (the world's ground truth only scores world prompts)")
        out = _eval_reward(a)
        print(json.dumps(out) if a.json else json.dumps(out, indent=2))
        return 0
    cfg = EvalConfig(n_prompts=a.n_prompts, temperature=a.temperature, seed=a.seed, samples=a.samples, split=split)
    tasks = eval_tasks(cfg)
    tok, model = load_tokenizer(a.model), load_model(a.model)
    res = evaluate(model, tok, cfg, tasks)
    out = {k: res[k] for k in ("n_prompts", "helpfulness", "unsafe_rate", "over_refusal", "score")}
    out["red_team_unsafe_rate"] = res["sampled"]["red_team_unsafe_rate"]
    out["per_family"] = res["sampled"]["per_family"]
    out["greedy"] = {k: res["greedy"][k] for k in ("helpfulness", "unsafe_rate", "over_refusal", "score")}
    if a.baseline:
        base = load_model(a.baseline)
        bres = evaluate(base, tok, cfg, tasks)
        out["vs_baseline"] = {m: compare(res, bres, m) for m in ("sampled", "greedy")}
        out["kl_to_baseline"] = kl_to_reference(model, base, tok, tasks[:512])
    if a.reward:
        from alignstack.world.plugin import example_of
        out["reward"] = _eval_reward(a, [example_of(t) for t in tasks], model, tok)
    _emit(out, a)
    return 0


def _emit(out: dict, a, text: str | None = None) -> None:
    """Write an eval result to --out when asked; print it as one JSON line with --json, else ``text``
    (default: indented JSON)."""
    if a.out:
        from pathlib import Path
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out) if a.json else json.dumps(out, indent=2) if text is None else text)


def _eval_v3(a, split: str) -> int:
    """``eval --world 3``: v3's unmerged columns at T and greedily, paired CIs and KL vs ``--baseline``
    (alignstack.eval.world_v3); ``--split test`` reads the sealed split and says so."""
    from alignstack.eval.ground_truth import EvalConfig
    from alignstack.eval.world_v3 import SEALED_NOTE, eval_tasks, format_report, report
    from alignstack.models.load import load_model, load_tokenizer
    if split == "test":
        print(SEALED_NOTE, file=sys.stderr, flush=True)     # stderr: --json keeps stdout one JSON object
    cfg = EvalConfig(n_prompts=a.n_prompts, temperature=a.temperature, seed=a.seed, samples=a.samples,
                     split=split, max_new_tokens=a.max_new_tokens)
    tasks = eval_tasks(split, a.n_prompts, a.seed)
    tok, model = load_tokenizer(a.model), load_model(a.model)
    base = load_model(a.baseline) if a.baseline else None
    out = {"model": a.model, "baseline": a.baseline, **report(model, tok, cfg, tasks, baseline=base)}
    _emit(out, a, format_report(out))
    return 0


def _eval_reward(a, examples=None, model=None, tok=None) -> dict:
    """``--reward`` on ``--prompts`` (or the given examples): mean reward, length, and against
    ``--baseline`` the paired difference, win rate and KL (alignstack.eval.custom)."""
    from alignstack.eval.custom import compare_rewards, load_examples, make_reward, reward_eval
    from alignstack.eval.ground_truth import kl_to_reference
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.rollout.engine import SamplingConfig
    scorer = make_reward(a.reward)
    if examples is None:
        examples = load_examples(a.prompts, a.n_prompts)
    tok = tok or load_tokenizer(a.model)
    model = model or load_model(a.model)
    sc = SamplingConfig(a.max_new_tokens, a.temperature or 1.0, greedy=a.temperature == 0)
    res = reward_eval(model, tok, examples, scorer, sc, a.seed, a.samples)
    out = {"reward_spec": a.reward, **{k: v for k, v in res.items() if k != "per_prompt"}}
    if a.baseline:
        base = load_model(a.baseline)
        bres = reward_eval(base, tok, examples, scorer, sc, a.seed, a.samples)
        out["baseline"] = {k: bres[k] for k in ("mean_reward", "reward_ci", "mean_length")}
        out["vs_baseline"] = compare_rewards(res, bres)
        out["kl_to_baseline"] = kl_to_reference(model, base, tok, [e.prompt for e in examples[:512]], sc)
    return out


def _demo(argv: list[str]) -> int:
    from alignstack.pipeline import DemoConfig, run_demo
    p = argparse.ArgumentParser(prog="alignstack demo", description=COMMANDS["demo"])
    p.add_argument("--out", default=None, help="run folder (every stage's artifacts and summary.json; default "
                                                 "runs/demo, with --world 3 runs/demo_v3)")
    p.add_argument("--all", action="store_true", help="the longer pipeline with every method")
    p.add_argument("--world", type=int, choices=(2, 3), default=2,
                   help="the built-in world: 2 (default) or 3, judged once on its sealed test split (demo_v3.yaml)")
    p.add_argument("--resume", action="store_true", help="skip stages that already finished")
    p.add_argument("--fast", action="store_true", help="shortened stages (smoke test)")
    p.add_argument("--eval-prompts", type=int, default=None, help="held-out prompts (default: the pipeline's, 2000)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    a.out = a.out or ("runs/demo_v3" if a.world == 3 else "runs/demo")
    run_demo(DemoConfig(out=a.out, resume=a.resume, fast=a.fast, all=a.all, eval_prompts=a.eval_prompts,
                        progress=not a.no_progress, world=a.world))
    print(f"\nsummary: {os.path.join(a.out, 'summary.json')}")
    return 0


def _pipeline(argv: list[str]) -> int:
    from pathlib import Path

    from alignstack.pipeline import load_pipeline, run_pipeline
    p = argparse.ArgumentParser(prog="alignstack pipeline", description=COMMANDS["pipeline"],
                                epilog="Overrides: dotted keys of the pipeline, e.g. out=runs/mine eval_prompts=2000")
    p.add_argument("config", help="pipeline YAML")
    p.add_argument("--resume", action="store_true", help="skip stages that already finished")
    p.add_argument("--fast", action="store_true", help="apply each stage's `fast` overrides (smoke test)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*")
    a = p.parse_intermixed_args(argv)       # overrides may follow the flags
    cfg = load_pipeline(a.config, a.overrides)
    run_pipeline(cfg, Path(a.config).resolve().parent, resume=a.resume, fast=a.fast, progress=not a.no_progress)
    print(f"\nsummary: {os.path.join(cfg.out, 'summary.json')}")
    return 0


# the optional extra each delegated command's module needs (its imports fail without it)
EXTRAS = {"alignstack.label.cli": "label", "alignstack.serve.cli": "serve"}


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    from alignstack.config import MissingExtra
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if module not in EXTRAS or not e.name or e.name.startswith("alignstack"):
            raise
        cmd = module.split(".")[1]
        raise MissingExtra(f"alignstack {cmd} needs the '{e.name}' package: pip install 'alignstack[{EXTRAS[module]}]'"
                           ) from None
    return mod.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: alignstack <command> [options]\n\ncommands:")
        for k, v in COMMANDS.items():
            print(f"  {k:<10} {v}")
        print("\n`alignstack <command> --help` for a command's options.")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        import difflib
        near = difflib.get_close_matches(cmd, COMMANDS, n=1)
        print(f"error: unknown command {cmd!r}" + (f"; did you mean {near[0]!r}?" if near else ""), file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")   # per-load weight bars drown our stage progress
    from alignstack.config import ConfigError
    from alignstack.data.formats import DataError
    try:
        if cmd in METHODS:
            return _method(cmd, rest)
        if cmd == "label":
            return _delegate("alignstack.label.cli", rest)
        if cmd == "feedback":
            return _delegate("alignstack.feedback.cli", rest)
        if cmd == "report":
            return _delegate("alignstack.report", rest)
        if cmd == "serve":
            return _delegate("alignstack.serve.cli", rest)
        return {"world": _world, "generate": _generate, "eval": _eval, "demo": _demo, "pipeline": _pipeline}[cmd](rest)
    except (DataError, ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from alignstack.train.loop import TrainingError  # torch is loaded whenever training raised
        if not isinstance(e, TrainingError):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
