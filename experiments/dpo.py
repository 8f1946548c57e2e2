"""DPO family on the built-in world (METHODS §6.6) — T2 ground truth and the T1 exact frontier.

    python experiments/dpo.py --sft PATH_TO_SFT_MODEL [--work runs/experiments/dpo] [--out experiments/results]

1. **Pairs.** 4 samples per train prompt from the SFT model at T = 1, split into 2 pairs each and
   labelled by the simulated annotator (``feedback.collect``; identical pairs dropped); the first
   ``--pairs`` (default 2,048) train DPO. Held-out pairs come the same way from dev prompts.
2. **DPO vs SFT.** ``configs/dpo.yaml`` (β 0.1, lr 3e-4, rpo_alpha 0.2, one epoch); ground truth on
   1,000 eval prompts at T = 1 and greedily, paired per-prompt differences with 95% CIs: score (all
   prompts), helpfulness (benign prompts), unsafe (harmful requests); KL to SFT.
3. **Label noise.** 20% of the training labels flipped: DPO vs cDPO (ε = 0.2) vs robust DPO
   (ε = 0.2), on ground truth and on held-out loss / accuracy (dev pairs, plain-DPO loss vs SFT).
4. **T1.** The exact reward–KL frontier of a 12-token Markov world (horizon 4) by backward DP,
   and tabular DPO fits for β ∈ {0.05 … 5} on 50k Bradley–Terry pairs from π_ref; plus the
   two-action bandit with deterministic preferences (DPO vs IPO).

Writes ``dpo.json``, ``dpo_t1_frontier.png`` and ``dpo.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOISE_RUNS = {"dpo": ["loss=sigmoid"], "cdpo": ["loss=sigmoid", "label_smoothing=0.2"],
              "rdpo": ["loss=robust", "label_smoothing=0.2"]}
T1_BETAS = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
T1_PPO_TARGET_KL = [0.1, 0.3, 1.0, 3.0, 8.0]


def t1_reward_model(w, chosen, rejected, steps: int = 300):
    """A tabular Bradley–Terry reward model on the same pairs DPO sees: r̂(y) = Σ_t u[t, s_t, y_t],
    fitted by full-batch Adam on −log σ(r̂(y_c) − r̂(y_r)) (the PPO arm's learned RM)."""
    import torch

    from alignstack.world import markov as M

    u = torch.zeros(w.horizon, w.n_states, w.n_tokens, dtype=M.DT, requires_grad=True)
    opt = torch.optim.Adam([u], lr=0.1)
    for _ in range(steps):
        loss = -torch.nn.functional.logsigmoid(M.sequence_logprobs(w, u, chosen) - M.sequence_logprobs(w, u, rejected))
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    u = u.detach()
    return lambda seqs: M.sequence_logprobs(w, u, seqs)


def t1_ppo(w, reward_fn, target_kl: float, iters: int = 300, batch: int = 1024, epochs: int = 4, lr: float = 0.02,
           clip: float = 0.2, seed: int = 0):
    """Tabular PPO on T1 (sampled rollouts, exact evaluation afterwards). Sequence-level clipped
    surrogate (Schulman et al. 2017, eq. 7) on whitened advantages A = r̂(y) − β_kl·log π/π_ref(y)
    with a batch-mean baseline (no value net: the reward is terminal and T = 4), and Ziegler et
    al.'s adaptive KL controller β_kl ← β_kl·(1 + K·clip((KL − target)/target, ±0.2)), with a larger
    gain K = 0.5 than their 0.1 (300 iterations instead of thousands).
    Returns the final log-policy (T, S, A)."""
    import torch

    from alignstack.world import markov as M

    g = torch.Generator().manual_seed(seed)
    theta = w.log_ref.unsqueeze(0).repeat(w.horizon, 1, 1).clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    kl_coef = 1.0
    for _ in range(iters):
        lp = torch.log_softmax(theta.detach(), -1)
        seqs = M.sample(w, lp, batch, g)
        old = M.sequence_logprobs(w, lp, seqs)
        kl_s = old - M.sequence_logprobs(w, w.log_ref, seqs)
        ret = reward_fn(seqs) - kl_coef * kl_s
        adv = (ret - ret.mean()) / (ret.std() + 1e-8)
        for _ in range(epochs):
            ratio = (M.sequence_logprobs(w, torch.log_softmax(theta, -1), seqs) - old).exp()
            loss = -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        err = max(-0.2, min(0.2, (float(kl_s.mean()) - target_kl) / target_kl))
        kl_coef *= 1 + 0.5 * err
    return torch.log_softmax(theta.detach(), -1)


def gt_eval(model, tok, tasks, seed=0) -> dict:
    """Per-prompt ground truth at T = 1 and greedily (the eval module's decoding settings)."""
    from alignstack.eval.ground_truth import generate_for_tasks, prompt_ids_of
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.world import tasks as T

    out, prompts = {}, prompt_ids_of(tok, tasks)      # rendered once for both modes
    for mode, sc in (("sampled", SamplingConfig(32, 1.0)), ("greedy", SamplingConfig(32, greedy=True))):
        resp = generate_for_tasks(model, tok, tasks, sc, seed, prompts)
        per = [T.score(t, r) for t, r in zip(tasks, resp)]
        out[mode] = {"score": [p["helpfulness"] for p in per],
                     "help": [p["helpfulness"] for p, t in zip(per, tasks) if not t.is_safety],
                     "unsafe": [p["unsafe"] for p, t in zip(per, tasks) if t.is_safety],
                     "samples": [{"prompt": t.prompt, "response": r} for t, r in list(zip(tasks, resp))[:4]]}
    return out


def summary(ev: dict) -> dict:
    m = lambda x: sum(x) / len(x)  # noqa: E731
    return {mode: {"score": m(v["score"]), "helpfulness": m(v["help"]), "unsafe_rate": m(v["unsafe"])}
            for mode, v in ev.items()}


def paired(a: dict, b: dict) -> dict:
    from alignstack.eval.stats import paired_difference

    out = {}
    for mode in a:
        out[mode] = {}
        for k in ("score", "help", "unsafe"):
            d = paired_difference(a[mode][k], b[mode][k])["diff"]
            out[mode][{"help": "helpfulness", "unsafe": "unsafe_rate"}.get(k, k)] = {
                "diff": d["mean"], "ci": [d["lo"], d["hi"]], "n": d["n"]}
    return out


def t1_experiment(out_dir: Path, n_pairs: int = 50000, steps: int = 300) -> dict:
    import math

    import torch

    from alignstack.world import markov as M

    t0 = time.perf_counter()
    w = M.make_world(seed=0, n_tokens=12, n_pos=4, n_neg=4, horizon=4)
    grid = [10 ** (-1.5 + 3 * i / 59) for i in range(60)]
    front = M.frontier(w, grid)
    chosen, rejected = M.preference_pairs(w, n_pairs, seed=1)
    points = []
    for b in T1_BETAS:
        lp = M.fit_tabular_preference(w, chosen, rejected, beta=b, steps=steps, lr=0.1)
        opt = M.frontier(w, [b])[0]
        points.append({"beta": b, **M.evaluate_policy(w, lp), "optimum_reward": opt["reward"],
                       "optimum_kl": opt["kl"]})
    # the same β = 1 fit run 10x longer: finite-sample DPO over-fits (KL grows past the optimum)
    long = M.fit_tabular_preference(w, chosen, rejected, beta=1.0, steps=10 * steps, lr=0.1)
    overfit = {"beta": 1.0, "steps": 10 * steps, **M.evaluate_policy(w, long)}
    # PPO arm: the same pairs -> tabular BT reward model -> PPO at a sweep of target KLs; and PPO on the true r
    rhat = t1_reward_model(w, chosen, rejected, steps)
    ppo_iters = 60 if steps < 100 else 300
    ppo = {"learned_rm": [], "true_reward": []}
    for arm, fn in (("learned_rm", rhat), ("true_reward", lambda q: M.sequence_rewards(w, q))):
        for tk in T1_PPO_TARGET_KL:
            lp = t1_ppo(w, fn, tk, iters=ppo_iters)
            ppo[arm].append({"target_kl": tk, **M.evaluate_policy(w, lp)})

    def reward_at_kl(kl):  # the exact frontier's reward at a given KL (linear interpolation)
        pts = sorted((p["kl"], p["reward"]) for p in front)
        for (k0, r0), (k1, r1) in zip(pts, pts[1:]):
            if k0 <= kl <= k1:
                return r0 + (r1 - r0) * (kl - k0) / max(k1 - k0, 1e-12)
        return pts[-1][1] if kl > pts[-1][0] else pts[0][1]

    for p in points + [overfit] + ppo["learned_rm"] + ppo["true_reward"]:
        p["frontier_reward_at_kl"] = reward_at_kl(p["kl"])
        p["gap"] = p["frontier_reward_at_kl"] - p["reward"]
    chosen_b, rejected_b = torch.zeros(16, 1, dtype=torch.long), torch.ones(16, 1, dtype=torch.long)
    bandit = []
    for tau in (0.25, 0.5, 1.0, 2.0):
        wb = M.bandit()
        pi = {loss: float(M.fit_tabular_preference(wb, chosen_b, rejected_b, beta=tau, loss=loss, steps=300,
                                                   lr=0.1)[0, M.BOS, 0].exp()) for loss in ("sigmoid", "ipo")}
        bandit.append({"tau": tau, "dpo_p_preferred": pi["sigmoid"], "ipo_p_preferred": pi["ipo"],
                       "ipo_theory": 1 / (1 + math.exp(-1 / (2 * tau)))})
    _plot_t1(front, points, overfit, out_dir / "dpo_t1_frontier.png", ppo)
    return {"ppo_points": ppo, "ppo_iters": ppo_iters, "world": {"n_tokens": 12, "n_pos": 4, "n_neg": 4, "horizon": 4, "seed": 0},
            "pairs": n_pairs, "fit_steps": steps, "frontier": [{k: p[k] for k in ("beta", "reward", "kl")} for p in front],
            "dpo_points": points, "dpo_overfit": overfit, "bandit": bandit,
            "wall_s": time.perf_counter() - t0}


def _plot_t1(front, points, overfit, path: Path, ppo: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot([p["kl"] for p in front], [p["reward"] for p in front], "k-", lw=1.5, label="exact optimum (DP, β sweep)")
    ax.scatter([p["optimum_kl"] for p in points], [p["optimum_reward"] for p in points], facecolors="none",
               edgecolors="k", s=40, label="optimum at the DPO β")
    ax.scatter([p["kl"] for p in points], [p["reward"] for p in points], c="C0", s=36, zorder=3,
               label="tabular DPO (β sweep)")
    for p in points:
        ax.annotate(f"β={p['beta']:g}", (p["kl"], p["reward"]), textcoords="offset points", xytext=(5, -10),
                    fontsize=7, color="C0")
    ax.scatter([overfit["kl"]], [overfit["reward"]], c="C3", marker="x", s=50, zorder=3,
               label="tabular DPO β=1, 10× the steps")
    for arm, c, lab in (("learned_rm", "C2", "tabular PPO, learned RM (target-KL sweep)"),
                        ("true_reward", "C1", "tabular PPO, true reward (target-KL sweep)")):
        pts = sorted((ppo or {}).get(arm, []), key=lambda p: p["kl"])
        if pts:
            ax.plot([p["kl"] for p in pts], [p["reward"] for p in pts], "s--", c=c, ms=5, lw=0.8, zorder=3, label=lab)
    ax.set_xlabel("KL(π ‖ π_ref) (nats, sequence)")
    ax.set_ylabel("E[r]")
    ax.set_title("T1 Markov world: reward–KL frontier")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    import torch

    from alignstack.config import load
    from alignstack.data.sources import write_jsonl
    from alignstack.eval.ground_truth import EvalConfig, eval_tasks, kl_to_reference
    from alignstack.feedback.collect import CollectConfig, collect
    from alignstack.methods import dpo
    from alignstack.models.load import load_model, load_tokenizer

    p = argparse.ArgumentParser()
    p.add_argument("--sft", required=True)
    p.add_argument("--pairs", type=int, default=2048)
    p.add_argument("--work", default="runs/experiments/dpo")
    p.add_argument("--out", default="experiments/results")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check the script end to end")
    p.add_argument("--t1-only", action="store_true", help="only the T1 part (printed, not saved)")
    p.add_argument("--render", action="store_true", help="only rebuild dpo.md and the PNG from dpo.json")
    p.add_argument("--noise-epochs", type=int, default=None,
                   help="only the label-noise runs (clean DPO + the flipped-label variants) trained for N epochs, "
                        "added to dpo.json under noise_epochs[N] (the 1-epoch results stay)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    work, out_dir = Path(a.work), Path(a.out)
    if a.render:
        res = json.loads((out_dir / "dpo.json").read_text())
        t1 = res["t1"]
        _plot_t1(t1["frontier"], t1["dpo_points"], t1["dpo_overfit"], out_dir / "dpo_t1_frontier.png",
                 t1.get("ppo_points"))
        (out_dir / "dpo.md").write_text(report(res))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings = {}
    from alignstack.world import WORLD_VERSION

    res: dict = {"sft": str(a.sft), "config": "configs/dpo.yaml", "world_version": WORLD_VERSION}
    if a.noise_epochs:
        res = json.loads((out_dir / "dpo.json").read_text())
    else:
        # ---- T1 (cheap, exact)
        res["t1"] = t1_experiment(out_dir, 2000, 30) if a.quick else t1_experiment(out_dir)
        if a.t1_only:
            print(json.dumps({k: v for k, v in res["t1"].items() if k != "frontier"}, indent=1))
            return
        timings["t1"] = res["t1"]["wall_s"]
        print(f"[t1] done in {timings['t1']:.0f}s", flush=True)

    # ---- pairs
    t0 = time.perf_counter()
    tok, sft = load_tokenizer(a.sft), load_model(a.sft)
    train_rows = [r for r in collect(sft, tok, CollectConfig(n_prompts=int(a.pairs * 0.75) + 200, split="train",
                                                             mode="preference", k=4, seed=0))
                  if r["chosen"] != r["rejected"]]
    if len(train_rows) < a.pairs:
        raise SystemExit(f"only {len(train_rows)} distinct pairs; raise the prompt count")
    train_rows = train_rows[:a.pairs]
    dev_rows = [r for r in collect(sft, tok, CollectConfig(n_prompts=30 if a.quick else 300, split="dev", mode="preference", k=4,
                                                           seed=1)) if r["chosen"] != r["rejected"]]
    rng = random.Random("dpo-flip|0")
    flipped = []
    for r in train_rows:
        r2 = dict(r)
        if rng.random() < 0.2:
            r2["chosen"], r2["rejected"] = r["rejected"], r["chosen"]
        flipped.append(r2)
    clean_path = write_jsonl(work / "pairs_train.jsonl", train_rows)
    noisy_path = write_jsonl(work / "pairs_train_flip20.jsonl", flipped)
    flip_rate = sum(x["chosen"] != y["chosen"] for x, y in zip(flipped, train_rows)) / len(train_rows)
    res["data"] = {"train_pairs": len(train_rows), "dev_pairs": len(dev_rows), "flip_rate": flip_rate,
                   "chosen_safe_frac": sum(bool(r.get("chosen_safe")) for r in train_rows) / len(train_rows)}
    timings["pairs"] = time.perf_counter() - t0
    print(f"[pairs] {res['data']} in {timings['pairs']:.0f}s", flush=True)

    # ---- SFT baseline
    t0 = time.perf_counter()
    tasks = eval_tasks(EvalConfig(n_prompts=60 if a.quick else 1000))
    base = gt_eval(sft, tok, tasks)
    if not a.noise_epochs:
        res["sft_eval"] = summary(base)
    timings["eval_sft"] = time.perf_counter() - t0

    last_eval: dict = {}

    def run(name: str, data_path: Path, extra: list[str]) -> tuple[dict, object]:
        t = time.perf_counter()
        cfg = load(dpo.DPOConfig, ROOT / "configs" / "dpo.yaml",
                   [f"out={work / name}", f"model.path={a.sft}", f"data.path={data_path}", "log.progress=false",
                    *extra])
        r = dpo.train(cfg)
        model = load_model(work / name / "model")
        ev = gt_eval(model, tok, tasks)
        last_eval["ev"] = ev
        held = dpo.heldout_pair_metrics(model, sft, tok, dev_rows, beta=0.1)
        info = {"overrides": extra, "steps": r["steps"], "train_loss_first": r["first_loss"],
                "train_loss_last": r["train_loss"],
                "final_rewards": {k: v for k, v in r["final_stats"].items() if k.startswith("rewards/")},
                "eval": summary(ev), "vs_sft": paired(ev, base), "heldout": held,
                "wall_s": time.perf_counter() - t}
        timings[name] = info["wall_s"]
        s = info["vs_sft"]["sampled"]
        print(f"[{name}] {info['wall_s']:.0f}s score diff {s['score']['diff']:+.3f} {s['score']['ci']} "
              f"help {info['eval']['sampled']['helpfulness']:.3f} unsafe {info['eval']['sampled']['unsafe_rate']:.3f} "
              f"heldout {held}", flush=True)
        return info, model

    if a.noise_epochs:     # the label-noise question where plain DPO can overfit: N epochs over the pairs
        ep = [f"optim.epochs={a.noise_epochs}"]
        block: dict = {"clean": run(f"e{a.noise_epochs}_clean", clean_path, ep)[0]}
        per_prompt = {}
        for name, over in NOISE_RUNS.items():
            block[name], _ = run(f"e{a.noise_epochs}_flip20_{name}", noisy_path, over + ep)
            per_prompt[name] = last_eval["ev"]
        block["vs_dpo"] = {n: paired(per_prompt[n], per_prompt["dpo"]) for n in NOISE_RUNS if n != "dpo"}
        block["timings_s"] = {**timings, "total": time.perf_counter() - t_start}
        res.setdefault("noise_epochs", {})[str(a.noise_epochs)] = block
        (out_dir / "dpo.json").write_text(json.dumps(res, indent=2))
        (out_dir / "dpo.md").write_text(report(res))
        return

    # ---- DPO vs SFT (clean labels)
    res["dpo"], model = run("dpo_clean", clean_path, [])
    t0 = time.perf_counter()
    res["dpo"]["kl_to_sft"] = kl_to_reference(model, sft, tok, tasks[:300])
    timings["kl"] = time.perf_counter() - t0

    # ---- 20% flipped labels
    per_prompt = {}
    res["noise"] = {}
    for name, over in NOISE_RUNS.items():
        res["noise"][name], _ = run(f"flip20_{name}", noisy_path, over)
        per_prompt[name] = last_eval["ev"]
    # paired per-prompt differences of each robust variant against plain DPO on the same flipped data
    res["noise_vs_dpo"] = {name: paired(per_prompt[name], per_prompt["dpo"]) for name in NOISE_RUNS if name != "dpo"}
    res["timings_s"] = {**timings, "total": time.perf_counter() - t_start}
    (out_dir / "dpo.json").write_text(json.dumps(res, indent=2))
    (out_dir / "dpo.md").write_text(report(res))
    print(f"total {res['timings_s']['total']:.0f}s", flush=True)


def noise_verdict(vs_dpo: dict) -> str:
    """Each robust variant vs plain DPO on the same flipped labels (T = 1): better / worse only where a CI
    excludes 0 (higher score or lower unsafe rate is better)."""
    out = []
    for name, v in vs_dpo.items():
        sc, un = v["sampled"]["score"], v["sampled"]["unsafe_rate"]
        better = sc["ci"][0] > 0 or un["ci"][1] < 0
        worse = sc["ci"][1] < 0 or un["ci"][0] > 0
        out.append(f"{name}: " + ("better than plain DPO (CI excludes 0)" if better and not worse else
                                  "worse than plain DPO (CI excludes 0)" if worse and not better else
                                  "mixed" if better and worse else "no difference resolved (CIs include 0)"))
    return "; ".join(out)


def t1_verdict(t1: dict) -> str:
    """Is DPO's frontier above PPO's? Compare each method's points by their gap to the exact optimum
    at the same KL (reward-at-equal-KL), over the KL range both cover."""
    dpo, ppo = t1["dpo_points"], t1["ppo_points"]
    parts = []
    for arm, name in (("learned_rm", "PPO with the learned RM"), ("true_reward", "PPO with the true reward")):
        pts = ppo[arm]
        lo = max(min(p["kl"] for p in dpo), min(p["kl"] for p in pts))
        hi = min(max(p["kl"] for p in dpo), max(p["kl"] for p in pts))
        gd = [p["gap"] for p in dpo if lo <= p["kl"] <= hi]
        gp = [p["gap"] for p in pts if lo <= p["kl"] <= hi]
        if gd and gp:
            m_d, m_p = sum(gd) / len(gd), sum(gp) / len(gp)
            parts.append(f"vs {name} over KL ∈ [{lo:.2f}, {hi:.2f}]: mean gap to the optimum DPO {m_d:.3f} "
                         f"({len(gd)} points) vs PPO {m_p:.3f} ({len(gp)} points) — DPO's frontier lies "
                         f"{'above' if m_d < m_p else 'below'} this PPO's")
    return ("**DPO vs PPO frontier (T1).** " + "; ".join(parts) + ". (Gap = exact-optimum reward at the point's "
            "KL − its reward; lower is better; one seed, no CI — T1 is exact in evaluation but the fits are "
            "noisy through the sampled pairs / rollouts.)") if parts else ""


def _ci(d: dict) -> str:
    return f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"


def report(res: dict) -> str:
    sft, d = res["sft_eval"], res["dpo"]
    lines = ["# DPO family on the built-in world", "",
             f"World version {res.get('world_version', '?')}. SFT model `{res['sft']}`; recipe `{res['config']}` (β 0.1, lr 3e-4, rpo_alpha 0.2, 1 epoch); "
             f"{res['data']['train_pairs']} training pairs (4 T=1 samples per train prompt, simulated annotator), "
             f"{res['data']['dev_pairs']} held-out dev pairs; ground truth on 1,000 eval prompts. "
             "Differences are paired per prompt (DPO − SFT) with 95% CIs. Produced by `experiments/dpo.py` "
             f"in {res['timings_s']['total']:.0f} s.", "",
             "## DPO vs SFT (clean labels)", "",
             "| decoding | metric | SFT | DPO | DPO − SFT [95% CI] |", "|---|---|---|---|---|"]
    for mode in ("sampled", "greedy"):
        for k in ("score", "helpfulness", "unsafe_rate"):
            lines.append(f"| {mode} | {k} | {sft[mode][k]:.3f} | {d['eval'][mode][k]:.3f} | "
                         f"{_ci(d['vs_sft'][mode][k])} |")
    kl = d["kl_to_sft"]
    lines += ["", f"KL(DPO ‖ SFT) on 300 eval prompts: {kl['kl']:.3f} nats per response. Held-out dev pairs: "
              f"plain-DPO loss {d['heldout']['loss']:.4f}, implicit-reward accuracy {d['heldout']['accuracy']:.3f}.",
              "", "## 20% flipped training labels", "",
              "| loss | held-out loss | held-out acc | score (T=1) | helpfulness | unsafe | score − SFT [95% CI] |",
              "|---|---|---|---|---|---|---|"]
    for name, r in [("dpo (clean labels)", d)] + [(f"{k} (20% flipped)", v) for k, v in res["noise"].items()]:
        e = r["eval"]["sampled"]
        lines.append(f"| {name} | {r['heldout']['loss']:.4f} | {r['heldout']['accuracy']:.3f} | {e['score']:.3f} | "
                     f"{e['helpfulness']:.3f} | {e['unsafe_rate']:.3f} | {_ci(r['vs_sft']['sampled']['score'])} |")
    nv = res.get("noise_vs_dpo")
    if nv:
        lines += ["", "Paired per-prompt differences against plain DPO trained on the same flipped labels "
                  "(1,000 eval prompts, 95% CIs; unsafe: harmful-request prompts, helpfulness: benign prompts):", "",
                  "| variant − dpo (20% flipped) | decoding | score | helpfulness | unsafe rate |", "|---|---|---|---|---|"]
        for name, v in nv.items():
            for mode in ("sampled", "greedy"):
                lines.append(f"| {name} | {mode} | {_ci(v[mode]['score'])} | {_ci(v[mode]['helpfulness'])} | "
                             f"{_ci(v[mode]['unsafe_rate'])} |")
        lines += ["", "(On the exact testbed, where nothing is left to eval noise, `dpo_noise_t1.md`: at this scale of "
                  "data neither holds up better; with 100k+ pairs robust DPO does (it recovers the clean fit), and with few "
                  "pairs and long training cDPO does (it keeps plain DPO from overfitting the flips).)"]
        lines += ["", "**Label-noise verdict (T = 1, score and unsafe rate):** " + noise_verdict(nv) + ". The "
                  "paper-level claim that cDPO / robust DPO hold up better under 20% flips is only supported where "
                  "a CI excludes 0; one seed."]
    for n_ep, blk in sorted(res.get("noise_epochs", {}).items()):
        lines += ["", f"### {n_ep} epochs over the same pairs (where plain DPO can overfit the flips)", "",
                  "| loss | held-out loss | held-out acc | score (T=1) | helpfulness | unsafe | score − SFT [95% CI] |",
                  "|---|---|---|---|---|---|---|"]
        for name in ["clean", *NOISE_RUNS]:
            r = blk[name]
            e = r["eval"]["sampled"]
            label = "dpo (clean labels)" if name == "clean" else f"{name} (20% flipped)"
            lines.append(f"| {label} | {r['heldout']['loss']:.4f} | {r['heldout']['accuracy']:.3f} | {e['score']:.3f} | "
                         f"{e['helpfulness']:.3f} | {e['unsafe_rate']:.3f} | {_ci(r['vs_sft']['sampled']['score'])} |")
        lines += ["", f"| variant − dpo (20% flipped, {n_ep} epochs) | decoding | score | helpfulness | unsafe rate |",
                  "|---|---|---|---|---|"]
        for name, v in blk["vs_dpo"].items():
            for mode in ("sampled", "greedy"):
                lines.append(f"| {name} | {mode} | {_ci(v[mode]['score'])} | {_ci(v[mode]['helpfulness'])} | "
                             f"{_ci(v[mode]['unsafe_rate'])} |")
        cost = blk["clean"]["vs_sft"]["sampled"]["score"]["diff"] - blk["dpo"]["vs_sft"]["sampled"]["score"]["diff"]
        lines += ["", f"**{n_ep} epochs:** the flips cost plain DPO {cost:+.3f} of its score gain over SFT (clean − "
                  f"flipped, unpaired point estimates); against plain DPO on the same flipped labels — "
                  + noise_verdict(blk["vs_dpo"]) + ". So the paper-level claim (cDPO / robust DPO hold up better "
                  "under 20% flips) is not supported here either; one seed."]
    t1 = res["t1"]
    lines += ["", "## T1: exact reward–KL frontier (`dpo_t1_frontier.png`)", "",
              f"12-token Markov world, horizon 4; tabular DPO on {t1['pairs']} Bradley–Terry pairs from π_ref, "
              f"{t1['fit_steps']} full-batch Adam steps. `gap` = frontier reward at the point's KL − its reward "
              "(≥ 0; 0 is on the frontier).", "",
              "| β | DPO E[r] | DPO KL | optimum E[r] | optimum KL | gap |", "|---|---|---|---|---|---|"]
    for p in t1["dpo_points"]:
        lines.append(f"| {p['beta']:g} | {p['reward']:.3f} | {p['kl']:.3f} | {p['optimum_reward']:.3f} | "
                     f"{p['optimum_kl']:.3f} | {p['gap']:.3f} |")
    ppo = t1.get("ppo_points")
    if ppo:
        lines += ["", f"PPO on the same T1 world ({t1.get('ppo_iters')} iterations × 1,024 sampled sequences, "
                  "4 epochs, clipped surrogate, adaptive KL controller), two arms: **learned RM** (a tabular "
                  "Bradley–Terry reward fitted on the same pairs DPO uses) and **true reward**. Exact evaluation.", "",
                  "| target KL | PPO (learned RM) E[r] | KL | gap | PPO (true r) E[r] | KL | gap |",
                  "|---|---|---|---|---|---|---|"]
        for x, y in zip(ppo["learned_rm"], ppo["true_reward"]):
            lines.append(f"| {x['target_kl']:g} | {x['reward']:.3f} | {x['kl']:.3f} | {x['gap']:.3f} | "
                         f"{y['reward']:.3f} | {y['kl']:.3f} | {y['gap']:.3f} |")
        lines += ["", t1_verdict(t1)]
    o = t1["dpo_overfit"]
    lines += ["", f"Longer optimisation: the β = 1 fit run for {o['steps']} steps (10×) reaches E[r] "
              f"{o['reward']:.3f} at KL {o['kl']:.3f} (gap {o['gap']:.3f}).", "",
              "Two-action bandit, deterministic preferences (p* = 1), π_ref uniform:", "",
              "| τ = β | DPO π(preferred) | IPO π(preferred) | σ(1/(2τ)) |", "|---|---|---|---|"]
    for b in t1["bandit"]:
        lines.append(f"| {b['tau']:g} | {b['dpo_p_preferred']:.4f} | {b['ipo_p_preferred']:.4f} | {b['ipo_theory']:.4f} |")
    lines += ["", "Notes:", "",
              "- One seed. The recipe (lr 3e-4, rpo_alpha 0.2) was picked from a handful of runs on earlier SFT "
              "checkpoints (world v1; checked on eval and dev prompts) and not re-tuned for this world-v2 SFT "
              "model — so some selection bias on the eval split is possible, and the recipe may be off-optimum here.",
              "- The world's eval split is mostly harmful requests (the `score` averages over all prompts), so "
              "`score` moves with the unsafe rate; `helpfulness` is the benign-prompt mean.",
              "- Held-out loss/accuracy: plain-DPO loss (β 0.1, reference = SFT) on dev pairs labelled by the same "
              "simulated annotator (not flipped).",
              "- T1 gaps come from the finite sample (50k pairs over 20,736 sequences): they shrink with more "
              "pairs (≈ 0.03 KL excess at β = 1 with 100k pairs in a side check) and grow as β falls, where DPO "
              "amplifies estimation noise by 1/β.",
              "", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in res["timings_s"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
