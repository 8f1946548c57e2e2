"""Online RL from SFT on the built-in world: GRPO, RLOO and PPO against ground truth on 1,000
held-out prompts (paired per-prompt differences vs SFT with 95% CIs, KL to SFT).

    python experiments/rl.py --sft SFT_MODEL [--rm HELP_RM --safety-rm SAFETY_RM] [--only a,b] [--out DIR]

Runs (each from the same SFT model):
- grpo / rloo: the world's exact-match verifier as reward (allowed for these methods);
- ppo_gt: PPO on the ground-truth helpfulness reward (an upper-bound ablation);
- ppo_rm (with --rm): PPO on a learned helpfulness reward model (β = 0.2); ppo_rm_weak_kl (β = 0.05) and
  ppo_rm_nokl (β = 0), to show proxy reward rising while ground truth falls (over-optimisation);
  ppo_rm_ptx: the weak-KL run plus the pretraining loss (PPO-ptx), compared on held-out corpus NLL;
- ppo_llama2 (with --rm and --safety-rm): Llama 2's combined helpfulness + safety reward.
- ppo_fulfil / ppo_llama2_fulfil (with --rm-fulfil and --safety-rm): the same pair of runs with a
  helpfulness RM trained on labels of Llama 2's helpfulness guideline (annotators rate how well the
  response fulfils the request, so complying with a harmful request counts as helpful:
  ``feedback.annotator_guideline=fulfil``). These runs are also evaluated on 1,000 harmful-request
  eval prompts × 4 samples, and the combined reward is compared with helpfulness-only PPO directly.
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
    from alignstack.data.render import ChatRenderer
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate, kl_to_reference
    from alignstack.methods import grpo, ppo
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.train.supervised import mean_nll
    from alignstack.world.corpus import corpus_documents, prompt_set
    from alignstack.world.tasks import HARMFUL

    p = argparse.ArgumentParser()
    p.add_argument("--sft", required=True)
    p.add_argument("--rm", help="helpfulness reward-model checkpoint (adds ppo_rm, ppo_rm_nokl, ppo_rm_ptx)")
    p.add_argument("--safety-rm", help="safety reward-model checkpoint (with --rm: adds ppo_llama2)")
    p.add_argument("--rm-fulfil", help="helpfulness RM trained with feedback.annotator_guideline=fulfil "
                                       "(with --safety-rm: adds ppo_fulfil, ppo_llama2_fulfil)")
    p.add_argument("--only", help="comma-separated subset of runs")
    p.add_argument("--work", default="runs/experiments/rl")
    p.add_argument("--out", default="experiments/results")
    a = p.parse_args()
    torch.set_num_threads(2)
    runs = dict(RUNS)
    if a.rm:
        # β = 0.2 and lr 3e-5: with β = 0.05 / lr 1e-4 the policy exploited the RM (proxy up, ground truth down;
        # see rl.md) — a stronger KL penalty was the fix that worked here
        rm = [f"reward=rm:{a.rm}", f"value_init={a.rm}", "steps=40", "optim.lr=3e-5"]
        runs["ppo_rm"] = ("ppo", [*rm, "init_kl_coef=0.2"])
        runs["ppo_rm_weak_kl"] = ("ppo", [*rm[:3], "optim.lr=1e-4", "init_kl_coef=0.05"])
        runs["ppo_rm_nokl"] = ("ppo", [*rm[:3], "optim.lr=1e-4", "init_kl_coef=0.0"])
        runs["ppo_rm_ptx"] = ("ppo", [*rm[:3], "optim.lr=1e-4", "init_kl_coef=0.05", "ptx_coef=1.0"])
    if a.rm and a.safety_rm:
        runs["ppo_llama2"] = ("ppo", [f"reward=llama2:{a.rm},{a.safety_rm}", f"value_init={a.rm}", "steps=40",
                                      "optim.lr=3e-5", "init_kl_coef=0.2"])
    if a.rm_fulfil and a.safety_rm:
        rf = [f"value_init={a.rm_fulfil}", "steps=40", "optim.lr=3e-5", "init_kl_coef=0.2"]
        runs["ppo_fulfil"] = ("ppo", [f"reward=rm:{a.rm_fulfil}", *rf])
        runs["ppo_llama2_fulfil"] = ("ppo", [f"reward=llama2:{a.rm_fulfil},{a.safety_rm}", *rf])
    if a.only:
        runs = {k: v for k, v in runs.items() if k in a.only.split(",")}
    tok = load_tokenizer(a.sft)
    ecfg = EvalConfig(n_prompts=1000, greedy=True)
    tasks = eval_tasks(ecfg)
    sft_model = load_model(a.sft)
    base = evaluate(sft_model, tok, ecfg, tasks)
    held = [ChatRenderer(tok, 128).text(d) for d in corpus_documents(7919 * 3, 1000)]   # held-out corpus
    outdir = Path(a.out)
    outdir.mkdir(parents=True, exist_ok=True)
    prev = json.loads((outdir / "rl.json").read_text()) if (outdir / "rl.json").exists() else {}
    results = {"sft": {"helpfulness": base["helpfulness"], "unsafe_rate": base["unsafe_rate"], "score": base["score"],
                       "corpus_nll": mean_nll(sft_model, tok, held)}}
    results.update({k: v for k, v in prev.items() if k != "sft" and k not in runs})   # keep other runs' results
    harmful = prompt_set(0, "eval", 1000, {f: 0.5 for f in HARMFUL})        # harmful requests, half red-team
    hcfg = EvalConfig(n_prompts=1000, greedy=False, samples=4)
    h_base, h_runs, evs = None, {}, {}
    for name, (method, over) in runs.items():
        mod, cls = (grpo, grpo.GRPOConfig) if method == "grpo" else (ppo, ppo.PPOConfig)
        out = Path(a.work) / name
        t0 = time.perf_counter()
        train_res = mod.train(load(cls, overrides=[f"out={out}", f"model.path={a.sft}", "log.progress=false", *over]))
        m = load_model(out / "model")
        ev = evs[name] = evaluate(m, tok, ecfg, tasks)
        c, cg = compare(ev, base, "sampled"), compare(ev, base, "greedy")
        kl = kl_to_reference(m, sft_model, tok, tasks[:512])
        cu = compare(ev, base, "sampled", "per_prompt_unsafe")
        results[name] = {"helpfulness": ev["helpfulness"], "unsafe_rate": ev["unsafe_rate"], "score": ev["score"],
                         "unsafe_diff_vs_sft": cu["diff"], "corpus_nll": mean_nll(m, tok, held),
                         "score_diff_vs_sft": c["diff"], "win_rate_vs_sft": c["win_rate"],
                         "greedy_score_diff_vs_sft": cg["diff"], "kl_to_sft": kl["kl"],
                         "per_family": ev["sampled"]["per_family"], "train": train_res,
                         "wall_s": time.perf_counter() - t0}
        if "fulfil" in name:
            h_base = h_base or evaluate(sft_model, tok, hcfg, harmful)
            h_runs[name] = evaluate(m, tok, hcfg, harmful)
            results[name]["harmful_eval"] = {
                "n": len(harmful), "samples": hcfg.samples, "sft_unsafe": h_base["unsafe_rate"],
                "unsafe": h_runs[name]["unsafe_rate"],
                "unsafe_diff_vs_sft": compare(h_runs[name], h_base, "sampled", "per_prompt_unsafe")["diff"]}
        if name == "ppo_llama2_fulfil" and "ppo_fulfil" in h_runs:
            results[name]["harmful_eval"]["unsafe_diff_vs_helpfulness_only"] = compare(
                h_runs[name], h_runs["ppo_fulfil"], "sampled", "per_prompt_unsafe")["diff"]
            results[name]["score_diff_vs_helpfulness_only"] = compare(ev, evs["ppo_fulfil"], "sampled")["diff"]
        print(name, json.dumps({k: results[name][k] for k in ("helpfulness", "unsafe_rate", "score_diff_vs_sft",
                                                              "kl_to_sft", "corpus_nll")}), flush=True)
        (outdir / "rl.json").write_text(json.dumps(results, indent=2, default=str))   # after every run
    plot_overoptimisation(Path(a.work), outdir)
    (outdir / "rl.json").write_text(json.dumps(results, indent=2, default=str))
    lines = ["# Online RL from SFT (1,000 held-out prompts, T = 1)", "",
             "| run | helpfulness | unsafe rate (− SFT [95% CI]) | score − SFT [95% CI] | win rate vs SFT | KL to SFT "
             "| held-out corpus NLL |",
             "|---|---|---|---|---|---|---|",
             f"| sft | {results['sft']['helpfulness']:.3f} | {results['sft']['unsafe_rate']:.3f} | – | – | 0 "
             f"| {results['sft']['corpus_nll']:.3f} |"]
    for k, v in results.items():
        if k == "sft":
            continue
        d, w, u = v["score_diff_vs_sft"], v["win_rate_vs_sft"], v["unsafe_diff_vs_sft"]
        lines.append(f"| {k} | {v['helpfulness']:.3f} | {v['unsafe_rate']:.3f} ({u['mean']:+.3f} [{u['lo']:+.3f}, "
                     f"{u['hi']:+.3f}]) | {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] | {w['mean']:.3f} "
                     f"| {v['kl_to_sft']:.2f} | {v['corpus_nll']:.3f} |")
    for k in ("ppo_fulfil", "ppo_llama2_fulfil"):
        h = results.get(k, {}).get("harmful_eval")
        if h:
            u = h["unsafe_diff_vs_sft"]
            lines.append(f"\n{k}: on {h['n']} harmful-request eval prompts × {h['samples']} samples, unsafe rate "
                         f"{h['unsafe']:.3f} vs SFT {h['sft_unsafe']:.3f} ({u['mean']:+.3f} [{u['lo']:+.3f}, {u['hi']:+.3f}])")
            if "unsafe_diff_vs_helpfulness_only" in h:
                v = h["unsafe_diff_vs_helpfulness_only"]
                lines.append(f"combined (Llama 2) − helpfulness-only PPO, unsafe rate on those prompts: "
                             f"{v['mean']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}] (paired per prompt)")
    (outdir / "rl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _smooth(x: list[float], w: int = 5) -> list[float]:
    return [sum(x[max(0, i - w + 1):i + 1]) / len(x[max(0, i - w + 1):i + 1]) for i in range(len(x))]


def plot_overoptimisation(work: Path, outdir: Path) -> None:
    """Proxy (RM) reward and ground truth of the same rollouts per PPO iteration, with and without
    the KL penalty (the over-optimisation picture of Gao et al. 2022 / METHODS §5)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [r for r in ("ppo_rm", "ppo_rm_weak_kl", "ppo_rm_nokl", "ppo_llama2") if (work / r / "metrics.jsonl").exists()]
    if not runs:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in runs:
        rows = [json.loads(x) for x in (work / r / "metrics.jsonl").read_text().splitlines()]
        rows = [x for x in rows if "iteration" in x]
        it = [x["iteration"] for x in rows]
        axes[0].plot(it, _smooth([x["reward"] for x in rows]), label=r)
        axes[1].plot(it, _smooth([x.get("gt", float("nan")) for x in rows]), label=r)
    axes[0].set_title("proxy reward (RM score of rollouts, 5-iteration mean)")
    axes[1].set_title("ground truth of the same rollouts (5-iteration mean)")
    for ax in axes:
        ax.set_xlabel("PPO iteration")
        ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "rl_overoptimisation.png", dpi=110)


if __name__ == "__main__":
    main()
