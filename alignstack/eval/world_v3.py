"""Ground truth on world v3's dev split or its sealed test split (``alignstack eval --world 3``, pipelines
with ``world: 3``), in the columns of the claims protocol (docs/methods.md), never merged:

benign helpfulness, the unsafe rate (all harmful requests, and split into attack styles seen and unseen in
training), the mean leaked share of the secret, over-refusal and helpfulness on benign lookalikes — each at
T = 1 (``sampled``) and greedily, with paired per-prompt 95% CIs against a baseline on the same prompts,
and the sequence KL to the baseline.

The sampling loop is :func:`alignstack.eval.ground_truth.evaluate`'s (one loop for both worlds); this
module only picks v3's prompts and scorer and lays the result out for a claims script: every column's
per-prompt array (``per_prompt``, for paired and seed-level CIs) and the world version, split, seed and
temperature that produced it.

The test split is sealed (``alignstack.world.v3.splits``): :func:`eval_tasks` reads it only when asked
for ``split="test"``, which ``alignstack eval --split test`` and final reports do; tuning reads ``dev``.
"""
from __future__ import annotations

from alignstack.eval.ground_truth import EvalConfig, evaluate, kl_to_reference
from alignstack.eval.stats import paired_difference
from alignstack.rollout.engine import SamplingConfig
from alignstack.world.v3 import scoring as SC
from alignstack.world.v3 import splits as S
from alignstack.world.v3.lexicon import VERSION

SPLITS = ("dev", "test")
MODES = ("sampled", "greedy")
# the claims protocol's columns, in the order tables show them (each has its per-prompt array)
COLUMNS = ("benign_helpfulness", "unsafe_seen", "unsafe_unseen", "unsafe", "leak", "over_refusal",
           "lookalike_helpfulness")
SEALED_NOTE = ("world v3 --split test: this is the SEALED test split, for final evaluation only; "
               "never tune on these numbers (tune on --split dev)")


def eval_tasks(split: str, n: int, seed: int = 0) -> list:
    """``n`` prompts of v3's ``split`` (dev, or the sealed test split)."""
    if split not in SPLITS:
        raise ValueError(f"world v3 evaluates on {' or '.join(SPLITS)}, got split {split!r}")
    return S.sealed_test_set(seed, n) if split == "test" else S.prompt_set(seed, split, n)


def score_responses(tasks: list, responses: list[str]) -> dict:
    """One sampling's unmerged columns with their counts, plus every column's per-prompt array."""
    cols = SC.per_prompt(tasks, responses)
    return {**SC.summarize(tasks, cols), "per_prompt": cols}


def evaluate_v3(model, tokenizer, cfg: EvalConfig, tasks: list) -> dict:
    """``cfg.samples`` draws at ``cfg.temperature`` (per-prompt values averaged over them) and one greedy
    draw, scored by :func:`score_responses`."""
    return evaluate(model, tokenizer, cfg, tasks, score=score_responses)


def compare(res: dict, base: dict) -> dict:
    """Paired per-prompt differences (model − baseline) of every column at each decoding: mean and 95% CI,
    the win rate (ties ½; for ``unsafe*``, ``leak`` and ``over_refusal`` lower is better, so a win there
    means more harm), and the number of prompts the column is defined on."""
    out = {}
    for mode in MODES:
        out[mode] = {}
        for col in COLUMNS:
            a, b = res[mode]["per_prompt"][col], base[mode]["per_prompt"][col]
            if not a:
                out[mode][col] = {"diff": None, "ci": None, "n": 0}
                continue
            p = paired_difference(a, b)
            out[mode][col] = {"diff": p["diff"]["mean"], "ci": [p["diff"]["lo"], p["diff"]["hi"]], "n": len(a),
                              "win_rate": p["win_rate"]["mean"]}
    return out


def _scores(ev: dict) -> dict:
    """The JSON view of one evaluation: per decoding, every column with its count and per-prompt array."""
    keep = (*COLUMNS, "derived_combined", "n_benign", "n_harmful", "n_harmful_seen", "n_harmful_unseen",
            "n_lookalike", "per_family_helpfulness", "per_prompt", "samples")
    return {mode: {k: ev[mode][k] for k in keep if k in ev[mode]} for mode in MODES}


def report(model, tokenizer, cfg: EvalConfig, tasks: list, *, baseline=None, kl_prompts: int = 512,
           evaluated: dict | None = None, baseline_evaluated: dict | None = None) -> dict:
    """The eval JSON: ``world_version``, ``split``, ``sealed``, ``seed``, ``temperature``, ``samples``,
    ``prompt_ids`` (problem|template id per prompt, the pairing key), ``scores`` (per decoding: each column,
    its count and ``per_prompt`` arrays) and, with a ``baseline`` model, ``baseline_scores``, ``vs_baseline``
    (:func:`compare`) and ``kl_to_baseline``. ``evaluated`` / ``baseline_evaluated``: results of
    :func:`evaluate_v3` already computed on the same tasks (pipelines cache them)."""
    ev = evaluated if evaluated is not None else evaluate_v3(model, tokenizer, cfg, tasks)
    out = {"world_version": VERSION, "split": cfg.split, "sealed": cfg.split == "test", "seed": cfg.seed,
           "n_prompts": len(tasks), "temperature": cfg.temperature, "samples": cfg.samples,
           "max_new_tokens": cfg.max_new_tokens, "decodings": {"sampled": f"T = {cfg.temperature:g}",
                                                               "greedy": "greedy"},
           "columns": list(COLUMNS), "prompt_ids": [f"{t.problem_id}|{t.template_id}" for t in tasks],
           "scores": _scores(ev)}
    if baseline is not None or baseline_evaluated is not None:
        bev = baseline_evaluated if baseline_evaluated is not None else evaluate_v3(baseline, tokenizer, cfg, tasks)
        out["baseline_scores"] = _scores(bev)
        out["vs_baseline"] = compare(ev, bev)
        if baseline is not None and model is not None:
            sc = SamplingConfig(cfg.max_new_tokens, cfg.temperature, batch_size=cfg.batch_size)
            out["kl_to_baseline"] = {**kl_to_reference(model, baseline, tokenizer, tasks[:kl_prompts], sc, cfg.seed),
                                     "n_prompts": min(kl_prompts, len(tasks)), "temperature": cfg.temperature}
    return out


def format_report(rep: dict) -> str:
    """Plain text: the columns side by side at both decodings, then the paired differences and KL."""
    label = {"sampled": f"T={rep['temperature']:g}", "greedy": "greedy"}
    rows = {f"{who}{label[m]}": rep[key][m] for who, key in (("", "scores"), ("baseline ", "baseline_scores"))
            if key in rep for m in MODES}
    lines = [f"world v{rep['world_version']} split {rep['split']}{' (sealed)' if rep['sealed'] else ''}: "
             f"{rep['n_prompts']} prompts, seed {rep['seed']}, sampled at T = {rep['temperature']:g} and greedy",
             SC.side_by_side(rows)]
    for mode, cols in (rep.get("vs_baseline") or {}).items():
        cells = [f"{c} {v['diff']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]" for c, v in cols.items() if v["n"]]
        lines.append(f"model − baseline ({mode}, paired 95% CI): " + "; ".join(cells))
    if "kl_to_baseline" in rep:
        kl = rep["kl_to_baseline"]
        ci = f" [{kl['kl_ci'][0]:.3f}, {kl['kl_ci'][1]:.3f}]" if kl.get("kl_ci") else ""
        lines.append(f"KL(model ‖ baseline) {kl['kl']:.3f}{ci} on {kl['n_prompts']} prompts")
    return "\n".join(lines)
