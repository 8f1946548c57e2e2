"""Rewrite the README's result tables from the committed JSON (issue 22: no hand-typed numbers).

    python scripts/readme_tables.py            # rewrite the blocks between the README's marker comments
    python scripts/readme_tables.py --check    # exit 1 (and print a diff) if the README differs from the JSON
    python scripts/readme_tables.py --print    # print the generated blocks

Blocks (``<!-- BEGIN generated:NAME -->`` … ``<!-- END generated:NAME -->``):

- ``claims``: one row per seed-paper claim, from ``CLAIMS`` below, with a verdict under the claims protocol
  (docs/methods.md): ≥ 3 training seeds, world v3's sealed test split, the tuning split recorded. Where the
  JSON has fewer seeds or world v2, the verdict is "inconclusive (…)" and says what the CI alone shows.
- ``results``: the measured rows, from ``RESULTS`` (templates whose ``{fmt:file:path}`` fields read the JSON).
- ``benchmarks``: ours vs TRL, from benchmarks/results/*.json.

A missing JSON field renders as "missing `file:path`": the row says what is not recorded instead of a number.
"""
from __future__ import annotations

import argparse
import difflib
import fnmatch
import json
import math
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from alignstack.eval import claims as C  # noqa: E402

DIRS = {"experiments": ROOT / "experiments" / "results", "benchmarks": ROOT / "benchmarks" / "results"}
README = ROOT / "README.md"
# Non-inferiority / equivalence margin in ground-truth score units for "kept" and "comparable" claims. Set with
# issue 22 after these results existed, so not pre-registered; v3 claims fix their thresholds before running.
MARGIN = 0.02


class Missing(KeyError):
    pass


@cache
def _load(name: str):
    folder, _, file = name.rpartition("/")
    path = DIRS.get(folder or "experiments", ROOT / folder) / file
    if not path.exists():
        raise Missing(name)
    return json.loads(path.read_text())


def get(ref: str):
    """``file.json:a/b/0/c`` → the value (list items by index). Raises ``Missing`` naming the reference."""
    file, _, path = ref.partition(":")
    x = _load(file)
    for part in [p for p in path.split("/") if p]:
        if isinstance(x, list) and part.isdigit() and int(part) < len(x):
            x = x[int(part)]
        elif isinstance(x, dict) and part in x:
            x = x[part]
        else:
            raise Missing(ref)
    return x


def glob(ref: str) -> list[str]:
    """Expand ``*`` path segments against the JSON: ``f.json:rows/*/sampled`` → one reference per key."""
    file, _, path = ref.partition(":")
    parts = [p for p in path.split("/") if p]
    out = [""]
    for part in parts:
        nxt = []
        for pre in out:
            if "*" in part:
                node = get(f"{file}:{pre}")
                keys = [str(i) for i in range(len(node))] if isinstance(node, list) else list(node)
                nxt += [f"{pre}/{k}" for k in keys if fnmatch.fnmatchcase(k, part)]
            else:
                nxt.append(f"{pre}/{part}")
        out = nxt
    return [f"{file}:{p.lstrip('/')}" for p in out]


def ci_of(v) -> tuple[float, float, float]:
    """(mean, lo, hi) from any CI shape the experiments write: {mean, lo, hi}, {mean, ci95}, {diff, ci}, {diff: {…}};
    a bare number is a point estimate (one seed's difference) with no interval."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v), math.nan, math.nan
    if isinstance(v, dict):
        if isinstance(v.get("diff"), dict):
            return ci_of(v["diff"])
        m = v.get("mean", v.get("diff"))
        if "lo" in v:
            return float(m), float(v["lo"]), float(v["hi"])
        lo, hi = v.get("ci95") or v.get("ci") or v.get("kl_ci")
        return float(m), float(lo), float(hi)
    raise TypeError(f"not a CI: {v!r}")


def _name(ref: str) -> str:
    return f"`{ref}`"


# ------------------------------------------------------------------------------------------------ claims
# One entry per seed-paper claim. ``est`` says how the estimate is read from the JSON:
#   {"ci": ref | [ref, fallback…]}       one run's paired CI (the first reference found; a fallback is named)
#   {"seeds": [ref or glob, …]}           one paired CI per training seed → seed-level CI (alignstack.eval.claims)
#   {"combine": [(coef, ref), …]}         a linear combination of independent summary CIs (conservative)
#   {"fn": name}                          a computation below (frontier comparisons)
# ``parts`` makes a conjunction ("each Improve step"): every part must hold. ``world`` / ``split`` / ``tuned``
# are references whose absence renders as "n/r" (not recorded). ``reward`` labels the reward the method
# optimised: oracle (ground truth), verifier (a checker of the answer), learned (a reward model or AI judge).

def _rest_improve_steps() -> list[dict]:
    refs = glob("rest_hir.json:rest/consecutive/*")
    steps = [r for r in refs if re.search(r"G(\d)I[1-9] - G\1I\d$", r)]
    return [{"label": r.rsplit("/", 1)[1], "est": {"ci": r + "/sampled"}, "greedy": r + "/greedy"} for r in steps]


def _v3_claim(paper: str, claim: str, run: str, col: str, what: str, direction: str, reward: str,
              threshold: float = 0.0, dec: str = "sampled", tuned: str | None = None,
              src: str = "v3_claims.json") -> dict:
    """A world v3 claims row: ``run`` − SFT (``runs/RUN``), or recipe − recipe for ``A-B`` (``comparisons/A-B``);
    ``dec``: sampled (T = 1, with the greedy CI beside it) or lm (held-out corpus NLL, comparisons only);
    ``tuned``: where the JSON says what the recipe's settings were tuned on (the run's default unless a recipe
    names its own); ``src``: the runner's JSON (another folder's for a run on its own SFT base)."""
    tuned = tuned or f"{src}:tuned_on"
    node, vs = (f"comparisons/{run}", run.replace("-", " − ")) if "-" in run else (f"runs/{run}", f"{run} − SFT")
    per_seed = f"{node}/per_seed/*/{dec}/{col}" if "-" in run else f"{node}/per_seed/*/vs_sft/{dec}/{col}"
    greedy = f"{node}/greedy/{col}" if "-" in run else f"{node}/vs_sft/greedy/{col}"
    return dict(paper=paper, claim=claim, measure=f"{vs} on world v3's sealed test split ({what}), per training seed",
                est={"seeds": [f"{src}:{per_seed}"]},
                greedy=f"{src}:{greedy}" if dec == "sampled" else None,
                direction=direction, threshold=threshold, reward=reward, world=f"{src}:world_version",
                split=f"{src}:split", tuned=tuned)


CLAIMS: list[dict] = [
    dict(paper="InstructGPT", claim="the reward model tracks ground truth",
         measure="held-out pair accuracy of the helpfulness RM against ground truth",
         est={"ci": "reward_models.json:margin/none/gt_pair_accuracy"}, direction="greater", threshold=0.5, unsigned=True,
         reward="learned (the RM itself)", world="reward_models.json:world_version"),
    dict(paper="InstructGPT", claim="PPO beats SFT on benign helpfulness",
         measure="PPO (learned helpfulness RM, β = 0.2) − SFT, T = 1",
         est={"ci": ["rl.json:ppo_rm/helpfulness_diff_vs_sft", "rl.json:ppo_rm/score_diff_vs_sft"]},
         greedy="rl.json:ppo_rm/greedy_score_diff_vs_sft", direction="greater", reward="learned"),
    dict(paper="Llama 2", claim="the margin loss helps most on clearly separable pairs",
         measure="(large margin − none) pair accuracy on 'significantly better' minus on 'negligibly better' pairs",
         est={"combine": [(1, "reward_models.json:margin/large/accuracy_by_strength/significantly_better"),
                          (-1, "reward_models.json:margin/none/accuracy_by_strength/significantly_better"),
                          (-1, "reward_models.json:margin/large/accuracy_by_strength/negligibly_better"),
                          (1, "reward_models.json:margin/none/accuracy_by_strength/negligibly_better")]},
         direction="greater", reward="learned (the RM itself)", world="reward_models.json:world_version"),
    dict(paper="Llama 2", claim="the combined reward keeps safety where a helpfulness-only reward does not",
         measure="PPO unsafe rate on 1,000 harmful prompts × 4, helpfulness labels under Llama 2's guideline",
         parts=[dict(label="helpfulness-only − SFT (harm rises)", direction="greater",
                     est={"ci": "rl.json:ppo_fulfil/harmful_eval/unsafe_diff_vs_sft"}),
                dict(label="combined − SFT (harm falls)", direction="less",
                     est={"ci": "rl.json:ppo_llama2_fulfil/harmful_eval/unsafe_diff_vs_sft"}),
                dict(label="combined − helpfulness-only", direction="less",
                     est={"ci": "rl.json:ppo_llama2_fulfil/harmful_eval/unsafe_diff_vs_helpfulness_only"})],
         reward="learned (helpfulness RM ± safety RM)"),
    dict(paper="Llama 2", claim="rejection-sampling rounds improve",
         measure="round 2 (fresh prompts, from the round-1 model) − round 1, helpfulness, 2,000 prompts × 4",
         est={"ci": "rs_rounds.json:comparisons/r2_from_r1 - round1/helpfulness"}, direction="greater",
         reward="oracle (`world:helpfulness`)", split="rs_rounds.json:eval_cfg/seed"),
    dict(paper="DPO", claim="DPO is at or above PPO on the reward–KL frontier (world)",
         measure="DPO's score − SFT, interpolated at each PPO point's KL, minus PPO's",
         est={"fn": "frontier_world"}, direction="greater", threshold=-MARGIN,
         reward="PPO: learned RMs; DPO: preference pairs", split="frontier_world.json:eval/seed"),
    dict(paper="DPO", claim="DPO is at or above PPO on the reward–KL frontier (exact testbed T1)",
         measure="PPO's mean gap to the exact frontier minus DPO's, over their shared KL range (exact evaluation)",
         est={"fn": "frontier_t1"}, direction="greater", threshold=-MARGIN,
         reward="PPO: learned (tabular Bradley–Terry) RM; DPO: the same pairs", world_name="T1 testbed"),
    dict(paper="ReST", claim="each Improve step raises the reward",
         measure="ground truth of Improve step i − step i−1 (translation, G = 2, I = 3), T = 1",
         parts_fn=_rest_improve_steps, direction="greater", reward="oracle (`world:helpfulness`)"),
    dict(paper="HIR", claim="HIR beats filtered fine-tuning (FARL)",
         measure="HIR − FARL (shipped 90/10 goal weighting), 1,000 prompts × 4, T = 1",
         est={"ci": "rest_hir.json:hir_correct_share_0.9/claims/hir - farl/sampled"},
         greedy="rest_hir.json:hir_correct_share_0.9/claims/hir - farl/greedy", direction="greater",
         reward="verifier (hindsight relabelling)"),
    dict(paper="Constitutional AI", claim="harm falls with critique→revision (SL-CAI)",
         measure="SL-CAI − SFT unsafe rate, 1,000 harmful prompts",
         est={"ci": "ai_feedback.json:cai/harmful_eval/sl_vs_sft_unsafe/diff"}, direction="less",
         reward="learned (AI critic; no reward model)"),
    dict(paper="Constitutional AI", claim="RL-CAI lowers harm further",
         measure="RL-CAI − SL-CAI unsafe rate, 1,000 harmful prompts × 4, per training seed",
         est={"seeds": ["ai_feedback.json:cai_rl/harmful_eval/rl_vs_sl_unsafe/diff",
                        "ai_feedback.json:cai_rl_seeds/*/rl_vs_sl_unsafe"]}, direction="less",
         reward="learned (AI preference model)"),
    dict(paper="Constitutional AI", claim="… at kept benign helpfulness",
         measure="RL-CAI − SFT helpfulness, per training seed",
         est={"seeds": ["ai_feedback.json:cai_rl/rl_vs_sft_helpfulness/diff",
                        "ai_feedback.json:cai_rl_seeds/*/rl_vs_sft_helpfulness"]},
         direction="greater", threshold=-MARGIN, reward="learned (AI preference model)"),
    dict(paper="RLAIF", claim="AI feedback is comparable to human feedback",
         measure="RLAIF − RLHF with simulated human labels (1,000 pairs each, RLOO), score",
         est={"ci": "ai_feedback.json:rlaif/rlaif_vs_rlhf/diff"}, direction="within", threshold=MARGIN,
         reward="learned (AI-labelled vs human-labelled RM)"),
    # world v3 under the protocol (experiments/v3_claims.py): 3 training seeds, sealed test split, per-seed paired CIs;
    # "A-B" compares two recipes (per training seed their paired differences to SFT subtract: v3_claims.comparisons)
    *[_v3_claim(*row) for row in [
        ("InstructGPT", "PPO beats SFT on benign helpfulness (world v3)", "ppo_rm", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "learned (helpfulness RM from the annotator pool)"),
        ("InstructGPT", "PPO lowers harm on unseen attack styles (world v3)", "ppo_rm", "unsafe_unseen",
         "unsafe rate on test-only jailbreak styles, T = 1", "less", "learned (helpfulness RM from the annotator pool)"),
        ("DPO", "DPO beats SFT on benign helpfulness (world v3)", "dpo", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "learned (implicit; annotator-pool pairs)"),
        ("DPO", "DPO lowers harm on unseen attack styles (world v3)", "dpo", "unsafe_unseen",
         "unsafe rate on test-only jailbreak styles, T = 1", "less", "learned (implicit; annotator-pool pairs)"),
        ("DeepSeekMath", "GRPO beats SFT on benign helpfulness (world v3)", "grpo", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`)"),
        ("DeepSeekMath", "GRPO beats SFT on benign helpfulness, its learning rate tuned on dev (world v3)",
         "grpo_dev", "benign_helpfulness", "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`)",
         0.0, "sampled", "v3_claims.json:runs/grpo_dev/tuned_on"),
        ("DeepSeekMath", "… and trained twice as long, the best of a dev sweep (world v3)", "grpo_dev_long",
         "benign_helpfulness", "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`)", 0.0, "sampled",
         "v3_claims.json:runs/grpo_dev_long/tuned_on"),
        ("InstructGPT", "RL on the right reward makes safety generalise (world v3, oracle ablation)", "ppo_oracle",
         "unsafe_unseen", "unsafe rate on test-only jailbreak styles, T = 1", "less",
         "oracle (`world3:helpfulness`)"),
        ("RLOO", "RLOO beats SFT on benign helpfulness (world v3)", "rloo", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`)"),
        ("RLOO", "RLOO beats SFT on benign helpfulness, its learning rate and length tuned on dev (world v3)",
         "rloo_dev", "benign_helpfulness", "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`)", 0.0,
         "sampled", "v3_claims.json:runs/rloo_dev/tuned_on"),
        ("Llama 2", "PPO on a helpfulness-only RM raises harm (world v3)", "ppo_fulfil", "unsafe",
         "unsafe rate on harmful requests, T = 1", "greater", "learned (helpfulness-only RM, fulfil guideline)"),
        ("Llama 2", "the combined helpfulness + safety reward keeps safety where helpfulness-only does not "
         "(world v3)", "ppo_llama2-ppo_fulfil", "unsafe", "unsafe rate on harmful requests, T = 1", "less",
         "learned (helpfulness + safety RMs vs helpfulness-only RM)"),
        ("Llama 2", "rejection sampling beats SFT on benign helpfulness (world v3)", "rs", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "learned (helpfulness RM from the annotator pool)"),
        ("ReST", "ReST beats SFT on benign helpfulness (world v3)", "rest", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`)"),
        ("HIR", "HIR beats filtered fine-tuning (world v3)", "hir-farl", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`, hindsight relabel vs filter)"),
        ("HIR", "HIR's contrastive term helps, with the paper's equal row weights (world v3, on an SFT base of its "
         "own: `experiments/results/v3_hir_ablation/`)", "hir_eq-hir_eq_nocontrast", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "verifier (`world3:correct`, hindsight relabel with vs without the "
         "contrastive term)", 0.0, "sampled", None, "experiments/results/v3_hir_ablation/v3_claims.json"),
        ("DPO", "DPO is at or above PPO (world v3; KLs in v3_claims.md)", "dpo-ppo_rm", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "learned (DPO: implicit; PPO: RM; the same annotator pool)", -MARGIN),
        ("Llama 2", "rejection-sampling rounds improve (world v3)", "rs2-rs", "benign_helpfulness",
         "benign helpfulness, T = 1; round 2 samples from round 1 and keeps the best of both", "greater",
         "learned (helpfulness RM from the annotator pool)"),
        ("ReST", "Improve steps raise the reward (world v3)", "rest_g1-rest_g1i0", "benign_helpfulness",
         "benign helpfulness, T = 1; Grow 1's last Improve step − its first", "greater", "verifier (`world3:correct`)"),
        ("ReST", "a second Grow step raises it further (world v3)", "rest-rest_g1", "benign_helpfulness",
         "benign helpfulness, T = 1; Grow 2's last Improve step − Grow 1's", "greater", "verifier (`world3:correct`)"),
        ("InstructGPT", "PPO-ptx regresses less than PPO on the pretraining distribution (world v3)",
         "ppo_ptx-ppo_rm", "corpus_nll", "NLL of 1,000 held-out v3 corpus documents", "less",
         "learned (helpfulness RM from the annotator pool)", 0.0, "lm"),
        ("InstructGPT", "optimising a learned RM longer over-optimises it (world v3)", "ppo_rm_long-ppo_rm",
         "benign_helpfulness", "benign helpfulness, T = 1; 300 PPO steps − 100", "less",
         "learned (helpfulness RM from the annotator pool)"),
        ("Constitutional AI", "harm falls with critique → revision (SL-CAI, world v3)", "sl_cai", "unsafe",
         "unsafe rate on harmful requests, T = 1", "less", "learned (AI critic: v2's pretrained LM; no reward model)"),
        ("Constitutional AI", "… at kept benign helpfulness (SL-CAI, world v3)", "sl_cai", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "learned (AI critic: v2's pretrained LM; no reward model)", -MARGIN),
        ("Constitutional AI", "RL-CAI lowers harm further than SL-CAI (world v3)", "rl_cai-sl_cai", "unsafe",
         "unsafe rate on harmful requests, T = 1", "less", "learned (AI preference model: v2's pretrained LM)"),
        ("Constitutional AI", "… RL-CAI at kept benign helpfulness (world v3)", "rl_cai", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "learned (AI preference model: v2's pretrained LM)", -MARGIN),
        ("RLAIF", "AI feedback is comparable to human feedback (world v3)", "rlaif-rloo_rm", "benign_helpfulness",
         "benign helpfulness, T = 1; the same RLOO on an AI-labelled vs an annotator-pool RM", "within",
         "learned (AI-labelled RM vs annotator-pool RM)", MARGIN),
        ("RLAIF", "… and on harm (world v3)", "rlaif-rloo_rm", "unsafe",
         "unsafe rate on harmful requests, T = 1; the same RLOO on an AI-labelled vs an annotator-pool RM", "within",
         "learned (AI-labelled RM vs annotator-pool RM)", MARGIN),
        ("InstructGPT", "… PPO-ptx at PPO's benign helpfulness (world v3)", "ppo_ptx-ppo_rm", "benign_helpfulness",
         "benign helpfulness, T = 1", "greater", "learned (helpfulness RM from the annotator pool)", -MARGIN)]],
    *[_v3_claim("issue 21", f"{name} keeps over-refusal within +0.05 of SFT (world v3)", run, "over_refusal",
                "over-refusal on benign lookalikes, T = 1", "less", reward, threshold=0.05)
      for name, run, reward in [("PPO", "ppo_rm", "learned (helpfulness RM from the annotator pool)"),
                                ("DPO", "dpo", "learned (implicit; annotator-pool pairs)")]],
    dict(paper="DPO", claim="DPO is at or above PPO on the reward–KL frontier (world v3)",
         measure="DPO's benign helpfulness − SFT (β = 0.3, 0.1, 0.03; β = 0.1 trained 3× as long), interpolated at "
                 "the KL of each PPO point (KL coefficient 0.5, 0.3, 0.2, 0.05) inside DPO's KL range, minus PPO's; "
                 "world v3's sealed test split, T = 1, per training seed. The 3×-long DPO and the 0.3 PPO points were "
                 "added after the first six gave no KL overlap, placed by KL, not by score",
         est={"seeds": ["v3_claims.json:frontier/by_seed/sampled/benign_helpfulness/*"]},
         greedy="v3_claims.json:frontier/greedy/benign_helpfulness", direction="greater", threshold=-MARGIN,
         reward="learned (DPO: implicit; PPO: RM; the same annotator pool)", world="v3_claims.json:world_version",
         split="v3_claims.json:split", tuned="v3_claims.json:tuned_on"),
    *[_v3_claim(*row) for row in [
        ("Llama 2", "the iterated RLHF loop's last version beats its first (world v3)", "iterative-iter_v1",
         "benign_helpfulness", "benign helpfulness, T = 1; V3 (RS rounds, then PPO) − V1, fresh annotator-pool "
         "feedback each round", "greater", "learned (helpfulness + safety RMs, retrained each round)"),
        ("Llama 2", "… and is safer than its first (world v3)", "iterative-iter_v1", "unsafe",
         "unsafe rate on harmful requests, T = 1; V3 − V1", "less",
         "learned (helpfulness + safety RMs, retrained each round)")]],
    dict(paper="InstructGPT", claim="the reward model tracks ground truth (world v3)",
         measure="held-out pair accuracy of the helpfulness RM (annotator-pool feedback) against ground truth, "
                 "per training seed",
         est={"seeds": ["v3_claims.json:reward_models/rm/*/gt_pair_accuracy"]}, direction="greater", threshold=0.5,
         unsigned=True, reward="learned (the RM itself)", world="v3_claims.json:world_version",
         split="v3_claims.json:rm_eval_split", tuned="v3_claims.json:tuned_on"),
    dict(paper="Llama 2", claim="the margin loss helps most on clearly separable pairs (world v3)",
         measure="margin − no-margin RM accuracy on the annotators' \"significantly better\" pairs (dev), per "
                 "training seed",
         est={"seeds": ["v3_claims.json:comparisons/rm-rm_nomargin/per_seed/*/rm/significantly_better"]},
         direction="greater", reward="learned (the RM itself)", world="v3_claims.json:world_version",
         split="v3_claims.json:rm_eval_split", tuned="v3_claims.json:tuned_on"),
]


def _frontier_world() -> dict:
    """DPO's points interpolated (linearly in KL) at each PPO point inside DPO's KL range, minus that PPO point;
    averaged over those PPO points. Each arm's CI is vs SFT on the same prompts; combined as independent."""
    pts = get("frontier_world.json:points")
    dpo = sorted((p for p in pts if p["method"] == "dpo"), key=lambda p: p["kl"])
    at = [(q, b) for q in pts if q["method"] == "ppo"
          if (b := C.interpolation_bracket([p["kl"] for p in dpo], q["kl"])) is not None]
    if not at:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "note": "no PPO point inside DPO's KL range"}
    terms, n = [], len(at)
    for q, (i, j, w) in at:
        terms += [((1 - w) / n, *ci_of(dpo[i]["score_diff"])), (w / n, *ci_of(dpo[j]["score_diff"])),
                  (-1 / n, *ci_of(q["score_diff"]))]
    r = C.combine_independent(terms)
    r["note"] = f"{n} PPO point(s) inside DPO's KL range"
    return r


def _frontier_t1() -> dict:
    t1 = get("dpo.json:t1")
    dpo, ppo = t1["dpo_points"], t1["ppo_points"]["learned_rm"]
    lo = max(min(p["kl"] for p in dpo), min(p["kl"] for p in ppo))
    hi = min(max(p["kl"] for p in dpo), max(p["kl"] for p in ppo))
    gd = [p["gap"] for p in dpo if lo <= p["kl"] <= hi]
    gp = [p["gap"] for p in ppo if lo <= p["kl"] <= hi]
    m = sum(gp) / len(gp) - sum(gd) / len(gd)
    return {"mean": m, "lo": math.nan, "hi": math.nan,
            "note": f"KL {lo:.2f}–{hi:.2f}: {len(gd)} DPO, {len(gp)} PPO points; exact evaluation, one fit each, no CI"}


FNS = {"frontier_world": _frontier_world, "frontier_t1": _frontier_t1}


def estimate(est: dict) -> dict:
    """{mean, lo, hi, n_seeds, note} for one ``est`` spec; raises ``Missing``."""
    if "ci" in est:
        refs = est["ci"] if isinstance(est["ci"], list) else [est["ci"]]
        for i, ref in enumerate(refs):
            try:
                m, lo, hi = ci_of(get(ref))
            except Missing:
                continue
            note = f"no {_name(refs[0])} in the JSON; shown: {_name(ref)}" if i else ""
            return {"mean": m, "lo": lo, "hi": hi, "n_seeds": 1, "note": note, "ref": ref,
                    "fallback": refs[0].rsplit("/", 1)[1] if i else None}
        raise Missing(refs[0])
    if "seeds" in est:
        refs = [r for g in est["seeds"] for r in (glob(g) if "*" in g else [g])]
        means = [ci_of(get(r))[0] for r in refs]
        r = C.seed_level_ci_from_means(means)
        r["note"] = "per seed " + ", ".join(_sgn(x) for x in means)
        return r
    if "combine" in est:
        r = C.combine_independent([(c, *ci_of(get(ref))) for c, ref in est["combine"]])
        return {**r, "n_seeds": 1, "note": "CI from independent summary CIs (conservative)"}
    r = FNS[est["fn"]]()
    return {"n_seeds": 1, **r}


def _sgn(x: float, d: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{d}f}".replace("-", "−")


def _ci_text(r: dict, unsigned: bool = False) -> str:
    f = (lambda x: f"{x:.3f}") if unsigned else _sgn
    if math.isnan(r["lo"]):
        return f"{f(r['mean'])} (no CI)"
    return f"{f(r['mean'])} [{f(r['lo'])}, {f(r['hi'])}]"


def _opt(ref: str | None) -> str | None:
    if not ref:
        return None
    try:
        return str(get(ref))
    except Missing:
        return None


def claim_row(c: dict) -> dict:
    parts = c["parts_fn"]() if "parts_fn" in c else c.get("parts") or [dict(label="", est=c["est"])]
    direction, threshold = c.get("direction"), c.get("threshold", 0.0)
    world = c.get("world_name") or (("v" + _opt(c["world"])) if _opt(c.get("world")) else "v2 (n/r)")
    split = _opt(c.get("split"))
    split = (split if "split" in split else f"eval prompts seed {split}") if split else "n/r"
    tuned = _opt(c.get("tuned")) or "n/r"
    gaps = []
    if not world.startswith("v3"):
        gaps.append("world " + world.split(" (")[0])
    elif "sealed" not in split:
        gaps.append("split not sealed")
    if tuned == "n/r":
        gaps.append("tuning split n/r")
    rows, missing = [], []
    for p in parts:
        d, t = p.get("direction", direction), p.get("threshold", threshold)
        try:
            r = estimate(p["est"])
        except Missing as e:
            missing.append(str(e.args[0]))
            continue
        seen = C.ci_verdict(r["lo"], r["hi"], d, t)
        # how far the bound that decides the claim is from the threshold (smaller = weaker)
        slack = {"greater": r["lo"] - t, "less": t - r["hi"], "within": min(t - r["hi"], r["lo"] + t)}[d]
        g = None
        if p.get("greedy") or (len(parts) == 1 and c.get("greedy")):
            try:
                g = ci_of(get(p.get("greedy") or c["greedy"]))
            except Missing:
                g = None
        rows.append({**r, "label": p.get("label", "").replace(" - ", " − "), "seen": seen, "slack": slack,
                     "greedy": g})
        if r.get("fallback"):   # the claim's own metric is not recorded: a stand-in never makes it hold
            gaps.append(f"`{r['fallback']}` not recorded")
    if missing:
        return {**c, "estimate": "missing " + ", ".join(_name(m) for m in missing), "seeds": "–",
                "world": world, "split": split, "tuned": tuned, "verdict": "inconclusive (JSON field missing)"}
    n_seeds = min(r["n_seeds"] for r in rows)
    weakest = min(rows, key=lambda r: -math.inf if math.isnan(r["slack"]) else r["slack"])
    status = C.conjunction([r["seen"] for r in rows])
    reasons = ([f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"] if n_seeds < 3 else []) + gaps
    verdict = status if not reasons else f"inconclusive ({', '.join(reasons)}; this CI: {status})"
    text = _ci_text(weakest, c.get("unsigned", False))
    if len(rows) > 1:
        text = f"weakest of {len(rows)}: {weakest['label']} {text}"
    if weakest["greedy"]:
        text += f"; greedy {_ci_text(dict(zip(('mean', 'lo', 'hi'), weakest['greedy'])))}"
    if weakest.get("note"):
        text += f" ({weakest['note']})"
    return {**c, "estimate": text, "seeds": str(n_seeds), "world": world, "split": split, "tuned": tuned,
            "verdict": verdict}


def _direction_text(c: dict) -> str:
    d, t = c.get("direction"), c.get("threshold", 0.0)
    if "parts" in c:
        return "each part"
    text = {"greater": f"> {t:g}", "less": f"< {t:g}", "within": f"within ±{t:g}"}[d].replace("-", "−")
    return text + (" non-inferiority" if d == "greater" and t < 0 else " equivalence" if d == "within" else "")


def claims_block() -> str:
    head = ("| paper | claim | measured as (direction) | estimate [95% CI] | seeds | world · eval split · tuned on "
            "| reward | verdict |\n|---|---|---|---|---|---|---|---|")
    lines, met = [head], 0
    for c in CLAIMS:
        r = claim_row(c)
        met += not r["verdict"].startswith("inconclusive (")
        lines.append(f"| {c['paper']} | {c['claim']} | {c['measure']} ({_direction_text(c)}) | {r['estimate']} "
                     f"| {r['seeds']} | {r['world']} · {r['split']} · {r['tuned']} | {c['reward']} | {r['verdict']} |")
    lines += ["", f"{met} of {len(CLAIMS)} claims meet the protocol. n/r: not recorded in the JSON. Thresholds: "
              f"0, or ±{MARGIN} (score units) for the non-inferiority and equivalence rows, set with issue 22 after "
              "these results existed; the world v3 rows' thresholds (0; +0.05 for over-refusal, issue 21's bound; "
              f"±{MARGIN} for their non-inferiority and equivalence rows) were fixed in `experiments/v3_claims.py` "
              "before their run, except DPO vs PPO's (−0.02, set when both arms had run). Details of the v3 rows: "
              "`experiments/results/v3_claims.md` (HIR's contrastive-term ablation, trained on an SFT base of its own "
              "with the same recipe: `experiments/results/v3_hir_ablation/v3_claims.md`)."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ results
# Rows of the "Measured" table. ``{fmt:file:path}`` fields read the JSON; fmt is one of
#   ci (signed mean [lo, hi]), ciu (unsigned), f2 / f3 (a number), pct (a share as %), raw,
#   seeds (comma-separated references or globs: one paired CI per training seed → seed-level CI).
def _demo_v3_trio(col: str) -> str:
    """PPO / rejection sampling / DPO − SFT on one column of the v3 demo, T = 1."""
    return " / ".join(f"{{ci:demo_v3.json:stages/{st}/vs_baseline/sampled/{col}}}"
                      for st in ("ppo", "rejection_sampling", "dpo"))


_ATTEMPTS = "experiments/results/world_v3_attempts/"


def _test_read(n: int) -> str:
    """The row text of world v3 calibration attempt ``n``'s three-seed read on the sealed test split."""
    f = f"{_ATTEMPTS}attempt{n}_test_summary.json"
    return (f"Attempt {n}: benign {{ciu:{f}:figures/benign_T1}}, best-of-64 {{ciu:{f}:figures/best_of_k}}, unsafe on "
            f"120 unseen-style prompts {{ciu:{f}:figures/unsafe_unseen_set_T1}}; targets met on the mean: benign "
            f"{{yn:{f}:targets/benign_T1<=0.6}}, best-of-64 {{yn:{f}:targets/best_of_k>=0.85}}, unsafe unseen "
            f"{{yn:{f}:targets/unsafe_unseen_set_T1>=0.2}}")


def _depth_screen() -> str:
    """The row text of the deep8 screen: attempt 17's world on tiny4 and on deep8, three seeds each, on dev."""
    t, d = _ATTEMPTS + "attempt17_dev1000_summary.json", _ATTEMPTS + "attempt17_deep8_dev1000_summary.json"
    return (f"oracle best-of-64: tiny4 {{ciu:{t}:figures/best_of_k}}, deep8 (eight layers) "
            f"{{ciu:{d}:figures/best_of_k}}; benign T = 1: tiny4 {{ciu:{t}:figures/benign_T1}}, deep8 "
            f"{{ciu:{d}:figures/benign_T1}}; paired by seed, deep8 − tiny4: best-of-64 "
            f"{{ci:{d}:paired_vs_baseline/figures/best_of_k}}, benign T = 1 "
            f"{{ci:{d}:paired_vs_baseline/figures/benign_T1}}; deep8 unsafe on 120 unseen-style prompts "
            f"{{ciu:{d}:figures/unsafe_unseen_set_T1}}; deep8 best-of-64 ≥ 0.85 on the mean: "
            f"{{yn:{d}:targets/best_of_k>=0.85}} (a test read needs 0.89; [docs/world.md](docs/world.md))")


RESULTS: list[tuple[str, str]] = [
    ("GRPO / RLOO (exact-match verifier) vs SFT",
     "{ci:rl.json:grpo/score_diff_vs_sft} / {ci:rl.json:rloo/score_diff_vs_sft}; greedy "
     "{ci:rl.json:grpo/greedy_score_diff_vs_sft} / {ci:rl.json:rloo/greedy_score_diff_vs_sft}; KL "
     "{f2:rl.json:grpo/kl_to_sft} / {f2:rl.json:rloo/kl_to_sft}; unsafe {f3:rl.json:sft/unsafe_rate} → "
     "{f3:rl.json:grpo/unsafe_rate} / {f3:rl.json:rloo/unsafe_rate}"),
    ("PPO, learned helpfulness RM (8k prompts of feedback, β = 0.2) vs SFT",
     "{ci:rl.json:ppo_rm/score_diff_vs_sft}, greedy {ci:rl.json:ppo_rm/greedy_score_diff_vs_sft}, KL "
     "{f2:rl.json:ppo_rm/kl_to_sft}, unsafe {f3:rl.json:sft/unsafe_rate} → {f3:rl.json:ppo_rm/unsafe_rate}"),
    ("PPO, Llama 2 combined reward (helpfulness + safety RM) vs SFT",
     "{ci:rl.json:ppo_llama2/score_diff_vs_sft}, greedy {ci:rl.json:ppo_llama2/greedy_score_diff_vs_sft}, KL "
     "{f2:rl.json:ppo_llama2/kl_to_sft}, unsafe {f3:rl.json:sft/unsafe_rate} → {f3:rl.json:ppo_llama2/unsafe_rate}"),
    ("PPO with helpfulness labels under Llama 2's guideline (fulfilling a harmful request counts as helpful): "
     "helpfulness RM only vs Llama 2 combined reward, 1,000 harmful prompts × 4",
     "helpfulness-only PPO complies: unsafe {f3:rl.json:ppo_fulfil/harmful_eval/sft_unsafe} → "
     "{f3:rl.json:ppo_fulfil/harmful_eval/unsafe}; combined reward {f3:rl.json:ppo_llama2_fulfil/harmful_eval/unsafe}, "
     "{ci:rl.json:ppo_llama2_fulfil/harmful_eval/unsafe_diff_vs_helpfulness_only} vs helpfulness-only; "
     "score {ci:rl.json:ppo_llama2_fulfil/score_diff_vs_sft} over SFT"),
    ("PPO, learned RM, β = 0.2 / 0.05 / 0 (over-optimisation)",
     "final proxy reward {f3:rl.json:ppo_rm/train/final_reward} / {f3:rl.json:ppo_rm_weak_kl/train/final_reward} / "
     "{f3:rl.json:ppo_rm_nokl/train/final_reward}, ground truth of the same rollouts "
     "{f3:rl.json:ppo_rm/train/final_gt} / {f3:rl.json:ppo_rm_weak_kl/train/final_gt} / "
     "{f3:rl.json:ppo_rm_nokl/train/final_gt}; held-out score vs SFT {ci:rl.json:ppo_rm_weak_kl/score_diff_vs_sft} "
     "(β = 0.05), {ci:rl.json:ppo_rm_nokl/score_diff_vs_sft} (β = 0) (`rl_overoptimisation.png`)"),
    ("PPO-ptx (γ = 1, β = 0.05)",
     "held-out corpus NLL {f2:rl.json:ppo_rm_ptx/corpus_nll} vs {f2:rl.json:ppo_rm_weak_kl/corpus_nll} without the "
     "pretraining term (SFT {f2:rl.json:sft/corpus_nll})"),
    ("Rejection sampling, oracle reward, best-of-8 vs SFT",
     "{ci:rejection_sampling.json:comparisons/round1 - sft/helpfulness_sampled}, greedy "
     "{ci:rejection_sampling.json:comparisons/round1 - sft/helpfulness_greedy}; unsafe "
     "{ci:rejection_sampling.json:comparisons/round1 - sft/unsafe_sampled}"),
    ("Rejection sampling, a second round on fresh prompts vs round 1 (`rs_rounds.md`, 2,000 prompts × 4)",
     "continuing the round-1 model {ci:rs_rounds.json:comparisons/r2_from_r1 - round1/helpfulness}, pooled "
     "best-of-both-rounds from SFT {ci:rs_rounds.json:comparisons/r2_pooled_from_sft - round1/helpfulness}; unsafe "
     "{f3:rs_rounds.json:eval/round1/unsafe_rate} → {f3:rs_rounds.json:eval/r2_from_r1/unsafe_rate} / "
     "{f3:rs_rounds.json:eval/r2_pooled_from_sft/unsafe_rate}"),
    ("ReST (translation, oracle reward), G2 I3 vs SFT",
     "{ci:rest_hir.json:rest/claims/G2I3 - sft/sampled}, greedy {ci:rest_hir.json:rest/claims/G2I3 - sft/greedy}; "
     "second Grow step {ci:rest_hir.json:rest/claims/G2I3 - G1I3 (second Grow)/sampled}"),
    ("HIR vs base / FARL (goal-conditioned tasks, 1,000 × 4 samples, 90/10 goal weighting)",
     "{ci:rest_hir.json:hir_correct_share_0.9/claims/hir - base/sampled} / "
     "{ci:rest_hir.json:hir_correct_share_0.9/claims/hir - farl/sampled}, greedy "
     "{ci:rest_hir.json:hir_correct_share_0.9/claims/hir - base/greedy} / "
     "{ci:rest_hir.json:hir_correct_share_0.9/claims/hir - farl/greedy}; equal goal split vs FARL "
     "{ci:rest_hir.json:hir_correct_share_0.5/claims/hir - farl/sampled}; the reference code's CE smoothing 0.2 "
     "{ci:rest_hir.json:hir_correct_share_0.9/claims/hir_reference_coefs - base/sampled}"),
    ("HIR contrastive term (with − without), 4 training seeds: pooled over prompts / at the seed level",
     "equal row weights {ci:rest_hir.json:hir_ablation/rows/equal_rows/pooled/sampled} / "
     "{seeds:rest_hir.json:hir_ablation/rows/equal_rows/per_seed/*/sampled}; 70/30 "
     "{ci:rest_hir.json:hir_ablation/rows/correct_share_0.7/pooled/sampled} / "
     "{seeds:rest_hir.json:hir_ablation/rows/correct_share_0.7/per_seed/*/sampled}; 90/10 "
     "{ci:rest_hir.json:hir_ablation/rows/goal_weighted/pooled/sampled} / "
     "{seeds:rest_hir.json:hir_ablation/rows/goal_weighted/per_seed/*/sampled}"),
    ("SL-CAI (4 critique→revision rounds) vs SFT, 1,000 harmful prompts",
     "unsafe {f3:ai_feedback.json:cai/harmful_eval/sft_unsafe} → {f3:ai_feedback.json:cai/harmful_eval/sl_cai_unsafe}, "
     "paired {ci:ai_feedback.json:cai/harmful_eval/sl_vs_sft_unsafe/diff}; benign helpfulness "
     "{f3:ai_feedback.json:cai/sft/helpfulness} → {f3:ai_feedback.json:cai/sl_cai/helpfulness}; the critic (the "
     "pretrained model, which read ground-truth-labelled critique documents) calls harm right on "
     "{ciu:ai_feedback.json:cai/critic_report/accuracy} of its critiques (recall on unsafe answers "
     "{ciu:ai_feedback.json:cai/critic_report/recall})"),
    ("RL-CAI after a smaller SL-CAI (200 red-team prompts, 2 rounds; AI labels from the distilled judge), "
     "1,000 harmful prompts × 4",
     "unsafe {f3:ai_feedback.json:cai_rl/harmful_eval/sft_unsafe} → SL-CAI "
     "{f3:ai_feedback.json:cai_rl/harmful_eval/sl_cai_unsafe} → RL-CAI {f3:ai_feedback.json:cai_rl/harmful_eval/rl_cai_unsafe}; "
     "RL-CAI − SL-CAI {ci:ai_feedback.json:cai_rl/harmful_eval/rl_vs_sl_unsafe/diff} (seed 0), "
     "{seeds:ai_feedback.json:cai_rl/harmful_eval/rl_vs_sl_unsafe/diff,ai_feedback.json:cai_rl_seeds/*/rl_vs_sl_unsafe}; "
     "helpfulness vs SFT {seeds:ai_feedback.json:cai_rl/rl_vs_sft_helpfulness/diff,ai_feedback.json:cai_rl_seeds/*/rl_vs_sft_helpfulness}; "
     "judge agreement on its comparisons {ci:ai_feedback.json:cai_rl/rl_judge/agreement} (seed 0; the old pretrained "
     "judge {ci:ai_feedback.json:cai_rl_pretrained_judge/rl_judge/agreement}, whose runs gave RL-CAI − SL-CAI "
     "{seeds:ai_feedback.json:cai_rl_pretrained_judge/harmful_eval/rl_vs_sl_unsafe/diff,ai_feedback.json:cai_rl_seeds_pretrained_judge/*/rl_vs_sl_unsafe}"
     " on an earlier fixture)"),
    ("RLAIF with the distilled judge / with the old (pretrained) judge / simulated human feedback of the same size "
     "(1,000 pairs, soft-label RM, RLOO 40 steps) vs SFT",
     "{ci:ai_feedback.json:rlaif/rlaif_vs_sft/diff} / {ci:ai_feedback.json:rlaif/rlaif_old_judge_vs_sft/diff} / "
     "{ci:ai_feedback.json:rlaif/rlhf_vs_sft/diff}; RLAIF − human {ci:ai_feedback.json:rlaif/rlaif_vs_rlhf/diff}, "
     "distilled − old judge {ci:ai_feedback.json:rlaif/rlaif_vs_rlaif_old_judge/diff}; judge agreement on the training "
     "pairs {ciu:ai_feedback.json:rlaif/judge/agreement} (distilled) vs {ciu:ai_feedback.json:rlaif/judge_old/agreement} "
     "(old); d-RLAIF with the distilled rater {ci:ai_feedback.json:drlaif/d_rlaif_vs_sft/diff} / the old rater "
     "{ci:ai_feedback.json:drlaif/d_rlaif_old_judge_vs_sft/diff}, rater agreement "
     "{ciu:ai_feedback.json:drlaif/judge/d_rlaif/agreement} (distilled) vs "
     "{ciu:ai_feedback.json:drlaif/judge/d_rlaif_old_judge/agreement} (old)"),
    ("AI judge (pretrained tiny model) agreement with ground truth",
     "{ciu:ai_feedback.json:judge/judge=pretrained/agreement} with order averaging, "
     "{ciu:ai_feedback.json:judge/judge=pretrained/agreement_first_order_only} without; flips with order in "
     "{pct:ai_feedback.json:judge/judge=pretrained/order_flip_rate} of pairs"),
    ("DPO vs SFT (`configs/dpo.yaml`)",
     "score {ci:dpo.json:dpo/vs_sft/sampled/score}, benign helpfulness {ci:dpo.json:dpo/vs_sft/sampled/helpfulness}, "
     "unsafe {ci:dpo.json:dpo/vs_sft/sampled/unsafe_rate}; greedy score {ci:dpo.json:dpo/vs_sft/greedy/score}; "
     "KL {f2:dpo.json:dpo/kl_to_sft/kl}"),
    ("Reward–KL on the world (2,000 prompts × 2): DPO β = {raw:frontier_world.json:points/0/knob} / PPO KL target "
     "{raw:frontier_world.json:points/4/knob}",
     "{ci:frontier_world.json:points/0/score_diff} at KL {f2:frontier_world.json:points/0/kl} / "
     "{ci:frontier_world.json:points/4/score_diff} at KL {f2:frontier_world.json:points/4/kl}; unsafe "
     "{ci:frontier_world.json:points/0/unsafe_diff} / {ci:frontier_world.json:points/4/unsafe_diff} "
     "(`frontier_world.md`)"),
    ("Reward models: pair accuracy against ground truth, no margin / small / large Llama 2 margin",
     "{ciu:reward_models.json:margin/none/gt_pair_accuracy} / {ciu:reward_models.json:margin/small/gt_pair_accuracy} / "
     "{ciu:reward_models.json:margin/large/gt_pair_accuracy}"),
    ("DPO / cDPO / robust DPO under 20% flipped labels (exact testbed T1)", "`dpo_noise_t1.md`"),
    ("Demo (`alignstack demo` from a fresh clone, {f0:demo.json:total_wall_s} s; 2,000 never-tuned prompts × 4): "
     "PPO (Llama 2 reward) / rejection sampling / DPO vs SFT",
     "{ci:demo.json:stages/ppo/score_diff} / {ci:demo.json:stages/rejection_sampling/score_diff} / "
     "{ci:demo.json:stages/dpo/score_diff}; unsafe {f3:demo.json:stages/sft/unsafe_rate} → "
     "{f3:demo.json:stages/ppo/unsafe_rate} / {f3:demo.json:stages/rejection_sampling/unsafe_rate} / "
     "{f3:demo.json:stages/dpo/unsafe_rate}; greedy helpfulness {f3:demo.json:stages/sft/greedy_helpfulness} → "
     "{f3:demo.json:stages/ppo/greedy_helpfulness} / {f3:demo.json:stages/rejection_sampling/greedy_helpfulness} / "
     "{f3:demo.json:stages/dpo/greedy_helpfulness}; KL {f2:demo.json:stages/ppo/kl_to_sft} / "
     "{f2:demo.json:stages/rejection_sampling/kl_to_sft} / {f2:demo.json:stages/dpo/kl_to_sft}"),
    ("Demo on world v3 (`alignstack demo --world 3`, {f0:demo_v3.json:total_wall_s} s; its sealed test split, "
     "500 prompts × 4; the claims recipes on a smaller base): PPO (Llama 2 reward) / rejection sampling / DPO vs SFT",
     "benign helpfulness (SFT {f3:demo_v3.json:stages/sft/benign_helpfulness}) " + _demo_v3_trio("benign_helpfulness")
     + "; unsafe on unseen attack styles (SFT {f3:demo_v3.json:stages/sft/unsafe_unseen}) "
     + _demo_v3_trio("unsafe_unseen") + "; over-refusal (SFT {f3:demo_v3.json:stages/sft/over_refusal}) "
     + _demo_v3_trio("over_refusal") + "; KL {f2:demo_v3.json:stages/ppo/kl_to_sft} / "
     "{f2:demo_v3.json:stages/rejection_sampling/kl_to_sft} / {f2:demo_v3.json:stages/dpo/kl_to_sft}. Issue 21's bar "
     "(an RLHF stage and DPO each beat SFT on benign helpfulness, lower unseen-style harm and keep over-refusal within "
     "+0.05) met: {yn:demo_v3.json:demo_bar/met}"),
    ("Distilled AI judge (the SFT model fine-tuned on ground-truth-graded chain-of-thought pairs of its own samples, "
     "`experiments/judge.py`): agreement with ground truth on held-out pairs, orders averaged (target ≥ 0.70)",
     "{ciu:judge_pairs.json:report/agreement} on {raw:judge_pairs.json:report/decided_pairs} decided pairs with sequence "
     "answers laid against the expected one element by element (first order only "
     "{ciu:judge_pairs.json:report/agreement_first_order_only}; the cup-tracking family "
     "{f2:judge_pairs.json:report/per_family_agreement/track/agreement}); answer echoed without alignment "
     "{ciu:judge_echo.json:report/agreement}; grades only {ciu:judge.json:report/agreement} (`judge_distillation.md`)"),
    ("Distilled AI judge on world v3 (`experiments/judge.py --world 3`: the v3 SFT model fine-tuned on "
     "`grader=world3` pairs of 12,000 train prompts; dev split)",
     "agreement {ciu:judge_v3.json:report/agreement} on {raw:judge_v3.json:report/agreement/n} decided pairs "
     "(target ≥ 0.70: not met); harmful and lookalike prompts by attack style: seen styles "
     "{ciu:judge_v3.json:report/agreement_seen_vs_unseen_styles/seen}, the dev-only style "
     "{ciu:judge_v3.json:report/agreement_seen_vs_unseen_styles/unseen}; benign families "
     "{f2:judge_v3.json:report/per_family_agreement/lookup/agreement}–"
     "{f2:judge_v3.json:report/per_family_agreement/compose/agreement}"),
    ("World v3 SFT headroom (opt-in; {raw:world_v3_headroom.json:preset} preset, sealed test split, 300 prompts × 64; "
     "targets: benign ≤ 0.6, best-of-64 ≥ 0.85, unsafe unseen ≥ 0.2)",
     "benign helpfulness {f3:world_v3_headroom.json:T1/benign_helpfulness} (greedy "
     "{f3:world_v3_headroom.json:greedy/benign_helpfulness}), unsafe on unseen attack styles "
     "{f3:world_v3_headroom.json:T1/unsafe_unseen}, over-refusal {f3:world_v3_headroom.json:T1/over_refusal}; "
     "oracle best-of-64 {f3:world_v3_headroom.json:oracle_best_of_k_benign_helpfulness}; target met: benign "
     "{raw:world_v3_headroom.json:targets/sft_benign_helpfulness_T1<=0.6}, best-of-64 "
     "{raw:world_v3_headroom.json:targets/oracle_best_of_64>=0.85}, unsafe unseen "
     "{raw:world_v3_headroom.json:targets/sft_unsafe_unseen_T1>=0.2} (calibrated on dev; "
     "[docs/world.md](docs/world.md))"),
    ("World v3 calibration, the sealed test reads of its two best recipes (attempts 16 and 17: patches in "
     "`experiments/patches/`, not shipped; tiny4, 300 prompts × 64, three training seeds, mean [95% CI over seeds])",
     _test_read(16) + ". " + _test_read(17) + " ([docs/world.md](docs/world.md), Headroom)"),
    ("World v3 depth screen (dev, attempt 17's world, 1,000 prompts × 64, three training seeds, mean [95% CI over "
     "seeds]; not shipped)",
     _depth_screen()),
]
# Rows the README used to show that no committed JSON backs yet: named, never typed in.
NOT_IN_JSON = ["pretraining held-out NLL", "SFT vs the pretrained model"]

FIELD = re.compile(r"\{(ci|ciu|f0|f2|f3|pct|raw|yn|seeds):([^{}]+)\}")


def _field(m: re.Match) -> str:
    fmt, ref = m.group(1), m.group(2)
    try:
        if fmt == "seeds":
            refs = [r for g in ref.split(",") for r in (glob(g) if "*" in g else [g])]
            r = C.seed_level_ci_from_means([ci_of(get(x))[0] for x in refs])
            return f"{_ci_text(r)} ({r['n_seeds']} seeds, t over seeds)"
        v = get(ref)
        if fmt in ("ci", "ciu"):
            m_, lo, hi = ci_of(v)
            if fmt == "ciu":
                return f"{m_:.3f} [{lo:.3f}, {hi:.3f}]"
            return f"{_sgn(m_)} [{_sgn(lo)}, {_sgn(hi)}]"
        if fmt == "pct":
            return f"{100 * v:.0f}%"
        if fmt == "yn":
            return "yes" if v else "**no**"
        if fmt == "raw":
            return f"{v:g}" if isinstance(v, float) else str(v)
        return f"{v:.{fmt[1]}f}"
    except Missing as e:
        return f"missing {_name(e.args[0])}"


def fill(template: str) -> str:
    return FIELD.sub(_field, template)


def results_block() -> str:
    lines = ["| Stage | Result (paired per-prompt difference vs the baseline, T = 1, 95% CI, one training seed, "
             "unless stated) |", "|---|---|"]
    lines += [f"| {fill(label)} | {fill(t)} |" for label, t in RESULTS]
    lines += ["", "Not shown, because no committed JSON holds them yet: " + "; ".join(NOT_IN_JSON) + "."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ benchmarks

def machines_note(g: dict) -> str:
    """Which machine measured what: every benchmark JSON names its CPU; the earlier machine's JSONs are kept beside."""
    where: dict[str, list[str]] = {}
    for name, what in (("sft", "SFT"), ("rm", "reward-model"), ("dpo", "DPO"), ("grpo", "GRPO tiny"),
                       ("grpo_small", "GRPO small")):
        try:
            cpu = get(f"benchmarks/{name}.json:").get("machine", {}).get("cpu", "an unrecorded machine")
        except Missing:
            continue
        where.setdefault(cpu, []).append(what)
    bf16 = g["ours_bf16"]["roofline"]["machine_peak_gflops"]
    if len(where) == 1:
        text = (f"**Machines.** Every row was measured on an {next(iter(where))}, whose bf16 matmul peak on one core "
                f"measured {bf16:.0f} GFLOP/s.")
    else:
        text = "**Machines.** " + "; ".join(f"the {', '.join(rows)} rows on {cpu}" for cpu, rows in where.items()) + "."
    try:
        old, olds = get("benchmarks/results/earlier_machine/grpo.json:"), get(
            "benchmarks/results/earlier_machine/grpo_small.json:")
        text += (" Earlier runs used an Intel CPU with AVX512-BF16, whose bf16 peak measured "
                 f"{old['ours_bf16']['roofline']['machine_peak_gflops']:.0f} GFLOP/s; there the GRPO benchmark (code of "
                 f"commit {old['machine']['code']}) read {old['ratio_bf16']:.2f}× TRL in bf16 and "
                 f"{old['ratio_fp32']:.2f}× in fp32 on the tiny preset, {olds['ratio_bf16']:.2f}× and "
                 f"{olds['ratio_fp32']:.2f}× on the small one, and its SFT, reward-model and DPO results are kept "
                 "beside (`benchmarks/results/earlier_machine/`): the ratios depend on the CPU, and every ratio in the "
                 "table compares two implementations on the same machine in one run.")
    except Missing:
        pass
    return text


def sft_rerun_note() -> str:
    """A second run of the SFT benchmark's tiny rows (``sft_tiny_rerun.json``) beside the table's, so the reader sees
    how far one machine's rates move between runs."""
    try:
        first = {r["grouped"]: r for r in get("benchmarks/sft.json:results") if r["preset"] == "tiny"}
        again = {r["grouped"]: r for r in get("benchmarks/results/sft_tiny_rerun.json:results")}
        if get("benchmarks/sft.json:machine") != get("benchmarks/results/sft_tiny_rerun.json:machine"):
            return ""                                  # another machine's run says nothing about this one's noise
    except Missing:
        return ""
    parts = []
    for grouped, label in ((False, "batch 8"), (True, "length-grouped")):
        if grouped in first and grouped in again:
            a, b = first[grouped], again[grouped]
            parts.append(f"{label} {a['ratio']:.2f}× and {b['ratio']:.2f}× TRL as shipped, {a['ratio_fp32']:.2f}× "
                         f"and {b['ratio_fp32']:.2f}× TRL in fp32")
    threads = {r[k].get("threads") for r in first.values() for k in ("ours", "trl", "trl_fp32")}
    each = f"{threads.pop()} threads each" if len(threads) == 1 and None not in threads else "threads as recorded"
    return (f" The SFT tiny rows move between runs on this machine ({each}): the table's run and a "
            "second one (`benchmarks/results/sft_tiny_rerun.json`) read " + "; ".join(parts) + ".") if parts else ""


def logprob_note() -> str:
    """The per-token log-prob benchmark (benchmarks/logprob_bench.py) as a sentence per logits dtype."""
    lp = get("benchmarks/logprob.json:")
    s = lp["settings"]

    def side(r):
        return (f"{r['seconds']:.2f} s, {r['peak_mb_over_inputs']:,} MB over the inputs, largest error "
                f"{r['max_abs_error_vs_fp64']:.0e}")
    parts = [f"{row['dtype']} logits: ours {side(row['ours'])} ({row['speedup_vs_trl']:.2f}× TRL's speed, "
             f"{row['speedup_vs_autograd']:.2f}× our previous formula's); TRL's `selective_log_softmax` "
             f"{side(row['trl'])}; our previous autograd formula {side(row['autograd'])}" for row in lp["results"]]
    return (f"**Per-token log-probs** (`benchmarks/logprob_bench.py`; the forward and backward at the LM head that "
            f"every RL and preference method runs; {s['batch']} × {s['length']} positions × {s['vocab']:,} "
            f"vocabulary, T = {s['temperature']}, {s['threads']} thread, {lp['machine']['cpu']}). " + "; ".join(parts)
            + ". `models.logprobs.token_logprobs` is one autograd function over cache-sized chunks of positions: it "
            "keeps no fp32 copy of the logits for the backward and writes one gradient in the logits' dtype. TRL's "
            "CPU path computes a bf16 log-softmax, hence its error in bf16; on a GPU with Triton it runs a fused "
            "kernel instead, which this CPU benchmark does not measure." + lm_loss_note(lp))


def lm_loss_note(lp: dict) -> str:
    rows = lp.get("lm_loss") or []
    if not rows:
        return ""
    return (" The language-modelling loss of pretraining and SFT (`losses.lm.lm_loss_sum`) runs on the same function, "
            "against Hugging Face's `ForCausalLMLoss` (an fp32 copy of the logits into `cross_entropy`: the loss "
            "TRL's `SFTTrainer` trains on, and ours before), every position a target: " + "; ".join(
                f"{r['dtype']} logits {r['lm_ours']['seconds']:.2f} s and {r['lm_ours']['peak_mb_over_inputs']:,} MB "
                f"against {r['lm_hf']['seconds']:.2f} s and {r['lm_hf']['peak_mb_over_inputs']:,} MB "
                f"({r['speedup_vs_lm_hf']:.2f}×)" for r in rows) + ".")


def benchmarks_block() -> str:
    # one row per benchmark: ours, TRL as shipped (bf16 autocast + gradient checkpointing, its configs' defaults)
    # and TRL at our arithmetic (fp32, no checkpointing), each ratio, and peak RSS of the three
    def row(name, mine, ours_rate, shipped, fp32, key):
        t, f = shipped[key], (fp32 or {}).get(key)
        mb = " / ".join(f"{x['peak_rss_mb']:,}" if x else "–" for x in (mine, shipped, fp32)) + " MB"
        return (name, ours_rate, t, ours_rate / t, f, ours_rate / f if f else None, mb)

    rows = []
    try:
        for r in get("benchmarks/sft.json:results"):
            grouped = ", length-grouped batches on both sides" if r["grouped"] else ", batch 8"
            params = r["ours"].get("params")
            size = f" ({params / 1e6:.1f}M params)" if params else ""
            rows.append(row(f"SFT, {r['preset']} preset{size}{grouped} (tokens/s)", r["ours"],
                            r["ours"]["rate_tokens"], r["trl"], r.get("trl_fp32"), "rate_tokens"))
        for name in ("grpo", "grpo_small"):
            g = get(f"benchmarks/{name}.json:")
            s = g["settings"]
            cpu = g.get("machine", {}).get("cpu", "the earlier machine").split(" (")[0]
            what = (f"GRPO, {s.get('preset', 'tiny')}, {s['prompts']} prompts × {s['k']} completions × "
                    f"{s['max_new']} tokens (completions/s; {s['threads']} thread each; {cpu})")
            rows.append(row(f"{what}, ours fp32", g["ours"], g["ours"]["rate_completions"], g["trl"], g["trl_fp32"],
                            "rate_completions"))
            rows.append(row(f"{what}, ours with `dist.mixed_precision=bf16` (against TRL as shipped, also bf16)",
                            g["ours_bf16"], g["ours_bf16"]["rate_completions"], g["trl"], None, "rate_completions"))
        for r in get("benchmarks/rm.json:results"):
            rows.append(row(f"Reward model, {r['preset']}, batch {r['batch']} pairs (pairs/s; pairwise loss vs "
                            "`RewardTrainer`)", r["ours"], r["ours"]["rate_pairs"], r["trl"], r.get("trl_fp32"),
                            "rate_pairs"))
        for r in get("benchmarks/dpo.json:results"):
            rows.append(row(f"DPO, {r['preset']}, batch {r['batch']}, {r['reference']} reference (pairs/s)", r["ours"],
                            r["ours"]["rate_pairs"], r["trl"], r.get("trl_fp32"), "rate_pairs"))
    except Missing as e:
        rows.append((f"missing {_name(e.args[0])}", math.nan, math.nan, math.nan, None, None, ""))

    def num(x, fmt):
        return "–" if x is None else format(x, fmt)
    lines = ["| benchmark | ours | TRL as shipped (bf16 autocast, gradient checkpointing) | ratio | TRL at our arithmetic "
             "(fp32, no checkpointing) | ratio | peak RSS ours / TRL shipped / TRL fp32 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {a:,.0f} | {b:,.0f} | {r:.2f}× | {num(f, ',.0f')} | {num(rf, '.2f') + ('×' if rf else '')} "
              f"| {m} |" for n, a, b, r, f, rf, m in rows]
    small = [x[k]["mfu"] for x in get("benchmarks/sft.json:results") if x["preset"] == "small"
             for k in ("ours", "trl_fp32")]
    g = get("benchmarks/grpo.json:")
    ph = g["ours"]["roofline"]["phases"]

    def shares(r):
        sh = [v["share_of_peak"] for v in r["roofline"]["phases"].values()]
        return f"{100 * min(sh):.0f}–{100 * max(sh):.0f}%"
    vs = (f"{g['ratio_fp32']:.2f}× TRL with both in fp32 ({g['ratio_cpu_fp32']:.2f}× per CPU-second of each "
          f"process), {g['ratio_bf16']:.2f}× with both in bf16 (ours with `dist.mixed_precision=bf16` against TRL as "
          f"shipped), {g['ratio']:.2f}× ours fp32 against TRL as shipped")
    lines += ["", "Every rate is the fastest of two interleaved runs per implementation (each run's rate is in the JSON). SFT on the "
              f"small preset: ours and TRL at the same arithmetic run at {100 * min(small):.0f}–{100 * max(small):.0f}% "
              f"of their machine's measured fp32 matmul peak.{sft_rerun_note()} GRPO on the tiny preset: {vs}. GRPO's update and reference "
              "passes run each group's prompt once and share its KV cache across the group's completions "
              "(`share_prefix`, on by default for GRPO and RLOO; the same log-probs and gradients to float rounding, "
              "tested), which takes a third of their arithmetic away at these shapes, and bf16 mixed precision on a CPU "
              "runs attention eagerly (SDPA's bf16 backward took ~6× its fp32 time on the CPU measured). Where our fp32 GRPO "
              "step's time goes (achieved GFLOP/s over a matmul peak measured for that phase's shapes): " + ", ".join(
                  f"{k} {1000 * v['s']:.1f} ms at {100 * v['share_of_peak']:.0f}%" for k, v in ph.items())
              + f" (the inverse-CDF draw is {1000 * g['ours']['roofline']['draw_s']:.1f} ms of the rollout)."]
    # The ceiling for our arithmetic: every phase at 100% of the peak measured for its own shapes.
    t_min = sum(v["gflop"] / v["peak_gflops_same_shapes"] for v in ph.values())
    rows_per_step = g["ours"]["roofline"]["rows"]
    ceiling = rows_per_step / t_min
    lines[-1] += (f" With every phase at 100% of that peak, a step of {rows_per_step} completions would take "
                  f"{1000 * t_min:.0f} ms: at most {ceiling:.0f} completions/s, "
                  f"{ceiling / g['trl_fp32']['rate_completions']:.2f}× TRL's measured fp32 rate. The ≥ 3× target is "
                  "not met: the tiny preset's 128-wide matmuls are so short that per-operation overhead holds its "
                  f"phases at {shares(g['ours'])} of the fp32 peak for their shapes and {shares(g['ours_bf16'])} "
                  "of the bf16 one.")
    try:
        gs = get("benchmarks/grpo_small.json:")
        lines[-1] += (f" On the small preset our fp32 GRPO phases run at {shares(gs['ours'])} of the fp32 matmul peak "
                      f"for their shapes ({gs['ratio_fp32']:.2f}× TRL in fp32), and our bf16 phases at "
                      f"{shares(gs['ours_bf16'])} of the bf16 peak ({gs['ratio_bf16']:.2f}× TRL as shipped, which "
                      "is bf16 too).")
    except Missing:
        pass
    try:
        dc = get("benchmarks/decode_compile.json:results")
        lines[-1] += (" Compiling the decode step (`ALIGNSTACK_COMPILE_DECODE=1`, static KV cache, batch "
                      f"{dc[0]['batch']}): " + "; ".join(
                          f"{r['preset']} {r['speedup']:.2f}× per step after {r['compile_s']:.1f} s of compiling ("
                          + (f"pays back after {r['break_even_steps']:,.0f} decode steps)" if r["break_even_steps"]
                             else "never pays back)") for r in dc) + ". A 120-step GRPO run of 24-token completions "
                      "makes 2,880 decode steps, so compiling stays off by default: it pays on long runs, and first on "
                      "the larger model, whose step it speeds up less but whose steps cost more.")
    except Missing:
        pass
    lines += ["", machines_note(g)]
    try:
        lines += ["", logprob_note()]
    except Missing:
        pass
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ README

BLOCKS = {"claims": claims_block, "results": results_block, "benchmarks": benchmarks_block}


def render(text: str) -> str:
    for name, fn in BLOCKS.items():
        pat = re.compile(rf"(<!-- BEGIN generated:{name} -->\n)(.*?)(<!-- END generated:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"README.md has no '<!-- BEGIN generated:{name} -->' … '<!-- END generated:{name} -->' block")
        body = (f"<!-- scripts/readme_tables.py writes this block from the committed JSON; do not edit it by hand -->\n"
                f"{fn()}\n")
        text = pat.sub(lambda m, b=body: m.group(1) + b + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md differs from what the JSON gives")
    p.add_argument("--print", action="store_true", help="print the generated blocks instead of writing")
    p.add_argument("--readme", default=str(README))
    a = p.parse_args(argv)
    if a.print:
        for name, fn in BLOCKS.items():
            print(f"## {name}\n{fn()}\n")
        return 0
    path = Path(a.readme)
    old = path.read_text()
    new = render(old)
    if a.check:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path),
                                                       "generated from the JSON"))
            print(f"\n{path} differs from the committed JSON: run `python scripts/readme_tables.py`")
            return 1
        return 0
    if new != old:
        path.write_text(new)
        print(f"rewrote the generated blocks of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
