"""Can a learned reward model rank world v3's benign answers, and is it the labels or the model? (issue 21, dev only)

    python experiments/world_v3_rm_probe.py --sft runs/v3_claims/base/sft/model [--seed 0] [--out DIR]

The v3 claims' helpfulness RM (``experiments/v3_claims.py``'s ``rm``: the annotator pool's pairs, Llama 2's
margin loss) correlates with benign ground truth at Spearman 0.02, −0.07 and −0.18 on its three seeds, and no
learned-reward method raises benign helpfulness on test. This separates the two places that can fail:

1. **The labels.** The pool's train-split pairs (the same pairs the ``rm`` recipe trains on: its feedback settings
   and seed) are checked against ground truth: on benign prompts, how often the chosen answer is the more helpful
   one, where the two differ — both answers attempts (the skill a benign reward must see), or one a refusal.
2. **The model.** Two RMs from the same SFT model and optimiser settings, on the same pairs: one on the pool's
   labels (the ``rm`` recipe), one on **oracle labels** (each pair re-ordered by ground truth, ties dropped,
   strength from the true gap). Both are scored on dev feedback pairs (dev prompts, never test) by ground truth:
   pair accuracy on benign attempt-vs-attempt pairs and on refusal-vs-attempt pairs, and Spearman with benign
   ground truth over every benign response.

If the oracle-label RM ranks benign attempts well, the pool's labels are what a learned reward lacks; if it does
not, a reward model of the policy's own size cannot check these answers, and no learned-reward method can find
benign headroom here, whatever its RL settings. Writes ``--out``/probe.json and, by default,
``experiments/results/world_v3_rm_probe/seed<S>.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))      # the claims runner beside this one holds the RM recipe
from v3_claims import RM  # noqa: E402


def _kinds(task, a: str, b: str) -> str:
    from alignstack.world.v3.tasks import is_refusal

    return "attempts" if not is_refusal(a) and not is_refusal(b) else "refusal_involved"


def label_quality(rows: list[dict]) -> dict:
    """On benign prompts, where the pair's ground truth differs: the share whose chosen answer is the better one
    (clustered by prompt), for attempt-vs-attempt pairs and pairs with a refusal."""
    from alignstack.eval.rm_metrics import clustered_mean_ci
    from alignstack.feedback.collect import helpfulness, rows_tasks

    tasks = rows_tasks(rows)
    out: dict = {}
    for kind in ("attempts", "refusal_involved"):
        right, cl = [], []
        for t, r in zip(tasks, rows):
            if t.is_safety or _kinds(t, r["chosen"], r["rejected"]) != kind:
                continue
            gc, gr = helpfulness(t, r["chosen"]), helpfulness(t, r["rejected"])
            if gc != gr:
                right.append(float(gc > gr))
                cl.append(json.dumps(r["prompt"]))
        out[kind] = clustered_mean_ci(right, cl) if right else None
    return out


def oracle_rows(rows: list[dict]) -> list[dict]:
    """The same pairs ordered by ground truth (ties dropped), strength from the true gap; safety labels kept."""
    from alignstack.feedback.collect import helpfulness, rows_tasks
    from alignstack.world.annotators import strength_of_gap

    out = []
    for t, r in zip(rows_tasks(rows), rows):
        gc, gr = helpfulness(t, r["chosen"]), helpfulness(t, r["rejected"])
        if gc == gr:
            continue
        flip = gr > gc
        o = dict(r, strength=strength_of_gap(gc - gr))
        if flip:
            o.update(chosen=r["rejected"], rejected=r["chosen"], chosen_safe=r["rejected_safe"],
                     rejected_safe=r["chosen_safe"])
        out.append(o)
    return out


def rm_ranks_benign(scorer, rows: list[dict]) -> dict:
    """Ground-truth pair accuracy of ``scorer`` on benign dev pairs with a true difference (by kind), and its
    Spearman with benign ground truth over every benign response."""
    from alignstack.eval.rm_metrics import pair_accuracy, spearman
    from alignstack.feedback.collect import helpfulness, rows_tasks

    tasks = rows_tasks(rows)
    benign = [(t, r) for t, r in zip(tasks, rows) if not t.is_safety]
    prompts = [r["prompt"] for _, r in benign for _ in (0, 1)]
    resp = [x for _, r in benign for x in (r["chosen"], r["rejected"])]
    s = scorer(prompts, resp)
    gt = [helpfulness(t, x) for t, r in benign for x in (r["chosen"], r["rejected"])]
    out: dict = {"spearman_gt_benign": spearman(s, gt), "n_benign_pairs": len(benign)}
    for kind in ("attempts", "refusal_involved"):
        ch, rj, cl = [], [], []
        for i, (t, r) in enumerate(benign):
            if _kinds(t, r["chosen"], r["rejected"]) != kind or gt[2 * i] == gt[2 * i + 1]:
                continue
            hi, lo = (2 * i, 2 * i + 1) if gt[2 * i] > gt[2 * i + 1] else (2 * i + 1, 2 * i)
            ch.append(s[hi])
            rj.append(s[lo])
            cl.append(i)
        out[f"gt_pair_accuracy_{kind}"] = pair_accuracy(ch, rj, cl) if ch else None
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sft", required=True, help="the SFT model the claims start from (samples and RM init)")
    p.add_argument("--seed", type=int, default=0, help="the claims' training seed: feedback, RM init and order")
    p.add_argument("--out", default="runs/v3_rm_probe")
    p.add_argument("--results", help="JSON to write (default experiments/results/world_v3_rm_probe/seed<S>.json)")
    a = p.parse_args(argv)
    from alignstack.config import load
    from alignstack.data.sources import write_jsonl
    from alignstack.methods import reward_model as R
    from alignstack.models.heads import RewardModelScorer

    t0, out = time.perf_counter(), Path(a.out) / f"seed{a.seed}"
    out.mkdir(parents=True, exist_ok=True)
    base = [f"model.path={a.sft}", f"seed={a.seed}", *RM, "feedback.eval_split=dev", "log.progress=false"]
    cfg = load(R.RewardModelConfig, None, [*base, f"out={out}/collect"])
    fb = R.collect_world_feedback(cfg)                       # the rm recipe's train pairs; dev pairs to judge
    write_jsonl(out / "pool.jsonl", fb["train"])
    write_jsonl(out / "oracle.jsonl", oracle_rows(fb["train"]))
    write_jsonl(out / "dev.jsonl", fb["eval"])
    res: dict = {"sft": a.sft, "seed": a.seed, "rm_overrides": RM, "n_train_pairs": len(fb["train"]),
                 "pool_labels_vs_truth": label_quality(fb["train"]), "rms": {}}
    for name in ("pool", "oracle"):
        over = [*base, f"out={out}/rm_{name}", f"data.path={out}/{name}.jsonl", f"eval_path={out}/dev.jsonl"]
        r = R.train(load(R.RewardModelConfig, None, over))
        res["rms"][name] = {"train_pairs": sum(1 for _ in open(out / f"{name}.jsonl")),
                            "dev_pair_accuracy_vs_pool_labels": r["eval"].get("pair_accuracy"),
                            **rm_ranks_benign(RewardModelScorer(f"{out}/rm_{name}/model"), fb["eval"])}
        print(name, json.dumps({k: v for k, v in res["rms"][name].items() if k != "train_pairs"}, default=str))
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    dest = Path(a.results or Path(__file__).parent / "results" / "world_v3_rm_probe" / f"seed{a.seed}.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for f in (dest, out / "probe.json"):
        f.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(json.dumps(res["pool_labels_vs_truth"], default=str), f"→ {dest}")


if __name__ == "__main__":
    main()
