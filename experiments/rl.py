"""Online RL from SFT on the built-in world: GRPO, RLOO and PPO against ground truth on 1,000
held-out prompts (paired per-prompt differences vs SFT with 95% CIs, KL to SFT).

    python experiments/rl.py --sft PATH_TO_SFT_MODEL [--rm RM_PATH] [--out experiments/results]

Runs (each from the same SFT model):
- grpo / rloo: the world's exact-match verifier as reward (allowed for these methods);
- ppo_gt: PPO on the ground-truth helpfulness reward (an upper-bound ablation);
- ppo_rm (with --rm): PPO on a learned reward model; ppo_rm_nokl: the same with β = 0, to show
  proxy reward rising while ground truth falls (over-optimisation).
Writes ``rl.json`` and ``rl.md``; the per-iteration proxy/ground-truth curves come from each run's
metrics.jsonl.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RUNS = {
    "grpo": ("grpo", ["algorithm=grpo", "reward=world:correct", "steps=120", "prompts_per_step=16",
                      "optim.lr=3e-4", "beta=0.0"]),
    "rloo": ("grpo", ["algorithm=rloo", "reward=world:correct", "steps=120", "prompts_per_step=16",
                      "optim.lr=3e-4", "beta=0.05"]),
    "ppo_gt": ("ppo", ["reward=world:helpfulness", "steps=40", "optim.lr=1e-4"]),
}


def main() -> None:
    import torch

    from alignstack.config import load
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate, kl_to_reference
    from alignstack.methods import grpo, ppo
    from alignstack.models.load import load_model, load_tokenizer

    p = argparse.ArgumentParser()
    p.add_argument("--sft", required=True)
    p.add_argument("--rm", help="helpfulness reward-model checkpoint (adds ppo_rm and ppo_rm_nokl)")
    p.add_argument("--only", help="comma-separated subset of runs")
    p.add_argument("--work", default="runs/experiments/rl")
    p.add_argument("--out", default="experiments/results")
    a = p.parse_args()
    torch.set_num_threads(2)
    runs = dict(RUNS)
    if a.rm:
        runs["ppo_rm"] = ("ppo", [f"reward=rm:{a.rm}", f"value_init={a.rm}", "steps=40", "optim.lr=1e-4"])
        runs["ppo_rm_nokl"] = ("ppo", [f"reward=rm:{a.rm}", f"value_init={a.rm}", "steps=40", "optim.lr=1e-4",
                                       "init_kl_coef=0.0"])
    if a.only:
        runs = {k: v for k, v in runs.items() if k in a.only.split(",")}
    tok = load_tokenizer(a.sft)
    ecfg = EvalConfig(n_prompts=1000, greedy=True)
    tasks = eval_tasks(ecfg)
    sft_model = load_model(a.sft)
    base = evaluate(sft_model, tok, ecfg, tasks)
    results = {"sft": {"helpfulness": base["helpfulness"], "unsafe_rate": base["unsafe_rate"], "score": base["score"]}}
    for name, (method, over) in runs.items():
        mod, cls = (grpo, grpo.GRPOConfig) if method == "grpo" else (ppo, ppo.PPOConfig)
        out = Path(a.work) / name
        t0 = time.perf_counter()
        train_res = mod.train(load(cls, overrides=[f"out={out}", f"model.path={a.sft}", "log.progress=false", *over]))
        m = load_model(out / "model")
        ev = evaluate(m, tok, ecfg, tasks)
        c, cg = compare(ev, base, "sampled"), compare(ev, base, "greedy")
        kl = kl_to_reference(m, sft_model, tok, tasks[:512])
        results[name] = {"helpfulness": ev["helpfulness"], "unsafe_rate": ev["unsafe_rate"], "score": ev["score"],
                         "score_diff_vs_sft": c["diff"], "win_rate_vs_sft": c["win_rate"],
                         "greedy_score_diff_vs_sft": cg["diff"], "kl_to_sft": kl["kl"],
                         "per_family": ev["sampled"]["per_family"], "train": train_res,
                         "wall_s": time.perf_counter() - t0}
        print(name, json.dumps({k: results[name][k] for k in ("helpfulness", "unsafe_rate", "score_diff_vs_sft",
                                                              "kl_to_sft")}), flush=True)
    outdir = Path(a.out)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "rl.json").write_text(json.dumps(results, indent=2, default=str))
    lines = ["# Online RL from SFT (1,000 held-out prompts, T = 1)", "",
             "| run | helpfulness | unsafe rate | score − SFT [95% CI] | win rate vs SFT | KL to SFT |",
             "|---|---|---|---|---|---|",
             f"| sft | {results['sft']['helpfulness']:.3f} | {results['sft']['unsafe_rate']:.3f} | – | – | 0 |"]
    for k, v in results.items():
        if k == "sft":
            continue
        d, w = v["score_diff_vs_sft"], v["win_rate_vs_sft"]
        lines.append(f"| {k} | {v['helpfulness']:.3f} | {v['unsafe_rate']:.3f} | {d['mean']:+.3f} "
                     f"[{d['lo']:+.3f}, {d['hi']:+.3f}] | {w['mean']:.3f} | {v['kl_to_sft']:.2f} |")
    (outdir / "rl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
