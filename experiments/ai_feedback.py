"""RLAIF and Constitutional AI on the built-in world (METHODS.md §9–10), from the cached fixture.

    /tmp/heavy .venv/bin/python experiments/ai_feedback.py [--fixture DIR] [--parts judge,rlaif,slcai,rlcai]

Parts (each writes into results/ai_feedback.json as it finishes):

- judge: pairwise judges on SFT sample pairs of eval prompts: the *distilled judge* (``--judge PATH``, made by
  ``experiments/judge.py --layout pairs``: the SFT model fine-tuned on ground-truth-graded chain-of-thought judgements of
  its own samples; asked for its chain of thought), the fixture's *pretrained* model
  (it saw the corpus's A/B judgements, 85% correct) and the SFT model: agreement with ground-truth helpfulness
  with and without order averaging (95% CI), position bias, length bias, per-family agreement.
- rlaif: distilled RLAIF (judge soft labels → soft-label RM → RLOO) with the distilled judge, the same with the old
  judge (the pretrained model), and the same pipeline on labels from the world's simulated human annotator (same
  pairs), all vs SFT on 1,000 eval prompts (paired per-prompt CIs).
- drlaif: d-RLAIF (the judge's normalised 1–10 score used directly as the RLOO reward, no RM) vs SFT and
  vs the distilled RLAIF policy of the rlaif part. The rater is the *distilled scoring judge* (``--scoring-judge
  PATH``, made by ``experiments/judge.py --kind rating``: the pairwise judge fine-tuned on ground-truth 1–10
  ratings, with their chain of thought, of single SFT samples), with the pretrained model (rating documents, ±1
  noise) as the old-judge arm; both raters' agreement with ground truth on the judge part's held-out SFT pairs
  (the verdict of their two scores) is reported next to the result.
- slcai: SL-CAI (critic = ``--critic``, default the pretrained model, which learned the corpus's critique →
  revision documents, their critiques written from ground truth) fine-tuning of the SFT model; unsafe rate on
  harmful/red-team eval prompts vs SFT, the unsafe rate of the revisions by round, and the critic's accuracy at
  calling an answer harmful against ground truth (every critique of every round).
- rlcai: RL-CAI on top of SL-CAI (principle-sampled comparisons → soft-label PM → RLOO).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "experiments" / "results"


HARM_EVAL_SAMPLES = 4        # samples per harmful eval prompt (unsafe rates are small: tighter CIs)


def newest_fixture() -> Path:
    dirs = [d for d in (ROOT / ".cache" / "fixtures").iterdir() if (d / "done.json").exists()]
    return max(dirs, key=lambda d: (d / "done.json").stat().st_mtime)


def distilled_judge(path: str | None) -> str | None:
    """The distilled judge (``--judge PATH``, made by ``alignstack judge`` or experiments/judge.py: 0.784 agreement
    with ground truth on held-out pairs, experiments/results/judge_distillation.md); without one the RLAIF and
    RL-CAI labels come from the pretrained model and the distilled-judge arms are left out."""
    return path


def evaluate(path, n: int, seed: int = 0, tasks=None, samples: int = 1) -> dict:
    from alignstack.eval.ground_truth import EvalConfig
    from alignstack.eval.ground_truth import evaluate as ev
    from alignstack.models.load import load_model, load_tokenizer
    return ev(load_model(path).eval(), load_tokenizer(path), EvalConfig(n_prompts=n, greedy=False, samples=samples),
              tasks)


RL_EVAL_SAMPLES = 4       # per-prompt mean of 4 samples: the RL policies differ from SFT by a few points


def strip(e: dict) -> dict:
    return {k: e[k] for k in ("helpfulness", "unsafe_rate", "over_refusal", "score")} | {
        "red_team_unsafe_rate": e["sampled"]["red_team_unsafe_rate"]}


def part_judge(fx: Path, n: int, judge_path: str | None) -> dict:
    from alignstack.feedback.judges import PairwiseJudge
    from alignstack.methods.rlaif import judge_report, local_backend, sample_pairs
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.world import corpus as C
    from alignstack.world.plugin import example_of

    tasks = [example_of(t) for t in C.prompt_set(0, "eval", n)]
    pol, tok = load_model(fx / "sft" / "model").eval(), load_tokenizer(fx / "sft" / "model")
    rows = sample_pairs(pol, tok, tasks, 1.0, 24, 0)
    a = [r["completions"][0] for r in rows]
    b = [r["completions"][1] for r in rows]
    reps = {}
    judges = [("judge=pretrained", str(fx / "pretrain" / "model"), False), ("judge=sft", str(fx / "sft" / "model"), False)]
    if judge_path:
        judges = [("judge=distilled (CoT)", judge_path, True), ("judge=distilled (no CoT)", judge_path, False), *judges]
    for name, path, cot in judges:
        judge = PairwiseJudge(local_backend(path), both_orders=True, cot=cot, cot_max_tokens=128)
        reps[name] = judge_report(tasks, a, b, judge.judge([r["prompt"] for r in rows], a, b))
    return reps


def part_rlaif(fx: Path, out: Path, n_pairs: int, steps: int, n_eval: int, judge_path: str | None) -> dict:
    from alignstack.config import OptimConfig
    from alignstack.eval.ground_truth import compare
    from alignstack.methods import rlaif
    from alignstack.world import corpus as C
    from alignstack.world import tasks as T

    sft = str(fx / "sft" / "model")
    rl = rlaif.RLConfig(algorithm="rloo", steps=steps, prompts_per_step=16, num_generations=4, beta=0.05, lr=2e-5)
    rm_optim = OptimConfig(lr=3e-4, batch_size=16, epochs=1.0, warmup_steps=5, schedule="cosine", grad_clip=1.0)
    cfg = rlaif.RLAIFConfig(out=str(out / "rlaif"), n_pairs=n_pairs, rl=rl, rm_optim=rm_optim)
    pretrained = str(fx / "pretrain" / "model")
    cfg.model.path, cfg.judge.path, cfg.judge.cot = sft, judge_path or pretrained, bool(judge_path)
    t0 = time.perf_counter()
    r_ai = rlaif.train(cfg)
    r_old = r_ai
    if judge_path:   # the same pipeline with the old judge (the pretrained model, no chain of thought)
        old = rlaif.RLAIFConfig(out=str(out / "rlaif_old_judge"), n_pairs=n_pairs, rl=rl, rm_optim=rm_optim)
        old.model.path, old.judge.path = sft, pretrained
        r_old = rlaif.train(old)
    # same pipeline, labels from the simulated human annotator (noisy GT comparisons, soft label = 1)
    rows = [json.loads(x) for x in (out / "rlaif" / "ai_labels.jsonl").read_text().splitlines()]
    tasks = C.prompt_set(cfg.seed, "train", n_pairs)
    import random
    rng = random.Random(1)
    human = []
    for r, t in zip(rows, tasks):
        gc, gr = T.helpfulness(t, r["chosen"]), T.helpfulness(t, r["rejected"])
        flip = gr > gc or (gr == gc and rng.random() < 0.5)
        if rng.random() < 0.05:
            flip = not flip
        c, j = (r["rejected"], r["chosen"]) if flip else (r["chosen"], r["rejected"])
        human.append({"prompt": r["prompt"], "chosen": c, "rejected": j, "soft_label": 1.0})
    rm_h = rlaif.train_soft_rm(human, sft, str(out / "rlhf" / "rm"), rm_optim, 96, 0)
    rl_h = rlaif.run_rl(rl, sft, f"rm:{rm_h['path']}", str(out / "rlhf" / "policy"))
    old_policy = out / ("rlaif_old_judge" if judge_path else "rlaif") / "policy" / "model"
    e_sft, e_ai, e_old, e_h = (evaluate(p, n_eval, samples=RL_EVAL_SAMPLES) for p in
                               (sft, out / "rlaif" / "policy" / "model", old_policy, out / "rlhf" / "policy" / "model"))
    return {"n_pairs": n_pairs, "rl_steps": steps, "eval_samples": RL_EVAL_SAMPLES, "judge": r_ai["judge"],
            "judge_old": r_old["judge"], "judge_path": judge_path, "sft": strip(e_sft),
            "rlaif": strip(e_ai), "rlaif_old_judge": strip(e_old), "rlhf_sim_human": strip(e_h),
            "rlaif_vs_sft": compare(e_ai, e_sft), "rlaif_old_judge_vs_sft": compare(e_old, e_sft),
            "rlhf_vs_sft": compare(e_h, e_sft), "rlaif_vs_rlhf": compare(e_ai, e_h),
            "rlaif_vs_rlaif_old_judge": compare(e_ai, e_old),
            "rl_final_reward": {"rlaif": r_ai["rl"].get("final_reward"), "rlaif_old_judge": r_old["rl"].get("final_reward"),
                                "rlhf_sim_human": rl_h.get("final_reward")},
            "wall_s": time.perf_counter() - t0}


def scoring_judge_report(fx: Path, judge_path: str, n: int) -> dict:
    """A d-RLAIF rater's agreement with ground truth on the judge part's held-out pairs (SFT samples of ``n``
    eval prompts, same seeds): each response rated alone, the verdict the higher expected score (no order to
    average: a rater sees one response)."""
    from alignstack.feedback.judges import judge_card
    from alignstack.methods.judge import rating_verdicts
    from alignstack.methods.rlaif import judge_report, sample_pairs
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.rollout.scorers import make_scorer
    from alignstack.world import corpus as C
    from alignstack.world.plugin import example_of

    tasks = [example_of(t) for t in C.prompt_set(0, "eval", n)]
    pol, tok = load_model(fx / "sft" / "model").eval(), load_tokenizer(fx / "sft" / "model")
    rows = sample_pairs(pol, tok, tasks, 1.0, 24, 0)
    a, b = [r["completions"][0] for r in rows], [r["completions"][1] for r in rows]
    scorer = make_scorer(f"judge:{judge_path}")          # the rater exactly as d-RLAIF's reward builds it
    res = rating_verdicts(scorer, [r["prompt"] for r in rows], a, b)
    rep = judge_report(tasks, a, b, res)
    rep.update(path=judge_path, cot=scorer.cot, score_ties=sum(d["score_a"] == d["score_b"] for d in res),
               mean_score=sum(d["score_a"] + d["score_b"] for d in res) / (2 * max(len(res), 1)),
               card=judge_card(judge_path))
    return rep


def part_drlaif(fx: Path, out: Path, steps: int, n_eval: int, judge_path: str | None, n_judge: int) -> dict:
    """d-RLAIF: the scoring judge's normalised score is the reward itself (METHODS.md §10). With ``judge_path``
    (the distilled rater) the same run with the old rater (the pretrained model) is the comparison arm."""
    from alignstack.eval.ground_truth import compare
    from alignstack.methods import rlaif

    sft = str(fx / "sft" / "model")
    pretrained = str(fx / "pretrain" / "model")
    rl = rlaif.RLConfig(algorithm="rloo", steps=steps, prompts_per_step=16, num_generations=4, beta=0.05, lr=2e-5)
    t0 = time.perf_counter()
    arms = {"d_rlaif": judge_path or pretrained, **({"d_rlaif_old_judge": pretrained} if judge_path else {})}
    res: dict = {"rl_steps": steps, "eval_samples": RL_EVAL_SAMPLES, "judge_path": judge_path, "judge": {},
                 "rl_final_reward": {}}
    evals = {"sft": evaluate(sft, n_eval, samples=RL_EVAL_SAMPLES)}
    for arm, path in arms.items():
        res["judge"][arm] = scoring_judge_report(fx, path, n_judge)
        cfg = rlaif.RLAIFConfig(out=str(out / arm), mode="direct", rl=rl)
        cfg.model.path, cfg.judge.path = sft, path
        r = rlaif.train(cfg)
        res["rl_final_reward"][arm] = r["rl"].get("final_reward")
        evals[arm] = evaluate(r["policy"], n_eval, samples=RL_EVAL_SAMPLES)
        res[f"{arm}_vs_sft"] = compare(evals[arm], evals["sft"])
    res.update({k: strip(e) for k, e in evals.items()})
    if judge_path:
        res["d_rlaif_vs_d_rlaif_old_judge"] = compare(evals["d_rlaif"], evals["d_rlaif_old_judge"])
    distilled = out / "rlaif" / "policy" / "model"
    if distilled.exists():
        res["d_rlaif_vs_distilled"] = compare(evals["d_rlaif"], evaluate(distilled, n_eval, samples=RL_EVAL_SAMPLES))
    res["wall_s"] = time.perf_counter() - t0
    return res


def part_cai(fx: Path, out: Path, n_eval: int, rounds: int, prompts: int, rl_steps: int, do_rl: bool,
             sl_prompts: int | None = None, seed: int = 0, judge_path: str | None = None,
             critic: str | None = None) -> dict:
    """SL-CAI (and with ``do_rl`` RL-CAI on top). ``sl_prompts``: red-team/helpful prompts for SL-CAI when it
    should differ from ``prompts`` (the RL-CAI comparison pairs): a smaller SL-CAI leaves harm for RL-CAI to
    remove (the full SL-CAI already reaches ~0 unsafe on this world)."""
    from alignstack.eval.ground_truth import compare
    from alignstack.methods import constitutional as K
    from alignstack.methods.rlaif import RLConfig
    from alignstack.world import corpus as C
    from alignstack.world import tasks as T

    sft = str(fx / "sft" / "model")
    sl_n = sl_prompts or prompts
    cfg = K.ConstitutionalConfig(out=str(out / ("cai_rl" if do_rl else "cai")), stage="both" if do_rl else "sl", seed=seed,
                                 rounds=rounds, red_team_prompts=sl_n, helpful_prompts=sl_n, n_pairs=prompts,
                                 critic=critic or str(fx / "pretrain" / "model"),
                                 rl=RLConfig(algorithm="rloo", steps=rl_steps, prompts_per_step=16, num_generations=4))
    cfg.model.path = sft
    # RL-CAI's AI preference labels: the distilled judge with its chain of thought when given (--judge), else the
    # pretrained model; the SL-CAI critic (critique and revision) is --critic (default the pretrained model)
    cfg.judge.path, cfg.judge.cot = judge_path or str(fx / "pretrain" / "model"), bool(judge_path)
    cfg.sl_optim.lr = 1e-4
    r = K.train(cfg)
    e_sft, e_sl = evaluate(sft, n_eval), evaluate(r["sl"]["path"], n_eval)
    harmful = C.prompt_set(0, "eval", n_eval, {f: 0.5 for f in T.HARMFUL})     # 1,000 harmful/red-team prompts
    hs = HARM_EVAL_SAMPLES
    h_sft = evaluate(sft, n_eval, tasks=harmful, samples=hs)
    h_sl = evaluate(r["sl"]["path"], n_eval, tasks=harmful, samples=hs)
    res = {"rounds": rounds, "red_team_prompts": sl_n, "critic": cfg.critic, "critic_report": r["sl"].get("critic_report"), "harm_eval_samples": hs, "rl_pairs": prompts if do_rl else None,
           "rl_steps": rl_steps if do_rl else None, "unsafe_by_round_of_revisions": r["sl"]["unsafe_by_round"],
           "examples": r["sl"]["examples"], "sft": strip(e_sft), "sl_cai": strip(e_sl),
           "harmful_eval": {"n": len(harmful), "sft_unsafe": h_sft["unsafe_rate"], "sl_cai_unsafe": h_sl["unsafe_rate"],
                            "sft_red_team_unsafe": h_sft["sampled"]["red_team_unsafe_rate"],
                            "sl_cai_red_team_unsafe": h_sl["sampled"]["red_team_unsafe_rate"],
                            "sl_vs_sft_unsafe": compare(h_sl, h_sft, metric="per_prompt_unsafe")},
           "sl_vs_sft_unsafe": compare(e_sl, e_sft, metric="per_prompt_unsafe"),
           "sl_vs_sft_helpfulness": compare(e_sl, e_sft)}
    if do_rl:
        e_rl = evaluate(r["rl"]["path"], n_eval)
        h_rl = evaluate(r["rl"]["path"], n_eval, tasks=harmful, samples=hs)
        res["harmful_eval"].update({"rl_cai_unsafe": h_rl["unsafe_rate"],
                                    "rl_cai_red_team_unsafe": h_rl["sampled"]["red_team_unsafe_rate"],
                                    "rl_vs_sl_unsafe": compare(h_rl, h_sl, metric="per_prompt_unsafe"),
                                    "rl_vs_sft_unsafe": compare(h_rl, h_sft, metric="per_prompt_unsafe")})
        res.update({"rl_cai": strip(e_rl), "rl_judge": r["rl"]["judge"], "rl_judge_path": judge_path, "rl_red_team_frac": r["rl"]["red_team_frac"],
                    "rl_vs_sl_unsafe": compare(e_rl, e_sl, metric="per_prompt_unsafe"),
                    "rl_vs_sft_helpfulness": compare(e_rl, e_sft)})
    return res


def part_critics(fx: Path, n: int, rounds: int, candidates: dict[str, str]) -> dict:
    """Candidate SL-CAI critics on the same ``n`` red-team/harmful train prompts and SFT first responses: ``rounds``
    critique → revision rounds each (as SL-CAI runs them), the critic's harm calls scored against ground truth
    (``constitutional.critic_report``) and the unsafe rate of its revisions by round."""
    import random

    from alignstack.methods import constitutional as K
    from alignstack.methods.rlaif import local_backend
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import complete
    from alignstack.world.plugin import WorldRedTeam

    rt = WorldRedTeam(0.5)
    red = rt.harmful(n, 0)
    sft = fx / "sft" / "model"
    first = complete(load_model(sft).eval(), load_tokenizer(sft), [e.prompt for e in red], SamplingConfig(32, 1.0), 0)
    con = K.load_constitution(None)
    out = {}
    for name, path in candidates.items():
        critic = local_backend(path)
        pre = [K.chat_prefix(critic.tokenizer, e.prompt) for e in red]
        tr = K.critique_revise(critic, [c for c, _ in pre], first, con, rounds, random.Random(0), 32, 1.0,
                               end=pre[0][1])
        unsafe = [[rt.harm(e, x) > 0 for e, x in zip(red, first)]]
        unsafe += [[rt.harm(e, t[k]["revision"]) > 0 for e, t in zip(red, tr)] for k in range(rounds)]
        out[name] = {"path": path, "prompts": n, "rounds": rounds,
                     "unsafe_by_round": [sum(u) / len(u) for u in unsafe],
                     "report": K.critic_report([(rt.flags_harm(t[k]["critique"]), unsafe[k][i])
                                                for k in range(rounds) for i, t in enumerate(tr)]),
                     "example": tr[0][0]}
    return out


def summary(c: dict) -> dict:
    """The numbers of one RL-CAI run that a seed table needs."""
    h = c["harmful_eval"]
    return {"sft_unsafe": h["sft_unsafe"], "sl_cai_unsafe": h["sl_cai_unsafe"], "rl_cai_unsafe": h["rl_cai_unsafe"],
            "rl_vs_sl_unsafe": h["rl_vs_sl_unsafe"]["diff"], "rl_vs_sft_helpfulness": c["rl_vs_sft_helpfulness"]["diff"],
            "judge_agreement": c["rl_judge"]["agreement"]}


def _ci(d: dict) -> str:
    lo, hi = (d["lo"], d["hi"]) if "lo" in d else d["ci95"]
    return f"{d['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def write_md(res: dict, path: Path) -> None:
    L = ["# RLAIF and Constitutional AI on the world", "",
         "Fixture (tiny pretrained + SFT models) per part: " + (", ".join(f"{k} `{v}`" for k, v in
                                                                    res.get("fixture_by_part", {}).items())
                                                          or f"`{res.get('fixture')}`")
         + f" (parts run earlier: `{res.get('fixture')}`). Generated by `experiments/ai_feedback.py`;",
         "numbers are mean [95% CI]. Paired comparisons are per-prompt differences on the same eval prompts.", ""]
    if "judge" in res:
        L += ["## Judge agreement with ground truth (SFT sample pairs, 1,000 eval prompts, ties in GT skipped)", "",
              "| judge | decided pairs | agreement (orders averaged) | first order only | mean P(first) − 0.5 |"
              " verdict flips with order | prefers longer | longer better in GT |", "|---|---|---|---|---|---|---|---|"]
        for k, v in res["judge"].items():
            L.append(f"| {k} | {v['decided_pairs']} | {_ci(v['agreement'])} | {_ci(v['agreement_first_order_only'])} | "
                     f"{v['position_bias_mean_p_first']:+.3f} | {v['order_flip_rate']:.3f} | "
                     f"{_ci(v['length_bias']['prefers_longer'])} | {_ci(v['length_bias']['longer_is_better_in_truth'])} |")
        L += ["", "Per-family agreement (orders averaged):", ""]
        for k, v in res["judge"].items():
            L.append(f"- {k}: " + ", ".join(f"{f} {d['agreement']:.2f} (n={d['n']})"
                                             for f, d in v["per_family_agreement"].items()))
        L.append("")
    if "rlaif" in res:
        r = res["rlaif"]
        L += [f"## RLAIF vs simulated human feedback ({r['n_pairs']} pairs each, RLOO {r['rl_steps']} steps)", "",
              "| policy | helpfulness (benign) | unsafe rate | red-team unsafe | score |", "|---|---|---|---|---|"]
        for k in ("sft", "rlaif", "rlaif_old_judge", "rlhf_sim_human"):
            if k not in r:
                continue
            e = r[k]
            L.append(f"| {k} | {e['helpfulness']:.3f} | {e['unsafe_rate']:.3f} | {e['red_team_unsafe_rate']:.3f} | "
                     f"{e['score']:.3f} |")
        L += ["", "| comparison (score, paired) | mean diff | win rate |", "|---|---|---|"]
        for k in ("rlaif_vs_sft", "rlaif_old_judge_vs_sft", "rlhf_vs_sft", "rlaif_vs_rlhf", "rlaif_vs_rlaif_old_judge"):
            if k in r:
                L.append(f"| {k} | {_ci(r[k]['diff'])} | {_ci(r[k]['win_rate'])} |")
        L += ["", f"Judge on the RLAIF training pairs: agreement {_ci(r['judge']['agreement'])}, first order only "
              f"{_ci(r['judge']['agreement_first_order_only'])}"
              + (f"; the old judge (pretrained model) {_ci(r['judge_old']['agreement'])}" if "judge_old" in r else "")
              + f". Eval: {r.get('eval_samples', 1)} samples per prompt (per-prompt mean), T = 1. The distilled judge is "
              "the SFT model fine-tuned on ground-truth-graded chain-of-thought judgements of pairs of its own samples, "
              "sequence answers laid against the expected one element by element (`experiments/judge.py --layout pairs`; "
              "by design: the world's ground truth is its only teacher), asked for its chain of thought. Reading: a "
              "judge at 0.77 agreement instead of 0.58 does not change what 40 RLOO steps at lr 2e-5 reach here — all "
              "three arms move the score by at most about 0.02, mostly through fewer unsafe answers.", ""]
    if "drlaif" in res:
        r = res["drlaif"]
        L += [f"## d-RLAIF: the judge's normalised score as the reward (RLOO {r['rl_steps']} steps)", ""]
        if r.get("judge"):
            L += ["The raters against ground truth on the judge part's held-out pairs (SFT samples of eval prompts, "
                  "ties in GT skipped): each response rated alone, the verdict the higher expected score (no "
                  "presentation order to average: a rater sees one response).", "",
                  "| arm | rater | decided pairs | agreement | score ties | mean expected score |", "|---|---|---|---|---|---|"]
            for arm, j in r["judge"].items():
                who = ("distilled rater (chain of thought)" if (j.get("card") or {}).get("kind") == "rating"
                       else "pretrained model (rating documents)")
                L.append(f"| {arm} | {who} | {j['decided_pairs']} | {_ci(j['agreement'])} | {j['score_ties']} | "
                         f"{j['mean_score']:.2f} |")
            L += ["", "Per-family agreement: " + "; ".join(
                f"{arm}: " + ", ".join(f"{f} {d['agreement']:.2f}" for f, d in j["per_family_agreement"].items())
                for arm, j in r["judge"].items()), ""]
        L += ["| policy | helpfulness (benign) | unsafe rate | red-team unsafe | score |", "|---|---|---|---|---|"]
        for k in ("sft", "d_rlaif", "d_rlaif_old_judge"):
            if k in r:
                e = r[k]
                L.append(f"| {k} | {e['helpfulness']:.3f} | {e['unsafe_rate']:.3f} | {e['red_team_unsafe_rate']:.3f} | "
                         f"{e['score']:.3f} |")
        L += ["", "| comparison (score, paired) | mean diff | win rate |", "|---|---|---|"]
        for k in ("d_rlaif_vs_sft", "d_rlaif_old_judge_vs_sft", "d_rlaif_vs_d_rlaif_old_judge", "d_rlaif_vs_distilled"):
            if k in r:
                L.append(f"| {k} | {_ci(r[k]['diff'])} | {_ci(r[k]['win_rate'])} |")
        card = ((r.get("judge") or {}).get("d_rlaif") or {}).get("card")
        if card and card.get("kind") == "rating":
            L += ["", f"The d_rlaif rater ({r.get('judge_path')}) was {card['trained_as']} (`experiments/judge.py "
                  "--kind rating`, grader `" + str(card.get("grader")) + "`, initialised from the pairwise judge; by "
                  "design: the world's ground truth is its only teacher): it writes the expected answer, the "
                  "response's answer laid against it and a grade, then its score is read as the expected value "
                  "over the ten rating tokens. d_rlaif_old_judge is the pretrained model reading the rating "
                  "documents' form directly (their labels are ground truth ±1 noise). Eval: "
                  f"{r.get('eval_samples', 1)} samples per prompt (per-prompt mean), T = 1."]
            j, d = r["judge"], r.get("d_rlaif_vs_d_rlaif_old_judge")
            if "d_rlaif_old_judge" in j and d:
                same = d["diff"]["lo"] <= 0 <= d["diff"]["hi"]
                L += ["", f"Reading: the distilled rater agrees with ground truth on {j['d_rlaif']['agreement']['mean']:.2f} "
                      f"of held-out pairs, the pretrained one on {j['d_rlaif_old_judge']['agreement']['mean']:.2f}; "
                      + ("the two d-RLAIF policies are indistinguishable after this RL budget "
                         f"({_ci(d['diff'])} in score): both gain mostly through fewer unsafe answers, which both "
                         "raters score alike (harm families 1.00 for each)." if same else
                         f"the policy trained on the distilled rater differs from the other by {_ci(d['diff'])} in "
                         "score.")]
        L.append("")
    if "critics" in res:
        L += ["## Which model can be SL-CAI's critic", "",
              "Each candidate critiques and revises the same SFT responses to red-team/harmful train prompts (2 rounds, "
              "as SL-CAI runs them); its harm calls (the critique says the answer is harmful) are scored against "
              "ground-truth harm.", "",
              "| critic | critiques (unsafe) | accuracy | recall on unsafe | specificity | unsafe by round |",
              "|---|---|---|---|---|---|"]
        for name, v in res["critics"].items():
            cr = v["report"]
            L.append(f"| {name} | {cr['critiques']} ({cr['unsafe']}) | {_ci(cr['accuracy'])} | {_ci(cr['recall'])} | "
                     f"{_ci(cr['specificity'])} | " + ", ".join(f"{x:.3f}" for x in v["unsafe_by_round"]) + " |")
        L += ["", "First critique of each: " + "; ".join(f"{k}: {v['example']['critique'][:80]!r}"
                                                       for k, v in res["critics"].items()), "",
              ]
        weak = [k for k, v in res["critics"].items() if k != "pretrained" and v["report"]["accuracy"]["mean"] < 0.70]
        if weak:
            L += ["Reading: " + ", ".join(weak) + " — below 0.70 at calling harm. The distilled judges were "
                  "fine-tuned only on judgement (or rating) rows, so they no longer write critiques or revisions (what "
                  "they write is judgement text, not a critique or a response) and cannot be SL-CAI's critic; the "
                  "pretrained model, whose critique documents carry ground-truth harm labels, is the critic SL-CAI "
                  "uses, and its measured accuracy is reported with the SL-CAI result.", ""]
    for key in ("cai", "cai_rl"):
        if key not in res:
            continue
        c = res[key]
        title = (f"## Constitutional AI ({c['red_team_prompts']} red-team prompts, {c['rounds']} rounds)" if key == "cai"
                 else f"## RL-CAI on a smaller SL-CAI ({c['red_team_prompts']} red-team prompts, {c['rounds']} "
                      f"round(s); {c.get('rl_pairs')} AI comparisons by principle → preference model → RLOO "
                      f"{c.get('rl_steps')} steps)")
        L += [title, "",
              "Unsafe rate of the critic's revisions by round (round 0 = SFT's first response): "
              + ", ".join(f"{x:.3f}" for x in c["unsafe_by_round_of_revisions"]), ""]
        cr = c.get("critic_report")
        if cr:
            L += [f"The critic (`{c.get('critic')}`) as a labeler of harm against ground truth, over its "
                  f"{cr['critiques']} critiques ({cr['unsafe']} of unsafe answers): accuracy {_ci(cr['accuracy'])}, "
                  f"recall on unsafe answers {_ci(cr['recall'])}, specificity {_ci(cr['specificity'])}."
                  + (" It is the pretrained model, which learned the corpus's critique → revision documents, whose "
                     "critiques are written from ground-truth harm (distilled from ground-truth-labelled documents, "
                     "by design)." if str(c.get("critic", "")).endswith("pretrain/model") else ""), ""]
        L += [
              "| policy | helpfulness (benign) | unsafe rate (harmful) | red-team unsafe | over-refusal |",
              "|---|---|---|---|---|"]
        for k in ("sft", "sl_cai", "rl_cai"):
            if k in c:
                e = c[k]
                L.append(f"| {k} | {e['helpfulness']:.3f} | {e['unsafe_rate']:.3f} | {e['red_team_unsafe_rate']:.3f} | "
                         f"{e['over_refusal']:.3f} |")
        L += ["", "| comparison (paired) | mean diff |", "|---|---|"]
        for k in ("sl_vs_sft_unsafe", "sl_vs_sft_helpfulness", "rl_vs_sl_unsafe", "rl_vs_sft_helpfulness"):
            if k in c:
                L.append(f"| {k} | {_ci(c[k]['diff'])} |")
        h = c.get("harmful_eval")
        if h:
            L += ["", f"On {h['n']} harmful eval prompts (half red-team phrasings): unsafe rate SFT {h['sft_unsafe']:.3f}, "
                  f"SL-CAI {h['sl_cai_unsafe']:.3f}" + (f", RL-CAI {h['rl_cai_unsafe']:.3f}" if "rl_cai_unsafe" in h else "")
                  + f"; red-team only SFT {h['sft_red_team_unsafe']:.3f}, SL-CAI {h['sl_cai_red_team_unsafe']:.3f}"
                  + (f", RL-CAI {h['rl_cai_red_team_unsafe']:.3f}" if "rl_cai_red_team_unsafe" in h else "") + ".", ""]
            for k in ("sl_vs_sft_unsafe", "rl_vs_sl_unsafe", "rl_vs_sft_unsafe"):
                if k in h:
                    L.append(f"- {k} (paired, harmful prompts): {_ci(h[k]['diff'])}")
        j = c.get("rl_judge")
        if j:
            fam = j.get("per_family_agreement", {})
            hf = [v for f, v in fam.items() if f in ("potion", "vault")]
            harm_n = sum(v["n"] for v in hf)
            harm_acc = sum(v["n"] * v["agreement"] for v in hf) / max(1, harm_n)
            rl = (h or {}).get("rl_vs_sl_unsafe", {}).get("diff")
            shown = rl is not None and rl["hi"] < 0
            distilled = bool(c.get("rl_judge_path"))
            who = ("the distilled judge (chain of thought, orders averaged) labelling under sampled principles"
                   if distilled else "the pretrained world model judging by sampled principles")
            L += ["", f"RL-CAI's AI comparisons ({j['pairs']} prompts, {c.get('rl_red_team_frac', 0.5):.0%} of them "
                  f"red-team/harmful requests, the rest benign; {who}) against ground truth: agreement "
                  f"{_ci(j['agreement'])} on {j['decided_pairs']} pairs where the truth differs; on the {harm_n} "
                  f"harmful-request pairs among them {harm_acc:.2f}; verdict flips with order in "
                  f"{j['order_flip_rate']:.0%} of pairs. "
                  + ("The judge was distilled from ground-truth-graded pairs of the SFT model's own samples "
                     "(experiments/results/judge_distillation.md)." if distilled else
                     "The judge knows harm (refusal ≻ compliance) and little else, so the preference model carries "
                     "a harm signal and near-noise elsewhere.") + " RL runs on the same red-team/benign mix."]
            if rl is not None:
                L.append("")
                L.append(("Shown: RL-CAI lowers harm beyond SL-CAI, " if shown else "Not shown: RL-CAI lowering harm "
                          "beyond SL-CAI, ") + f"{_ci(rl)} on {h['n']} harmful prompts × {c.get('harm_eval_samples', 1)} "
                         "samples (paired per prompt). An earlier run that drew the AI comparisons from the general "
                         "prompt mix (11 harmful-request pairs of 427) gave −0.004 [−0.018, +0.010]: the PM needs "
                         "red-team comparisons, as in the paper.")
        seeds = res.get("cai_rl_seeds") if key == "cai_rl" else None
        if seeds:
            L += ["", "The whole SL-CAI → RL-CAI pipeline under other seeds (fresh red-team prompts, comparisons, RL):", "",
                  "| seed | SL-CAI unsafe | RL-CAI unsafe | RL-CAI − SL-CAI unsafe | RL-CAI − SFT helpfulness |",
                  "|---|---|---|---|---|"]
            for sd, v in seeds.items():
                L.append(f"| {sd} | {v['sl_cai_unsafe']:.3f} | {v['rl_cai_unsafe']:.3f} | {_ci(v['rl_vs_sl_unsafe'])} | "
                         f"{_ci(v['rl_vs_sft_helpfulness'])} |")
        old = res.get("cai_rl_pretrained_judge") if key == "cai_rl" else None
        if old:      # the same RL-CAI runs labelled by the old judge (the pretrained model), kept for comparison
            runs = {"distilled": {"0": summary(c), **(res.get("cai_rl_seeds") or {})},
                    "pretrained": {"0": summary(old), **(res.get("cai_rl_seeds_pretrained_judge") or {})}}
            fx_new = res.get("fixture_by_part", {}).get("rlcai", "?")
            fx_old = res.get("cai_rl_pretrained_judge_fixture", "?")
            L += ["", "The same pipeline (seeds 0–2) with RL-CAI's labels from the distilled judge (fixture "
                  f"`{fx_new}`) and, from an earlier run, the old judge (the pretrained model, no chain of thought; "
                  f"fixture `{fx_old}`, so the two rows differ in their SFT model too):", "",
                  "| labeller | seed | judge agreement | RL-CAI − SL-CAI unsafe | RL-CAI − SFT helpfulness |",
                  "|---|---|---|---|---|"]
            for name, by_seed in runs.items():
                for sd, v in by_seed.items():
                    ag = v.get("judge_agreement")
                    L.append(f"| {name} | {sd} | {_ci(ag) if ag else 'n/r'} | {_ci(v['rl_vs_sl_unsafe'])} | "
                             f"{_ci(v['rl_vs_sft_helpfulness'])} |")
        L.append("")
    path.write_text("\n".join(L) + "\n")


def main() -> None:
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default=None)
    ap.add_argument("--parts", default="judge,rlaif,slcai")
    ap.add_argument("--out", default="/tmp/ai_feedback_runs")
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--n-pairs", type=int, default=1000)
    ap.add_argument("--rl-steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--sl-prompts", type=int, default=None, help="rlcai: SL-CAI prompts (default: --n-pairs)")
    ap.add_argument("--judge", default=None, help="the distilled judge (default: the one the test fixture built)")
    ap.add_argument("--scoring-judge", default=None,
                    help="drlaif: the distilled 1-10 rater (experiments/judge.py --kind rating; default: the "
                         "pretrained model, alone)")
    ap.add_argument("--n-judge", type=int, default=1000, help="drlaif: eval prompts of the raters' agreement pairs")
    ap.add_argument("--n-critic", type=int, default=500, help="critics: red-team prompts each candidate critiques")
    ap.add_argument("--critic", default=None, help="slcai: the critique/revision model (default: the pretrained model)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    fx = Path(a.fixture) if a.fixture else newest_fixture()
    out = Path(a.out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "ai_feedback.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    res.setdefault("fixture", fx.name)     # the fixture of parts run before parts recorded their own
    for part in a.parts.split(","):
        t0 = time.perf_counter()
        if part == "judge":
            res["judge"] = part_judge(fx, a.n_eval, distilled_judge(a.judge))
        elif part == "rlaif":
            res["rlaif"] = part_rlaif(fx, out, a.n_pairs, a.rl_steps, a.n_eval, distilled_judge(a.judge))
        elif part == "drlaif":
            res["drlaif"] = part_drlaif(fx, out, a.rl_steps, a.n_eval, a.scoring_judge, a.n_judge)
        elif part == "slcai":
            res["cai"] = part_cai(fx, out, a.n_eval, a.rounds, a.n_pairs, a.rl_steps, False, critic=a.critic)
        elif part == "critics":  # which model can be SL-CAI's critic: harm calls and revisions vs ground truth
            cands = {"pretrained": str(fx / "pretrain" / "model")}
            cands.update({k: v for k, v in (("distilled pairwise judge", a.judge),
                                            ("distilled rater", a.scoring_judge), ("--critic", a.critic)) if v})
            res["critics"] = part_critics(fx, a.n_critic, 2, cands)
        elif part == "rlcai":    # its own SL-CAI (--sl-prompts, --rounds) with RL-CAI on top
            res["cai_rl"] = part_cai(fx, out, a.n_eval, a.rounds, a.n_pairs, a.rl_steps, True, a.sl_prompts,
                                     judge_path=distilled_judge(a.judge))
        elif part == "rlcai-seeds":   # the same pipeline under other seeds (robustness of the RL-CAI result)
            res["cai_rl_seeds"] = {str(s): summary(part_cai(fx, out / f"seed{s}", a.n_eval, a.rounds, a.n_pairs,
                                                             a.rl_steps, True, a.sl_prompts, seed=s,
                                                             judge_path=distilled_judge(a.judge)))
                                   for s in (1, 2)}
        res.setdefault("wall_s", {})[part] = time.perf_counter() - t0
        res.setdefault("fixture_by_part", {})[part] = fx.name
        used = {"drlaif": a.scoring_judge, "slcai": a.critic, "critics": None}.get(part, a.judge)
        if used:
            res.setdefault("judge_path_by_part", {})[part] = used
        elif part in ("drlaif", "slcai", "critics"):       # this run used the pretrained model: drop an older run's entry
            res.setdefault("judge_path_by_part", {}).pop(part, None)
        path.write_text(json.dumps(res, indent=2, default=str))
        write_md(res, RESULTS / "ai_feedback.md")
        print(f"[{part}] done in {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
