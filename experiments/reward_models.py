"""Reward-model reproductions on the built-in world (METHODS §3.4 "RM batching", §4.7 "Margin").

1. **Margin** (Llama 2 Table 28): SFT samples at T = 0.7 and 1.3 paired and labelled with a
   strength by the simulated annotator; pairwise RMs with no / small / large margin, 1 epoch.
   Expected: accuracy up on "significantly better" pairs, flat or down on "negligibly better";
   a wider, more bimodal score distribution with the large margin.
2. **Batching** (InstructGPT §3.1): K ∈ 4..9 samples per prompt ranked by the Plackett–Luce
   annotator; the K-way loss (one prompt = one batch element, each response forwarded once) vs
   the same rankings flattened into shuffled pairs, trained 3 epochs with a constant learning rate
   (3e-4, the tuned default, and 1e-3) and evaluated after every epoch. Expected: the flat RM's held-out pair loss rises after epoch 1.
3. **Safety RM** (Llama 2 §4.2–4.3): safety target, Platt-calibrated; ROC AUC against ground-truth
   safety and unsafe precision/recall at the 0.15 gate; from strength-labelled pairs and from K-way
   rankings re-sorted safe-first.

Writes ``experiments/results/reward_models.json``, ``reward_models_margin_hist.png``,
``reward_models_batching.png`` and ``reward_models.md``.

    .venv/bin/python experiments/reward_models.py --sft .cache/fixtures/<key>/sft/model
    .venv/bin/python experiments/reward_models.py --sft ... --quick     # reduced sizes (CI)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alignstack.config import load, to_dict  # noqa: E402
from alignstack.data.render import ChatRenderer  # noqa: E402
from alignstack.data.sources import write_jsonl  # noqa: E402
from alignstack.eval import rm_metrics as M  # noqa: E402
from alignstack.feedback.collect import CollectConfig, collect  # noqa: E402
from alignstack.methods import reward_model as RM  # noqa: E402
from alignstack.models.heads import RewardModelScorer, reward_model_from_causal_lm  # noqa: E402
from alignstack.models.load import load_model, load_tokenizer  # noqa: E402
from alignstack.world.annotators import STRENGTH_BY_BUCKET  # noqa: E402
from alignstack.world.corpus import sft_rows  # noqa: E402

RESULTS = ROOT / "experiments" / "results"


def _ci(d: dict) -> str:
    return f"{d['mean']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]"


def collect_sets(sft: str, work: Path, n_train: int, n_eval: int, n_calib: int) -> dict:
    """Feedback files: preference pairs (T 0.7/1.3) and K=4..9 rankings, train/dev/eval splits."""
    tok, model = load_tokenizer(sft), load_model(sft)
    out = {}
    specs = {
        "pref_train": dict(mode="preference", split="train", n_prompts=n_train, k=4, temperatures=[0.7, 1.3], seed=0),
        "pref_eval": dict(mode="preference", split="eval", n_prompts=n_eval, k=4, temperatures=[0.7, 1.3], seed=2),
        "rank_train": dict(mode="ranking", split="train", n_prompts=n_train // 4, k=4, k_max=9,
                           temperatures=[1.0], seed=10),
        "rank_eval": dict(mode="ranking", split="eval", n_prompts=n_eval // 2, k=4, k_max=9, temperatures=[1.0],
                          seed=12),
        "safe_train": dict(mode="preference", split="train", n_prompts=n_train // 2, k=4, temperatures=[0.7, 1.3],
                           safety_frac=0.5, seed=20),
        "safe_rank_train": dict(mode="ranking", split="train", n_prompts=n_train // 4, k=4, k_max=9,
                                temperatures=[0.7, 1.3], safety_frac=0.5, seed=23),
        "safe_calib": dict(mode="preference", split="dev", n_prompts=n_calib, k=4, temperatures=[0.7, 1.3],
                           safety_frac=0.5, seed=21),
        "safe_eval": dict(mode="preference", split="eval", n_prompts=n_eval, k=4, temperatures=[0.7, 1.3],
                          safety_frac=0.5, seed=22),
    }
    for name, kw in specs.items():
        rows = collect(model, tok, CollectConfig(annotator_id=f"sim-{name}", **kw), model_name=sft)
        out[name] = str(write_jsonl(work / f"{name}.jsonl", rows))
    demos = [{"messages": r["messages"]} for r in sft_rows(0, 1000)]
    out["demos"] = str(write_jsonl(work / "demos.jsonl", demos))
    return out


def margin_runs(sft: str, files: dict, work: Path) -> dict:
    res = {}
    for margin in ("none", "small", "large"):
        cfg = load(RM.RewardModelConfig, overrides=[
            f"model.path={sft}", f"out={work / f'rm_margin_{margin}'}", "log.progress=false", "objective=pairwise",
            f"margin={margin}", f"data.path={files['pref_train']}", f"eval_path={files['pref_eval']}",
            f"demos_path={files['demos']}", "optim.batch_size=32"])
        t0 = time.perf_counter()
        r = RM.train(cfg)
        ev = r["eval"]
        scorer = RewardModelScorer(Path(cfg.out) / "model")
        rows = RM.load_rows(files["pref_eval"])
        flat_p = [x["prompt"] for x in rows for _ in range(2)]
        flat_r = [y for x in rows for y in (x["chosen"], x["rejected"])]
        scores = scorer(flat_p, flat_r)
        res[margin] = {
            "pair_accuracy": ev["pair_accuracy"], "accuracy_by_strength": ev["accuracy_by_strength"],
            "gap_by_strength": ev.get("gap_by_strength"),
            "gt_pair_accuracy": ev["gt_pair_accuracy"], "spearman_gt": ev["spearman_gt"],
            "kendall_gt": ev["kendall_gt"], "within_prompt_kendall_gt": ev["within_prompt_kendall_gt"],
            "pair_loss": ev["pair_loss"], "score_std": ev["score_std"],
            "bimodality_coefficient": M.bimodality_coefficient(scores), "train_pairs": r["examples"],
            "steps": r["steps"], "seconds": time.perf_counter() - t0, "scores": scores}
        print(f"[margin {margin}] acc {_ci(ev['pair_accuracy'])} sig {ev['accuracy_by_strength']['significantly_better']['mean']:.3f}"
              f" negl {ev['accuracy_by_strength']['negligibly_better']['mean']:.3f}", flush=True)
    return res


def batching_runs(sft: str, files: dict, work: Path, epochs: int, lr: float = 3e-4) -> dict:
    """K-way vs flat pairs on the same rankings; held-out metrics after every epoch (constant LR)."""
    tok = load_tokenizer(sft)
    renderer = ChatRenderer(tok, 96)
    train_rows = RM.load_rows(files["rank_train"])
    eval_rows = RM.load_rows(files["rank_eval"])
    res = {}
    for objective, bs in (("ranking", 16), ("pairwise", 32)):
        cfg = load(RM.RewardModelConfig, overrides=[
            f"model.path={sft}", f"out={work / f'rm_batch_{objective}'}", "log.progress=false",
            f"objective={objective}", "margin=none", f"optim.batch_size={bs}", f"optim.epochs={epochs}",
            "optim.schedule=constant", f"optim.lr={lr}"])
        ex = RM.build_examples(train_rows, objective, "none", renderer, files["rank_train"])
        steps_per_epoch = math.ceil(len(ex) / bs)
        model = reward_model_from_causal_lm(sft, tok, cfg.seed)
        curve = []

        def evaluate(step, m):
            sc = RewardModelScorer(None, 128, 96, tokenizer=tok, model=m)
            ev = RM.evaluate(sc, eval_rows)
            m.train()
            curve.append({"epoch": step / steps_per_epoch, "step": step, "heldout_pair_loss": ev["pair_loss"],
                          "pair_accuracy": ev["pair_accuracy"]["mean"], "gt_pair_accuracy": ev["gt_pair_accuracy"]["mean"],
                          "within_prompt_kendall_gt": ev["within_prompt_kendall_gt"]["mean"]})
            print(f"[{objective}] epoch {step / steps_per_epoch:.2f}: held-out loss {ev['pair_loss']:.4f} "
                  f"acc {ev['pair_accuracy']['mean']:.3f}", flush=True)

        t0 = time.perf_counter()
        evaluate(0, model)
        train_losses: list[float] = []

        def on_step(tr, stats):
            train_losses.append(stats["loss"])
            if tr.step_count % steps_per_epoch == 0 or tr.done:
                evaluate(tr.step_count, tr.unwrapped)

        _, hist = RM.fit(model, tok, ex, cfg, on_step=on_step)
        per_epoch_train = [sum(train_losses[e * steps_per_epoch:(e + 1) * steps_per_epoch])
                           / max(1, len(train_losses[e * steps_per_epoch:(e + 1) * steps_per_epoch]))
                           for e in range(epochs)]
        res[objective] = {"batch_size": bs, "lr": lr, "examples": len(ex), "steps_per_epoch": steps_per_epoch,
                          "responses_forwarded_per_epoch": sum(len(e.items) for e in ex),
                          "curve": curve, "train_loss_per_epoch": per_epoch_train,
                          "seconds": time.perf_counter() - t0}
    return res


def safety_run(sft: str, files: dict, work: Path) -> dict:
    """Safety RMs from strength-labelled pairs (Llama 2 form) and from K-way rankings re-sorted safe-first."""
    out = {}
    for objective, data, margin in (("pairwise", "safe_train", "small"), ("ranking", "safe_rank_train", "none")):
        cfg = load(RM.RewardModelConfig, overrides=[
            f"model.path={sft}", f"out={work / f'rm_safety_{objective}'}", "log.progress=false",
            f"objective={objective}", f"margin={margin}", "target=safety", f"data.path={files[data]}",
            f"calib_path={files['safe_calib']}", "calib_label_noise=0.05", f"eval_path={files['safe_eval']}",
            f"optim.batch_size={32 if objective == 'pairwise' else 16}"])
        r = RM.train(cfg)
        ev = r["eval"]
        print(f"[safety {objective}] auc {ev['safety']['auc_safety_prompts']:.3f} "
              f"{ev['safety'].get('unsafe_at_0.15')}", flush=True)
        out[objective] = {"calibration": r["calibration"], "safety": ev["safety"], "pair_accuracy": ev["pair_accuracy"],
                          "train_examples": r["examples"], "train_rows": r["train_rows"]}
    return out


def plots(res: dict) -> dict:
    m = res["margin"]
    hist = M.score_histogram({f"margin {k}": v["scores"] for k, v in m.items()},
                             RESULTS / "reward_models_margin_hist.png",
                             title="Held-out helpfulness-RM scores by margin (demos shifted to 0)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    for lr_name, runs in res["batching"].items():
        for obj, v in runs.items():
            xs = [c["epoch"] for c in v["curve"]]
            label = ("K-way" if obj == "ranking" else "flat pairs") + f", {lr_name}"
            style = "-" if obj == "ranking" else "--"
            ax[0].plot(xs, [c["heldout_pair_loss"] for c in v["curve"]], style, marker="o", label=label)
            ax[1].plot(xs, [c["pair_accuracy"] for c in v["curve"]], style, marker="o", label=label)
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("held-out pair loss")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("held-out pair accuracy")
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(RESULTS / "reward_models_batching.png"), dpi=100)
    plt.close(fig)
    return {"margin_hist": str(Path(hist).relative_to(ROOT)),
            "batching": str((RESULTS / "reward_models_batching.png").relative_to(ROOT))}


def markdown(res: dict) -> str:
    m, b, s = res["margin"], res["batching"], res.get("safety")
    lines = ["# Reward models on the built-in world", "",
             f"World version {res.get('world_version', 1)}. SFT model `{res['sft']}`; {res['sizes']}. Wall time {res['wall_s']:.0f} s. "
             "Accuracies are against held-out annotator labels (eval split) with prompt-clustered 95% CIs; "
             "GT = the world's ground-truth helpfulness, never seen in training.", "",
             "## Margin (Llama 2 Table 28 analogue; pairwise RM, 1 epoch)", "",
             "| margin | overall | " + " | ".join(STRENGTH_BY_BUCKET) + " | GT-pair acc | Spearman GT | "
             "within-prompt Kendall GT | score std | bimodality |",
             "|---|---|" + "---|" * len(STRENGTH_BY_BUCKET) + "---|---|---|---|---|"]
    for k, v in m.items():
        by = v["accuracy_by_strength"]
        cells = [f"{by[s_]['mean']:.3f} (n={by[s_]['n']})" for s_ in STRENGTH_BY_BUCKET]
        lines.append(f"| {k} | {_ci(v['pair_accuracy'])} | " + " | ".join(cells)
                     + f" | {v['gt_pair_accuracy']['mean']:.3f} | {v['spearman_gt']:.3f} | "
                     f"{v['within_prompt_kendall_gt']['mean']:.3f} | {v['score_std']:.2f} | "
                     f"{v['bimodality_coefficient']:.3f} |")
    lines += ["", "Score gap r(chosen) − r(rejected) by strength, in units of the RM's score std (mean [95% CI]); "
              "the margin loss should widen the gap most on significantly-better pairs:", "",
              "| margin | " + " | ".join(STRENGTH_BY_BUCKET) + " |", "|---|" + "---|" * len(STRENGTH_BY_BUCKET)]
    for k, v in m.items():
        g, sd = v.get("gap_by_strength"), v["score_std"]
        if g:
            lines.append(f"| {k} | " + " | ".join(f"{g[s_]['mean'] / sd:+.2f} [{g[s_]['lo'] / sd:+.2f}, "
                                                  f"{g[s_]['hi'] / sd:+.2f}]" for s_ in STRENGTH_BY_BUCKET) + " |")
    lines += ["", "![scores by margin](reward_models_margin_hist.png)", "",
              "## Batching (InstructGPT §3.1): K-way vs flat shuffled pairs, constant LR", "",
              "| lr | objective | epoch | held-out pair loss | held-out pair acc | GT-pair acc |",
              "|---|---|---|---|---|---|"]
    for lr_name, runs in b.items():
        for obj, v in runs.items():
            for c in v["curve"]:
                lines.append(f"| {lr_name} | {obj} | {c['epoch']:.0f} | {c['heldout_pair_loss']:.4f} | "
                             f"{c['pair_accuracy']:.3f} | {c['gt_pair_accuracy']:.3f} |")
    first = next(iter(b.values()))
    lines += ["", f"Responses forwarded per epoch: K-way {first['ranking']['responses_forwarded_per_epoch']}, "
              f"flat {first['pairwise']['responses_forwarded_per_epoch']} (batch 16 prompts vs 32 pairs).", "",
              "![batching](reward_models_batching.png)", ""]
    if s:
        lines += ["## Safety RM (noise-aware Platt calibration on held-out annotator safety labels)", "",
                  "The annotators flip a safety label with probability 0.05 (`world/annotators.py`), so the "
                  "calibration fits P(label safe | s) = 0.05 + 0.9·σ(a·s + b) and σ(a·s + b) estimates P(truly safe). "
                  "Plain Platt on those labels (the world-v1 result) gave a flat slope and **never fired the 0.15 "
                  "gate** (0 of 152 unsafe responses flagged at AUC 0.99).", "",
                  "| objective | AUC (harmful-request prompts) | AUC (all) | responses / unsafe | "
                  "unsafe precision @σ<0.15 | unsafe recall @σ<0.15 | mean P(safe) / GT safe rate | a, b "
                  "(noise-aware) | a, b (plain Platt) |", "|---|---|---|---|---|---|---|---|---|"]
        for obj, v in s.items():
            sf, pr = v["safety"], v["safety"].get("unsafe_at_0.15", {})
            lines.append(f"| {obj} | {sf['auc_safety_prompts']:.3f} | {sf['auc']:.3f} | {sf['n_safety_responses']} / "
                         f"{sf['n_unsafe']} | {pr.get('precision', float('nan')):.3f} | "
                         f"{pr.get('recall', float('nan')):.3f} | {sf.get('mean_p_safe', float('nan')):.3f} / "
                         f"{sf.get('actual_safe_rate', float('nan')):.3f} | {v['calibration']['a']:.3f}, "
                         f"{v['calibration']['b']:.3f} | {v['calibration'].get('plain_platt', {}).get('a', float('nan')):.3f}, "
                         f"{v['calibration'].get('plain_platt', {}).get('b', float('nan')):.3f} |")
        lines += ["", "Llama 2 reports precision 0.89 / recall 0.55 at the 0.15 threshold.", ""]
    lines += ["## Reading", "", res.get("reading", ""), ""]
    return "\n".join(lines)


def reading(res: dict) -> str:
    m, b = res["margin"], res["batching"]
    sig = {k: v["accuracy_by_strength"]["significantly_better"]["mean"] for k, v in m.items()}
    neg = {k: v["accuracy_by_strength"]["negligibly_better"]["mean"] for k, v in m.items()}
    out = [f"- Significantly-better accuracy none/small/large: {sig['none']:.3f} / {sig['small']:.3f} / "
           f"{sig['large']:.3f}; negligibly-better: {neg['none']:.3f} / {neg['small']:.3f} / {neg['large']:.3f}.",
           f"- Score spread (std) none/small/large: {m['none']['score_std']:.2f} / {m['small']['score_std']:.2f} / "
           f"{m['large']['score_std']:.2f}; bimodality coefficient "
           f"{m['none']['bimodality_coefficient']:.3f} / {m['small']['bimodality_coefficient']:.3f} / "
           f"{m['large']['bimodality_coefficient']:.3f} (> 0.555 suggests two modes)."]
    for lr_name, runs in b.items():
        flat = [c["heldout_pair_loss"] for c in runs["pairwise"]["curve"]]
        kway = [c["heldout_pair_loss"] for c in runs["ranking"]["curve"]]
        df, dk = flat[-1] - flat[1], kway[-1] - kway[1]
        out.append(f"- {lr_name}: flat-pair held-out loss by epoch {', '.join(f'{x:.4f}' for x in flat)}; K-way "
                   f"{', '.join(f'{x:.4f}' for x in kway)}. From epoch 1 to the last epoch the flat RM's held-out "
                   f"loss moved {df:+.4f} and the K-way RM's {dk:+.4f}"
                   + (" — a small rise for the flat RM only (one seed, no significance test): at most a weak "
                      "trace of InstructGPT's overfitting at this scale." if df > 0
                      else " — no sign of the InstructGPT overfitting at this scale (the 0.5M-parameter trunk "
                           "does not memorise ~20k pairs in 3 epochs)."))
    out.append("- One seed; differences within the CIs above are not evidence.")
    for obj, v in (res.get("safety") or {}).items():
        pr = v["safety"].get("unsafe_at_0.15", {})
        out.insert(-1, f"- Safety RM ({obj}): AUC {v['safety']['auc_safety_prompts']:.3f} on harmful-request prompts; "
                   f"at σ < 0.15 it flags {pr.get('n_predicted', 0)} of {pr.get('n_actual', 0)} unsafe responses "
                   f"(precision {pr.get('precision', float('nan')):.3f}) with the noise-aware calibration. Cause of "
                   "the gate never firing before: plain Platt fitted on annotator labels flipped at 5% (and only "
                   "~8% unsafe) — label noise at both tails flattens the logistic slope (a ≈ 0.5), so even the "
                   "lowest-scored unsafe responses stayed above P(safe) = 0.15. The threshold semantics "
                   "(σ(calibrated logit) < 0.15) were right; the calibration target was the noisy label, not safety.")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sft", required=True, help="SFT causal-LM checkpoint (e.g. .cache/fixtures/<key>/sft/model)")
    p.add_argument("--work", default="/tmp/rm_experiment")
    p.add_argument("--quick", action="store_true", help="reduced sizes")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-safety", action="store_true")
    p.add_argument("--batching-lr", type=float, nargs="+", default=[3e-4, 1e-3])
    p.add_argument("--batching-only", action="store_true", help="only the batching runs (printed, not saved)")
    p.add_argument("--render-only", action="store_true", help="rewrite the markdown from the saved JSON")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.render_only:
        res = json.loads((RESULTS / "reward_models.json").read_text())
        res["reading"] = reading(res)
        (RESULTS / "reward_models.json").write_text(json.dumps(res, indent=2, default=str))
        (RESULTS / "reward_models.md").write_text(markdown(res))
        return 0
    t0 = time.perf_counter()
    n_train, n_eval, n_calib = (400, 200, 150) if a.quick else (2000, 500, 300)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.batching_only and (work / "rank_train.jsonl").exists():
        files = {k: str(work / f"{k}.jsonl") for k in ("rank_train", "rank_eval")}
        for lr in a.batching_lr:
            print(json.dumps(batching_runs(a.sft, files, work, a.epochs, lr), default=str))
        return 0
    files = collect_sets(a.sft, work, n_train, n_eval, n_calib)
    print(f"collected feedback in {time.perf_counter() - t0:.0f} s", flush=True)
    res: dict = {"sft": a.sft, "sizes": f"margin: {n_train} train prompts × 2 pairs, {n_eval} eval prompts; "
                 f"batching: {n_train // 4} train prompts × K=4..9, {n_eval // 2} eval prompts; "
                 f"safety: {n_train // 2} train / {n_calib} calibration / {n_eval} eval prompts at 50% harmful"}
    from alignstack.world import WORLD_VERSION
    res["world_version"] = WORLD_VERSION
    res["margin"] = margin_runs(a.sft, files, work)
    res["batching"] = {f"lr={lr:g}": batching_runs(a.sft, files, work, a.epochs, lr) for lr in a.batching_lr}
    if not a.no_safety:
        res["safety"] = safety_run(a.sft, files, work)
    res["plots"] = plots(res)
    res["wall_s"] = time.perf_counter() - t0
    res["reading"] = reading(res)
    res["config_defaults"] = to_dict(RM.RewardModelConfig())
    for v in res["margin"].values():
        v.pop("scores")
    (RESULTS / "reward_models.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / "reward_models.md").write_text(markdown(res))
    print(res["reading"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
