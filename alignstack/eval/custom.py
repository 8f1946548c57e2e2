"""Evaluation on a user's own prompts with a user's reward (``alignstack eval --prompts FILE --reward SPEC``).

The world's ground truth only knows world prompts; on any other prompts the measure is the reward
the user names — a verifier (``exact``, ``numeric:TOL``, ``regex:P``, checked against each row's own
columns), a reward model (``rm:PATH``, ``llama2:HELP,SAFETY``), a judge (``judge:PATH``) or a
function (``import:module:fn``); the spec is resolved by :func:`alignstack.rollout.scorers.make_scorer`.
Reported: the mean reward with its 95% CI and the mean completion length in tokens; against a
baseline model, the paired per-prompt reward difference and win rate (ties ½) with CIs, and the
sequence KL of the model to the baseline on the same prompts.
"""
from __future__ import annotations

import torch

from alignstack.data.render import ChatRenderer
from alignstack.eval.stats import mean_ci, paired_difference
from alignstack.models.tokenizer import stop_token_ids
from alignstack.rollout.engine import SamplingConfig, sample

# reward specs that are task verifiers (scored against each row's columns, e.g. its `answer`)
VERIFIER_KINDS = ("exact", "numeric", "regex")


def make_reward(spec: str):
    """A scorer for ``--reward``: a verifier spec goes through the verifier path, anything else is a reward."""
    from alignstack.rollout.scorers import make_scorer

    if spec.partition(":")[0] in VERIFIER_KINDS:
        return make_scorer("", verifier=spec)
    return make_scorer(spec)


def load_examples(path: str, n: int | None = None) -> list:
    """Prompt rows of a file as examples: the prompt plus every other column (a verifier's reference)."""
    from alignstack.data.sources import read_rows
    from alignstack.tasks.types import example_from_row

    return [example_from_row(r) for r in read_rows(path, "prompt", limit=n)]


@torch.no_grad()
def reward_eval(model, tokenizer, examples: list, scorer, sampling: SamplingConfig, seed: int = 0,
                samples: int = 1) -> dict:
    """Sample ``samples`` completions per prompt and score them; per-prompt rewards are averaged over the
    samples (paired comparisons then use one value per prompt)."""
    r = ChatRenderer(tokenizer, None)
    prompts = [e.prompt for e in examples]
    ids = [r.prompt_ids(p) for p in prompts]
    per_prompt = [0.0] * len(examples)
    lengths: list[int] = []
    shown = []
    for i in range(samples):
        g = sample(model, ids, sampling, stop_token_ids(tokenizer), tokenizer.pad_token_id,
                   torch.Generator().manual_seed(seed + 7919 * i))
        texts = g.texts(tokenizer)
        rewards = scorer(prompts, texts, examples=examples, completion_ids=g.completion_ids)
        per_prompt = [a + float(b) / samples for a, b in zip(per_prompt, rewards)]
        lengths += [len(c) for c in g.completion_ids]
        if i == 0:
            shown = [{"prompt": p, "response": t, "reward": float(x)}
                     for p, t, x in zip(prompts[:8], texts[:8], rewards[:8])]
    ci = mean_ci(per_prompt)
    return {"n_prompts": len(examples), "mean_reward": ci["mean"], "reward_ci": [ci["lo"], ci["hi"]],
            "mean_length": sum(lengths) / max(len(lengths), 1), "per_prompt": per_prompt, "samples": shown}


def compare_rewards(res: dict, base: dict) -> dict:
    """Paired per-prompt comparison (model − baseline): mean difference and win rate, each with a 95% CI."""
    p = paired_difference(res["per_prompt"], base["per_prompt"])
    return {"diff": p["diff"]["mean"], "diff_ci": [p["diff"]["lo"], p["diff"]["hi"]],
            "win_rate": p["win_rate"]["mean"], "win_rate_ci": [p["win_rate"]["lo"], p["win_rate"]["hi"]]}
