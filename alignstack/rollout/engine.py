"""Rollout engine: batched sampling on token ids with a KV cache.

``sample`` runs a hand-written decode loop over Hugging Face causal LMs (the default backend) so
it can (1) drop finished rows from the batch and the KV cache, (2) stop on several EOS ids and
(3) return the log-prob of every sampled token **from the sampling pass itself**, so RL methods
never need a second forward pass for "old" log-probs.

Log-prob convention: ``log softmax(logits / T)`` of the chosen token over the full vocabulary
(the distribution PPO's ratio and KL use), even when top-k / top-p truncate the sampling
distribution; greedy decoding records log-probs at T = 1.

Backends implement :class:`Backend` (``generate`` + ``sync_weights``); the vLLM backend is an
optional extra, imported lazily, for GPU machines.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from alignstack.data.collate import SHAPE_MULTIPLE, pad_left, unique_rows
from alignstack.models.logprobs import cache_kwarg, forward_params
from alignstack.rollout.batch import RolloutBatch
from alignstack.rollout.sampling import pick


@dataclass
class SamplingConfig:
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    greedy: bool = False
    batch_size: int = 256
    # identical prompts in a chunk (a group's K samples) share one prefill; the KV cache is expanded after
    share_prefix: bool = True

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {self.max_new_tokens}")
        if not self.greedy and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (or set greedy: true), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Generation:
    """Completions for a list of prompts (all lists are per prompt, in input order)."""
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    finished: list[bool] = field(default_factory=list)   # ended with a stop token

    def __len__(self):
        return len(self.completion_ids)

    def texts(self, tokenizer) -> list[str]:
        return tokenizer.batch_decode(self.completion_ids, skip_special_tokens=True)

    def tensors(self, pad_id: int) -> RolloutBatch:
        """Right-padded ``prompt ⊕ completion`` with ``loss_mask`` on completion tokens and the
        sampling log-probs aligned with ``input_ids[:, 1:]`` (the logprobs module's convention)."""
        seqs = [p + c for p, c in zip(self.prompt_ids, self.completion_ids)]
        T = max(len(s) for s in seqs)
        B = len(seqs)
        ids = torch.full((B, T), pad_id, dtype=torch.long)
        att = torch.zeros((B, T), dtype=torch.long)
        lm = torch.zeros((B, T), dtype=torch.long)
        old = torch.zeros((B, T - 1))
        for i, (p, c, lp) in enumerate(zip(self.prompt_ids, self.completion_ids, self.logprobs)):
            n = len(p) + len(c)
            ids[i, :n] = torch.tensor(p + c)
            att[i, :n] = 1
            lm[i, len(p):n] = 1
            old[i, len(p) - 1:n - 1] = torch.tensor(lp)
        return RolloutBatch(ids, att, lm, old, torch.tensor(self.finished, dtype=torch.bool))


def _fsdp_group_size(model) -> int:
    """Processes that must run every forward of ``model`` together: >1 for an FSDP2-sharded model."""
    import torch.distributed as dist

    if getattr(model, "_is_fsdp_managed_module", False) and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _reduce(flag: int, op, device) -> int:
    import torch.distributed as dist

    t = torch.tensor([flag], device=device)     # nccl reduces only device tensors
    dist.all_reduce(t, op=op)
    return int(t)


# Finished rows leave the batch (and its KV cache) once they are this share of it, not one at a time: every batch
# size is another set of matmul shapes for oneDNN to compile and cache in bf16 on a CPU (data.collate), and each
# drop copies the whole cache. Until then a finished row rides along (its outputs are ignored), costing at most
# this share of a decode step's rows.
DROP_FINISHED = 0.25


def _pick_live(logits: torch.Tensor, live: list[int], cfg: SamplingConfig, generator, filler: int):
    """``pick`` for the live rows of a batch (``live``: their indices, ascending); finished rows get ``filler`` and
    log-prob 0. Only live rows draw random numbers, so the samples do not depend on when finished rows leave."""
    if len(live) == logits.shape[0]:
        return pick(logits, cfg, generator)
    li = torch.tensor(live, dtype=torch.long, device=logits.device)
    t, lp = pick(logits[li], cfg, generator)
    tok = torch.full((logits.shape[0],), filler, dtype=t.dtype, device=t.device).index_copy_(0, li, t)
    return tok, torch.zeros(logits.shape[0], dtype=lp.dtype, device=lp.device).index_copy_(0, li, lp)


@torch.no_grad()
def sample(model, prompts: list[list[int]], cfg: SamplingConfig, stop_ids: list[int], pad_id: int,
           generator: torch.Generator | None = None) -> Generation:
    """Sample one completion per prompt (repeat prompts for K samples).

    An FSDP-sharded model gathers its weights in every forward, so all ranks must run the same number of
    forwards: they then run the same number of chunks (a rank out of prompts feeds a dummy one) and a
    chunk decodes until every rank's rows are done (a finished rank feeds its last tokens, ignored)."""
    from torch.distributed import ReduceOp
    from transformers import DynamicCache

    from alignstack.rollout import llama_decode

    synced = _fsdp_group_size(model) > 1
    cache_kw = cache_kwarg(model)
    # the prefill needs the last position's logits only (the LM head over every prompt token is the costliest
    # matmul of a prefill with a large vocabulary)
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in forward_params(model) else {}
    fast = llama_decode.supports(model) and not synced
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device       # the batch lives on the model's device; bookkeeping on the CPU
    stop = set(stop_ids)
    comps: list[list[int]] = [[] for _ in prompts]
    lps: list[list[float]] = [[] for _ in prompts]
    fin = [False] * len(prompts)
    # sort by length so each chunk pads little; results go back to input order
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    n_chunks = -(-len(order) // cfg.batch_size)
    if synced:
        n_chunks = _reduce(n_chunks, ReduceOp.MAX, dev)
    for s in range(0, n_chunks * cfg.batch_size, cfg.batch_size):
        rows = order[s: s + cfg.batch_size]
        idle = not rows                                   # synced only: a dummy chunk, outputs ignored
        chunk = [prompts[i] for i in rows] if rows else [[pad_id]]
        uniq, expand = unique_rows(chunk) if cfg.share_prefix else (chunk, None)
        ids, att = pad_left(uniq, pad_id, SHAPE_MULTIPLE)        # few distinct shapes (data.collate)
        ids, att = ids.to(dev), att.to(dev)
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True, **{cache_kw: cache}, **last_only)
        logits = out.logits[:, -1]
        if expand is not None:                  # one prefill per distinct prompt, copied to its rows
            expand = expand.to(dev)
            logits, att = logits[expand], att[expand]
            if not fast:
                cache.batch_select_indices(expand)
        dec = llama_decode.LlamaDecoder(model, cache, att, cfg.max_new_tokens, rows=expand) if fast else None
        pos = att.sum(-1, keepdim=True) - 1             # each row's last position; a step writes the next
        # the loop's bookkeeping is plain Python: per step, tensor ops on a few dozen flags cost more than the lists
        active = list(rows)                             # each batch row's prompt index; -1: finished, still here
        n_done = 0                                      # rows of ``active`` that are -1
        for step in range(cfg.max_new_tokens):
            live = [j for j, r in enumerate(active) if r >= 0]
            tok, lp = pick(logits, cfg, generator) if idle else _pick_live(logits, live, cfg, generator, pad_id)
            if not idle:
                toks, lpl = tok.tolist(), lp.tolist()
                for j in live:
                    r, t = active[j], toks[j]
                    comps[r].append(t)
                    lps[r].append(lpl[j])
                    if t in stop:
                        fin[r] = True
                        active[j] = -1
                        n_done += 1
            all_done = idle or n_done == len(active)
            if step == cfg.max_new_tokens - 1 or (_reduce(int(all_done), ReduceOp.MIN, logits.device) if synced
                                                    else all_done):
                break
            if all_done:      # synced, and other ranks still decode: keep stepping, record nothing
                idle = True
            elif n_done >= DROP_FINISHED * len(active):  # drop finished rows from the batch and the cache
                kept = [j for j, r in enumerate(active) if r >= 0]
                keep = torch.tensor(kept, dtype=torch.long, device=dev)
                if dec is not None:
                    dec.select(keep)
                else:
                    cache.batch_select_indices(keep)
                att, tok, pos, active, n_done = att[keep], tok[keep], pos[keep], [active[j] for j in kept], 0
            pos = pos + 1
            if dec is not None:
                logits = dec.step(tok, pos)
            else:
                att = torch.cat([att, att.new_ones((att.shape[0], 1))], dim=1)
                out = model(input_ids=tok[:, None], attention_mask=att, position_ids=pos, use_cache=True,
                            **{cache_kw: cache})
                logits = out.logits[:, -1]
    if was_training:
        model.train()
    return Generation([list(p) for p in prompts], comps, lps, fin)


class Backend:
    """Interface of a generation backend."""

    def generate(self, prompts: list[list[int]], cfg: SamplingConfig, generator=None) -> Generation:
        raise NotImplementedError

    def sync_weights(self, model) -> None:
        """Make the backend sample from ``model``'s current weights."""
        raise NotImplementedError


class HFBackend(Backend):
    """Samples with the training model itself (no copy, so weights are always in sync)."""

    def __init__(self, model, tokenizer):
        from alignstack.models.tokenizer import stop_token_ids

        self.model, self.tokenizer = model, tokenizer
        self.stop_ids = stop_token_ids(tokenizer)

    def generate(self, prompts, cfg, generator=None) -> Generation:
        return sample(self.model, prompts, cfg, self.stop_ids, self.tokenizer.pad_token_id, generator)

    def sync_weights(self, model) -> None:
        self.model = model


class VLLMBackend(Backend):
    """Generation with vLLM on GPU machines (optional extra ``alignstack[vllm]``, imported lazily).

    Prompts go in as token ids and completions come back as token ids with the log-prob of each
    sampled token (``logprobs=0`` asks vLLM for the chosen token's log-prob only), so the rest of
    a method is unchanged. ``sync_weights`` pushes the training policy's weights into the vLLM
    engine after each update (colocated mode); vLLM applies the temperature to its log-probs like
    this engine does (``logprobs_mode`` of recent vLLM versions; check yours).
    """

    def __init__(self, model_path: str, stop_ids: list[int], gpu_memory_utilization: float = 0.5, **llm_kwargs):
        try:
            import vllm
        except ImportError as e:
            raise RuntimeError("the vLLM backend needs vLLM on a GPU machine: pip install 'alignstack[vllm]'") from e
        self._vllm = vllm
        self.stop_ids = list(stop_ids)
        self.llm = vllm.LLM(model=str(model_path), gpu_memory_utilization=gpu_memory_utilization, **llm_kwargs)

    def _params(self, cfg: SamplingConfig, seed: int | None):
        return self._vllm.SamplingParams(
            temperature=0.0 if cfg.greedy else cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or -1,
            max_tokens=cfg.max_new_tokens, stop_token_ids=self.stop_ids, logprobs=0, seed=seed)

    def generate(self, prompts, cfg, generator=None) -> Generation:
        seed = int(generator.initial_seed()) if generator is not None else None
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], self._params(cfg, seed),
                                 use_tqdm=False)
        comps, lps, fin = [], [], []
        for o in outs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            comps.append(ids)
            lps.append([float(step[t].logprob) for step, t in zip(c.logprobs, ids)])
            fin.append(bool(ids) and ids[-1] in self.stop_ids)
        return Generation([list(p) for p in prompts], comps, lps, fin)

    def sync_weights(self, model) -> None:
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.model.load_weights(model.state_dict().items())
