"""Do two rejection-sampling rounds beat one? (Llama 2 §3.2.3, METHODS.md §4.5) — the round-2 follow-up
to ``experiments/rejection_sampling.py``, whose round 2 reused round 1's train prompts and fine-tuned SFT
again, and showed no round-2 gain on fresh eval prompts.

    python experiments/rs_rounds.py [--sft SFT_MODEL] [--n-prompts 1500] [--k 8]

Here each round gets **fresh train prompts** (Llama 2 collects new prompts every round) and two ways of
building the round-2 model are compared, both sampling from the round-1 model:

- ``r2_pooled_from_sft``: fine-tune SFT on the best of both rounds (Llama 2 from RLHF-V4);
- ``r2_from_r1``: continue the round-1 model on the round-2 selections only (the iterated-policy view).

Reward: the world's ground-truth helpfulness (an oracle RM, an upper bound for a learned one). Evaluation:
2,000 held-out eval prompts nobody tuned on (seed 2028) × 4 samples at T = 1, averaged per prompt; paired
95% CIs. Writes ``rs_rounds.{json,md}``; ``--report`` rewrites the markdown from the JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rejection_sampling import newest_fixture_sft

EVAL = {"n_prompts": 2000, "seed": 2028, "samples": 4}
PAIRS = [("round1", "sft"), ("r2_pooled_from_sft", "round1"), ("r2_from_r1", "round1"),
         ("r2_pooled_from_sft", "sft"), ("r2_from_r1", "sft"), ("r2_from_r1", "r2_pooled_from_sft")]


def _ci(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def report(r: dict) -> str:
    L = ["# Rejection sampling: does a second round help? (fresh prompts per round)", "",
         f"From the SFT model; best-of-{r['k']} at T = 1 on {r['n_prompts']} fresh train prompts per round (round 1: "
         f"seed 0, round 2: seed 1), oracle reward `world:helpfulness`. Eval: {EVAL['n_prompts']} held-out prompts "
         f"(seed {EVAL['seed']}) × {EVAL['samples']} samples at T = 1 averaged per prompt. Produced by "
         f"`python experiments/rs_rounds.py` ({r['wall_s'] / 60:.0f} min on 2 shared CPU cores).", "",
         "| model | helpfulness | unsafe rate | new selections | training rows (pool) | pool reward mean |",
         "|---|---|---|---|---|---|"]
    for n, e in r["eval"].items():
        t = r["train"].get(n, {})
        L.append(f"| {n} | {e['helpfulness']:.3f} | {e['unsafe_rate']:.3f} | {t.get('kept', '–')} | "
                 f"{t.get('pool_rows', '–')} | {t.get('pool_reward_mean', float('nan')):.3f} |")
    L += ["", "| paired difference | helpfulness | unsafe (harmful prompts) |", "|---|---|---|"]
    for k, v in r["comparisons"].items():
        L.append(f"| {k} | {_ci(v['helpfulness'])} | {_ci(v['unsafe'])} |")
    c = r["comparisons"]

    def shown(key: str, sign: int = 1) -> str:
        d = c[key]["helpfulness"]
        lo, hi = d["lo"] * sign, d["hi"] * sign
        return "**shown**" if min(lo, hi) > 0 else ("not shown (CI spans 0)" if max(lo, hi) > 0 else "**reversed**")

    L += ["", "## Claims (95% CI clear of 0 counts as shown)", "",
          f"- two rounds beat one (pooled round 2, fine-tuned from SFT as Llama 2 does, vs round 1): "
          f"{shown('r2_pooled_from_sft - round1')}",
          f"- two rounds beat one (round 2 continuing the round-1 model): {shown('r2_from_r1 - round1')}",
          f"- the two ways of building round 2 differ (continued − pooled): {shown('r2_from_r1 - r2_pooled_from_sft')}",
          "", "Reading: with fresh train prompts every round, round 2 samples from a better policy (mean reward "
          f"of the samples {r['train']['round1']['reward_mean']:.3f} in round 1 → "
          f"{r['train']['r2_from_r1']['reward_mean']:.3f} in round 2) and both ways of using them beat round 1 on "
          "held-out prompts, on helpfulness and on unsafe compliance. The earlier experiment "
          "(`rejection_sampling.md`), whose round 2 re-used round 1's prompts, found no round-2 gain on its "
          "confirmation prompts; this suggests new prompts carry much of the second round's gain (the two "
          "experiments also differ in eval prompts and pool size, so this is not a controlled comparison)."]
    return "\n".join(L) + "\n"


def main() -> None:
    import torch

    from alignstack.config import load
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate
    from alignstack.methods import rejection_sampling as rs
    from alignstack.models.load import load_model, load_tokenizer

    p = argparse.ArgumentParser()
    p.add_argument("--sft", default=newest_fixture_sft())
    p.add_argument("--n-prompts", type=int, default=1500)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--work", default="runs/experiments/rs_rounds")
    p.add_argument("--out", default="experiments/results")
    p.add_argument("--report", action="store_true", help="only rewrite the markdown from the committed JSON")
    a = p.parse_args()
    if a.report:
        res = json.loads((Path(a.out) / "rs_rounds.json").read_text())
        (Path(a.out) / "rs_rounds.md").write_text(report(res))
        print(report(res))
        return
    if not a.sft:
        raise SystemExit("no SFT model: pass --sft (or build the test fixture once)")
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    work = Path(a.work)
    common = ["reward=world:helpfulness", f"n_prompts={a.n_prompts}", f"k={a.k}", "temperature=1.0",
              "log.progress=false"]
    r1 = work / "round1"
    runs = {
        "round1": [*common, f"out={r1}", "round=1", "seed=0", f"model.path={a.sft}"],
        "r2_pooled_from_sft": [*common, f"out={work / 'r2_pooled_from_sft'}", "round=2", "seed=1",
                               f"model.path={a.sft}", f"sampler={r1 / 'model'}", f"pool={r1 / 'pool.json'}"],
        "r2_from_r1": [*common, f"out={work / 'r2_from_r1'}", "round=2", "seed=1", f"model.path={r1 / 'model'}"],
    }
    train = {}
    for name, over in runs.items():
        t = time.perf_counter()
        res = rs.train(load(rs.RejectionSamplingConfig, overrides=over))
        train[name] = {k: v for k, v in res.items() if not isinstance(v, (dict, list))} | {
            "wall_s": time.perf_counter() - t}
        print(name, json.dumps(train[name]), flush=True)
    ecfg = EvalConfig(n_prompts=EVAL["n_prompts"], seed=EVAL["seed"], samples=EVAL["samples"], greedy=False)
    tasks, tok = eval_tasks(ecfg), load_tokenizer(a.sft)
    paths = {"sft": a.sft, **{n: work / n / "model" for n in runs}}
    ev = {n: evaluate(load_model(path), tok, ecfg, tasks) for n, path in paths.items()}
    result = {"sft": a.sft, "n_prompts": a.n_prompts, "k": a.k, "eval_cfg": EVAL, "train": train,
              "eval": {n: {"helpfulness": e["helpfulness"], "unsafe_rate": e["unsafe_rate"]} for n, e in ev.items()},
              "comparisons": {f"{x} - {y}": {"helpfulness": compare(ev[x], ev[y])["diff"],
                                             "unsafe": compare(ev[x], ev[y], metric="per_prompt_unsafe")["diff"]}
                              for x, y in PAIRS},
              "wall_s": time.perf_counter() - t0}
    out = Path(a.out)
    (out / "rs_rounds.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "rs_rounds.md").write_text(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
