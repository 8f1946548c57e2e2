"""ReST and HIR on the built-in world, from the cached SFT model; ground truth on 1,000 held-out prompts with
paired per-prompt differences and 95% CIs.

    python experiments/rest_hir.py --sft SFT_MODEL [--part rest|hir|hir-ablation|all] [--work DIR] [--out DIR]

- ``rest`` (T3, translation family): G = 2 Grow steps × Improve steps 0..3 (thresholds 0, 0.7, 0.8, 0.9 on the
  ground-truth reward in [0, 1], ``normalise: range``), lr 2e-4 · 0.7^k. Every step's policy is evaluated; claims:
  GT rises with each Improve step (step i vs step i−1) and with the second Grow step (G2 final vs G1 final).
- ``hir`` (T4, goal-conditioned track/sort/add, evaluated under ``<correct>``): the base (SFT) model, FARL, HIR
  (shipped defaults: CE smoothing 0, contrastive smoothing 0.2, goals balanced), HIR with ``contrastive_coef = 0``,
  HIR with the reference code's coefficients (CE smoothing 0.2, no balancing) and HIR without goal balancing,
  each 3 rounds from the SFT model. Claims: HIR > FARL, HIR > base, HIR > HIR-without-contrastive.
  Evaluated with 4 samples per prompt (per-prompt mean) plus greedy.
- ``hir-ablation``: the contrastive term on/off under four goal weightings (the shipped 90/10 split, 70/30, 50/50
  and the paper's equal row weights) × training seeds ``--seeds`` (train prompts and sampling), on the ``hir``
  part's eval prompts; differences pooled over seeds per prompt. Each run's eval is cached in its folder, so
  processes with different ``--seeds`` can share the work; a last call with ``--seeds`` (none) merges.

Evaluation: ``sampled`` (T = 1) and ``greedy``; the paired claims use both and are reported per mode.
Writes ``rest_hir.json`` and ``rest_hir.md`` (the parts found in the work folder are merged).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

N_EVAL = 1000
REST = ["reward=world:helpfulness", "families=[translate]", "n_prompts=1000", "n_samples=8", "temperature=0.8",
        "grow_steps=2", "improve_steps=3", "lr_decay=0.7", "optim.lr=2e-4", "optim.epochs=1.0", "max_new_tokens=24"]
HIR_COMMON = ["families=[track,sort,add]", "n_prompts=400", "n_samples=4", "rounds=3", "optim.lr=2e-4",
              "optim.epochs=2.0", "max_new_tokens=16"]
HIR_RUNS = {"farl": ["mode=farl"], "hir": ["mode=hir"], "hir_no_contrastive": ["mode=hir", "contrastive_coef=0.0"],
            "hir_reference_coefs": ["mode=hir", "epsilon=0.2", "contrastive_epsilon=0.2", "balance_goals=false"],
            "hir_unbalanced": ["mode=hir", "balance_goals=false"]}
HIR_EVAL_SAMPLES = 4
# contrastive ablation: goal weighting (shipped 90/10 split vs the paper's equal row weights) × contrastive on/off,
# replicated over training seeds (train prompts and sampling); same eval prompts as the hir part
ABLATION = {"goal_weighted": [], "correct_share_0.7": ["correct_share=0.7"], "correct_share_0.5": ["correct_share=0.5"],
            "equal_rows": ["balance_goals=false"]}


def _ci(c: dict) -> dict:
    d = c["diff"]
    return {"mean": d["mean"], "lo": d["lo"], "hi": d["hi"]}


def _eval(load_model, evaluate, EvalConfig, tok, path, tasks, max_new_tokens, samples=1):
    r = evaluate(load_model(path), tok, EvalConfig(max_new_tokens=max_new_tokens, greedy=True, samples=samples),
                 tasks)
    return r


def run_rest(a, work: Path) -> dict:
    import torch

    from alignstack.config import load
    from alignstack.eval.ground_truth import EvalConfig, compare, evaluate
    from alignstack.methods import rest
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.world import corpus as C

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    out = work / "rest"
    cfg = load(rest.ReSTConfig, overrides=[f"out={out}", f"model.path={a.sft}", "log.progress=false", *REST])
    res = rest.train(cfg)
    tok = load_tokenizer(a.sft)
    tasks = C.prompt_set(1, "eval", N_EVAL, {"translate": 1.0})
    evals = {"sft": _eval(load_model, evaluate, EvalConfig, tok, a.sft, tasks, 24)}
    order = ["sft"]
    for e in res["improve"]:
        name = f"G{e['grow']}I{e['improve']}"
        evals[name] = _eval(load_model, evaluate, EvalConfig, tok, out / f"grow{e['grow']}" / f"improve{e['improve']}"
                            / "model", tasks, 24)
        order.append(name)
    modes = ("sampled", "greedy")
    table = {n: {m: evals[n][m]["helpfulness"] for m in modes} for n in order}
    steps = {}
    for prev, cur in zip(order, order[1:]):
        steps[f"{cur} - {prev}"] = {m: _ci(compare(evals[cur], evals[prev], m)) for m in modes}
    last1 = max(n for n in order if n.startswith("G1"))
    last2 = max(n for n in order if n.startswith("G2"))
    extra = {f"{last2} - {last1} (second Grow)": {m: _ci(compare(evals[last2], evals[last1], m)) for m in modes},
             f"{last2} - sft": {m: _ci(compare(evals[last2], evals["sft"], m)) for m in modes},
             f"{last1} - sft": {m: _ci(compare(evals[last1], evals["sft"], m)) for m in modes},
             "G1I0 - sft": {m: _ci(compare(evals["G1I0"], evals["sft"], m)) for m in modes}}
    return {"config": REST, "n_eval": N_EVAL, "gt": table, "consecutive": steps, "claims": extra,
            "train": res, "wall_s": time.perf_counter() - t0}


def run_hir(a, work: Path) -> dict:
    import torch

    from alignstack.config import load
    from alignstack.eval.ground_truth import EvalConfig, compare, evaluate
    from alignstack.methods import hir
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.world import corpus as C

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    tok = load_tokenizer(a.sft)
    tasks = C.prompt_set(1, "eval", N_EVAL, {"track": 1.0, "sort": 1.0, "add": 1.0}, goal="correct")
    evals = {"base": _eval(load_model, evaluate, EvalConfig, tok, a.sft, tasks, 16, HIR_EVAL_SAMPLES)}
    train = {}
    for name, over in HIR_RUNS.items():
        out = work / name
        cfg = load(hir.HIRConfig, overrides=[f"out={out}", f"model.path={a.sft}", "log.progress=false",
                                             *HIR_COMMON, *over, *a.hir_over])
        train[name] = hir.train(cfg)
        evals[name] = _eval(load_model, evaluate, EvalConfig, tok, out / "model", tasks, 16, HIR_EVAL_SAMPLES)
    modes = ("sampled", "greedy")
    table = {n: {m: evals[n][m]["helpfulness"] for m in modes} | {"per_family_sampled": evals[n]["sampled"]
                                                                  ["per_family"]} for n in evals}
    pairs = [("hir", "base"), ("hir", "farl"), ("farl", "base"), ("hir", "hir_no_contrastive"),
             ("hir_no_contrastive", "base"), ("hir_reference_coefs", "base"), ("hir_unbalanced", "base"),
             ("hir", "hir_unbalanced")]
    claims = {f"{x} - {y}": {m: _ci(compare(evals[x], evals[y], m)) for m in modes} for x, y in pairs}
    return {"config": HIR_COMMON + a.hir_over, "runs": HIR_RUNS, "n_eval": N_EVAL, "eval_samples": HIR_EVAL_SAMPLES,
            "gt": table, "claims": claims,
            "train": train, "wall_s": time.perf_counter() - t0}


def run_hir_ablation(a, work: Path) -> dict:
    """Contrastive ablation per goal weighting and training seed; each run's eval is cached in its folder, so
    several processes (``--seeds``) can share the work and a last call merges."""
    import torch

    from alignstack.config import load
    from alignstack.eval.ground_truth import EvalConfig, compare, evaluate
    from alignstack.eval.stats import paired_difference
    from alignstack.methods import hir
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.world import corpus as C

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    tok = load_tokenizer(a.sft)
    tasks = C.prompt_set(1, "eval", N_EVAL, {"track": 1.0, "sort": 1.0, "add": 1.0}, goal="correct")
    base_cache = work / "base" / "eval.json"
    if not base_cache.exists():
        base_cache.parent.mkdir(parents=True, exist_ok=True)
        base_cache.write_text(json.dumps({"eval": _eval(load_model, evaluate, EvalConfig, tok, a.sft, tasks, 16,
                                                        HIR_EVAL_SAMPLES)}))
    base = json.loads(base_cache.read_text())["eval"]
    evals: dict = {}
    for seed in a.seeds:
        for wname, wover in ABLATION.items():
            for con in ("contrastive", "no_contrastive"):
                name = f"{wname}_{con}_s{seed}"
                cache = work / name / "eval.json"
                if not cache.exists():
                    over = [*wover, *(["contrastive_coef=0.0"] if con == "no_contrastive" else []), f"seed={seed}"]
                    cfg = load(hir.HIRConfig, overrides=[f"out={work / name}", f"model.path={a.sft}",
                                                         "log.progress=false", *HIR_COMMON, *over])
                    train = hir.train(cfg)
                    ev = _eval(load_model, evaluate, EvalConfig, tok, work / name / "model", tasks, 16,
                               HIR_EVAL_SAMPLES)
                    cache.write_text(json.dumps({"eval": ev, "train": train, "overrides": over}, default=str))
                evals[name] = json.loads(cache.read_text())["eval"]
    seeds = sorted({int(n.rpartition("_s")[2]) for n in (p.parent.name for p in work.glob("*_s*/eval.json"))})
    for seed in seeds:       # runs of other processes' seeds
        for wname in ABLATION:
            for con in ("contrastive", "no_contrastive"):
                name = f"{wname}_{con}_s{seed}"
                if name not in evals and (work / name / "eval.json").exists():
                    evals[name] = json.loads((work / name / "eval.json").read_text())["eval"]
    seeds = [s for s in seeds if all(f"{w}_{c}_s{s}" in evals for w in ABLATION
                                     for c in ("contrastive", "no_contrastive"))]
    modes = ("sampled", "greedy")
    rows: dict = {}
    for wname in ABLATION:
        on = [evals[f"{wname}_contrastive_s{s}"] for s in seeds]
        off = [evals[f"{wname}_no_contrastive_s{s}"] for s in seeds]
        r = {"per_seed": {s: {m: _ci(compare(x, y, m)) for m in modes} for s, x, y in zip(seeds, on, off)},
             "gt": {m: {"contrastive": sum(x[m]["helpfulness"] for x in on) / len(on),
                        "no_contrastive": sum(y[m]["helpfulness"] for y in off) / len(off)} for m in modes}}
        # pooled over training seeds: per eval prompt, the seed-mean of each arm, then paired over prompts
        for m in modes:
            a_ = [sum(v) / len(v) for v in zip(*(x[m]["per_prompt"] for x in on))]
            b_ = [sum(v) / len(v) for v in zip(*(y[m]["per_prompt"] for y in off))]
            r.setdefault("pooled", {})[m] = _ci(paired_difference(a_, b_))
            r.setdefault("gain_over_base", {})[m] = {"contrastive": _ci(paired_difference(a_, base[m]["per_prompt"])),
                                                     "no_contrastive": _ci(paired_difference(b_, base[m]
                                                                                             ["per_prompt"]))}
            if m == "sampled":
                fams = [t.family for t in tasks]
                r["pooled_per_family"] = {f: _ci(paired_difference([x for x, g in zip(a_, fams) if g == f],
                                                                   [y for y, g in zip(b_, fams) if g == f]))
                                          for f in sorted(set(fams))}
        rows[wname] = r
    return {"config": HIR_COMMON, "ablation": ABLATION, "seeds": seeds, "n_eval": N_EVAL,
            "base": {m: base[m]["helpfulness"] for m in modes},
            "eval_samples": HIR_EVAL_SAMPLES, "rows": rows, "wall_s": time.perf_counter() - t0}


def _fmt(c: dict) -> str:
    return f"{c['mean']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}]"


def render_md(res: dict) -> str:
    lines = ["# ReST and HIR on the built-in world", "",
             "Generated by `experiments/rest_hir.py` from the cached SFT fixture. Ground truth = the world's "
             f"helpfulness on {N_EVAL} held-out eval prompts; differences are paired per prompt with 95% CIs "
             "(sampled = T 1.0, greedy).", ""]
    if "rest" in res:
        r = res["rest"]
        lines += ["## ReST (translation family, reward = ground truth in [0, 1], G = 2, Improve steps 0..3)", "",
                  "| policy | GT sampled | GT greedy | kept rows | kept GT mean | threshold | lr |", "|---|---|---|---|---|---|---|"]
        info = {f"G{e['grow']}I{e['improve']}": e for e in r["train"]["improve"]}
        for n, v in r["gt"].items():
            e = info.get(n, {})
            lines.append(f"| {n} | {v['sampled']:.3f} | {v['greedy']:.3f} | {e.get('kept', '–')} | "
                         f"{e.get('kept_gt_mean', float('nan')):.3f} | {e.get('threshold', '–')} | "
                         f"{e.get('lr', float('nan')):.2e} |")
        lines += ["", "| paired difference | sampled | greedy |", "|---|---|---|"]
        for k, v in {**r["consecutive"], **r["claims"]}.items():
            lines.append(f"| {k} | {_fmt(v['sampled'])} | {_fmt(v['greedy'])} |")
        lines.append("")
    for key in sorted(k for k in res if k.startswith("hir") and "rows" not in res[k]):
        h = res[key]
        extra = [o for o in h["config"] if o not in HIR_COMMON]
        lines += [f"## HIR vs FARL vs base (goal-conditioned track/sort/add, evaluated under `<correct>`)"
                  f"{' — ' + ', '.join(extra) if extra else ''}", "",
                  "| model | GT sampled | GT greedy | per family (sampled) |", "|---|---|---|---|"]
        for n, v in h["gt"].items():
            fam = ", ".join(f"{f} {s:.2f}" for f, s in v["per_family_sampled"].items())
            lines.append(f"| {n} | {v['sampled']:.3f} | {v['greedy']:.3f} | {fam} |")
        lines += ["", "| paired difference | sampled | greedy |", "|---|---|---|"]
        for k, v in h["claims"].items():
            lines.append(f"| {k} | {_fmt(v['sampled'])} | {_fmt(v['greedy'])} |")
        lines.append("")
    for key in sorted(k for k in res if "rows" in res[k]):
        h = res[key]
        lines += [f"## HIR contrastive ablation ({len(h['seeds'])} training seeds: {h['seeds']}; "
                  f"{h['n_eval']} eval prompts × {h['eval_samples']} samples + greedy)", "",
                  "Contrastive − no contrastive, paired per prompt; *pooled* averages each arm over the training "
                  "seeds per prompt first. `goal_weighted`: shipped default (rows relabelled `correct` carry 90% "
                  "of the loss); `equal_rows`: the paper's weighting (every relabelled row counts once).", "",
                  f"Base (SFT) model: {h['base']['sampled']:.3f} sampled, {h['base']['greedy']:.3f} greedy.", "",
                  "| goal weighting | GT sampled on / off | gain over base, on / off (sampled, pooled) | pooled sampled "
                  "| pooled greedy | pooled sampled per family | per seed (sampled) |", "|---|---|---|---|---|---|---|"]
        for w, r in h["rows"].items():
            g = r["gt"]["sampled"]
            per = ", ".join(f"s{s} {_fmt(v['sampled'])}" for s, v in r["per_seed"].items())
            fam = ", ".join(f"{f} {_fmt(v)}" for f, v in r["pooled_per_family"].items())
            gb = r["gain_over_base"]["sampled"]
            lines.append(f"| {w} | {g['contrastive']:.3f} / {g['no_contrastive']:.3f} | "
                         f"{_fmt(gb['contrastive'])} / {_fmt(gb['no_contrastive'])} | {_fmt(r['pooled']['sampled'])} | {_fmt(r['pooled']['greedy'])} | {fam} | {per} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sft", required=True)
    p.add_argument("--part", default="all", choices=["rest", "hir", "hir-ablation", "all", "none"])
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="training seeds of hir-ablation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="runs/experiments/rest_hir")
    p.add_argument("--hir-over", nargs="*", default=[], help="extra overrides for every HIR/FARL run")
    p.add_argument("--hir-name", default="hir", help="result key of the HIR part (e.g. a variant run with --hir-over)")
    p.add_argument("--out", default="experiments/results")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    for part, fn in (("rest", run_rest), ("hir", run_hir), ("hir-ablation", run_hir_ablation)):
        if a.part in (part, "all"):
            name = {"hir": a.hir_name, "hir-ablation": "hir_ablation"}.get(part, part)
            (work / f"{name}.json").write_text(json.dumps(fn(a, work / name if name != part else work), indent=2,
                                                          default=str))
    res = {f.stem: json.loads(f.read_text()) for f in sorted(work.glob("*.json"))}   # rest, hir, hir_* variants
    out = Path(a.out)
    (out / "rest_hir.json").write_text(json.dumps(res, indent=2, default=str))
    (out / "rest_hir.md").write_text(render_md(res))
    print(render_md(res))


if __name__ == "__main__":
    main()
