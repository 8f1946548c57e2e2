"""Label noise on the exact testbed T1: do cDPO and robust DPO (rDPO) hold up better than plain DPO under
20% flipped preference labels? (METHODS.md §6; Mitchell 2023 for cDPO, Chowdhury et al. 2024 for rDPO.)

    python experiments/dpo_noise_t1.py [--seeds 3] [--steps 300]

On T1 (``alignstack.world.markov``) the KL-regularised optimum at every β is known exactly, and any tabular
policy's E[r] and KL(π‖π_ref) are computed exactly, so there is no eval noise: the only randomness is which
50,000 pairs (Bradley–Terry labels on the true reward) are drawn, varied over ``--seeds`` data seeds.
For each data seed and β: plain DPO on clean labels, and on the same pairs with 20% of the labels flipped
plain DPO, cDPO (label smoothing ε = 0.2) and rDPO (ε = 0.2, the true flip rate), all fitted by the same
full-batch tabular optimiser with the library's loss functions. Reported per fit: E[r], KL, the
objective gap to the optimum ``V*_β − (E[r] − β·KL)`` (0 = the policy DPO should find at this β), and the
frontier gap ``r*(KL) − E[r]`` (0 = on the best reward–KL frontier, whatever β it corresponds to).
``--parts sizes`` adds a data-size sweep (50k–400k pairs, every β, 2 data seeds): does each variant
approach the clean fit as the number of pairs grows? ``--parts overfit``: few pairs (1k–5k) and long
training (2,000 full-batch steps), the regime cDPO was proposed for. Writes ``dpo_noise_t1.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

BETAS = [0.5, 1.0, 2.0]
FLIP = 0.2
N_PAIRS = 50000
VARIANTS = {  # name: (flip rate of the data, loss, label_smoothing)
    "dpo_clean": (0.0, "sigmoid", 0.0),
    "dpo_noisy": (FLIP, "sigmoid", 0.0),
    "cdpo_noisy": (FLIP, "sigmoid", FLIP),
    "rdpo_noisy": (FLIP, "robust", FLIP),
}


def frontier_fn(w):
    """r*(KL): the exact frontier's reward at a given KL (linear between 100 solved β values)."""
    from alignstack.world import markov as M

    grid = [10 ** (-2 + 3.5 * i / 99) for i in range(100)]
    front = sorted((p["kl"], p["reward"]) for p in M.frontier(w, grid))

    def reward_at_kl(kl: float) -> float:
        for (k0, r0), (k1, r1) in zip(front, front[1:]):
            if k0 <= kl <= k1:
                return r0 + (r1 - r0) * (kl - k0) / max(k1 - k0, 1e-12)
        return front[-1][1] if kl > front[-1][0] else front[0][1]
    return reward_at_kl


def run(seeds: int, steps: int) -> dict:
    from alignstack.world import markov as M

    t0 = time.perf_counter()
    w = M.make_world(seed=0, n_tokens=12, n_pos=4, n_neg=4, horizon=4)
    reward_at_kl = frontier_fn(w)

    fits = []
    for seed in range(1, seeds + 1):
        data = {f: M.preference_pairs(w, N_PAIRS, seed=seed, flip=f) for f in (0.0, FLIP)}
        for beta in BETAS:
            v_star = float(M.optimal_policy(w, beta)[1][M.BOS])
            for name, (flip, loss, eps) in VARIANTS.items():
                lp = M.fit_tabular_preference(w, *data[flip], beta=beta, loss=loss, label_smoothing=eps, steps=steps)
                e = M.evaluate_policy(w, lp)
                fits.append({"seed": seed, "beta": beta, "variant": name, **e,
                             "objective_gap": v_star - (e["reward"] - beta * e["kl"]),
                             "frontier_gap": reward_at_kl(e["kl"]) - e["reward"]})
                print(json.dumps(fits[-1]), flush=True)
    return {"n_pairs": N_PAIRS, "flip": FLIP, "steps": steps, "seeds": seeds, "betas": BETAS,
            "optimum": {b: M.evaluate_policy(w, M.optimal_policy(w, b)[0]) for b in BETAS},
            "fits": fits, "wall_s": time.perf_counter() - t0}


SIZES = [50000, 100000, 200000, 400000]
OVERFIT_SIZES = [1000, 2000, 5000]
CDPO_VERDICT = (
    "- **cDPO holds up better when pairs are few and training is long** (the regime it was proposed for): plain "
    "DPO on 1k–5k flipped pairs drives the margins of single pairs, flipped ones included, far out (KL 2.7–13 "
    "nats), while cDPO's target P = 1 − ε bounds them (KL ≤ 2.8): a smaller objective gap than plain DPO on the "
    "same flipped pairs in {obj}/{n} (size × data seed × β) fits and a smaller frontier gap (more reward per nat of "
    "KL) in {fro}/{n}. It buys this with less absolute E[r] than the overfitted plain DPO, and clean-label DPO "
    "overfits here too, so part of its benefit is regularisation against overfitting, noise or not. rDPO "
    "overfits most in this regime.")
OVERFIT_STEPS = 2000


def fit_grid(sizes, seeds: int, steps: int) -> dict:
    """The four fits per (pair count, data seed, β) with exact E[r], KL, objective gap and frontier gap."""
    from alignstack.world import markov as M

    t0 = time.perf_counter()
    w = M.make_world(seed=0, n_tokens=12, n_pos=4, n_neg=4, horizon=4)
    reward_at_kl = frontier_fn(w)
    v_star = {b: float(M.optimal_policy(w, b)[1][M.BOS]) for b in BETAS}
    fits = []
    for n in sizes:
        for seed in range(1, seeds + 1):
            data = {f: M.preference_pairs(w, n, seed=seed, flip=f) for f in (0.0, FLIP)}
            for beta in BETAS:
                for name, (flip, loss, eps) in VARIANTS.items():
                    lp = M.fit_tabular_preference(w, *data[flip], beta=beta, loss=loss, label_smoothing=eps,
                                                  steps=steps)
                    e = M.evaluate_policy(w, lp)
                    fits.append({"n_pairs": n, "seed": seed, "beta": beta, "variant": name, **e,
                                 "objective_gap": v_star[beta] - (e["reward"] - beta * e["kl"]),
                                 "frontier_gap": reward_at_kl(e["kl"]) - e["reward"]})
                    print(json.dumps(fits[-1]), flush=True)
    return {"sizes": list(sizes), "steps": steps, "seeds": seeds, "fits": fits, "wall_s": time.perf_counter() - t0}


def run_overfit(seeds: int, sizes=OVERFIT_SIZES, steps: int = OVERFIT_STEPS) -> dict:
    """Few pairs, long training (the regime cDPO was proposed for: plain DPO drives every pair's margin
    up, flipped pairs included, and overfits)."""
    return fit_grid(sizes, seeds, steps)


def run_sizes(seeds: int, steps: int, sizes=SIZES) -> dict:
    """Growing numbers of pairs at the main part's step count: which fit approaches the clean one?"""
    return fit_grid(sizes, seeds, steps)


def _mean_range(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})"


def report(r: dict) -> str:
    L = ["# Label noise on T1: plain DPO vs cDPO vs robust DPO (exact reward and KL)", "",
         f"T1 world (12 tokens, horizon 4); {r['n_pairs']:,} Bradley–Terry pairs from π_ref per data seed, "
         f"{r['seeds']} data seeds; {int(r['flip'] * 100)}% of the labels flipped for the `_noisy` fits; cDPO and rDPO "
         f"use ε = {r['flip']} (the true flip rate). Full-batch Adam, {r['steps']} steps, from π_ref. Mean (min–max "
         "over data seeds). Produced by `python experiments/dpo_noise_t1.py` "
         f"({r['wall_s'] / 60:.0f} min on 2 shared CPU cores).", "",
         "| β | variant | E[r] | KL | objective gap to optimum | frontier gap |", "|---|---|---|---|---|---|"]
    for b in r["betas"]:
        o = r["optimum"][str(b)] if str(b) in r["optimum"] else r["optimum"][b]
        L.append(f"| {b} | *exact optimum* | {o['reward']:.3f} | {o['kl']:.3f} | 0 | 0 |")
        for v in VARIANTS:
            fs = [f for f in r["fits"] if f["beta"] == b and f["variant"] == v]
            L.append(f"| {b} | {v} | {_mean_range([f['reward'] for f in fs])} | {_mean_range([f['kl'] for f in fs])} | "
                     f"{_mean_range([f['objective_gap'] for f in fs])} | {_mean_range([f['frontier_gap'] for f in fs])} |")
    L += ["", "Objective gap: V*_β − (E[r] − β·KL), how far the fit is from the policy DPO targets at this β. "
          "Frontier gap: the exact frontier's reward at the fit's KL minus its reward (how much reward the fit "
          "leaves on the table for the KL it spends, at any β).", ""]

    def wins(v: str, metric: str) -> str:
        n = sum(1 for f in r["fits"] if f["variant"] == v for g in r["fits"]
                if g["variant"] == "dpo_noisy" and g["seed"] == f["seed"] and g["beta"] == f["beta"]
                and f[metric] < g[metric])
        tot = sum(1 for f in r["fits"] if f["variant"] == v)
        return f"{n}/{tot}"

    L += ["## Verdict at 50,000 pairs", "",
          f"- Paired against plain DPO on the same flipped pairs (data seed × β), smaller objective gap: cDPO "
          f"{wins('cdpo_noisy', 'objective_gap')}, rDPO {wins('rdpo_noisy', 'objective_gap')}; smaller frontier gap: "
          f"cDPO {wins('cdpo_noisy', 'frontier_gap')}, rDPO {wins('rdpo_noisy', 'frontier_gap')}.",
          "- With flipped labels plain DPO learns an attenuated implicit reward (the flips pull every preference "
          "probability toward ½), so it acts like DPO at a larger β — less KL, less reward, but still close to the "
          "best frontier. cDPO attenuates further (its target probability is 1 − ε on top of the noise): the most "
          "conservative fit, on the frontier but far from the β it was asked for. rDPO's loss is unbiased for the "
          "clean loss in expectation, but per pair it is unbounded below (−ε·h/(1 − 2ε) as the margin h → ∞): at "
          "50,000 pairs over 20,736 sequences (each sequence in ~5 pairs) a flexible tabular policy pushes single "
          "pairs' margins up, spends 1.3–5.6 nats of KL and leaves the most reward on the table."]
    sz = r.get("sizes")
    if sz:
        L += ["", f"## More pairs: which fit approaches the clean one? ({sz['seeds']} data seeds, "
              f"{sz['wall_s'] / 60:.0f} min)", "",
              "Objective gap to the exact β-optimum (mean over data seeds; 0 = the policy DPO targets at this β):", "",
              "| β | pairs | dpo_clean | dpo_noisy | cdpo_noisy | rdpo_noisy | rDPO E[r] / clean E[r] | plain DPO E[r] / clean E[r] |",
              "|---|---|---|---|---|---|---|---|"]
        for b in r["betas"]:
            for n in sz["sizes"]:
                fs = {v: [f for f in sz["fits"] if f["beta"] == b and f["n_pairs"] == n and f["variant"] == v]
                      for v in VARIANTS}
                g = {v: statistics.mean(f["objective_gap"] for f in x) for v, x in fs.items()}
                er = {v: statistics.mean(f["reward"] for f in x) for v, x in fs.items()}
                L.append(f"| {b} | {n:,} | {g['dpo_clean']:.3f} | {g['dpo_noisy']:.3f} | {g['cdpo_noisy']:.3f} | "
                         f"{g['rdpo_noisy']:.3f} | {er['rdpo_noisy'] / er['dpo_clean']:.2f} | "
                         f"{er['dpo_noisy'] / er['dpo_clean']:.2f} |")
        big = max(sz["sizes"])
        last = {v: [f for f in sz["fits"] if f["n_pairs"] == big and f["variant"] == v] for v in VARIANTS}
        rd_wins = sum(1 for f in last["rdpo_noisy"] for g in last["dpo_noisy"]
                      if g["seed"] == f["seed"] and g["beta"] == f["beta"] and f["objective_gap"] < g["objective_gap"])
    of = r.get("overfit")
    if of:
        L += ["", f"## Few pairs, long training: does cDPO stop plain DPO from overfitting the flips? "
              f"({of['steps']} full-batch steps, {of['seeds']} data seeds, {of['wall_s'] / 60:.0f} min)", "",
              "Mean over data seeds; objective gap as above; frontier gap = r*(KL) − E[r].", "",
              "| β | pairs | variant | E[r] | KL | objective gap | frontier gap |", "|---|---|---|---|---|---|---|"]
        for b in r["betas"]:
            for n in of["sizes"]:
                for v in VARIANTS:
                    fs = [f for f in of["fits"] if f["beta"] == b and f["n_pairs"] == n and f["variant"] == v]
                    m = {k: statistics.mean(f[k] for f in fs) for k in ("reward", "kl", "objective_gap", "frontier_gap")}
                    L.append(f"| {b} | {n:,} | {v} | {m['reward']:.3f} | {m['kl']:.3f} | {m['objective_gap']:.3f} | "
                             f"{m['frontier_gap']:.3f} |")
        pairs = [(f, g) for f in of["fits"] if f["variant"] == "cdpo_noisy" for g in of["fits"]
                 if g["variant"] == "dpo_noisy" and (g["n_pairs"], g["seed"], g["beta"]) == (f["n_pairs"], f["seed"], f["beta"])]
        obj = sum(f["objective_gap"] < g["objective_gap"] for f, g in pairs)
        fro = sum(f["frontier_gap"] < g["frontier_gap"] for f, g in pairs)
        L += ["", f"cDPO vs plain DPO on the same flipped pairs (size × data seed × β): smaller objective gap in "
              f"{obj}/{len(pairs)}, smaller frontier gap in {fro}/{len(pairs)}."]
    if sz or of:
        L += ["", "## Verdict", ""]
    if sz:
        L.append(f"- **rDPO holds up better once there is enough data**: at {big:,} pairs (each sequence in "
                 f"~{2 * big // 20736} pairs) rDPO on 20%-flipped labels has a smaller objective gap than plain DPO on "
                 f"the same labels in {rd_wins}/{len(last['rdpo_noisy'])} (β × data seed) fits and lands on the clean "
                 "fit (same E[r] and KL), as the paper's unbiasedness argument says; plain DPO stays attenuated (a "
                 "larger effective β) at every data size, because its bias does not shrink with data. From 100,000 "
                 "pairs on rDPO's gap is below plain DPO's at every β; at 50,000 its unbounded per-pair loss makes it "
                 "overshoot instead: its guarantee is asymptotic. With enough data cDPO is the most attenuated fit "
                 "(it targets P = 1 − ε on top of the noise by design): conservative, not de-biasing.")
    if of:
        L.append(CDPO_VERDICT.format(obj=obj, fro=fro, n=len(pairs)))
    if sz or of:
        L.append("- On the world (`dpo.md`, 1,500–2,000 pairs for a neural policy, one epoch) neither variant "
                 "resolved a difference. Departure from the papers' setting: a tabular policy (no function-class "
                 "smoothing) and a known flip rate.")
    return "\n".join(L) + "\n"


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="experiments/results")
    p.add_argument("--report", action="store_true", help="only rewrite the markdown from the committed JSON")
    p.add_argument("--parts", default="main", help="main (50k pairs, --seeds), sizes (data-size sweep), overfit (few pairs, long training)")
    p.add_argument("--size-seeds", type=int, default=2)
    a = p.parse_args()
    out = Path(a.out)
    path = out / "dpo_noise_t1.json"
    r = json.loads(path.read_text()) if path.exists() else {}
    if not a.report:
        torch.set_num_threads(1)
        if "main" in a.parts.split(","):
            r.update(run(a.seeds, a.steps))
        if "sizes" in a.parts.split(","):
            r["sizes"] = run_sizes(a.size_seeds, a.steps)
        if "overfit" in a.parts.split(","):
            r["overfit"] = run_overfit(a.size_seeds)
        path.write_text(json.dumps(r, indent=2))
    (out / "dpo_noise_t1.md").write_text(report(r))
    print(report(r))


if __name__ == "__main__":
    main()
