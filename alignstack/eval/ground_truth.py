"""Ground-truth evaluation on the world's held-out prompts.

Models are sampled at the sampling temperature (T = 1) **and** greedily (DESIGN.md §4: greedy
decoding hides the unsafe compliance alignment removes). Reported per decoding mode:
``helpfulness`` (mean over benign prompts), ``unsafe_rate`` (share of harmful requests answered
with leaked content), ``over_refusal`` (benign prompts refused), ``score`` (mean safety-aware
ground truth over all prompts — the per-prompt quantity used for paired comparisons), and
per-family scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alignstack.algos.kl import exact_kl, sequence_kl
from alignstack.data.render import ChatRenderer
from alignstack.eval.stats import mean_ci, paired_difference
from alignstack.models.logprobs import completion_logits, completion_span
from alignstack.models.tokenizer import stop_token_ids
from alignstack.rollout.engine import SamplingConfig, sample
from alignstack.world import corpus as C
from alignstack.world import tasks as T


@dataclass
class EvalConfig:
    n_prompts: int = 1000
    seed: int = 0
    split: str = "eval"
    max_new_tokens: int = 32
    temperature: float = 1.0
    greedy: bool = True           # also evaluate greedily
    batch_size: int = 256
    samples: int = 1              # T-samples per prompt, averaged per prompt (less noise in paired CIs)

    def __post_init__(self):
        if self.samples < 1:
            raise ValueError(f"eval samples must be ≥ 1, got {self.samples}")


def eval_tasks(cfg: EvalConfig) -> list[T.Task]:
    return C.prompt_set(cfg.seed, cfg.split, cfg.n_prompts)


def prompt_ids_of(tokenizer, tasks: list[T.Task]) -> list[list[int]]:
    r = ChatRenderer(tokenizer)
    return [r.prompt_ids(t.to_row()["prompt"]) for t in tasks]


def generate_for_tasks(model, tokenizer, tasks: list[T.Task], sampling: SamplingConfig, seed: int = 0,
                       prompts: list[list[int]] | None = None) -> list[str]:
    """One completion per task; ``prompts``: the tasks' prompt ids, when already rendered (``prompt_ids_of``)."""
    prompts = prompts if prompts is not None else prompt_ids_of(tokenizer, tasks)
    g = sample(model, prompts, sampling, stop_token_ids(tokenizer), tokenizer.pad_token_id,
               torch.Generator().manual_seed(seed))
    return g.texts(tokenizer)


def score_responses(tasks: list[T.Task], responses: list[str]) -> dict:
    per = [T.score(t, r) for t, r in zip(tasks, responses)]
    benign = [p["helpfulness"] for p, t in zip(per, tasks) if not t.is_safety]
    harmful = [p["unsafe"] for p, t in zip(per, tasks) if t.is_safety]
    red = [p["unsafe"] for p, t in zip(per, tasks) if t.red_team]
    fams: dict[str, list[float]] = {}
    for p, t in zip(per, tasks):
        fams.setdefault(t.family, []).append(p["unsafe"] if t.is_safety else p["helpfulness"])
    nan = float("nan")
    return {
        "helpfulness": sum(benign) / len(benign) if benign else nan,
        "unsafe_rate": sum(harmful) / len(harmful) if harmful else nan,
        "red_team_unsafe_rate": sum(red) / len(red) if red else nan,
        "over_refusal": (sum(p["over_refusal"] for p, t in zip(per, tasks) if not t.is_safety) / len(benign)
                         if benign else nan),
        "score": sum(p["helpfulness"] for p in per) / len(per),
        "per_family": {f: sum(v) / len(v) for f, v in sorted(fams.items())},
        "per_prompt": [p["helpfulness"] for p in per],
        "per_prompt_unsafe": harmful,       # harmful-request prompts only, in task order (paired CIs)
    }


def evaluate(model, tokenizer, cfg: EvalConfig | None = None, tasks: list[T.Task] | None = None,
             score=score_responses) -> dict:
    """Evaluate at T = ``cfg.temperature`` (key ``sampled``) and greedily (key ``greedy``). ``score(tasks,
    responses) -> dict`` turns one sampling into numbers: world v2's by default; world v3's unmerged columns
    come from :mod:`alignstack.eval.world_v3`, which passes its tasks and scorer through this one loop."""
    cfg = cfg or EvalConfig()
    tasks = tasks if tasks is not None else eval_tasks(cfg)
    out = {"n_prompts": len(tasks)}
    modes = [("sampled", SamplingConfig(cfg.max_new_tokens, cfg.temperature, batch_size=cfg.batch_size))]
    if cfg.greedy:
        modes.append(("greedy", SamplingConfig(cfg.max_new_tokens, greedy=True, batch_size=cfg.batch_size)))
    prompts = prompt_ids_of(tokenizer, tasks)        # rendered once for every sampling and both modes
    for name, sc in modes:
        runs = []
        for i in range(cfg.samples if name == "sampled" else 1):
            resp = generate_for_tasks(model, tokenizer, tasks, sc, cfg.seed + 7919 * i, prompts)
            runs.append(score(tasks, resp))
            if i == 0:
                runs[0]["samples"] = [{"prompt": t.prompt, "response": r} for t, r in zip(tasks[:8], resp[:8])]
        out[name] = _average_runs(runs)
    s = out["sampled"]
    out.update({k: s[k] for k in ("helpfulness", "unsafe_rate", "over_refusal", "score") if k in s})
    return out


def _average_runs(runs: list[dict]) -> dict:
    """Average several scored samplings of the same tasks: float scalars, mappings of them (per family)
    and per-prompt lists, element by element. Integers are counts of prompts, the same in every run, and
    are kept; a ``None`` (a column with no prompts) stays ``None``; the shown ``samples`` are the first run's."""
    if len(runs) == 1:
        return runs[0]
    out = {k: v if k == "samples" else _mean_of([r[k] for r in runs]) for k, v in runs[0].items()}
    out["n_samples"] = len(runs)
    return out


def _mean_of(values: list):
    v = values[0]
    if isinstance(v, float):
        return sum(values) / len(values)
    if isinstance(v, dict):
        return {k: _mean_of([x[k] for x in values]) for k in v}
    if isinstance(v, list):
        return [sum(col) / len(col) for col in zip(*values)]
    return v


def compare(result_a: dict, result_b: dict, mode: str = "sampled", metric: str = "per_prompt") -> dict:
    """Paired per-prompt comparison of two evaluations on the same prompts (a − b); ``metric``
    ``per_prompt`` (helpfulness score) or ``per_prompt_unsafe`` (unsafe indicator, harmful prompts)."""
    return paired_difference(result_a[mode][metric], result_b[mode][metric])


@torch.no_grad()
def kl_to_reference(model, ref, tokenizer, tasks: list, sampling: SamplingConfig | None = None,
                    seed: int = 0) -> dict:
    """Sequence KL(π‖π_ref) on the same prompts: exact per-token KL over the vocabulary along
    samples y ~ π, summed over the response and averaged over prompts (METHODS.md §2). ``tasks``:
    world tasks or any prompts as chat messages."""
    sampling = sampling or SamplingConfig()
    r = ChatRenderer(tokenizer)
    prompts = [r.prompt_ids(t if isinstance(t, list) else t.to_row()["prompt"]) for t in tasks]
    g = sample(model, prompts, sampling, stop_token_ids(tokenizer), tokenizer.pad_token_id,
               torch.Generator().manual_seed(seed))
    kls = []
    bs = sampling.batch_size
    for s in range(0, len(g), bs):
        sub = type(g)(g.prompt_ids[s:s + bs], g.completion_ids[s:s + bs], g.logprobs[s:s + bs], g.finished[s:s + bs])
        b = sub.tensors(tokenizer.pad_token_id)
        pos = (b.attention_mask.cumsum(-1) - 1).clamp(min=0)
        # the KL is summed over the completions: logits from the first completion column on
        T, keep = b.input_ids.shape[1], completion_span(b.loss_mask)
        scaled = []
        for net in (model, ref):
            out = completion_logits(net, keep, input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=pos)
            scaled.append(out.logits[:, :-1] / sampling.temperature)
        m = b.loss_mask[:, T - keep:]
        per_tok = exact_kl(scaled[0], scaled[1], m)
        kls += sequence_kl(per_tok, m).tolist()
    ci = mean_ci(kls)
    return {"kl": ci["mean"], "kl_ci": [ci["lo"], ci["hi"]] if not math.isnan(ci["lo"]) else None}
