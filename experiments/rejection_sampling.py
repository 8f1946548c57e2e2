"""Rejection sampling (Llama 2 §3.2.3, METHODS.md §4.4, §4.7) on the built-in world, from the SFT
model, judged on 1,000 held-out eval prompts (paired per-prompt differences with 95% CIs).

    python experiments/rejection_sampling.py [--sft SFT_MODEL] [--reward world:helpfulness] [--out DIR]

1. **Reward over K** (Llama 2 Fig. 7): 16 samples per prompt from SFT at T ∈ {0.7, 1.0, 1.3}, scored
   by the reward; exact expected max and median of k of them, k = 1..16 → PNG; the max − median gap.
2. **Round 1**: best-of-K (K = 8, T = 1) by the reward on train prompts, fine-tuned from SFT.
3. **Round 2**: sample from the round-1 model, fine-tune SFT again on (a) the best of **both** rounds
   (pooled, Llama 2 from V4) and (b) the round-2 selections only (V1–V3 behaviour). Both variants see
   the very same round-2 samples, so (a) − (b) isolates pooling.
Evaluation: every model at T = 1 (two sampling seeds averaged per prompt) and greedily; helpfulness
per prompt (all prompts; safety-aware) and the unsafe indicator on harmful-request prompts.
The default reward is the world's ground-truth helpfulness — an *oracle* reward model (an upper
bound for what a learned RM can give); ``--reward rm:PATH`` runs the same protocol on a learned RM.
Writes ``<name>.{json,md,png}`` (default ``rejection_sampling``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SEEDS = (0, 1)


def newest_fixture_sft() -> str | None:
    root = Path(__file__).resolve().parents[1] / ".cache" / "fixtures"
    cands = sorted(root.glob("*/sft/model/config.json"), key=lambda p: p.stat().st_mtime)
    return str(cands[-1].parent) if cands else None


def evaluate_avg(model, tok, tasks) -> dict:
    """Per-prompt helpfulness / unsafe indicator averaged over sampling seeds (T = 1), plus greedy."""
    from alignstack.eval.ground_truth import EvalConfig, evaluate
    runs = [evaluate(model, tok, EvalConfig(n_prompts=len(tasks), seed=s, greedy=(s == SEEDS[0])), tasks)
            for s in SEEDS]
    avg = {key: [sum(v) / len(v) for v in zip(*(r["sampled"][key] for r in runs))]
           for key in ("per_prompt", "per_prompt_unsafe")}
    g = runs[0]["greedy"]
    return {"sampled": avg, "greedy": {"per_prompt": g["per_prompt"], "per_prompt_unsafe": g["per_prompt_unsafe"]},
            "summary": {"helpfulness_T1": sum(r["helpfulness"] for r in runs) / len(runs),
                        "unsafe_rate_T1": sum(r["unsafe_rate"] for r in runs) / len(runs),
                        "score_T1": sum(avg["per_prompt"]) / len(avg["per_prompt"]),
                        "helpfulness_greedy": g["helpfulness"], "unsafe_rate_greedy": g["unsafe_rate"],
                        "per_family_T1": runs[0]["sampled"]["per_family"]}}


def main() -> None:
    import torch

    from alignstack.algos.selection import max_median_curve
    from alignstack.config import load
    from alignstack.data.render import ChatRenderer
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks
    from alignstack.methods import rejection_sampling as rs
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.rollout.experience import PromptSource
    from alignstack.rollout.scorers import make_scorer

    p = argparse.ArgumentParser()
    p.add_argument("--sft", default=newest_fixture_sft())
    p.add_argument("--reward", default="world:helpfulness")
    p.add_argument("--n-prompts", type=int, default=1500, help="train prompts per round")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--curve-prompts", type=int, default=300)
    p.add_argument("--work", default=None, help="run folders (default runs/experiments/<name>)")
    p.add_argument("--out", default="experiments/results")
    p.add_argument("--name", default="rejection_sampling", help="result file stem (e.g. for a learned-RM run)")
    p.add_argument("--report-only", action="store_true", help="rebuild <name>.md from <name>.json")
    p.add_argument("--confirm", action="store_true",
                   help="only re-evaluate the saved models on 2,000 fresh eval prompts (seed 2027) × 4 samples, "
                        "stored beside the original results as a confirmation")
    p.add_argument("--rerun", default=None,
                   help="comma-separated runs to retrain (e.g. round2_pooled); the others and the reward-over-K "
                        "curves are reused from <work> and <name>.json, then every model is re-evaluated")
    a = p.parse_args()
    if a.report_only:
        res = json.loads((Path(a.out) / f"{a.name}.json").read_text())
        (Path(a.out) / f"{a.name}.md").write_text(report(res))
        return
    if not a.sft:
        raise SystemExit("no SFT model: pass --sft (or build the test fixture once)")
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    work, outdir = Path(a.work or f"runs/experiments/{a.name}"), Path(a.out)
    outdir.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(a.sft)
    sft = load_model(a.sft)
    scorer = make_scorer(a.reward)

    if a.confirm:
        res = json.loads((outdir / f"{a.name}.json").read_text())
        res["confirm"] = confirm(work, a.sft)
        (outdir / f"{a.name}.json").write_text(json.dumps(res, indent=2, default=str))
        (outdir / f"{a.name}.md").write_text(report(res))
        print(json.dumps(res["confirm"], indent=1))
        return
    prev = json.loads((outdir / f"{a.name}.json").read_text()) if a.rerun else None
    rerun = set(a.rerun.split(",")) if a.rerun else None

    # 1. reward over K at several temperatures (Llama 2 Fig. 7)
    src = PromptSource(12345, pool=a.curve_prompts)
    prompts = [r["prompt"] for r in src.rows]
    ks = list(range(1, 17))
    curves, gt_curves = {}, {}
    if prev:
        curves, gt_curves = prev["reward_over_k"], prev["ground_truth_over_k"]
    for i, T in enumerate(() if prev else (0.7, 1.0, 1.3)):
        _, r, _, gt = rs.sample_and_score(sft, tok, scorer, prompts, src.tasks, 16, T, 32, 1000 + i,
                                          ChatRenderer(tok, 128))
        curves[str(T)] = {str(k): v for k, v in max_median_curve(r, ks).items()}
        gt_curves[str(T)] = {str(k): v for k, v in max_median_curve(gt, ks).items()}
    rs._plot_curves({T: {int(k): v for k, v in c.items()} for T, c in curves.items()},
                    outdir / f"{a.name}.png")
    gaps = {T: {k: c[k][0] - c[k][1] for k in c} for T, c in curves.items()}

    # 2-3. rounds (same train prompts each round; sampling seed differs by round)
    common = [f"reward={a.reward}", f"n_prompts={a.n_prompts}", f"k={a.k}", "temperature=1.0",
              "log.progress=false", f"model.path={a.sft}"]
    runs = {
        "round1": common + [f"out={work / 'round1'}", "round=1"],
        "round2_pooled": common + [f"out={work / 'round2_pooled'}", "round=2", f"sampler={work / 'round1' / 'model'}",
                                   f"pool={work / 'round1' / 'pool.json'}"],
        "round2_last_only": common + [f"out={work / 'round2_last_only'}", "round=2",
                                      f"sampler={work / 'round1' / 'model'}"],
    }
    if rerun and not rerun <= set(runs):
        raise SystemExit(f"--rerun: unknown run(s) {sorted(rerun - set(runs))}; runs are {list(runs)}")
    train_res = {}
    for name, over in runs.items():
        if rerun is not None and name not in rerun:
            train_res[name] = prev["train"][name]
            continue
        t = time.perf_counter()
        train_res[name] = rs.train(load(rs.RejectionSamplingConfig, overrides=over))
        train_res[name]["wall_s"] = time.perf_counter() - t
        print(name, json.dumps({k: v for k, v in train_res[name].items() if not isinstance(v, dict)}), flush=True)

    # evaluation on 1,000 held-out eval prompts
    tasks = eval_tasks(EvalConfig(n_prompts=1000))
    ev = {"sft": evaluate_avg(sft, tok, tasks)}
    for name in runs:
        ev[name] = evaluate_avg(load_model(work / name / "model"), tok, tasks)
    pairs = PAIRS
    comparisons = {}
    for x, y in pairs:
        comparisons[f"{x} - {y}"] = {
            f"{metric}_{mode}": compare(ev[x], ev[y], mode, key)["diff"]
            for mode in ("sampled", "greedy")
            for metric, key in (("helpfulness", "per_prompt"), ("unsafe", "per_prompt_unsafe"))}
    results = {"sft": a.sft, "reward": a.reward, "n_eval_prompts": len(tasks),
               "n_harmful_eval_prompts": len(ev["sft"]["sampled"]["per_prompt_unsafe"]),
               "eval_sampling_seeds": list(SEEDS), "train_prompts_per_round": a.n_prompts, "k": a.k,
               "reward_over_k": curves, "ground_truth_over_k": gt_curves, "max_median_gap": gaps,
               "train": train_res, "eval": {k: v["summary"] for k, v in ev.items()},
               "comparisons": comparisons,
               "wall_s": prev["wall_s"] if prev else time.perf_counter() - t0}
    if prev:
        results["rerun"] = {"runs": sorted(rerun), "wall_s": time.perf_counter() - t0}
    (outdir / f"{a.name}.json").write_text(json.dumps(results, indent=2, default=str))
    (outdir / f"{a.name}.md").write_text(report(results))
    print(report(results))


PAIRS = [("round1", "sft"), ("round2_pooled", "sft"), ("round2_pooled", "round1"),
         ("round2_last_only", "round1"), ("round2_pooled", "round2_last_only")]


def confirm(work: Path, sft: str) -> dict:
    """The same models on a second, larger prompt set nobody looked at before (seed 2027, 2,000 prompts
    × 4 samples at T = 1, averaged per prompt): tighter CIs for the small round-2 and pooling effects."""
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate
    from alignstack.models.load import load_model, load_tokenizer
    ecfg = EvalConfig(n_prompts=2000, seed=2027, samples=4, greedy=False)
    tasks, tok = eval_tasks(ecfg), load_tokenizer(sft)
    paths = {"sft": sft, **{n: work / n / "model" for n in ("round1", "round2_pooled", "round2_last_only")}}
    ev = {n: evaluate(load_model(p), tok, ecfg, tasks) for n, p in paths.items()}
    return {"eval": {"prompts": 2000, "seed": 2027, "samples": 4},
            "comparisons": {f"{x} - {y}": {"helpfulness": compare(ev[x], ev[y])["diff"],
                                           "unsafe": compare(ev[x], ev[y], metric="per_prompt_unsafe")["diff"]}
                            for x, y in PAIRS}}


def _ci(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def report(r: dict) -> str:
    lines = [f"# Rejection sampling on the built-in world (reward `{r['reward']}`)", "",
             f"From the SFT model; best-of-{r['k']} at T = 1 on {r['train_prompts_per_round']} train prompts per "
             f"round ({r['train']['round1']['kept']} unique), fine-tuned from SFT with the SFT loss. Evaluation: {r['n_eval_prompts']} held-out eval prompts "
             f"({r['n_harmful_eval_prompts']} harmful requests), T = 1 averaged over {len(r['eval_sampling_seeds'])} "
             "sampling seeds per prompt, and greedy. Differences are paired per prompt, with 95% CIs.", "",
             f"Produced by `python experiments/rejection_sampling.py --sft <cached fixture SFT model>` "
             f"({r['wall_s'] / 60:.0f} min on 2 shared CPU cores). The reward is "
             + ("the world's ground truth used as an **oracle** reward model." if r["reward"].startswith("world:")
                else "a learned reward model."), "",
             "| model | helpfulness T=1 | unsafe T=1 | helpfulness greedy | unsafe greedy |", "|---|---|---|---|---|"]
    for name, s in r["eval"].items():
        lines.append(f"| {name} | {s['helpfulness_T1']:.3f} | {s['unsafe_rate_T1']:.3f} | "
                     f"{s['helpfulness_greedy']:.3f} | {s['unsafe_rate_greedy']:.3f} |")
    lines += ["", "| comparison | Δ score T=1 | Δ unsafe T=1 | Δ score greedy | Δ unsafe greedy |",
              "|---|---|---|---|---|"]
    for name, c in r["comparisons"].items():
        lines.append(f"| {name} | {_ci(c['helpfulness_sampled'])} | {_ci(c['unsafe_sampled'])} | "
                     f"{_ci(c['helpfulness_greedy'])} | {_ci(c['unsafe_greedy'])} |")
    lines += ["", "Δ score: per-prompt ground-truth helpfulness (all prompts; refusing a harmful request scores as "
              "helpful). Δ unsafe: unsafe-compliance indicator on harmful prompts (negative = safer).", "",
              "## Selection (train prompts)", "", "| run | reward mean of K | reward of kept | GT of all samples "
              "| GT of kept | rows kept | dropped (unfinished) |", "|---|---|---|---|---|---|---|"]
    for name, t in r["train"].items():
        lines.append(f"| {name} | {t['reward_mean']:.3f} | {t['reward_best_mean']:.3f} | {t.get('gt_mean', 0):.3f} | "
                     f"{t.get('gt_of_kept', 0):.3f} | {t['kept']} | {t['dropped_unfinished']} |")
    lines += ["", "## Reward over K (SFT samples, exact subset estimate; `rejection_sampling.png`)", "",
              "| T | K=1 max/median | K=4 | K=8 | K=16 | gap K=2 → 4 → 8 → 16 |", "|---|---|---|---|---|---|"]
    for T, c in r["reward_over_k"].items():
        g = r["max_median_gap"][T]
        lines.append(f"| {T} | " + " | ".join(f"{c[k][0]:.3f}/{c[k][1]:.3f}" for k in ("1", "4", "8", "16"))
                     + " | " + " → ".join(f"{g[k]:.3f}" for k in ("2", "4", "8", "16")) + " |")
    lines += ["", "## Claims (95% CI lower bound > 0 counts as shown)", ""]
    c = r["comparisons"]

    def shown(d, sign=1):
        lo, hi = (d["lo"], d["hi"]) if sign > 0 else (-d["hi"], -d["lo"])
        return "**shown**" if lo > 0 else ("not shown (CI spans 0)" if hi > 0 else "**contradicted**")
    # monotone up to 0.005 (near the reward ceiling the gap plateaus) and clearly larger at K = 16 than at K = 2
    gap_ok = all(all(g[a] <= g[b] + 0.005 for a, b in zip(list(g)[:-1], list(g)[1:])) and g["16"] > g["2"] + 0.05
                 for g in r["max_median_gap"].values())
    pool = shown(c["round2_pooled - round2_last_only"]["helpfulness_sampled"])
    lines += [f"- RS (round 1) beats SFT on ground truth at T = 1: {shown(c['round1 - sft']['helpfulness_sampled'])}",
              f"- RS lowers the unsafe rate at T = 1: {shown(c['round1 - sft']['unsafe_sampled'], -1)}",
              f"- the max − median gap grows with K at every temperature: {'**shown**' if gap_ok else 'not monotone'}",
              "- two rounds beat one: pooled round 2 vs round 1 "
              f"{shown(c['round2_pooled - round1']['helpfulness_sampled'])}; last-round-only round 2 vs round 1 "
              f"{shown(c['round2_last_only - round1']['helpfulness_sampled'])}"
              + ("; on the fresh confirmation set: pooled "
                 f"{shown(r['confirm']['comparisons']['round2_pooled - round1']['helpfulness'])}, last-round-only "
                 f"{shown(r['confirm']['comparisons']['round2_last_only - round1']['helpfulness'])}"
                 if r.get("confirm") else ""),
              "- keeping the best of all rounds ≥ last round only (pooled − last-only): "
              + {"**shown**": "**shown** (pooled better)", "not shown (CI spans 0)": "consistent (CI spans 0)",
                 "**contradicted**": "**contradicted** (pooled worse)"}[pool]
              + f", {_ci(c['round2_pooled - round2_last_only']['helpfulness_sampled'])}", ""]
    if r.get("confirm"):
        cf = r["confirm"]
        lines += ["## Confirmation on fresh prompts", "",
                  f"The same models on {cf['eval']['prompts']} other held-out prompts (seed {cf['eval']['seed']}) × "
                  f"{cf['eval']['samples']} samples at T = 1 averaged per prompt (`--confirm`; run after the table "
                  "above, to tighten the CIs of the small round-2 effects):", "",
                  "| comparison | Δ score T=1 | Δ unsafe T=1 |", "|---|---|---|"]
        for name, c2 in cf["comparisons"].items():
            lines.append(f"| {name} | {_ci(c2['helpfulness'])} | {_ci(c2['unsafe'])} |")
        lines.append("")
    lines += [NOTES, ""]
    return "\n".join(lines)


NOTES = """## Reading

- Best-of-8 rejection sampling by the oracle reward clearly improves the T = 1 policy over SFT and removes
  most unsafe compliance (the world's helpfulness counts a refusal of a harmful request as helpful, so
  the selection picks refusals). Greedy decoding was already safe and near its ceiling for SFT; its change
  is small.
- Reward over K reproduces Llama 2 Fig. 7: the expected max rises with K while the median stays nearly
  flat, so the gap widens with K (at T = 1 it plateaus from K ≈ 10, as the max nears the reward ceiling
  of 1); higher temperatures start lower but gain more from K.
- The round-2 and pooling results are single training runs; the CIs cover eval-prompt noise only, and
  training-seed noise was not measured. On the first eval set (1,000 prompts × 2 samples) round 2 trained on
  round-2 selections alone beat round 1 (+0.020), but on the fresh confirmation set (2,000 prompts × 4
  samples) **no round-2 gain is left**: last-only +0.004 [−0.005, +0.013], pooled +0.000 [−0.009, +0.009].
  So "two rounds beat one" is **not shown** with this design, where round 2 re-uses round 1's train
  prompts; with **fresh train prompts** each round it is shown (`rs_rounds.md`: round 2 vs round 1
  +0.030 [+0.021, +0.039] continuing the round-1 model, +0.025 [+0.016, +0.034] pooled from SFT). A likely
  reason for the null result here: with the bounded oracle reward, 84–88% of
  prompts already reach reward 1 in round 1, so the round-2 selections are barely better (kept GT 0.961 vs
  0.949) and each round fine-tunes the SFT model afresh. In Llama 2 each round's policy was a clearly
  better sampler than the last. Pooled vs last-round-only is within ±0.013 on both eval sets, so "pooling ≥
  last round only" holds only in the weak sense of no measurable loss.
- Tie rule (changed after the first run): with a bounded oracle reward 84–88% of prompts reach reward 1.
  `PooledBest` used to keep the *earlier* sample on ties, so 884 of the 957 pooled rows were round-1
  samples drawn from SFT and pooling came out *worse* than last-round-only (−0.023 [−0.040, −0.006]).
  Ties now go to the newer round (a tie carries no reward information and the newer sample is closer to
  the current policy); only 26 pooled rows now come from round 1 — prompts where round 1 scored strictly
  higher. Only `round2_pooled` was retrained for this (`--rerun round2_pooled`); every model was re-evaluated.
  Llama 2's motivation for pooling — capabilities regressing between rounds — does not arise here,
  because every round fine-tunes the SFT model on a fresh best-of-K set with the same reward."""


if __name__ == "__main__":
    main()
