"""Multi-stage runs: the demo pipeline (world → tokenizer → pretrain → SFT → eval).

Each stage writes its artifacts under ``<out>/<stage>/`` and a ``done.json`` last; with
``resume`` finished stages are skipped. ``summary.json`` holds, per stage, ground-truth
helpfulness, unsafe rate, KL to SFT, win rate vs SFT (paired, with CIs) and wall time.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from alignstack.config import load, to_dict


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    resume: bool = False
    fast: bool = False        # shorter stages (tests)
    eval_prompts: int = 1000
    progress: bool = True


def _stage_done(d: Path) -> dict | None:
    f = d / "done.json"
    return json.loads(f.read_text()) if f.exists() else None


def _finish(d: Path, info: dict) -> dict:
    (d / "done.json").write_text(json.dumps(info, indent=2))
    return info


def run_demo(cfg: DemoConfig) -> dict:
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate, kl_to_reference
    from alignstack.methods import pretrain, sft
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.world.files import write_world

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    common = [f"log.progress={str(cfg.progress).lower()}"]
    short_pre = ["data.n_rows=8000", "optim.max_steps=60"] if cfg.fast else []
    short_sft = ["data.n_rows=3000", "optim.max_steps=60"] if cfg.fast else []
    stages: dict[str, dict] = {}

    def run(name: str, fn) -> dict:
        d = out / name
        done = _stage_done(d) if cfg.resume else None
        if done is not None:
            print(f"[demo] {name}: already done, skipping")
            return done
        print(f"[demo] {name} ...", flush=True)
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        info = fn(d)
        info["wall_s"] = round(time.perf_counter() - t0, 2)
        return _finish(d, info)

    stages["world"] = run("world", lambda d: write_world(d, n_docs=2000, n_sft=1000, n_prompts=cfg.eval_prompts))
    stages["pretrain"] = run("pretrain", lambda d: pretrain.train(
        load(pretrain.PretrainConfig, overrides=[f"out={d}", *common, *short_pre])))
    stages["sft"] = run("sft", lambda d: sft.train(
        load(sft.SFTConfig, overrides=[f"out={d}", f"model.path={out / 'pretrain' / 'model'}", *common, *short_sft])))

    ecfg = EvalConfig(n_prompts=cfg.eval_prompts)
    tasks = eval_tasks(ecfg)
    tok = load_tokenizer(out / "sft" / "model")
    sft_model = load_model(out / "sft" / "model")
    evals = {}
    for name in ("pretrain", "sft"):
        m = sft_model if name == "sft" else load_model(out / name / "model")
        evals[name] = evaluate(m, tok, ecfg, tasks)
    summary = {"config": to_dict(cfg), "stages": {}}
    for name, ev in evals.items():
        c = compare(ev, evals["sft"])
        kl = kl_to_reference(load_model(out / name / "model"), sft_model, tok, tasks[:256]) if name != "sft" else {
            "kl": 0.0}
        summary["stages"][name] = {
            "helpfulness": ev["helpfulness"], "unsafe_rate": ev["unsafe_rate"], "over_refusal": ev["over_refusal"],
            "score": ev["score"], "greedy_helpfulness": ev["greedy"]["helpfulness"],
            "greedy_unsafe_rate": ev["greedy"]["unsafe_rate"], "kl_to_sft": kl["kl"],
            "win_rate_vs_sft": c["win_rate"]["mean"], "win_rate_ci": [c["win_rate"]["lo"], c["win_rate"]["hi"]],
            "score_diff_vs_sft": c["diff"]["mean"], "score_diff_ci": [c["diff"]["lo"], c["diff"]["hi"]],
            "per_family": ev["sampled"]["per_family"], "wall_s": stages[name]["wall_s"],
            "samples": ev["sampled"]["samples"][:4],
        }
    summary["stages"]["world"] = {"wall_s": stages["world"]["wall_s"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _print_table(summary)
    return summary


def _print_table(summary: dict) -> None:
    rows = [(k, v) for k, v in summary["stages"].items() if "helpfulness" in v]
    print(f"\n{'stage':<12}{'helpful':>9}{'unsafe':>8}{'KL→SFT':>8}{'win vs SFT':>12}{'wall s':>8}")
    for k, v in rows:
        print(f"{k:<12}{v['helpfulness']:>9.3f}{v['unsafe_rate']:>8.3f}{v['kl_to_sft']:>8.2f}"
              f"{v['win_rate_vs_sft']:>12.3f}{v['wall_s']:>8.1f}")
