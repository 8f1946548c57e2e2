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
Writes ``dpo_noise_t1.{json,md}``.
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


def run(seeds: int, steps: int) -> dict:
    from alignstack.world import markov as M

    t0 = time.perf_counter()
    w = M.make_world(seed=0, n_tokens=12, n_pos=4, n_neg=4, horizon=4)
    grid = [10 ** (-2 + 3.5 * i / 99) for i in range(100)]
    front = sorted((p["kl"], p["reward"]) for p in M.frontier(w, grid))

    def reward_at_kl(kl: float) -> float:
        for (k0, r0), (k1, r1) in zip(front, front[1:]):
            if k0 <= kl <= k1:
                return r0 + (r1 - r0) * (kl - k0) / max(k1 - k0, 1e-12)
        return front[-1][1] if kl > front[-1][0] else front[0][1]

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

    L += ["## Verdict", "",
          f"- Paired against plain DPO on the same flipped pairs (data seed × β), smaller objective gap: cDPO "
          f"{wins('cdpo_noisy', 'objective_gap')}, rDPO {wins('rdpo_noisy', 'objective_gap')}; smaller frontier gap: "
          f"cDPO {wins('cdpo_noisy', 'frontier_gap')}, rDPO {wins('rdpo_noisy', 'frontier_gap')}.",
          "- **Neither variant holds up better at a given β**: with flipped labels plain DPO learns an attenuated "
          "implicit reward (the flips pull every preference probability toward ½), so it acts like DPO at a larger "
          "β — less KL, less reward, but still close to the best frontier. cDPO attenuates further (its target "
          "probability is 1 − ε on top of the noise): the most conservative fit, on the frontier but far from the "
          "β it was asked for (its small frontier gap comes with a tiny KL, where every policy's gap is small). "
          "rDPO's loss is unbiased for the clean loss in expectation, and its E[r] even exceeds the clean fit's, "
          "but per pair it is unbounded below (−ε·h/(1 − 2ε) as the margin h → ∞): a flexible tabular policy "
          "pushes single pairs' margins up, spends 1.3–5.6 nats of KL and leaves the most reward on the table.",
          "- So on T1 20% label noise acts mainly as a change of β, and the cheapest remedy is re-tuning β; this "
          "agrees with the world result (`dpo.md`: cDPO and rDPO not better than plain DPO under 20% flips, one "
          "seed). Departure from the papers' setting: a tabular policy (no function-class smoothing, which may "
          "keep rDPO's margins bounded in a neural model) and a known flip rate."]
    return "\n".join(L) + "\n"


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="experiments/results")
    p.add_argument("--report", action="store_true", help="only rewrite the markdown from the committed JSON")
    a = p.parse_args()
    out = Path(a.out)
    if a.report:
        r = json.loads((out / "dpo_noise_t1.json").read_text())
    else:
        torch.set_num_threads(1)
        r = run(a.seeds, a.steps)
        (out / "dpo_noise_t1.json").write_text(json.dumps(r, indent=2))
    (out / "dpo_noise_t1.md").write_text(report(r))
    print(report(r))


if __name__ == "__main__":
    main()
