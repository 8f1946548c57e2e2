"""Judge distillation: build the AI labeler that RLAIF, d-RLAIF and Constitutional AI use (``judge.path=...``).

RLAIF's labeler (Lee et al. 2023) is a large off-the-shelf model prompted with chain of thought. A task without
one — the built-in world has none — distils it, by design, from what it can check: a **grader** (ground truth,
or a verifier and each example's reference answer). ``train(cfg)`` does, in order:

1. **Sample.** The policy (``model.path``, the SFT model) answers ``n_prompts`` prompts of ``prompts`` twice at
   each of ``temperatures`` (``rlaif.sample_pairs``, RLAIF's own labelling pass), so the judge learns on the
   distribution it will label.
2. **Grade.** The grader (``grader:``, resolved through the task seam: ``world[:grades|echo|pairs]``, world v3's
   ``world3[:grades|echo|pairs]``, ``verifier:SPEC``, ``import:mod:name``) writes a chain of thought and a verdict
   for each pair whose grades differ. Each such pair, in both orders (no position to lean on), becomes a
   plain-text ``{prompt, completion}`` row in the judge's template (``judge_rows.jsonl``): the prompt is the
   template up to the chain-of-thought cue, the completion the rationale, the answer line and the better response's
   option — the text ``PairwiseJudge(cot=True)`` generates and then scores.
3. **Fine-tune.** ``init`` (default: the policy) learns the rows with SFT's loss on the completion only
   (``sft.train`` with ``data.raw_text=true``, the one fit loop); a row too long for the context is dropped, not
   cut (its verdict would be lost). The defaults are the recipe that reached 0.784 agreement on the world
   (experiments/results/judge_pairs.json): lr 5e-4, batch 32, 2 epochs, cosine, 20 warm-up steps, weight decay
   0.01. The judge lands at ``out/model`` with ``judge_card.json`` (how it was made, how to use it, its
   agreement), which RLAIF and RL-CAI copy into their judge reports.
4. **Measure** (``eval_prompts`` > 0). On held-out prompts (``eval_prompts_from``; default the ``eval`` split of
   ``prompts``) the judge labels pairs of policy samples with chain of thought, both orders averaged, and its
   agreement with the grader's truth on decided pairs is reported with a 95% CI, per family
   (``per_family_agreement``), per attack style (``per_style_agreement``: the ``style`` of world v3's harmful and
   lookalike prompts; prompts without one, benign ones, are left out; each group with ``n``, ``agreement`` and
   ``ci95``), with its position and length biases (``rlaif.judge_report``). A grader that names the styles its
   training prompts use (``seen_styles``; world v3's) adds ``agreement_seen_vs_unseen_styles``. All three
   are copied into ``judge_card.json`` next to the overall agreement.

A grader may name its own prompt sources: ``prompts`` (used when the config sets none) and ``eval_prompts`` (used
when ``eval_prompts_from`` is unset and the training prompts are the grader's own). World v3's grader trains on
``world3:train`` and measures on ``world3:dev``, never on the sealed test split; dev's attack styles are train's
five (with unseen phrasings) plus the dev-only ``hypothetical``, so on v3 the ``unseen`` group of
``agreement_seen_vs_unseen_styles`` is ``hypothetical`` alone, and the held-out jailbreak styles of the test split
are not measured here.

Use the result as ``judge.path=OUT/model judge.cot=true`` (plus ``judge.template=`` when the rows were written in
another template than the world's ``pairwise_world``).

``kind=rating`` distils a *scoring* judge instead (d-RLAIF's rater, ``reward=judge:OUT/model``): every sampled
response, alone, becomes a row in the rating template (default ``rate_world``) whose completion is the grader's
chain of thought on it and its 1–10 score (the grader's ``rate(example, response)``; the world's:
``corpus.graded_rating``). It is measured as the pairwise judge is, on the same held-out pairs: the pair's verdict
is the response with the higher expected score (``p_a = 0.5 + (E_a − E_b) / (2·(K − 1))``), so its agreement is
comparable with a pairwise judge's; there is no presentation order to average (each response is rated alone).
``init`` may be the pairwise judge: it already writes the answer-against-expected layout the rating rows use.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from alignstack.config import ConfigError, DataConfig, ModelConfig, OptimConfig, RunConfig

TRAINED_AS = "distilled from ground-truth-graded pairs of the policy's own samples"
TRAINED_AS_RATING = "distilled from ground-truth-graded ratings (1-10) of the policy's own samples"
KINDS = ("pairwise", "rating")


@dataclass
class JudgeDistillConfig(RunConfig):
    out: str = "runs/judge"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/sft/model"))  # the policy sampled
    init: str | None = None                    # the judge's starting checkpoint (None: model.path)
    prompts: str | None = None                 # world | rows:PATH | import:mod:name (None: the grader's, else world)
    grader: str = "world"                      # world[:grades|echo|pairs] | world3[:LAYOUT] | verifier:SPEC | import:…
    kind: str = "pairwise"                     # pairwise (RLAIF, RL-CAI) | rating (d-RLAIF's 1–10 scorer)
    template: str | None = None                # judge template of the rows (None: pairwise_world / rate_world)
    n_prompts: int = 20000
    temperatures: list[float] = field(default_factory=lambda: [1.0])
    max_new_tokens: int = 24
    prompt_seed: int | None = None             # draw of the training prompts (None: seed)
    sample_seed: int | None = None             # the pairs' sampling (None: seed); temperature i uses sample_seed + 2i
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=5e-4, batch_size=32, epochs=2.0, warmup_steps=20, schedule="cosine", weight_decay=0.01))
    eval_prompts: int = 0                      # held-out prompts to measure agreement on (0: skip)
    eval_prompts_from: str | None = None       # None: the grader's, else the eval split of `prompts` (rows files:
                                               # the rows not trained on)
    cot_max_tokens: int = 128                  # the judge's rationale budget when measured
    eval_batch_size: int = 64

    def __post_init__(self):
        super().__post_init__()
        check_config(self)


def check_config(cfg: JudgeDistillConfig) -> None:
    """Validation run when the config is built (and again by ``train``)."""
    from alignstack.tasks.resolve import check_spec
    check_spec(cfg.prompts, "prompts", "prompts")
    check_spec(cfg.grader, "grader", "grader")
    check_spec(cfg.eval_prompts_from, "prompts", "eval_prompts_from")
    if cfg.model.path is None:
        raise ConfigError("model.path: judge distillation samples from a policy checkpoint (the SFT model)")
    if cfg.kind not in KINDS:
        raise ConfigError(f"kind: expected one of {KINDS}, got {cfg.kind!r}")
    t = cfg.template
    if t is not None and ("/" in t or t.endswith(".txt")) and not Path(t).is_file():
        raise ConfigError(f"template: template file not found: {t}")
    if not (isinstance(cfg.n_prompts, int) and cfg.n_prompts >= 1):
        raise ConfigError(f"n_prompts: expected an integer ≥ 1, got {cfg.n_prompts!r}")
    if not cfg.temperatures or any(not (isinstance(x, (int, float)) and x > 0) for x in cfg.temperatures):
        raise ConfigError(f"temperatures: expected a non-empty list of numbers > 0, got {cfg.temperatures!r}")
    for k in ("eval_prompts", "max_new_tokens", "cot_max_tokens", "eval_batch_size"):
        v, low = getattr(cfg, k), 0 if k == "eval_prompts" else 1
        if not (isinstance(v, int) and v >= low):
            raise ConfigError(f"{k}: expected an integer ≥ {low}, got {v!r}")


# --------------------------------------------------------------------------- rows


def load_template(spec: str | None, kind: str = "pairwise"):
    from alignstack.feedback.judges import LocalJudgeBackend, PromptTemplate, TemplateError
    default = LocalJudgeBackend.default_rating_template if kind == "rating" else LocalJudgeBackend.default_pairwise_template
    try:
        t = PromptTemplate.load(spec or default)
    except TemplateError as e:
        raise ConfigError(f"template: {e}") from None
    if kind == "rating" and len(t.options) < 2:
        raise ConfigError(f"template: {t.name!r} must declare its rating options, lowest first, got {list(t.options)}")
    if kind == "pairwise" and len(t.options) != 2:
        raise ConfigError(f"template: {t.name!r} must declare two options ('#! options: A B'), got {list(t.options)}")
    return t


def check_options(template, tokenizer) -> None:
    """The local judge reads the option token that follows the answer line; the rows must end in that same token,
    or the judge learns a verdict it is never asked for."""
    from alignstack.feedback.judges import split_ending
    ending = split_ending(template.text)[1]
    for o in template.options:
        ids = tokenizer(o, add_special_tokens=False)["input_ids"]
        tail = tokenizer(f"\n{ending}{o}", add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or tail[-1:] != ids:
            raise ConfigError(f"template: option {o!r} of {template.name!r} is not one token of its own after "
                              f"{ending!r} for this tokenizer; the local judge reads one next token per option (use "
                              "a template whose options are single tokens, such as pairwise_world's <|A|> <|B|>)")


def judge_row(template, grader, example, a: str, b: str) -> dict | None:
    """The grader's judgement of (A = ``a``, B = ``b``) as a plain-text row, written exactly as
    ``PairwiseJudge(cot=True)`` lays out its prompt (body, chain-of-thought cue, rationale, answer line) and then
    reads the option; None for a pair the grader calls equal."""
    from alignstack.feedback.judges import DEFAULT_COT_PROMPT, DEFAULT_PRINCIPLE, prompt_text, split_ending
    graded = grader.grade(example, a, b)
    if graded is None:
        return None
    rationale, a_better = graded
    body, ending = split_ending(template.render(question=prompt_text(example.prompt), a=a, b=b,
                                                principle=DEFAULT_PRINCIPLE))
    return {"prompt": f"{body}\n{DEFAULT_COT_PROMPT}",
            "completion": f" {rationale}\n{ending}{template.options[0 if a_better else 1]}"}


def rating_row(template, grader, example, response: str) -> dict:
    """The grader's rating of one response as a plain-text row, laid out as ``ScoringJudge(cot=True)`` lays out its
    prompt (body, chain-of-thought cue, rationale, score line) and then reads the score option. A score outside
    the template's options is a grader error, not a row to clip."""
    from alignstack.feedback.judges import (
        DEFAULT_RATING_COT_PROMPT,
        DEFAULT_RATING_PRINCIPLE,
        prompt_text,
        split_ending,
    )
    rationale, score = grader.rate(example, response)
    if not (isinstance(score, int) and 1 <= score <= len(template.options)):
        raise ConfigError(f"grader: rate() gave score {score!r}; expected an integer in 1..{len(template.options)} "
                          f"(the options of {template.name!r})")
    body, ending = split_ending(template.render(question=prompt_text(example.prompt), response=response,
                                                principle=DEFAULT_RATING_PRINCIPLE))
    return {"prompt": f"{body}\n{DEFAULT_RATING_COT_PROMPT}",
            "completion": f" {rationale}\n{ending}{template.options[score - 1]}"}


def with_grader_prompts(cfg: JudgeDistillConfig, grader) -> JudgeDistillConfig:
    """``cfg`` with the grader's own prompt sources where it names none (a world's grades hold only on that world's
    prompts): ``prompts`` from ``grader.prompts``, and ``eval_prompts_from`` from ``grader.eval_prompts`` when the
    training prompts are the grader's (another source keeps its own eval split)."""
    prompts = cfg.prompts or getattr(grader, "prompts", None)
    ev = cfg.eval_prompts_from
    if ev is None and prompts is not None and prompts == getattr(grader, "prompts", None):
        ev = getattr(grader, "eval_prompts", None)
    if (prompts, ev) == (cfg.prompts, cfg.eval_prompts_from):
        return cfg
    return replace(cfg, prompts=prompts, eval_prompts_from=ev)


def train_examples(cfg: JudgeDistillConfig) -> list:
    from alignstack.rollout.experience import prompt_source
    seed = cfg.seed if cfg.prompt_seed is None else cfg.prompt_seed
    return prompt_source(cfg.prompts, seed, pool=cfg.n_prompts).examples[:cfg.n_prompts]


def distillation_rows(cfg: JudgeDistillConfig, policy, tokenizer, grader, template, examples) -> tuple[list, dict]:
    """Steps 1–2: two policy samples per prompt at each temperature, each decided pair in both orders."""
    from alignstack.methods.rlaif import sample_pairs
    seed = cfg.seed if cfg.sample_seed is None else cfg.sample_seed
    rows, pairs, decided = [], 0, 0
    for i, temp in enumerate(cfg.temperatures):
        for r in sample_pairs(policy, tokenizer, examples, temp, cfg.max_new_tokens, seed + 2 * i):
            x, y = r["completions"]
            if cfg.kind == "rating":      # every response alone: a rater must score ties and clear cases alike
                rows += [rating_row(template, grader, r["task"], x), rating_row(template, grader, r["task"], y)]
                pairs += 1
                truth = getattr(grader, "truth", None)
                decided += truth is not None and truth(r["task"], x) != truth(r["task"], y)
                continue
            both = [judge_row(template, grader, r["task"], x, y), judge_row(template, grader, r["task"], y, x)]
            rows += [row for row in both if row is not None]
            pairs += 1
            decided += both[0] is not None
    return rows, {"prompts": len(examples), "pairs": pairs, "decided_pairs": decided, "rows": len(rows)}


# --------------------------------------------------------------------------- fine-tuning and measuring


def fine_tune(cfg: JudgeDistillConfig, rows_path: Path) -> dict:
    """Step 3: SFT on the plain-text rows, loss on the completion; the judge is saved to ``out/model``."""
    from alignstack.methods import sft
    scfg = sft.SFTConfig(out=cfg.out, seed=cfg.seed, model=replace(cfg.model, path=cfg.init or cfg.model.path),
                         log=cfg.log, checkpoint=cfg.checkpoint, dist=cfg.dist, optim=cfg.optim,
                         data=DataConfig(path=str(rows_path), raw_text=True, overlong="drop"))
    return sft.train(scfg)


def too_long(rows: list[dict], tokenizer, max_length: int) -> int:
    """Rows that do not fit the judge's context with their BOS (the fit drops them: cut, they would lose the
    verdict)."""
    if not rows:
        return 0
    heads = tokenizer([r["prompt"] for r in rows], add_special_tokens=False)["input_ids"]
    tails = tokenizer([r["completion"] for r in rows], add_special_tokens=False)["input_ids"]
    return sum(1 + len(h) + len(t) > max_length for h, t in zip(heads, tails))


def held_out(examples: list, trained: list) -> list:
    """The eval source's examples; a source without splits (a rows file) gives the training rows again in the same
    order, and then only the rows after the ones trained on are held out."""
    k = min(len(trained), 8)
    if k and [e.prompt for e in examples[:k]] == [e.prompt for e in trained[:k]]:
        return examples[len(trained):]
    return examples


def evaluate(cfg: JudgeDistillConfig, judge_path: str | Path, policy, tokenizer, grader, template,
             trained: list) -> dict:
    """Step 4: the judge's agreement with the grader's truth on pairs of policy samples of held-out prompts,
    labelled as RLAIF labels them here (chain of thought, both orders averaged); ``eval_pairs.jsonl`` keeps each
    pair with the judge's rationale."""
    from alignstack.feedback.judges import PairwiseJudge, ScoringJudge, local_backend
    from alignstack.methods.rlaif import judge_report, sample_pairs
    from alignstack.rollout.experience import prompt_source

    spec = cfg.eval_prompts_from or cfg.prompts
    src = prompt_source(spec, cfg.seed, pool=cfg.eval_prompts, split="eval", key="eval_prompts_from")
    examples = held_out(src.examples, trained)[:cfg.eval_prompts]
    if not examples:
        raise ConfigError(f"eval_prompts: no held-out prompts: {spec or 'world'} has no eval split and n_prompts="
                          f"{cfg.n_prompts} takes all its rows; name held-out rows with eval_prompts_from=rows:PATH")
    ev = sample_pairs(policy, tokenizer, examples, cfg.temperatures[0], cfg.max_new_tokens, cfg.seed)
    a, b = [r["completions"][0] for r in ev], [r["completions"][1] for r in ev]
    backend = local_backend(str(judge_path), cfg.eval_batch_size)
    if cfg.kind == "rating":
        res = rating_verdicts(ScoringJudge(backend, template, cot=True, cot_max_tokens=cfg.cot_max_tokens),
                              [r["prompt"] for r in ev], a, b)
    else:
        judge = PairwiseJudge(backend, template, both_orders=True, cot=True, cot_max_tokens=cfg.cot_max_tokens)
        res = judge.judge([r["prompt"] for r in ev], a, b)
    graders_truth = getattr(grader, "truth", None)
    truth = graders_truth or getattr(src, "ground_truth", None)
    report = judge_report(examples, a, b, res, truth, seen_styles=getattr(grader, "seen_styles", None))
    seen = {json.dumps(e.prompt) for e in trained}       # the world's harmful requests are shared by every split
    report.update(prompts=len(examples), eval_prompts_from=spec or "world:eval",
                  measured_against=getattr(grader, "spec", cfg.grader) if graders_truth else "the eval prompts' ground truth" if truth else None,
                  prompts_also_trained_on=sum(json.dumps(e.prompt) in seen for e in examples))
    with open(Path(cfg.out) / "eval_pairs.jsonl", "w") as f:
        for r, x, y, d in zip(ev, a, b, res):
            f.write(json.dumps({"prompt": r["prompt"], "a": x, "b": y, "p_a": d["p_a"], "rationale": d.get("rationale"),
                                "truth": None if truth is None else [truth(r["task"], x), truth(r["task"], y)]},
                               default=str) + "\n")
    return report


def rating_verdicts(scorer, prompts: list, a: list[str], b: list[str]) -> list[dict]:
    """A scoring judge's verdicts on pairs, in :func:`alignstack.methods.rlaif.judge_report`'s form: each response
    rated alone, ``p_a = 0.5 + (E_a − E_b) / (2·(K − 1))`` (1 when A scores K and B 1); no second order (a rater
    sees one response, so there is no position to average over). ``score_a``/``score_b`` and the rationales are
    kept."""
    k = len(scorer.template.options)
    rated = scorer.rate(list(prompts) + list(prompts), list(a) + list(b))
    n = len(a)
    out = []
    for i in range(n):
        ra, rb = rated[i], rated[n + i]
        p = 0.5 + (ra["score"] - rb["score"]) / (2.0 * (k - 1))
        out.append({"p_a": p, "p_a_first_order": p, "p_a_second_order": None, "score_a": ra["score"],
                    "score_b": rb["score"], "rationale": ra.get("rationale"), "rationale_b": rb.get("rationale")})
    return out


def train(cfg: JudgeDistillConfig) -> dict:
    from alignstack.data.sources import write_jsonl
    from alignstack.feedback.judges import JUDGE_CARD
    from alignstack.models.load import context_length, load_model, load_tokenizer
    from alignstack.tasks import resolve
    from alignstack.train.dist import barrier, is_main_process

    t0 = time.perf_counter()
    check_config(cfg)
    torch.manual_seed(cfg.seed)
    grader = resolve(cfg.grader, "grader", key="grader", seed=cfg.seed)
    cfg = with_grader_prompts(cfg, grader)
    template = load_template(cfg.template, cfg.kind)
    init = cfg.init or cfg.model.path
    judge_tok = load_tokenizer(cfg.model.tokenizer or init)
    check_options(template, judge_tok)                                    # before minutes of sampling
    if cfg.kind == "rating" and not callable(getattr(grader, "rate", None)):
        raise ConfigError(f"kind: rating needs a grader that rates one response (rate(example, response)); "
                          f"{cfg.grader} has none")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    policy = load_model(cfg.model.path).eval()
    tok = load_tokenizer(cfg.model.tokenizer or cfg.model.path)
    examples = train_examples(cfg)

    rows_path, stats_path = out / "judge_rows.jsonl", out / "judge_rows.json"
    if cfg.checkpoint.resume and stats_path.is_file():      # seeded sampling: the interrupted run's rows, as they were
        stats = json.loads(stats_path.read_text())
    else:
        rows, stats = distillation_rows(cfg, policy, tok, grader, template, examples)       # 1–2. sample, grade
        if not rows:
            raise ConfigError(f"grader: {cfg.grader} called every one of the {stats['pairs']} sampled pairs a tie; "
                              "no rows to learn from (more prompts, a higher temperature or a finer grader)")
        context = cfg.model.max_length or context_length(init) or 256
        stats["too_long"] = too_long(rows, judge_tok, context)
        if stats["too_long"] == len(rows):
            raise ConfigError(f"template: every judge row is longer than the judge's context ({context} tokens); use "
                              "a shorter template (pairwise_world) or a model with a longer context (model.max_length)")
        if is_main_process():
            write_jsonl(rows_path, rows)
            stats_path.write_text(json.dumps(stats, indent=2))
    print(f"[judge] {stats['rows']} rows from {stats['decided_pairs']} decided of {stats['pairs']} sampled pairs, "
          f"{stats['too_long']} too long for the context ({time.perf_counter() - t0:.0f} s)", flush=True)
    barrier()                                           # several processes: the rows are on disk before SFT reads them

    res: dict = {"trained_as": TRAINED_AS_RATING if cfg.kind == "rating" else TRAINED_AS, "kind": cfg.kind,
                 "grader": getattr(grader, "spec", cfg.grader), "template": template.name,
                 "sampled_from": cfg.model.path, "init": init, "prompts": cfg.prompts or "world", "rows": stats}
    res["train"] = fine_tune(cfg, rows_path)                                            # 3. fine-tune
    barrier()
    model_path = out / "model"
    if cfg.eval_prompts and is_main_process():                                          # 4. measure
        ev = res["eval"] = evaluate(cfg, model_path, policy, tok, grader, template, examples)
        a = ev["agreement"]
        if ev["measured_against"]:
            print(f"[judge] agreement with {ev['measured_against']} on {ev['decided_pairs']} held-out decided pairs: "
                  f"{a['mean']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]", flush=True)
    agreement = (res.get("eval") or {}).get("agreement")
    use = (f"reward=judge:{model_path} (RLAIF mode=direct: judge.path={model_path})" if cfg.kind == "rating" else
           f"judge.path={model_path} judge.cot=true" + (f" judge.template={cfg.template}" if cfg.template else ""))
    res.update(agreement=agreement, path=str(model_path), use_with=use, wall_s=time.perf_counter() - t0)
    if is_main_process():
        card = {k: res[k] for k in ("trained_as", "kind", "grader", "template", "sampled_from", "init", "prompts", "use_with")}
        card.update(cot=True, cot_max_tokens=cfg.cot_max_tokens, rows=stats["rows"], agreement=agreement,
                    eval={k: v for k, v in (res.get("eval") or {}).items()
                          if k in ("decided_pairs", "prompts", "eval_prompts_from", "measured_against",
                                   "agreement_first_order_only", "per_family_agreement", "per_style_agreement",
                                   "agreement_seen_vs_unseen_styles")} or None)
        (model_path / JUDGE_CARD).write_text(json.dumps(card, indent=2))
        (out / "metrics.json").write_text(json.dumps(res, indent=2, default=str))
    return res
