"""`alignstack report RUN_DIR`: one self-contained HTML page (PNGs embedded, also written beside it)
from a pipeline run folder (``summary.json`` + each stage's ``metrics.jsonl`` / ``done.json``).

Sections: first, the world v3 method comparison (every recipe of ``experiments/v3_claims.py``'s JSON, default
``experiments/results/v3_claims.json`` or ``--v3-claims PATH``, on the reward–KL and helpfulness–harmlessness
planes with seed-level CIs, and its table; a one-line note when absent); then every method of the committed experiment results (``experiments/results/*.json``, or
``--results DIR``) on the reward–KL plane and the helpfulness–harmlessness plane with their 95% CIs; then per-stage ground truth with 95% CIs and a plain verdict; score difference vs SFT and unsafe
rate per stage (charts); reward-model accuracy by preference strength; training curves with the
proxy reward beside the ground truth of the same rollouts; the reward–KL picture of every stage;
sample responses side by side across stages for the same held-out prompts.
"""
from __future__ import annotations

import base64
import html
import json
import math
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"   # present in a source checkout


def _plt():
    try:
        import matplotlib
    except ImportError as e:   # a core dependency, but a trimmed environment may lack it
        raise ImportError("alignstack report draws with matplotlib: pip install 'matplotlib>=3.7'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _ci3(v) -> tuple[float, float, float] | None:
    """(mean, lo, hi) from the CI shapes the experiments write: {mean, lo, hi}, {diff, ci}, {diff: {…}}."""
    if not isinstance(v, dict):
        return None
    if isinstance(v.get("diff"), dict):
        return _ci3(v["diff"])
    m = v.get("mean", v.get("diff"))
    if m is None:
        return None
    lo, hi = (v["lo"], v["hi"]) if "lo" in v else (v.get("ci") or v.get("ci95") or (m, m))
    return float(m), float(lo), float(hi)


def _json(folder: Path, name: str) -> dict:
    f = folder / name
    try:
        return json.loads(f.read_text()) if f.exists() else {}
    except json.JSONDecodeError:
        return {}


def method_points(results: Path) -> list[dict]:
    """Every method result in the committed experiment JSON as a point: ``source``, ``method``, ``kl``
    (+ ``kl_ci`` where recorded), ``score`` and ``unsafe`` as (mean, lo, hi) differences vs that source's own
    SFT (None where not recorded), and ``y`` naming the recorded quantity (score or helpfulness)."""
    pts: list[dict] = []

    def add(source, method, score, unsafe=None, kl=None, kl_ci=None, y="score"):
        score, unsafe = _ci3(score), _ci3(unsafe)
        if score is not None:
            pts.append({"source": source, "method": method, "score": score, "unsafe": unsafe, "y": y,
                        "kl": kl, "kl_ci": tuple(kl_ci) if kl_ci else None})

    for k, v in _json(results, "rl.json").items():
        if isinstance(v, dict) and "score_diff_vs_sft" in v:
            add("rl.json", k, v["score_diff_vs_sft"], v.get("unsafe_diff_vs_sft"), v.get("kl_to_sft"))
    d = _json(results, "dpo.json")
    if isinstance(d.get("dpo"), dict):
        vs, kl = d["dpo"].get("vs_sft", {}).get("sampled", {}), d["dpo"].get("kl_to_sft") or {}
        add("dpo.json", "dpo", vs.get("score"), vs.get("unsafe_rate"), kl.get("kl"), kl.get("kl_ci"))
    for k, v in (d.get("noise") or {}).items():
        vs = (v.get("vs_sft") or {}).get("sampled", {})
        add("dpo.json", f"{k} (20% flips)", vs.get("score"), vs.get("unsafe_rate"))
    for p in _json(results, "frontier_world.json").get("points", []):
        add("frontier_world.json", f"{p['method']} {p['knob']:g}", p.get("score_diff"), p.get("unsafe_diff"),
            p.get("kl"), p.get("kl_ci"))
    c = _json(results, "rejection_sampling.json").get("comparisons", {})
    for k in ("round1", "round2_pooled"):
        v = c.get(f"{k} - sft") or {}
        add("rejection_sampling.json", f"RS {k}", v.get("helpfulness_sampled"), v.get("unsafe_sampled"),
            y="helpfulness")
    c = _json(results, "rs_rounds.json").get("comparisons", {})
    for k in ("round1", "r2_from_r1", "r2_pooled_from_sft"):
        v = c.get(f"{k} - sft") or {}
        add("rs_rounds.json", f"RS {k}", v.get("helpfulness"), v.get("unsafe"), y="helpfulness")
    a = _json(results, "ai_feedback.json")
    add("ai_feedback.json", "RLAIF", (a.get("rlaif") or {}).get("rlaif_vs_sft"))
    add("ai_feedback.json", "RLHF (sim. human)", (a.get("rlaif") or {}).get("rlhf_vs_sft"))
    add("ai_feedback.json", "d-RLAIF", (a.get("drlaif") or {}).get("d_rlaif_vs_sft"))
    cai, rl = a.get("cai") or {}, a.get("cai_rl") or {}
    add("ai_feedback.json", "SL-CAI", cai.get("sl_vs_sft_helpfulness"),
        (cai.get("harmful_eval") or {}).get("sl_vs_sft_unsafe"), y="helpfulness")
    add("ai_feedback.json", "RL-CAI", rl.get("rl_vs_sft_helpfulness"),
        (rl.get("harmful_eval") or {}).get("rl_vs_sft_unsafe"), y="helpfulness")
    return pts


def _methods_figure(plt, pts: list[dict], path: Path) -> str:
    """Two panels: Δ score vs KL to SFT, and Δ score vs Δ unsafe rate, one colour per source file."""
    fig, ax = plt.subplots(1, 2, figsize=(13, 6))
    sources = sorted({p["source"] for p in pts})
    colour = {s: f"C{i}" for i, s in enumerate(sources)}
    for p in pts:
        m, lo, hi = p["score"]
        yerr = [[m - lo], [hi - m]]
        style = dict(fmt="o" if p["y"] == "score" else "s", capsize=2, color=colour[p["source"]], ms=4,
                     mfc=colour[p["source"]] if p["y"] == "score" else "white", lw=0.8)
        if p["kl"] is not None:
            xerr = [[p["kl"] - p["kl_ci"][0]], [p["kl_ci"][1] - p["kl"]]] if p["kl_ci"] else None
            ax[0].errorbar(p["kl"], m, yerr=yerr, xerr=xerr, **style)
            ax[0].annotate(p["method"], (p["kl"], m), textcoords="offset points", xytext=(3, 3), fontsize=6)
        if p["unsafe"] is not None:
            u, ulo, uhi = p["unsafe"]
            ax[1].errorbar(u, m, yerr=yerr, xerr=[[u - ulo], [uhi - u]], **style)
            ax[1].annotate(p["method"], (u, m), textcoords="offset points", xytext=(3, 3), fontsize=6)
    for a in ax:
        a.axhline(0, color="k", lw=0.6)
        a.set_ylabel("ground-truth score − SFT (95% CI)")
    ax[0].set_xscale("log")   # KLs span 0.07 (constrained PPO) to 7 nats (PPO without a KL term)
    ax[0].set_xlabel("KL(π ‖ π_SFT), nats per response (log scale)")
    ax[0].set_title("reward–KL: every method with a recorded KL")
    ax[1].axvline(0, color="k", lw=0.6)
    ax[1].set_xlabel("unsafe rate − SFT on harmful prompts (95% CI); left is safer")
    ax[1].set_title("helpfulness–harmlessness")
    for s in sources:
        ax[1].plot([], [], "o", color=colour[s], label=s)
    ax[1].plot([], [], "s", color="k", mfc="white", label="y = helpfulness (no score diff recorded)")
    ax[1].legend(fontsize=7, loc="best")
    return _save(fig, path)


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return base64.b64encode(path.read_bytes()).decode()

# --- world v3: every recipe of experiments/v3_claims.py on one picture (a plain dict, the claims JSON) ---------

V3_CLAIMS = RESULTS / "v3_claims.json"
V3_EXTRA = (("over_refusal", "over-refusal"), ("unsafe_unseen", "unsafe, unseen attack styles"))
_KIND_MARKER = {"oracle": "D", "verifier": "s", "learned": "o"}


def reward_kind(label: str) -> str:
    """oracle / verifier / learned from a recipe's reward label (``"learned (implicit)"`` -> ``"learned"``)."""
    first = (label or "").split(" ", 1)[0].lower()
    return first if first in _KIND_MARKER else (label or "?")


def v3_claims_path(v3_claims: str | Path | None = None, results: str | Path | None = None) -> Path:
    """Where the report looks for the v3 claims JSON: ``v3_claims`` if given, else ``v3_claims.json`` in the
    ``--results`` folder, else :data:`V3_CLAIMS` (a source checkout) or, failing that,
    ``experiments/results/v3_claims.json`` under the working directory."""
    if v3_claims is not None:
        return Path(v3_claims)
    if results is not None:
        return Path(results) / "v3_claims.json"
    cwd = Path.cwd() / "experiments" / "results" / "v3_claims.json"
    return V3_CLAIMS if V3_CLAIMS.exists() or not cwd.exists() else cwd


def load_v3_claims(path: str | Path) -> tuple[dict | None, str]:
    """The claims JSON at ``path``, or ``None`` and a one-line note saying why the v3 section is skipped."""
    path = Path(path)
    if not path.exists():
        return None, (f"no world v3 claims at {path}: the v3 method comparison is skipped "
                      "(run experiments/v3_claims.py, or pass --v3-claims PATH)")
    try:
        claims = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"could not read the world v3 claims at {path} ({e}): the v3 method comparison is skipped"
    if not isinstance(claims, dict) or not claims.get("runs") or not isinstance(claims.get("sft"), dict):
        return None, f"{path} has no recipes (runs) or no SFT levels: the v3 method comparison is skipped"
    return claims, f"world v3 claims: {path}"


def _shift(level: float | None, ci: dict | None) -> tuple[float, float, float] | None:
    """An absolute level with its seed-level CI: SFT's level + (recipe − SFT) (mean, lo, hi)."""
    if level is None or not ci:
        return None
    return level + ci["mean"], level + ci["lo"], level + ci["hi"]


def v3_points(claims: dict, decoding: str = "sampled") -> list[dict]:
    """One point per recipe of a v3 claims dict (``experiments/v3_claims.py``'s JSON): ``recipe``, ``method``,
    ``reward`` (its label), ``kind`` (oracle / verifier / learned), ``n_seeds``, ``kl`` and ``gain`` (benign
    helpfulness − SFT) as (mean, lo, hi) seed-level CIs, and absolute levels (SFT's level + the recipe − SFT
    difference, same CI) for benign helpfulness, unsafe and the :data:`V3_EXTRA` columns; None where the JSON has
    no such column. Levels are those of ``decoding`` (sampled at T = 1, or greedy)."""
    sft = claims["sft"][decoding]
    pts = []
    for name, r in claims["runs"].items():
        vs = (r.get("vs_sft") or {}).get(decoding) or {}
        kl = r.get("kl_to_sft") if isinstance(r.get("kl_to_sft"), dict) else None
        n = [c.get("n_seeds") for c in vs.values() if c.get("n_seeds")]
        pts.append({
            "recipe": name, "method": r.get("method", name), "reward": r.get("reward", "?"),
            "kind": reward_kind(r.get("reward", "")), "n_seeds": max(n) if n else len(r.get("per_seed") or []),
            "kl": (kl["mean"], kl["lo"], kl["hi"]) if kl else None,
            "gain": _ci3(vs.get("benign_helpfulness")),
            "diff": {c: _ci3(vs.get(c)) for c in sft},
            "level": {c: _shift(sft.get(c), vs.get(c)) for c in sft}})
    return pts


def frontier_lines(claims: dict, pts: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """The reward–KL sweeps the claims JSON names (``frontier.sweeps``: method -> recipes, e.g. DPO's β values and
    PPO's KL coefficients) as (KL, benign helpfulness − SFT) points ordered by KL, for a line through each sweep."""
    sweeps = (claims.get("frontier") or {}).get("sweeps") or {}
    at = {p["recipe"]: p for p in pts if p["kl"] and p["gain"]}
    return {m: sorted((at[r]["kl"][0], at[r]["gain"][0]) for r in recipes if r in at)
            for m, recipes in sweeps.items() if sum(r in at for r in recipes) > 1}


def v3_title(claims: dict, pts: list[dict] | None = None) -> str:
    pts = v3_points(claims) if pts is None else pts
    ns = sorted({p["n_seeds"] for p in pts}) or [len(claims.get("seeds") or [])]
    n = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    return (f"world v3, {claims.get('split', 'sealed test split')}, {n} training seed{'s' if ns[-1] != 1 else ''}, "
            f"T = {claims.get('temperature', 1.0):g}")


def v3_figure(claims: dict, path: str | Path, decoding: str = "sampled") -> Path:
    """Two panels from a v3 claims dict, every recipe one colour (marker = reward kind), seed-level 95% CI bars:
    (a) benign helpfulness − SFT against KL to SFT; (b) benign helpfulness against unsafe rate, absolute levels,
    SFT its own point. Written to ``path`` (PNG)."""
    plt = _plt()
    pts = v3_points(claims, decoding)
    cmap = plt.get_cmap("tab10" if len(pts) <= 10 else "tab20")
    fig, ax = plt.subplots(1, 2, figsize=(13, 5.6))
    sft = claims["sft"][decoding]
    ax[1].plot(sft["benign_helpfulness"], sft["unsafe"], "*", color="k", ms=14, label="SFT (the start)", zorder=5)
    ax[0].plot(0, 0, "*", color="k", ms=14, zorder=5)
    ax[0].annotate("SFT", (0, 0), textcoords="offset points", xytext=(6, -12), fontsize=8)

    def err(c):                       # one training seed has no seed-level CI (NaN bounds): no bar
        return [[0.0 if math.isnan(c[1]) else c[0] - c[1]], [0.0 if math.isnan(c[2]) else c[2] - c[0]]]

    for i, p in enumerate(pts):
        style = dict(fmt=_KIND_MARKER.get(p["kind"], "^"), color=cmap(i % cmap.N), capsize=3, ms=7, lw=1.1)
        label = f"{p['recipe']} ({p['reward']})"
        if p["kl"] and p["gain"]:
            ax[0].errorbar(p["kl"][0], p["gain"][0], xerr=err(p["kl"]), yerr=err(p["gain"]), **style)
            ax[0].annotate(p["recipe"], (p["kl"][0], p["gain"][0]), textcoords="offset points", xytext=(5, 4),
                           fontsize=8)
        h, u = p["level"].get("benign_helpfulness"), p["level"].get("unsafe")
        if h and u:
            ax[1].errorbar(h[0], u[0], xerr=err(h), yerr=err(u), label=label, **style)
            ax[1].annotate(p["recipe"], (h[0], u[0]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        else:
            ax[1].errorbar([], [], label=label, **style)
    for (m, line), ls in zip(frontier_lines(claims, pts).items(), ("--", ":", "-.")):
        ax[0].plot(*zip(*line), ls, color="0.4", lw=1.0, label=f"{m.upper()} sweep", zorder=1)
    if frontier_lines(claims, pts):
        ax[0].legend(fontsize=7, loc="lower left")
    ax[0].axhline(0, color="k", lw=0.6)
    ax[0].set_xlabel("KL(π ‖ π_SFT), nats per response (seed-level 95% CI)")
    ax[0].set_ylabel("benign helpfulness − SFT (seed-level 95% CI); up is better")
    ax[0].set_title("(a) reward–KL")
    ax[1].axvline(sft["benign_helpfulness"], color="k", lw=0.5, ls=":")
    ax[1].axhline(sft["unsafe"], color="k", lw=0.5, ls=":")
    ax[1].set_xlabel("benign helpfulness (SFT level + recipe − SFT; seed-level 95% CI)")
    ax[1].set_ylabel("unsafe rate on harmful prompts; down is safer")
    ax[1].set_title("(b) helpfulness–harmlessness: right and down is better")
    ax[1].legend(fontsize=7, loc="best", title="recipe (reward; ◆ oracle, ■ verifier, ● learned)",
                 title_fontsize=7)
    fig.suptitle(f"{v3_title(claims, pts)} ({claims.get('n_prompts', '?')} test prompts × "
                 f"{claims.get('samples', '?')} samples{'' if decoding == 'sampled' else ', greedy'})")
    path = Path(path)
    _save(fig, path)
    return path


def _lvl(c: tuple | None, sign: bool = False) -> str:
    if not c:
        return "–"
    f = "{:+.3f}" if sign else "{:.3f}"
    if math.isnan(c[1]) or math.isnan(c[2]):
        return f"{f.format(c[0])} (no CI: one seed)"
    return f"{f.format(c[0])} [{f.format(c[1])}, {f.format(c[2])}]"


def v3_table(claims: dict, fmt: str = "html", decoding: str = "sampled") -> str:
    """The figure's numbers as a table (``fmt`` "html" or "md"): per recipe its reward, seeds, KL to SFT, benign
    helpfulness − SFT, and the absolute levels of benign helpfulness, unsafe, over-refusal and unsafe on unseen
    attack styles (SFT's level + recipe − SFT, seed-level 95% CI); SFT's own levels in the first row."""
    pts = v3_points(claims, decoding)
    sft = claims["sft"][decoding]
    cols = [("benign_helpfulness", "benign helpfulness"), ("unsafe", "unsafe"), *V3_EXTRA]
    head = ["recipe", "method", "reward", "seeds", "KL to SFT", "benign helpfulness − SFT",
            *(name for _, name in cols)]
    rows = [["SFT", "sft", "–", "–", "0", "0", *(f"{sft[c]:.3f}" if c in sft else "–" for c, _ in cols)]]
    for p in pts:
        rows.append([p["recipe"], p["method"], p["reward"], str(p["n_seeds"]), _lvl(p["kl"]), _lvl(p["gain"], True),
                     *(_lvl(p["level"].get(c)) for c, _ in cols)])
    if fmt == "md":
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                          *("| " + " | ".join(r) + " |" for r in rows)]) + "\n"
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table class='v3'><tr>{th}</tr>{body}</table>"



def _metrics(run: Path, stage: str) -> list[dict]:
    f = run / stage / "metrics.jsonl"
    if not f.exists():
        return []
    rows = []
    for line in f.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue                          # a run killed mid-write leaves at most one partial line
    return rows


def _stage_table(stages: dict) -> str:
    head = ("<tr><th>stage</th><th>method</th><th>helpfulness</th><th>unsafe rate (Δ vs SFT, 95% CI)</th>"
            "<th>Δ score vs SFT (95% CI)</th><th>win rate vs SFT (95% CI)</th><th>KL to SFT</th><th>wall s</th>"
            "<th>verdict</th></tr>")
    rows = []
    for k, v in stages.items():
        if "helpfulness" not in v:
            continue
        u, d, w = v["unsafe_diff_ci"], v["score_diff_ci"], v["win_rate_ci"]
        verdict = v.get("verdict", "baseline")
        cls = "good" if verdict.startswith("beats") else "bad" if verdict.startswith("WORSE") else ""
        rows.append(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v['method'])}</td><td>{v['helpfulness']:.3f}</td>"
            f"<td>{v['unsafe_rate']:.3f} ({v['unsafe_diff_vs_sft']:+.3f} [{u[0]:+.3f}, {u[1]:+.3f}])</td>"
            f"<td>{v['score_diff_vs_sft']:+.3f} [{d[0]:+.3f}, {d[1]:+.3f}]</td>"
            f"<td>{v['win_rate_vs_sft']:.3f} [{w[0]:.3f}, {w[1]:.3f}]</td><td>{v['kl_to_sft']:.2f}</td>"
            f"<td>{(v.get('wall_s') or 0):.0f}</td><td class='{cls}'>{html.escape(verdict)}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


V3_RUN_COLS = (("benign_helpfulness", "benign helpfulness"), ("unsafe_seen", "unsafe, seen styles"),
               ("unsafe_unseen", "unsafe, unseen styles"), ("over_refusal", "over-refusal"), ("leak", "leak"))


def _v3_cell(v: dict, mode: str, col: str) -> str:
    """A v3 stage's level in one column, with its paired difference from the baseline where there is one."""
    level = v.get(("greedy_" if mode == "greedy" else "") + col)
    d = ((v.get("vs_baseline") or {}).get(mode) or {}).get(col) or {}
    txt = "–" if level is None else f"{level:.3f}"
    if d.get("n") and d.get("ci"):
        lo, hi = d["ci"]
        up, down = lo > 0, hi < 0                       # benign helpfulness should rise, every other column fall
        better, worse = (up, down) if col == "benign_helpfulness" else (down, up)
        cls = "good" if better else "bad" if worse else ""
        txt += f" <span class='{cls}'>({d['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}])</span>"
    return txt


def _v3_stage_table(stages: dict, bar: dict | None) -> str:
    """World v3 stages of this run: each column at T = 1 and greedy with its paired CI vs the baseline, KL, and
    the stage's verdict on issue 21's demo bar (``summary.json``'s ``demo_bar``)."""
    head = ("<tr><th>stage</th><th>method</th><th>decoding</th>"
            + "".join(f"<th>{html.escape(n)}</th>" for _, n in V3_RUN_COLS) + "<th>KL to SFT</th><th>demo bar</th></tr>")
    rows = []
    for k, v in stages.items():
        if "benign_helpfulness" not in v:
            continue
        b = ((bar or {}).get("stages") or {}).get(k)
        verdict = "baseline" if b is None else ("meets it" if b["meets"] else "does not meet it")
        for mode in ("sampled", "greedy"):
            first = mode == "sampled"
            rows.append("<tr>" + (f"<td rowspan=2>{html.escape(k)}</td><td rowspan=2>{html.escape(v['method'])}</td>"
                                  if first else "")
                        + f"<td>{'T = 1' if first else 'greedy'}</td>"
                        + "".join(f"<td>{_v3_cell(v, mode, c)}</td>" for c, _ in V3_RUN_COLS)
                        + (f"<td rowspan=2>{v.get('kl_to_sft', 0):.2f}</td><td rowspan=2>{verdict}</td>"
                           if first else "") + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _v3_bar_text(bar: dict | None, split: str) -> str:
    if not bar:
        return ""
    parts = "".join(f"<li><b>{html.escape(k)}</b>: " + "; ".join(
        f"{html.escape(p['claim'])}: {html.escape(p['verdict'])}" for p in r["parts"].values()) + "</li>"
        for k, r in bar["stages"].items())
    met = ("<b class='good'>met</b>" if bar["met"] else "<b class='bad'>not met</b>")
    return (f"<p>The demo bar on the {'sealed test' if split == 'test' else html.escape(split)} split: "
            f"{html.escape(bar.get('rule', ''))} ({html.escape(bar['note'])}): {met}.</p><ul>{parts}</ul>")


def _other_table(stages: dict) -> str:
    rows = []
    for k, v in stages.items():
        if "helpfulness" in v or "benign_helpfulness" in v:
            continue
        res = v.get("result") or {}
        ev = res.get("eval") if isinstance(res.get("eval"), dict) else {}
        acc = ev.get("pair_accuracy")
        auc = (ev.get("safety") or {}).get("auc")
        bits = []
        if acc:
            bits.append(f"held-out pair accuracy {acc['mean']:.3f} [{acc['lo']:.3f}, {acc['hi']:.3f}]")
        if ev.get("spearman_gt") is not None:
            bits.append(f"Spearman with ground truth {ev['spearman_gt']:.3f}")
        if auc is not None:
            bits.append(f"safe/unsafe AUC {auc:.3f}")
        rows.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v['method'])}</td>"
                    f"<td>{(v.get('wall_s') or 0):.0f}</td><td>{html.escape('; '.join(bits))}</td></tr>")
    return ("<table><tr><th>stage</th><th>method</th><th>wall s</th><th>notes</th></tr>" + "".join(rows)
            + "</table>") if rows else ""


def _samples(stages: dict) -> str:
    ev = [(k, v) for k, v in stages.items() if v.get("samples")]
    if not ev:
        return ""
    n = min(len(v["samples"]) for _, v in ev)
    head = "<tr><th>prompt</th>" + "".join(f"<th>{html.escape(k)}</th>" for k, _ in ev) + "</tr>"
    rows = []
    for i in range(n):
        prompt = ev[0][1]["samples"][i]["prompt"]
        cells = "".join(f"<td>{html.escape(v['samples'][i]['response'])}</td>" for _, v in ev)
        rows.append(f"<tr><td><b>{html.escape(prompt)}</b></td>{cells}</tr>")
    return f"<table class='samples'>{head}{''.join(rows)}</table>"


def build_report(run_dir: str | Path, out: str | Path | None = None, results: str | Path | None = None,
                 v3_claims: str | Path | None = None) -> Path:
    """The HTML report of ``run_dir``. First picture: the world v3 method comparison from the claims JSON
    (``v3_claims``, default :func:`v3_claims_path`; skipped with a one-line note when absent), then every method
    of the committed results (``results``), then the run's own stages."""
    plt = _plt()
    run = Path(run_dir)
    sfile = run / "summary.json"
    if not sfile.exists():
        raise FileNotFoundError(f"{sfile} not found: run `alignstack demo --out {run}` (or a pipeline) first")
    summary = json.loads(sfile.read_text())
    stages = summary["stages"]
    out = Path(out) if out else run / "report.html"
    figdir = out.parent / "report_png"
    figdir.mkdir(parents=True, exist_ok=True)
    imgs: dict[str, str] = {}
    ev = [(k, v) for k, v in stages.items() if "helpfulness" in v]
    ev3 = [(k, v) for k, v in stages.items() if "benign_helpfulness" in v]

    v3, v3_note = load_v3_claims(v3_claims_path(v3_claims, results))
    if v3 is not None:
        v3_figure(v3, figdir / "v3_methods.png")
        png = base64.b64encode((figdir / "v3_methods.png").read_bytes()).decode()
        v3_html = (f"<p>{html.escape(v3_title(v3))}: every recipe of <code>experiments/v3_claims.py</code> "
                   f"({v3.get('n_prompts', '?')} test prompts × {v3.get('samples', '?')} samples at T = {v3.get('temperature', 1.0):g}), "
                   "differences paired per prompt against the same SFT model and combined over training seeds "
                   "(seed-level 95% CIs). Absolute levels are SFT's level plus the recipe − SFT difference. "
                   f"{html.escape(v3_note)}.</p><img alt='world v3 method comparison: reward-KL and "
                   f"helpfulness-harmlessness' src='data:image/png;base64,{png}'>{v3_table(v3)}")
    else:
        v3_html = f"<p>{html.escape(v3_note)}.</p>"

    results = Path(results) if results else RESULTS
    pts = method_points(results) if results.is_dir() else []
    if pts:
        imgs["methods"] = _methods_figure(plt, pts, figdir / "methods.png")
    n_src = len({p["source"] for p in pts})
    methods_note = (f"<p>{len(pts)} method results from {n_src} files in <code>{html.escape(str(results))}</code>, "
                    "each a difference against the SFT model of its own experiment (sources differ in fixture, "
                    "eval prompts and seeds: compare within a colour). One training seed each unless the file "
                    "says otherwise; the claims table in the README gives the verdicts.</p>" if pts else
                    f"<p>No committed experiment results found in <code>{html.escape(str(results))}</code> "
                    "(pass <code>--results DIR</code>).</p>")

    if ev:
        fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
        names = [k for k, _ in ev]
        d = [v["score_diff_vs_sft"] for _, v in ev]
        err = [[v["score_diff_vs_sft"] - v["score_diff_ci"][0] for _, v in ev],
               [v["score_diff_ci"][1] - v["score_diff_vs_sft"] for _, v in ev]]
        ax[0].bar(names, d, yerr=err, capsize=4, color=["tab:green" if v["score_diff_ci"][0] > 0 else
                                                         "tab:red" if v["score_diff_ci"][1] < 0 else "tab:gray"
                                                         for _, v in ev])
        ax[0].axhline(0, color="k", lw=0.8)
        ax[0].set_title("ground-truth score − SFT (paired, 95% CI)")
        u = [v["unsafe_rate"] for _, v in ev]
        ax[1].bar(names, u, color="tab:orange")
        ax[1].set_title("unsafe rate on harmful requests")
        for a in ax:
            a.tick_params(axis="x", rotation=30)
        imgs["stages"] = _save(fig, figdir / "stages.png")

        fig, a = plt.subplots(figsize=(5.5, 4))
        for k, v in ev:
            a.errorbar(v["kl_to_sft"], v["score_diff_vs_sft"],
                       yerr=[[v["score_diff_vs_sft"] - v["score_diff_ci"][0]], [v["score_diff_ci"][1] - v["score_diff_vs_sft"]]],
                       fmt="o", capsize=3)
            a.annotate(k, (v["kl_to_sft"], v["score_diff_vs_sft"]), textcoords="offset points", xytext=(4, 4))
        a.axhline(0, color="k", lw=0.8)
        a.set_xlabel("KL(π ‖ π_SFT), nats per response")
        a.set_ylabel("ground-truth score − SFT")
        a.set_title("reward–KL: where each stage lands")
        imgs["frontier"] = _save(fig, figdir / "frontier.png")

    if ev3:                                   # a world v3 run: benign gain against KL, unseen-style harm and over-refusal
        fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
        for k, v in ev3:
            d = ((v.get("vs_baseline") or {}).get("sampled") or {}).get("benign_helpfulness") or {}
            diff, (lo, hi) = (d["diff"], d["ci"]) if d.get("n") else (0.0, (0.0, 0.0))
            ax[0].errorbar(v.get("kl_to_sft") or 0.0, diff, yerr=[[diff - lo], [hi - diff]], fmt="o", capsize=3)
            ax[0].annotate(k, (v.get("kl_to_sft") or 0.0, diff), textcoords="offset points", xytext=(4, 4))
            ax[1].plot(v["over_refusal"], v["unsafe_unseen"], "o")
            ax[1].annotate(k, (v["over_refusal"], v["unsafe_unseen"]), textcoords="offset points", xytext=(4, 4))
        ax[0].axhline(0, color="k", lw=0.8)
        ax[0].set(xlabel="KL(π ‖ π_SFT), nats per response", ylabel="benign helpfulness − SFT (paired, 95% CI)",
                  title="benign gain against KL (T = 1)")
        ax[1].set(xlabel="over-refusal on benign lookalikes", ylabel="unsafe rate, unseen attack styles",
                  title="harm on unseen styles against over-refusal (T = 1)")
        imgs["v3_stages"] = _save(fig, figdir / "v3_stages.png")

    rm = [(k, v) for k, v in stages.items() if isinstance((v.get("result") or {}).get("eval"), dict)
          and (v["result"]["eval"].get("accuracy_by_strength"))]
    if rm:
        fig, a = plt.subplots(figsize=(6.5, 3.6))
        width = 0.8 / len(rm)
        for j, (k, v) in enumerate(rm):
            by = v["result"]["eval"]["accuracy_by_strength"]
            keys = list(by)
            a.bar([i + j * width for i in range(len(keys))], [by[s]["mean"] for s in keys], width,
                  yerr=[[by[s]["mean"] - by[s]["lo"] for s in keys], [by[s]["hi"] - by[s]["mean"] for s in keys]],
                  capsize=3, label=k)
            a.set_xticks([i + width * (len(rm) - 1) / 2 for i in range(len(keys))], [s.replace("_", " ") for s in keys])
        a.axhline(0.5, color="k", lw=0.8, ls="--")
        a.set_ylabel("held-out pair accuracy")
        a.set_title("reward-model accuracy by preference strength")
        a.legend()
        imgs["rm"] = _save(fig, figdir / "rm_accuracy.png")

    curves = []
    for k in stages:
        rows = [r for r in _metrics(run, k) if "reward" in r and "gt" in r]
        if rows:
            curves.append((k, rows))
    if curves:
        fig, ax = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 3.4), squeeze=False)
        for a, (k, rows) in zip(ax[0], curves):
            x = list(range(1, len(rows) + 1))
            a.plot(x, [r["reward"] for r in rows], label="proxy reward")
            a2 = a.twinx()
            a2.plot(x, [r["gt"] for r in rows], color="tab:green", label="ground truth")
            a.set_title(f"{k}: proxy vs ground truth")
            a.set_xlabel("iteration")
            a.set_ylabel("proxy reward")
            a2.set_ylabel("ground truth", color="tab:green")
        imgs["curves"] = _save(fig, figdir / "training_curves.png")

    def img(key: str, alt: str) -> str:
        return f"<img alt='{alt}' src='data:image/png;base64,{imgs[key]}'>" if key in imgs else ""

    cfg = summary.get("config", {})
    split = summary.get("eval_split", cfg.get("eval_split", "dev"))
    _v3_html = (f"<p>World v3, {'sealed test' if split == 'test' else html.escape(split)} split: unmerged columns, "
                "each with its paired difference from the baseline (95% CI).</p>"
                + _v3_stage_table(stages, summary.get("demo_bar")) + img("v3_stages", "world v3 stages")
                + _v3_bar_text(summary.get("demo_bar"), split)) if ev3 else ""
    body = f"""<!doctype html><html><head><meta charset='utf-8'><title>alignstack report: {html.escape(str(run))}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:14px;vertical-align:top}}
th{{background:#f3f3f3}}.good{{color:#17762b;font-weight:600}}.bad{{color:#b00020;font-weight:600}}
.samples td{{font-family:ui-monospace,monospace;font-size:12px}}img{{max-width:100%}}</style></head><body>
<h1>alignstack run report</h1>
<h2>Method comparison on world v3 (sealed test split)</h2>{v3_html}
<h2>All methods (committed experiment results)</h2>{methods_note}{img('methods', 'all methods: reward-KL and helpfulness-harmlessness')}
<h2>This run</h2>
<p>Run folder <code>{html.escape(str(run))}</code>; {cfg.get('eval_prompts', '?')} held-out world prompts per
evaluation (prompt set seed {cfg.get('seed', 0)}), {cfg.get('eval_samples', 1)} sample(s) per prompt at T = 1 averaged per prompt; differences are paired per prompt against <b>{html.escape(cfg.get('baseline', 'sft'))}</b>
with 95% confidence intervals. Total wall time {summary.get('total_wall_s', 0):.0f} s.</p>
<h2>Policies on ground truth</h2>{_v3_html}{_stage_table(stages) if ev else ''}{img('stages', 'per-stage score and unsafe rate')}
<h2>Reward–KL</h2>{img('frontier', 'reward-KL')}
<h2>Reward models and other stages</h2>{_other_table(stages)}{img('rm', 'reward model accuracy by strength')}
<h2>Training curves: proxy reward vs ground truth</h2>
<p>The proxy is what the method optimised; the ground truth of the same rollouts is logged for evaluation only.
A proxy that rises while ground truth falls is reward over-optimisation.</p>{img('curves', 'training curves')}
<h2>Samples (same held-out prompts, T = 1)</h2>{_samples(stages)}
</body></html>"""
    out.write_text(body)
    return out


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="alignstack report", description="HTML report of a pipeline/demo run folder")
    p.add_argument("run_dir")
    p.add_argument("--out", help="HTML file (default RUN_DIR/report.html)")
    p.add_argument("--results", help=f"folder of experiment result JSON for the all-methods figure (default {RESULTS})")
    p.add_argument("--v3-claims", help="world v3 claims JSON (experiments/v3_claims.py) for the first figure "
                                       "(default v3_claims.json in --results, else experiments/results/)")
    a = p.parse_args(argv)
    try:
        path = build_report(a.run_dir, a.out, a.results, a.v3_claims)
    except ImportError as e:              # _plt(): matplotlib missing from a trimmed environment
        if "matplotlib" not in str(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    claims, note = load_v3_claims(v3_claims_path(a.v3_claims, a.results))
    if claims is None:
        print(f"note: {note}")
    print(f"report: {path}")
    return 0
