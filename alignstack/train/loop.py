"""The shared optimisation step every method uses, on top of `accelerate`.

``Trainer`` (a plain object, not a framework) owns the accelerator, optimizer, schedule,
checkpoints, signals and logging. A method calls ``trainer.step(loss_fn, microbatches)`` with the
microbatches of one **global** batch that belong to this process; ``loss_fn(mb)`` returns
``(loss_sum, weight, stats)``. The step divides by the global weight (all-reduced across
processes), so gradient accumulation and data parallelism give the same update as one big batch.

With ``dist.fsdp=true`` and several processes the model is sharded with torch FSDP2 (``fully_shard``)
instead of being wrapped by ``accelerate.prepare`` (accelerate's FSDP plugin needs GPUs; FSDP2 itself
also runs on CPU/gloo). The accelerator then only sets up the process group and reductions.

Reliability: a non-finite loss stops the run naming the step; SIGTERM/SIGINT finish the current
step, write a checkpoint and exit (code 130/143); checkpoints are atomic and resume exactly
(weights, optimizer, schedule, RNG, data position).
"""
from __future__ import annotations

import math
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from alignstack.config import CheckpointConfig, DistConfig, LogConfig, OptimConfig
from alignstack.train import checkpoint as ckpt
from alignstack.train.metrics import MetricsLogger


class TrainingError(RuntimeError):
    pass


class Interrupted(SystemExit):
    pass


def lr_lambda(cfg: OptimConfig, total_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        prog = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        if cfg.schedule == "linear":
            return 1.0 - (1.0 - cfg.min_lr_ratio) * prog
        if cfg.schedule == "cosine":
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog))
        raise ValueError(f"unknown schedule {cfg.schedule!r}; expected constant, linear or cosine")
    return f


def _reopen_for_precision(mixed_precision: str) -> None:
    """accelerate's state is one per process and refuses a second precision ("AcceleratorState has already been
    initialized"), so a pipeline, notebook or test that runs an fp32 stage and then a bf16 one would fail at the
    second. Each of our runs builds its own Accelerator, so the old precision is dropped when the next run asks for
    another; the process group (accelerate's PartialState) is kept. DeepSpeed owns its precision: left alone."""
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType
    st = AcceleratorState._shared_state
    if st and st.get("_mixed_precision") not in (None, mixed_precision) and \
            st.get("distributed_type") != DistributedType.DEEPSPEED:
        AcceleratorState._reset_state(reset_partial_state=False)


def make_accelerator(dist: DistConfig):
    import os

    from accelerate import Accelerator

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    plugin = any(os.environ.get(f"ACCELERATE_USE_{k}", "").lower() in ("1", "true") for k in ("FSDP", "DEEPSPEED"))
    # torchrun on a machine without GPUs: accelerate sets up gloo processes only when told to use the CPU,
    # so say it for the user (an accelerate FSDP/DeepSpeed config is left alone and refused below)
    cpu = dist.cpu or (launched > 1 and not plugin and not torch.cuda.is_available())
    _reopen_for_precision(dist.mixed_precision)
    acc = Accelerator(mixed_precision=dist.mixed_precision, cpu=cpu)
    if launched > 1 and acc.num_processes == 1:
        # e.g. an FSDP accelerate config on a machine without GPUs: accelerate then silently runs every
        # process as an independent single-process job (all writing the same run folder).
        raise TrainingError(
            f"launched {launched} processes but accelerate set up {acc.distributed_type} with 1 process; "
            "accelerate's FSDP/DeepSpeed need GPUs — on CPU shard with torch FSDP2 instead: "
            "`torchrun --nproc_per_node N -m alignstack.cli <method> ... dist.fsdp=true` "
            "(or drop dist.fsdp for plain data parallel)")
    if dist.fsdp and acc.distributed_type in ("FSDP", "DEEPSPEED"):
        raise TrainingError(f"dist.fsdp=true shards the model itself; launch it without accelerate's "
                            f"{acc.distributed_type} config (torchrun or a data-parallel accelerate config)")
    if acc.num_processes > 1 and acc.is_main_process:
        # tests and users can see that the processes really joined one group
        print(f"[alignstack] {acc.num_processes} processes ({acc.distributed_type}, backend "
              f"{torch.distributed.get_backend()}){', FSDP2 sharding' if dist.fsdp else ''}", flush=True)
    return acc


def fsdp_blocks(model) -> list:
    """The transformer blocks to shard one by one, children before parents (FSDP2 groups a module's
    parameters not already claimed by an earlier ``fully_shard``, so order matters). One group per
    block keeps only one block's full weights alive at a time in forward and backward."""
    layers = getattr(getattr(model, "model", None), "layers", None)     # HF causal LMs: model.model.layers
    if isinstance(layers, torch.nn.ModuleList) and len(layers):
        return list(layers)
    return [m for m in reversed(list(model.modules()))
            if type(m).__name__.endswith(("DecoderLayer", "Block")) and m is not model]


def fsdp_shard(model, acc, dist: DistConfig):
    """Shard ``model`` in place with FSDP2 across the accelerator's processes: each block, then the root
    (embeddings, final norm, head — tied weights stay one parameter in the root group)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    if isinstance(model, FSDPModule):  # sharded by an earlier Trainer (ReST, HIR rounds): keep the sharding,
        for m in model.modules():         # with the sharded parameters registered (the root keeps its
            if isinstance(m, FSDPModule):  # gathered ones after a forward without backward)
                m.reshard()
        return model
    if hasattr(model, "peft_config"):
        # save_final merges a deep copy of the adapters, and FSDP2 modules cannot be deep-copied
        raise TrainingError("dist.fsdp=true does not support LoRA (model.lora.enabled); use data parallel")
    if not hasattr(model, "config"):
        raise TrainingError(f"dist.fsdp=true shards Hugging Face models; {type(model).__name__} is not one "
                            "(PPO's policy+value pair is not supported yet); use data parallel")
    mesh = init_device_mesh(acc.device.type, (acc.num_processes,))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dist.mixed_precision)
    # accelerate's autocast is not applied (the model is not `prepare`d): FSDP2 casts the gathered weights
    # for compute and reduces gradients in fp32 instead
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()
    model.to(acc.device)
    for block in fsdp_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


class Trainer:
    def __init__(self, model, tokenizer, optim: OptimConfig, total_steps: int, out_dir: str | Path,
                 config_yaml: str = "", log: LogConfig | None = None, checkpoint: CheckpointConfig | None = None,
                 dist: DistConfig | None = None, desc: str = "train", accelerator=None, params=None):
        dist = dist or DistConfig()
        self.acc = accelerator or make_accelerator(dist)
        self.fsdp = dist.fsdp and self.acc.num_processes > 1
        self.optim_cfg, self.total_steps = optim, total_steps
        self.out_dir, self.config_yaml = Path(out_dir), config_yaml
        self.log_cfg, self.ckpt_cfg = log or LogConfig(), checkpoint or CheckpointConfig()
        self.tokenizer = tokenizer
        params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
        if not params:
            raise TrainingError("the model has no trainable parameters")
        from alignstack.models.load import attention_for_precision
        attention_for_precision(model, dist.mixed_precision, self.acc.device)
        if getattr(model, "_alignstack_full_state_dict", None) is not None:
            del model._alignstack_full_state_dict   # a previous Trainer's final weights: stale once this one trains
        if self.fsdp:
            # sharding replaces every parameter with a sharded one: re-find the trainable ones by name, so the
            # optimizer is built over (and its state sharded like) the sharded parameters
            names = {id(p): n for n, p in model.named_parameters()}
            sel = [names[id(p)] for p in params]
            fsdp_shard(model, self.acc, dist)
            params = [model.get_parameter(n) for n in sel]
            mine = sum(p.to_local().numel() for p in model.parameters())
            print(f"[alignstack] fsdp: rank {self.acc.process_index} holds {mine} of "
                  f"{sum(p.numel() for p in model.parameters())} parameter elements", flush=True)
        kw = dict(lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, weight_decay=optim.weight_decay)
        try:  # the fused kernel is ~5x faster per step on CPU and GPU (torch ≥ 2.8 supports both)
            opt = torch.optim.AdamW(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            opt = torch.optim.AdamW(params, **kw)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(optim, total_steps))
        # FSDP2: the accelerator only provides the process group; the model is already sharded
        self.model, self.optimizer = (model, opt) if self.fsdp else self.acc.prepare(model, opt)
        self.step_count = 0
        self.state: dict = {}
        self._stop_signal: int | None = None
        self.logger: MetricsLogger | None = None
        self.desc = desc

    # ------------------------------------------------------------------ lifecycle
    @property
    def is_main(self) -> bool:
        return self.acc.is_main_process

    @property
    def unwrapped(self):
        # an FSDP2 model is the model itself (its class gains FSDPModule); forward still gathers the weights,
        # so under FSDP every rank must run the same forwards
        return self.model if self.fsdp else self.acc.unwrap_model(self.model)

    def full_state_dicts(self, optimizer: bool = True) -> tuple[dict, dict | None]:
        """FSDP2: the full (unsharded, CPU) model and optimizer state dicts, on the main rank only (others
        get empty dicts). Collective: every rank must call it."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_sd = get_model_state_dict(self.model, options=opts)
        # gathered tied weights (embeddings = LM head) come back as separate copies, which save_pretrained
        # would write twice: keep the first name only, as an unsharded save does
        seen = set()
        for name, p in self.model.named_parameters(remove_duplicate=False):
            if id(p) in seen:
                model_sd.pop(name, None)
            seen.add(id(p))
        return model_sd, get_optimizer_state_dict(self.model, self.optimizer, options=opts) if optimizer else None

    def resume_if_requested(self) -> dict:
        """Restore the latest checkpoint when ``checkpoint.resume`` is set; return its method state."""
        if not self.ckpt_cfg.resume:
            return {}
        last = ckpt.latest_checkpoint(self.out_dir)
        if last is None:
            if self.is_main:
                print(f"[alignstack] resume: no checkpoint in {self.out_dir}, starting fresh")
            return {}
        st = ckpt.load_checkpoint(last, self.unwrapped, self.optimizer, self.scheduler, sharded=self.fsdp,
                                  rank=self.acc.process_index)
        self.step_count = st.pop("step")
        self.state = st
        if self.is_main:
            print(f"[alignstack] resumed from {last} (step {self.step_count})")
        return st

    def __enter__(self):
        self.logger = MetricsLogger(self.out_dir, self.total_steps, self.desc, self.log_cfg.progress and self.is_main,
                                    self.log_cfg.tensorboard, self.is_main, self.step_count,
                                    wandb=getattr(self.log_cfg, "wandb", False))
        self._old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in self._old:
            signal.signal(s, self._on_signal)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        if self.logger:
            self.logger.close()
        if exc[0] is None and (self.fsdp or self.acc.distributed_type == "FSDP"):
            # Sharded parameters: every rank must join the gather of the full weights; the main rank keeps
            # them on the unwrapped model, where `save_pretrained_atomic` picks them up.
            sd = self.full_state_dicts(optimizer=False)[0] if self.fsdp else self.acc.get_state_dict(self.model)
            if self.is_main:
                self.unwrapped._alignstack_full_state_dict = sd
        return False

    def _on_signal(self, signum, frame):
        self._stop_signal = signum

    @property
    def done(self) -> bool:
        return self.step_count >= self.total_steps

    # ------------------------------------------------------------------ the step
    def global_sum(self, x: float) -> float:
        if self.acc.num_processes == 1:
            return float(x)
        t = torch.tensor([float(x)], device=self.acc.device)
        return float(self.acc.reduce(t, reduction="sum").item())

    def step(self, loss_fn: Callable, microbatches: Sequence, weights: Sequence[float] | None = None) -> dict:
        """One optimizer step over this process's microbatches of a global batch."""
        if weights is None:
            raise TrainingError("step() needs the per-microbatch weights (e.g. target token counts)")
        total = self.global_sum(sum(weights))
        if total <= 0:
            raise TrainingError(f"step {self.step_count + 1}: the global batch has no training targets")
        scale = self.acc.num_processes / total  # DDP averages gradients over processes
        self.model.train()
        agg: dict[str, float] = {}
        loss_total = 0.0
        for i, mb in enumerate(microbatches):
            sync = i == len(microbatches) - 1
            if self.fsdp:  # FSDP2's no_sync: accumulate unreduced gradients, reduce-scatter after the last
                self.model.set_requires_gradient_sync(sync)
            ctx = self.acc.no_sync(self.model) if not sync and self.acc.num_processes > 1 and not self.fsdp \
                else _null()
            with ctx:
                loss_sum, _, stats = loss_fn(mb)
                if not torch.isfinite(loss_sum):
                    raise TrainingError(f"non-finite loss ({loss_sum.item()}) at step {self.step_count + 1} "
                                        f"(microbatch {i}); stopping before anything is saved")
                if self.fsdp:  # FSDP2's reduce-scatter averages over ranks like DDP: the same scale applies
                    (loss_sum * scale).backward()
                else:
                    self.acc.backward(loss_sum * scale)
            loss_total += float(loss_sum.detach())
            for k, v in stats.items():
                agg[k] = agg.get(k, 0.0) + float(v)
        gnorm = None
        if self.optim_cfg.grad_clip and self.optim_cfg.grad_clip > 0:
            clip = torch.nn.utils.clip_grad_norm_ if self.fsdp else self.acc.clip_grad_norm_
            gnorm = clip(self.model.parameters(), self.optim_cfg.grad_clip)
            if hasattr(gnorm, "full_tensor"):  # FSDP2: a DTensor holding the global norm
                gnorm = gnorm.full_tensor()
        if gnorm is not None and not torch.isfinite(torch.as_tensor(gnorm)):
            raise TrainingError(f"non-finite gradient norm at step {self.step_count + 1}")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_count += 1
        out = {"loss": self.global_sum(loss_total) / total, "lr": self.scheduler.get_last_lr()[0]}
        if gnorm is not None:
            out["grad_norm"] = float(gnorm)
        out.update({k: self.global_sum(v) / total for k, v in agg.items()})
        self.after_step(out)
        return out

    def after_step(self, stats: dict) -> None:
        if self.logger:
            self.logger.advance()
            if self.step_count % max(1, self.log_cfg.every) == 0 or self.done:
                self.logger.log(self.step_count, stats)
        every = self.ckpt_cfg.every
        if every and self.step_count % every == 0 and not self.done:
            self.save_checkpoint()
        if self._stop_signal is not None:
            self.save_checkpoint()
            sig = self._stop_signal
            if self.is_main:
                print(f"\n[alignstack] signal {sig}: checkpoint saved at step {self.step_count}; "
                      f"resume with checkpoint.resume=true")
            raise Interrupted(128 + sig)

    def log(self, stats: dict) -> None:
        if self.logger:
            self.logger.log(self.step_count, stats)

    def save_checkpoint(self) -> Path | None:
        self.acc.wait_for_everyone()
        path = None
        model_sd = optim_sd = None
        if self.fsdp:  # gather to the main rank, which writes the same layout as an unsharded run
            model_sd, optim_sd = self.full_state_dicts()
        rngs = None
        if self.acc.num_processes > 1:  # every rank's random stream, so each resumes its own
            rngs = [None] * self.acc.num_processes
            torch.distributed.all_gather_object(rngs, ckpt.rng_state())
        if self.is_main:
            path = ckpt.save_checkpoint(self.out_dir, self.step_count, self.unwrapped, self.tokenizer, self.optimizer,
                                        self.scheduler, self.state, self.config_yaml, self.ckpt_cfg.keep,
                                        model_state=model_sd, optim_state=optim_sd, rng_states=rngs)
        self.acc.wait_for_everyone()
        return path


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def shard(items: Sequence, rank: int, world: int) -> list:
    """This process's share of a global batch (strided, so shares differ by at most one)."""
    return list(items[rank::world])


def microbatches(items: Sequence, n: int) -> list[list]:
    """Split ``items`` into ``n`` nearly equal consecutive microbatches (empty ones dropped)."""
    n = max(1, min(n, len(items)))
    size = math.ceil(len(items) / n)
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
