"""Reward–KL frontier on the built-in world (issue #7, the analogue of the DPO paper's Fig. 2 with
ground truth instead of an oracle reward): a sweep of DPO β and of PPO's KL target, each point the
policy's ground-truth score against its exact KL to SFT.

    python experiments/frontier_world.py --run runs/demo      # a finished `alignstack demo` folder

Everything starts from the demo's SFT model. DPO trains on the demo's simulated strength-labelled
preference pairs (1,500 rows, the demo recipe); PPO uses the demo's Llama 2 combined reward (its
helpfulness and safety reward models, trained on the same kind of simulated feedback) with the adaptive
KL controller at several targets. Evaluation: 2,000 held-out prompts (seed 5, not the demo's) × 2 samples
at T = 1, paired per-prompt difference vs SFT with 95% CIs; KL = exact sequence KL(π‖π_SFT) on 256
prompts. Writes ``frontier_world.json/.md/.png`` under ``--out``. The comparison is not compute-matched
and both methods see the same kind of feedback but not the same rows (PPO's RMs saw 8k prompts of pairs).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DPO_BETAS = (0.03, 0.1, 0.3, 1.0)
PPO_TARGETS = (0.05, 0.2, 0.6, 2.0)


def main() -> None:
    import torch

    from alignstack.config import load
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate, kl_to_reference
    from alignstack.methods import dpo, ppo
    from alignstack.models.load import load_model, load_tokenizer

    p = argparse.ArgumentParser()
    p.add_argument("--run", help="a finished demo run folder (sft, rm_helpful, rm_safety)")
    p.add_argument("--work", default="runs/experiments/frontier_world")
    p.add_argument("--out", default="experiments/results")
    p.add_argument("--render", action="store_true", help="only rebuild the md/png from the json")
    a = p.parse_args()
    out = Path(a.out)
    if a.render:
        res = json.loads((out / "frontier_world.json").read_text())
        _plot(res, out / "frontier_world.png")
        (out / "frontier_world.md").write_text(report(res))
        return
    if not a.run:
        raise SystemExit("--run DIR (a finished `alignstack demo` folder) is required")
    run, work = Path(a.run), Path(a.work)
    sft_path = run / "sft" / "model"
    for need in (sft_path, run / "rm_helpful" / "model", run / "rm_safety" / "model"):
        if not (need / "config.json").is_file():
            raise SystemExit(f"{need} is missing: run `alignstack demo --out {run}` first")
    torch.set_num_threads(2)
    t_start = time.perf_counter()
    tok, sft = load_tokenizer(sft_path), load_model(sft_path)
    ecfg = EvalConfig(n_prompts=2000, seed=5, samples=2)
    tasks = eval_tasks(ecfg)
    base = evaluate(sft, tok, ecfg, tasks)
    reward = f"llama2:{run}/rm_helpful/model,{run}/rm_safety/model"
    jobs = [("dpo", b, dpo, dpo.DPOConfig,
             [f"model.path={sft_path}", "data.n_rows=1500", f"beta={b}", "rpo_alpha=0.2", "optim.lr=3.0e-4",
              "optim.schedule=linear", "optim.warmup_steps=10", "optim.grad_clip=10.0"]) for b in DPO_BETAS]
    jobs += [("ppo", t, ppo, ppo.PPOConfig,
              [f"model.path={sft_path}", f"reward={reward}", f"value_init={run}/rm_helpful/model", "steps=100",
               "optim.lr=3.0e-5", "adaptive_kl=true", f"kl_target={t}", "init_kl_coef=0.2", "kl_horizon=500"])
             for t in PPO_TARGETS]
    points = []
    for method, knob, mod, cls, over in jobs:
        t0 = time.perf_counter()
        d = work / f"{method}_{knob}"
        mod.train(load(cls, overrides=[f"out={d}", "log.progress=false", *over]))
        model = load_model(d / "model")
        ev = evaluate(model, tok, ecfg, tasks)
        kl = kl_to_reference(model, sft, tok, tasks[:256])
        c = compare(ev, base)["diff"]
        cu = compare(ev, base, metric="per_prompt_unsafe")["diff"]
        points.append({"method": method, "knob": knob, "kl": kl["kl"], "kl_ci": kl["kl_ci"],
                       "score_diff": c, "unsafe_diff": cu, "helpfulness": ev["helpfulness"],
                       "unsafe_rate": ev["unsafe_rate"], "wall_s": time.perf_counter() - t0})
        print(json.dumps(points[-1]), flush=True)
    res = {"run": str(run), "eval": {"prompts": 2000, "seed": 5, "samples": 2},
           "sft": {"helpfulness": base["helpfulness"], "unsafe_rate": base["unsafe_rate"], "score": base["score"]},
           "points": points, "wall_s": time.perf_counter() - t_start}
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier_world.json").write_text(json.dumps(res, indent=2))
    _plot(res, out / "frontier_world.png")
    (out / "frontier_world.md").write_text(report(res))
    print(report(res))


def _plot(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, color, label in (("dpo", "tab:blue", "DPO (β sweep)"), ("ppo", "tab:red", "PPO (KL-target sweep)")):
        pts = sorted((p for p in res["points"] if p["method"] == method), key=lambda p: p["kl"])
        xs = [p["kl"] for p in pts]
        ys = [p["score_diff"]["mean"] for p in pts]
        err = [[p["score_diff"]["mean"] - p["score_diff"]["lo"] for p in pts],
               [p["score_diff"]["hi"] - p["score_diff"]["mean"] for p in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", color=color, label=label, capsize=3)
        for p in pts:
            ax.annotate(f"{p['knob']:g}", (p["kl"], p["score_diff"]["mean"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8, color=color)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("KL(π ‖ π_SFT), nats per response")
    ax.set_ylabel("ground-truth score − SFT (95% CI)")
    ax.set_title("Reward–KL on the world (ground truth)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ci(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def report(res: dict) -> str:
    lines = ["# Reward–KL frontier on the world (ground truth)", "",
             f"From the SFT model of the demo run `{res['run']}`; evaluation on {res['eval']['prompts']} held-out "
             f"prompts (seed {res['eval']['seed']}) × {res['eval']['samples']} samples at T = 1. SFT: helpfulness "
             f"{res['sft']['helpfulness']:.3f}, unsafe rate {res['sft']['unsafe_rate']:.3f}. Produced by "
             f"`experiments/frontier_world.py` in {res['wall_s'] / 60:.0f} min.", "",
             "| method | β / KL target | KL to SFT | score − SFT [95% CI] | unsafe − SFT [95% CI] | helpfulness |",
             "|---|---|---|---|---|---|"]
    for p in sorted(res["points"], key=lambda p: (p["method"], p["kl"])):
        lines.append(f"| {p['method']} | {p['knob']:g} | {p['kl']:.3f} | {_ci(p['score_diff'])} | "
                     f"{_ci(p['unsafe_diff'])} | {p['helpfulness']:.3f} |")
    lines += ["", "![frontier](frontier_world.png)", "", "## Reading", "", verdict(res), "", NOTES]
    return "\n".join(lines)


NOTES = """Hand-written notes (2026-11-24 run): DPO's KL barely depends on β here (0.17–0.36 nats, not
monotone): one epoch with the chosen-NLL term (rpo_alpha 0.2) keeps every run near SFT, so the β sweep
traces a short segment rather than a frontier. PPO's adaptive controller reaches KL ≈ 0.5 at targets 0.6
and 2 within 100 steps, and ground truth falls as KL rises (the learned RMs are being exploited), so
PPO's best point is its most constrained one. Both methods cut the unsafe rate to 0.021 or less."""


def verdict(res: dict) -> str:
    """Which method reaches the higher ground truth at comparable KL: for each PPO point, the DPO score
    interpolated at the same KL (within the DPO KL range), and the mean of the differences."""
    dpo = sorted((p for p in res["points"] if p["method"] == "dpo"), key=lambda p: p["kl"])
    ppo = [p for p in res["points"] if p["method"] == "ppo"]
    from alignstack.eval.claims import interpolation_bracket

    diffs = []
    for p in ppo:
        if (b := interpolation_bracket([q["kl"] for q in dpo], p["kl"])) is not None:
            i, j, w = b
            d_at = (1 - w) * dpo[i]["score_diff"]["mean"] + w * dpo[j]["score_diff"]["mean"]
            diffs.append(d_at - p["score_diff"]["mean"])
    best = {m: max((p for p in res["points"] if p["method"] == m), key=lambda p: p["score_diff"]["mean"])
            for m in ("dpo", "ppo")}
    text = (f"Best point: DPO β = {best['dpo']['knob']:g} {_ci(best['dpo']['score_diff'])} at KL "
            f"{best['dpo']['kl']:.2f}; PPO target {best['ppo']['knob']:g} {_ci(best['ppo']['score_diff'])} at KL "
            f"{best['ppo']['kl']:.2f}. ")
    if diffs:
        m = sum(diffs) / len(diffs)
        text += (f"At the KL of the {len(diffs)} PPO point(s) inside DPO's KL range, DPO's (linearly interpolated) "
                 f"score is {m:+.3f} {'above' if m > 0 else 'below'} PPO's on average — DPO's frontier lies "
                 f"{'above' if m > 0 else 'below'} PPO's here (point estimates; each point's CI is in the table). ")
    else:
        text += "The two sweeps do not overlap in KL, so no same-KL comparison is possible. "
    return text + "One seed per point; PPO optimises learned reward models, DPO the preference pairs directly."


if __name__ == "__main__":
    main()
