"""Scalar reward models: a causal-LM trunk with its unembedding replaced by a linear head to one
number (METHODS §2, §3.1 "the RM is the SFT model with its unembedding replaced by a scalar
projection").

The model is a standard Hugging Face sequence-classification model (``LlamaForSequenceClassification``
for the world's Llama, ``num_labels=1``, ``pad_token_id`` set), so a saved reward model is an
ordinary checkpoint that ``AutoModelForSequenceClassification.from_pretrained`` loads without
alignstack. HF reads the score at the last non-pad token of each row; with right padding and a pad
token distinct from the text's tokens that is the response's last token (the end-of-turn marker).

Head init *(ref. code, openai/lm-human-preferences)*: weights ``N(0, 1/√(d_model+1))`` (std), bias
zero. HF's Llama score layer has no bias parameter, which is equivalent here: the pairwise and
ranking losses are shift-invariant and the post-training shift (InstructGPT's demonstration
centring, or a safety RM's Platt calibration) lives in ``calibration.json`` beside the weights,
applied by :class:`RewardModelScorer` as ``a·s + b``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

CALIBRATION_FILE = "calibration.json"


def init_reward_head(model, seed: int = 0) -> None:
    """Re-initialise the score layer: N(0, 1/√(d_model+1)) weights, zero bias if there is one."""
    import torch

    head = model.score
    d = head.weight.shape[1]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) / math.sqrt(d + 1))
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()


def reward_model_from_causal_lm(path: str | os.PathLike, tokenizer=None, seed: int = 0,
                                trust_remote_code: bool = False):
    """A scalar reward model whose trunk is the causal LM at ``path`` (the SFT model by default in
    the reward-model method): trunk weights loaded, LM head dropped, fresh scalar head."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from alignstack.models.load import _check_dir

    p = _check_dir(path, "reward model trunk (causal-LM checkpoint)")
    if tokenizer is None:
        from alignstack.models.load import load_tokenizer
        tokenizer = load_tokenizer(p)
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError(f"{p}: the tokenizer has no pad token; the reward model reads the score at the last "
                         "non-pad token, so set one (distinct from EOS)")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized" is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(p), num_labels=1, pad_token_id=pad, use_safetensors=True, trust_remote_code=trust_remote_code)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = pad
    model.config.problem_type = "regression"
    init_reward_head(model, seed)
    return model


def load_reward_model(path: str | os.PathLike, trust_remote_code: bool = False):
    """A saved reward model (any HF sequence-classification checkpoint with one label)."""
    from transformers import AutoModelForSequenceClassification

    from alignstack.models.load import _check_dir

    p = _check_dir(path, "reward model checkpoint")
    model = AutoModelForSequenceClassification.from_pretrained(str(p), use_safetensors=True,
                                                               trust_remote_code=trust_remote_code)
    if model.config.num_labels != 1:
        raise ValueError(f"{p}: a reward model has one output (num_labels=1), this one has {model.config.num_labels}")
    return model


def sequence_scores(model, input_ids, attention_mask):
    """Raw scalar scores (B,) of right-padded rows: one forward pass of the whole batch."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.logits[:, 0]


def read_calibration(path: str | os.PathLike) -> dict:
    """``{"a": 1, "b": 0}`` unless the checkpoint folder has a ``calibration.json``."""
    f = Path(path) / CALIBRATION_FILE
    if not f.exists():
        return {"a": 1.0, "b": 0.0, "kind": "none"}
    cal = json.loads(f.read_text())
    if not all(isinstance(cal.get(k), (int, float)) for k in ("a", "b")):
        raise ValueError(f"{f}: expected numbers 'a' and 'b' (calibrated score = a·s + b), got {cal}")
    return cal


class RewardModelScorer:
    """A trained reward model behind the one reward interface
    ``scorer(prompts, completions, **meta) -> list[float]``.

    Returns calibrated logits ``a·s + b`` (``calibration.json``: the demonstration shift for a
    helpfulness RM, Platt scaling for a safety RM — σ of a safety score is P(safe)). Batched;
    rows longer than ``max_length`` keep their start (as the renderer truncates)."""

    def __init__(self, path: str | os.PathLike | None, batch_size: int = 64, max_length: int = 256,
                 device: str = "cpu", tokenizer=None, model=None, calibrated: bool = True):
        from alignstack.data.render import ChatRenderer
        from alignstack.models.load import load_tokenizer

        if path is None and (model is None or tokenizer is None):
            raise ValueError("RewardModelScorer needs a checkpoint path, or both model and tokenizer")
        self.path = Path(path) if path is not None else None
        self.tokenizer = tokenizer or load_tokenizer(self.path)
        self.model = (model if model is not None else load_reward_model(self.path)).to(device).eval()
        self.renderer = ChatRenderer(self.tokenizer, max_length)
        cal = read_calibration(self.path) if calibrated and self.path is not None else {"a": 1.0, "b": 0.0}
        self.a, self.b, self.kind = float(cal["a"]), float(cal["b"]), cal.get("kind", "none")
        self.batch_size, self.device = batch_size, device

    def raw_scores(self, prompts: list[list[dict]], completions: list[str]) -> list[float]:
        import torch

        from alignstack.data.collate import pad_right
        from alignstack.data.formats import normalize_prompt

        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        items = [self.renderer.prompt_completion(normalize_prompt(p), c) for p, c in zip(prompts, completions)]
        order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
        scores = [0.0] * len(items)
        with torch.no_grad():
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                b = pad_right([items[i] for i in idx], self.tokenizer.pad_token_id)
                v = sequence_scores(self.model, b["input_ids"].to(self.device), b["attention_mask"].to(self.device))
                for i, x in zip(idx, v.float().tolist()):
                    scores[i] = x
        return scores

    def __call__(self, prompts, completions, **meta) -> list[float]:
        return [self.a * s + self.b for s in self.raw_scores(prompts, completions)]


class Llama2Scorer:
    """Llama 2's combined reward (METHODS §4.3) behind the reward interface: the safety RM's
    calibrated logit on IS_SAFETY prompts or where σ(safety) < ``threshold``, else the helpfulness
    RM's logit (``algos.rewards.llama2_combined_reward``). Returns the combined **logits**
    (LOGIT(R_c) in Eq. 4); whitening over the PPO batch is the caller's step.

    ``is_safety`` comes from ``meta['is_safety']`` (one bool per prompt), the ``is_safety`` column of each of
    ``meta['examples']`` (the task seam's rows) or ``meta['tasks']`` (world tasks); without any every prompt counts
    as untagged (the threshold still gates).
    ``self.last_used_safety`` holds which rows used the safety score, for logging."""

    def __init__(self, helpfulness_path, safety_path, threshold: float = 0.15, **kw):
        self.help = RewardModelScorer(helpfulness_path, **kw)
        self.safety = RewardModelScorer(safety_path, **kw)
        if self.safety.kind != "platt":
            import warnings
            warnings.warn(f"{safety_path}: the safety RM is not Platt-calibrated (calibration kind "
                          f"{self.safety.kind!r}); the {threshold} gate assumes σ(score) = P(safe)", stacklevel=2)
        self.threshold = threshold
        self.last_used_safety: list[bool] = []

    def __call__(self, prompts, completions, **meta) -> list[float]:
        import torch

        from alignstack.algos.rewards import llama2_combined_reward

        flags = meta.get("is_safety")
        if flags is None and meta.get("examples") is not None:   # the task seam: each row's columns ride along
            flags = [bool((getattr(e, "meta", None) or {}).get("is_safety", False)) for e in meta["examples"]]
        if flags is None and meta.get("tasks") is not None:
            flags = [bool(t.is_safety) for t in meta["tasks"]]
        if flags is None:
            flags = [False] * len(prompts)
        h = torch.tensor(self.help(prompts, completions, **meta))
        s = torch.tensor(self.safety(prompts, completions, **meta))
        combined, used = llama2_combined_reward(h, s, torch.tensor([bool(f) for f in flags]), self.threshold)
        self.last_used_safety = used.tolist()
        return combined.tolist()
