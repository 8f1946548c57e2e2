"""Can a learned reward model rank world v3's benign answers, and is it the labels or the model? (issue 21, dev only)

    python experiments/world_v3_rm_probe.py --sft runs/v3_claims/base/sft/model [--seed 0] [--out DIR]

The v3 claims' helpfulness RM (``experiments/v3_claims.py``'s ``rm``: the annotator pool's pairs, Llama 2's
margin loss) correlates with benign ground truth at Spearman 0.02, −0.07 and −0.18 on its three seeds, and no
learned-reward method raises benign helpfulness on test. This separates the two places that can fail:

1. **The labels.** The pool's train-split pairs (the same pairs the ``rm`` recipe trains on: its feedback settings
   and seed) are checked against ground truth: on benign prompts, how often the chosen answer is the more helpful
   one, where the two differ — both answers attempts (the skill a benign reward must see), or one a refusal.
2. **The model.** RMs from the same SFT model and optimiser settings: one on the pool's labels (the ``rm``
   recipe), and on **oracle labels** (each pair re-ordered by ground truth, ties dropped, strength from the true
   gap) of the same pairs, of the same pairs for 4 epochs, and of 4x the prompts (``VARIANTS``). Each is scored by
   ground truth on dev feedback pairs (dev prompts: new problems in new phrasings, as test's; never test) and on
   fresh train-split pairs (the phrasings PPO trains on): pair accuracy on benign attempt-vs-attempt pairs and on
   refusal-vs-attempt pairs, and Spearman with benign ground truth over every benign response.

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


def _kinds(a: str, b: str) -> str:
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
            if t.is_safety or _kinds(r["chosen"], r["rejected"]) != kind:
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


def differing_rows(rows: list[dict]) -> list[dict]:
    """The pool's rows whose two answers differ in ground truth, labels as the pool gave them: the pairs
    ``oracle_rows`` keeps, so training on one or the other differs by the labels alone."""
    from alignstack.feedback.collect import helpfulness, rows_tasks

    return [r for t, r in zip(rows_tasks(rows), rows) if helpfulness(t, r["chosen"]) != helpfulness(t, r["rejected"])]


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
        for i, (_, r) in enumerate(benign):
            if _kinds(r["chosen"], r["rejected"]) != kind or gt[2 * i] == gt[2 * i + 1]:
                continue
            hi, lo = (2 * i, 2 * i + 1) if gt[2 * i] > gt[2 * i + 1] else (2 * i + 1, 2 * i)
            ch.append(s[hi])
            rj.append(s[lo])
            cl.append(i)
        out[f"gt_pair_accuracy_{kind}"] = pair_accuracy(ch, rj, cl) if ch else None
    return out


# name -> (training rows, extra RM overrides). "pool" is the claims' rm recipe; the rest are oracle-label variants
# that separate the labels from the amount of data and training (ties drop ~60% of the pairs from oracle rows)
VARIANTS = {
    "pool": ("pool", []),
    "oracle": ("oracle", []),
    "oracle_e4": ("oracle", ["optim.epochs=4.0"]),
    "oracle_4x": ("oracle_4x", []),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sft", required=True, help="the SFT model the claims start from (samples and RM init)")
    p.add_argument("--seed", type=int, default=0, help="the claims' training seed: feedback, RM init and order")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"RMs to train, of {', '.join(VARIANTS)}")
    p.add_argument("--out", default="runs/v3_rm_probe")
    p.add_argument("--results", help="JSON to write (default experiments/results/world_v3_rm_probe/seed<S>.json)")
    a = p.parse_args(argv)
    names = a.variants.split(",")
    if not set(names) <= set(VARIANTS):
        p.error(f"--variants: unknown {sorted(set(names) - set(VARIANTS))}; known: {', '.join(VARIANTS)}")
    from dataclasses import replace

    from alignstack.config import load
    from alignstack.data.sources import read_rows, write_jsonl
    from alignstack.feedback.collect import collect
    from alignstack.methods import reward_model as R
    from alignstack.models.heads import RewardModelScorer
    from alignstack.models.load import load_model, load_tokenizer

    t0, out = time.perf_counter(), Path(a.out) / f"seed{a.seed}"
    out.mkdir(parents=True, exist_ok=True)
    base = [f"model.path={a.sft}", f"seed={a.seed}", *RM, "feedback.eval_split=dev", "log.progress=false"]
    cfg = load(R.RewardModelConfig, None, [*base, f"out={out}/collect"])
    if not (out / "evaltrain.jsonl").exists():         # feedback is a pure function of the seed: collect it once
        model, tok = load_model(a.sft), load_tokenizer(a.sft)
        cc = R.collect_config(cfg, "train")
        sets = {"pool": collect(model, tok, cc),                      # the rm recipe's own train pairs
                "dev": collect(model, tok, R.collect_config(cfg, "eval")),   # dev prompts (new phrasings)
                # 4x the prompts (the first quarter the same prompts as "pool"'s), for oracle labels only
                "big": collect(model, tok, replace(cc, n_prompts=4 * cc.n_prompts)),
                # fresh train-split prompts (known phrasings), another draw than any training set's
                "evaltrain": collect(model, tok, replace(cc, n_prompts=500, seed=a.seed + 1000))}
        write_jsonl(out / "pool.jsonl", sets["pool"])
        write_jsonl(out / "oracle.jsonl", oracle_rows(sets["pool"]))
        write_jsonl(out / "pool_differing.jsonl", differing_rows(sets["pool"]))
        write_jsonl(out / "oracle_4x.jsonl", oracle_rows(sets["big"]))
        write_jsonl(out / "dev.jsonl", sets["dev"])
        write_jsonl(out / "evaltrain.jsonl", sets["evaltrain"])
    pool, judge = read_rows(out / "pool.jsonl"), {k: read_rows(out / f"{k}.jsonl") for k in ("dev", "evaltrain")}
    seen = {json.dumps(r["prompt"]) for r in pool}
    res: dict = {"sft": a.sft, "seed": a.seed, "rm_overrides": RM, "n_train_pairs": len(pool),
                 "evaltrain_prompts_also_in_pool": sum(json.dumps(r["prompt"]) in seen for r in judge["evaltrain"]),
                 "pool_labels_vs_truth": label_quality(pool), "rms": {}}
    for name in names:
        rows, extra = VARIANTS[name]
        # no eval_path: the RM is judged below, on dev and train-phrasing pairs, not by reward_model's own metrics
        over = [*base, *extra, f"out={out}/rm_{name}", f"data.path={out}/{rows}.jsonl"]
        if not (out / f"rm_{name}" / "model").exists():
            R.train(load(R.RewardModelConfig, None, over))
        scorer = RewardModelScorer(f"{out}/rm_{name}/model")
        res["rms"][name] = {"train_pairs": sum(1 for _ in open(out / f"{rows}.jsonl")), "overrides": extra,
                            **{split: rm_ranks_benign(scorer, judge[split]) for split in ("dev", "evaltrain")}}
        print(name, json.dumps(res["rms"][name], default=str))
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    dest = Path(a.results or Path(__file__).parent / "results" / "world_v3_rm_probe" / f"seed{a.seed}.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for f in (dest, out / "probe.json"):
        f.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(json.dumps(res["pool_labels_vs_truth"], default=str), f"→ {dest}")


if __name__ == "__main__":
    main()
