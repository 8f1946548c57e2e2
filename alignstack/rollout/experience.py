"""Online-RL plumbing shared by PPO, GRPO and RLOO: prompt batches, rollouts, log-prob passes.

Prompts come through the task seam (:func:`prompt_source` → ``alignstack.tasks.resolve``): a rollout
carries each row's :class:`~alignstack.tasks.Example` (prompt + every column) to the reward.

A rollout keeps everything an update needs in a typed :class:`~alignstack.rollout.batch.RolloutBatch`
aligned with the logprobs convention (``(B, T-1)`` per-token arrays matching ``input_ids[:, 1:]``): the
sampling pass's log-probs are the "old" log-probs, so no extra forward pass is spent on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from alignstack.data.render import ChatRenderer
from alignstack.models.tokenizer import stop_token_ids
from alignstack.rollout.batch import RolloutBatch
from alignstack.rollout.engine import Generation, SamplingConfig, sample
from alignstack.tasks import Example, resolve


@dataclass
class Rollout:
    prompts: list[list[dict]]              # chat messages per row
    examples: list[Example] | None         # the row behind each prompt (meta: every column), for the reward
    texts: list[str]
    gen: Generation                        # token ids and sampling log-probs as lists, per row
    batch: RolloutBatch                    # the same rows as tensors, for updates and log-prob passes

    def score(self, scorer) -> torch.Tensor:
        """(B,) float32: the reward of every row through the one reward interface (each row's example and
        completion token ids go with it)."""
        return torch.tensor(scorer(self.prompts, self.texts, examples=self.examples,
                                   completion_ids=self.gen.completion_ids), dtype=torch.float32)


def prompt_source(spec: str | None, seed: int = 0, *, families: list[str] | None = None, goal: str | None = None,
                  pool: int = 20000, split: str = "train", key: str = "prompts"):
    """The prompt source a method's ``prompts:`` key names (None: the world's ``split`` prompts of
    ``families``); ``batch(step, n)`` is a pure function of (seed, step). A bare path means ``rows:PATH``."""
    opts = {"seed": seed, "pool": pool, "split": split, "goal": goal, "families": families}
    return resolve(spec or "world", "prompts", key=key, **opts)


def PromptSource(seed: int = 0, families: list[str] | None = None, path: str | None = None,  # noqa: N802
                 goal: str | None = None, pool: int = 20000, split: str = "train"):
    """Backward-compatible spelling of :func:`prompt_source` (``path``: a prompt rows file)."""
    return prompt_source(path, seed, families=families, goal=goal, pool=pool, split=split)


def batch_prompts(examples: list[Example]) -> list[list[dict]]:
    return [e.prompt for e in examples]


def rollout(model, tokenizer, prompts: list[list[dict]], examples, sampling: SamplingConfig, seed: int,
            renderer: ChatRenderer | None = None) -> Rollout:
    renderer = renderer or ChatRenderer(tokenizer)
    done: dict[int, list[int]] = {}             # a group's K rows share one prompt object: render it once
    ids = [done[id(p)] if id(p) in done else done.setdefault(id(p), renderer.prompt_ids(p)) for p in prompts]
    gen = sample(model, ids, sampling, stop_token_ids(tokenizer), tokenizer.pad_token_id,
                 torch.Generator().manual_seed(seed))
    return Rollout(prompts, examples, gen.texts(tokenizer), gen, gen.tensors(tokenizer.pad_token_id))


def complete(model, tokenizer, prompts: list[list[dict]], sampling: SamplingConfig, seed: int = 0) -> list[str]:
    """One sampled completion per prompt (rendered with the tokenizer's own chat template)."""
    r = ChatRenderer(tokenizer)
    g = sample(model, [r.prompt_ids(p) for p in prompts], sampling, stop_token_ids(tokenizer),
               tokenizer.pad_token_id, torch.Generator().manual_seed(seed))
    return g.texts(tokenizer)


def policy_logprobs(model, batch: RolloutBatch, temperature: float, share_prefix: bool = False) -> torch.Tensor:
    """Per-token log-probs (B, T-1) of the batch's tokens under ``model`` at ``temperature``, computed from the
    first completion column on (the LM head skips the prompts; earlier positions are 0, outside every mask).
    ``share_prefix``: rows with the same prompt (a group's K completions) run it once
    (:func:`~alignstack.models.logprobs.shared_prefix_logprobs`; the same values up to float rounding)."""
    from alignstack.models.logprobs import completion_span, forward_logprobs, shared_prefix_logprobs
    dev = next(model.parameters()).device
    ids, att, lm = batch.input_ids.to(dev), batch.attention_mask.to(dev), batch.loss_mask.to(dev)
    if share_prefix:
        lp = shared_prefix_logprobs(model, ids, att, lm, temperature)
        if lp is not None:
            return lp
    return forward_logprobs(model, ids, att, temperature, keep=completion_span(lm))


@torch.no_grad()
def frozen_logprobs(model, batch: RolloutBatch, temperature: float, chunk: int = 128,
                    share_prefix: bool = False) -> torch.Tensor:
    out = []
    for s in range(0, len(batch), chunk):
        out.append(policy_logprobs(model, batch.rows(slice(s, s + chunk)), temperature,
                                   share_prefix).cpu())                               # beside the rollout
    return torch.cat(out)


def ground_truth(r: Rollout, truth=None) -> list[float] | None:
    """Ground truth of the same rollouts (``truth(example, response)``, a prompt source's
    ``ground_truth``; logged beside the proxy reward, never trained on); None without one."""
    if truth is None or r.examples is None:
        return None
    return [truth(e, x) for e, x in zip(r.examples, r.texts)]
