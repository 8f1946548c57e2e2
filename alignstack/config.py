"""Typed configs: shared groups, YAML loading, dotted command-line overrides, clear errors.

A method's config is a dataclass made of the shared groups below plus its own fields. ``load``
builds it from an optional YAML file and ``a.b=c`` overrides (values parsed as YAML, so
``optim.lr=1e-4`` is a float and ``model.lora.enabled=true`` a bool). Unknown keys are rejected
with a suggestion; wrong types name the key, the expected type and the value. The resolved config
is saved beside every checkpoint (``to_yaml``).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, located by file and dotted key."""


class MissingExtra(ConfigError):
    """A switch needs an optional package that is not installed (the CLI prints it as one line)."""


def require_extra(module: str, extra: str, what: str, package: str | None = None):
    """Import ``module`` for ``what`` (e.g. ``log.wandb=true``), or fail with the pip line that fixes it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs the '{package or module.split('.')[0]}' package: "
                           f"pip install 'alignstack[{extra}]'") from None


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    """Range checks in the groups' ``__post_init__``: the message starts with the key, and
    ``_build`` puts the group's dotted prefix and the file in front (``optim.lr must be ...``)."""
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # None: the attention projections of the architecture (models.load.LORA_TARGETS); "all-linear": every
    # linear layer but the output head (as peft); or a list of module names
    target_modules: list[str] | str | None = None

    def __post_init__(self):
        _require(_num(self.r) and self.r >= 1, "r", "an integer ≥ 1", self.r)
        _require(_num(self.alpha) and self.alpha > 0, "alpha", "> 0", self.alpha)
        _require(_num(self.dropout) and 0 <= self.dropout < 1, "dropout", "in [0, 1)", self.dropout)


@dataclass
class ModelConfig:
    preset: str = "tiny"              # build from scratch (pretraining) ...
    path: str | None = None           # ... or load a local Hugging Face checkpoint
    tokenizer: str | None = None      # defaults to `path`
    max_length: int | None = None     # None: the model's context (max_position_embeddings)
    chat_template: str | None = None  # a Jinja template string or a file holding one (overrides the tokenizer's)
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self):
        # a file where a checkpoint folder belongs used to surface as a traceback from transformers
        _require(self.path is None or not Path(self.path).is_file(), "path",
                 "a checkpoint folder (config.json + weights), not a file", self.path)
        _require(self.max_length is None or (_num(self.max_length) and self.max_length >= 2), "max_length",
                 "null or an integer ≥ 2", self.max_length)


@dataclass
class DataConfig:
    path: str | None = None           # None: the built-in world
    kind: str | None = None           # row kind of `path` (auto from the method when None)
    n_rows: int = 20000               # world rows to generate when `path` is None
    packing: bool = False
    overlong: str = "truncate"        # truncate | drop | error
    drop_empty_targets: bool = False  # a row whose response is truncated away: refuse to train (false) or drop it
    eval_path: str | None = None      # held-out rows for an eval loss (SFT, DPO, reward models) ...
    eval_frac: float = 0.0            # ... or this share of the training rows held out (seeded)
    world_seed: int = 0
    raw_text: bool = False            # SFT prompt/completion strings as plain text, no chat template (TRL's standard format)

    def __post_init__(self):
        _require(_num(self.n_rows) and self.n_rows >= 1, "n_rows", "an integer ≥ 1", self.n_rows)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    schedule: str = "cosine"          # constant | linear | cosine (to min_lr_ratio)
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    batch_size: int = 64              # global batch (rows), split over processes and accumulation
    grad_accum: int = 1
    micro_batch_size: int = 0         # rows per forward/backward of an update (0: split by grad_accum only); exact
    epochs: float = 1.0
    max_steps: int | None = None
    group_by_length: int = 0          # >0: batches drawn from mega-batches of this many batches sorted by length

    def __post_init__(self):
        # nan, inf or a negative batch size used to reach the trainer and fail there with a traceback
        _require(_num(self.lr) and self.lr > 0, "lr", "a finite number > 0", self.lr)
        _require(_num(self.eps) and self.eps > 0, "eps", "a finite number > 0", self.eps)
        _require(_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a finite number ≥ 0",
                 self.weight_decay)
        _require(len(self.betas) == 2 and all(_num(b) and 0 <= b < 1 for b in self.betas), "betas",
                 "two numbers in [0, 1)", self.betas)
        _require(_num(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "in [0, 1]",
                 self.min_lr_ratio)
        _require(_num(self.grad_clip) and self.grad_clip >= 0, "grad_clip", "a finite number ≥ 0 (0: off)",
                 self.grad_clip)
        _require(_num(self.epochs) and self.epochs > 0, "epochs", "a finite number > 0", self.epochs)
        for key in ("batch_size", "grad_accum"):
            v = getattr(self, key)
            _require(_num(v) and v >= 1, key, "an integer ≥ 1", v)
        for key in ("warmup_steps", "micro_batch_size", "group_by_length"):
            v = getattr(self, key)
            _require(_num(v) and v >= 0, key, "an integer ≥ 0", v)
        _require(self.max_steps is None or (_num(self.max_steps) and self.max_steps >= 0), "max_steps",
                 "null or an integer ≥ 0", self.max_steps)


@dataclass
class DistConfig:
    mixed_precision: str = "no"       # no | bf16 | fp16; bf16 also on CPU (autocast: faster where the CPU has bf16 matmuls)
    cpu: bool = False                 # force CPU even where a GPU exists
    # shard parameters, gradients and optimizer state across processes with torch FSDP2 `fully_shard`
    # (not accelerate's FSDP plugin); works on CPU/gloo and GPU/nccl. Launch N processes with
    # `torchrun --nproc_per_node N -m alignstack.cli ...` (accelerate 1.x `launch --cpu` starts only one).
    fsdp: bool = False


@dataclass
class LogConfig:
    every: int = 10
    progress: bool = True
    tensorboard: bool = False
    wandb: bool = False               # Weights & Biases (pip install 'alignstack[wandb]'); project: $WANDB_PROJECT
    # reward-hacking alarms of PPO/GRPO/RLOO (train/alarms.py): completion length below this share of the
    # first steps', sequence KL above this many nats
    alarm_length_frac: float = 0.5
    alarm_kl: float = 1.0

    def __post_init__(self):
        _require(_num(self.every) and self.every >= 1, "every", "an integer ≥ 1", self.every)
        _require(0 <= self.alarm_length_frac < 1, "alarm_length_frac", "a number in [0, 1)", self.alarm_length_frac)
        _require(self.alarm_kl > 0, "alarm_kl", "a number > 0", self.alarm_kl)


@dataclass
class CheckpointConfig:
    every: int = 0                    # steps between checkpoints (0: only at the end / on signals)
    keep: int = 2
    resume: bool = False

    def __post_init__(self):
        _require(_num(self.every) and self.every >= 0, "every", "an integer ≥ 0 (0: only at the end)", self.every)
        _require(_num(self.keep) and self.keep >= 1, "keep", "an integer ≥ 1", self.keep)


@dataclass
class RunConfig:
    """The run fields every training method shares: output folder, seed, model, logging, checkpoints and
    distribution. A method's config extends it, re-declaring a field only to change its default (the
    field keeps its place, so every saved config starts with these six)."""
    out: str = "runs/run"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    dist: DistConfig = field(default_factory=DistConfig)

    def __post_init__(self):
        _require(isinstance(self.out, str) and bool(self.out.strip()), "out", "a non-empty folder path", self.out)
        _require(_num(self.seed) and self.seed >= 0, "seed", "an integer ≥ 0", self.seed)


def _is_optional(tp) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _coerce(value: Any, tp: Any, key: str, where: str):
    opt, inner = _is_optional(tp)
    if value is None:
        if opt or type(None) in typing.get_args(tp):
            return None
        raise ConfigError(f"{where}{key}: expected {getattr(inner, '__name__', inner)}, got null")
    tp = inner
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}{key}: expected a mapping of {tp.__name__} fields, got {type(value).__name__}")
        return _build(tp, value, key + ".", where)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}{key}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(tp)
        elem = args[0] if args else Any
        items = [_coerce(v, elem, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads "1e-4" (no dot) as a string
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        # YAML 1.1 reads no / yes / off / on as booleans: say so, since `dist.mixed_precision=no` is the natural spelling
        hint = " (YAML reads no/yes/on/off as booleans: quote the word, e.g. 'no')" \
            if tp is str and isinstance(value, bool) else ""
        raise ConfigError(f"{where}{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}{hint}")
    if tp is dict and not isinstance(value, dict):
        raise ConfigError(f"{where}{key}: expected a mapping, got {type(value).__name__}")
    return value


def _build(cls, data: dict, prefix: str = "", where: str = ""):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for k, v in data.items():
        f = fields.get(k)
        if f is not None and isinstance(v, dict) and f.default_factory is not dataclasses.MISSING:
            # a partial group overrides the *method's* defaults for it, not the group class's
            default = f.default_factory()
            if dataclasses.is_dataclass(default):
                v = _merge(to_dict(default), v)
        if k not in names:
            near = difflib.get_close_matches(k, names, n=1)
            hint = f"; did you mean '{prefix}{near[0]}'?" if near else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"{where}unknown config key '{prefix}{k}'{hint}")
        kwargs[k] = _coerce(v, hints[k], prefix + k, where)
    try:
        return cls(**kwargs)
    except ConfigError as e:  # a range check: "optim." + "lr must be ..."
        raise ConfigError(f"{where}{prefix}{e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}{prefix or cls.__name__}: {e}") from None


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        nxt = d.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {dotted}: '{k}' is not a group")
        d = nxt
    d[keys[-1]] = value


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out: dict = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"override {it!r}: expected key=value (e.g. optim.lr=1e-4)")
        k, v = it.split("=", 1)
        _set_dotted(out, k.strip(), yaml.safe_load(v) if v != "" else "")
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(cls, path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None):
    """Build config ``cls`` from defaults ← ``base`` ← YAML file ← dotted overrides."""
    import yaml

    data = dict(base or {})
    where = ""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        where = f"{p}: "
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level, got {type(loaded).__name__}")
        data = _merge(data, loaded)
    ov = parse_overrides(overrides or [])
    if ov:
        data = _merge(data, ov)
        where = where or "command line: "
    return _build(cls, data, "", where)


def check_extras(cfg) -> None:
    """Fail before any model loads when a switch needs a package that is not installed."""
    log, model = getattr(cfg, "log", None), getattr(cfg, "model", None)
    if getattr(log, "tensorboard", False):
        require_extra("torch.utils.tensorboard", "tensorboard", "log.tensorboard=true", package="tensorboard")
    if getattr(log, "wandb", False):
        require_extra("wandb", "wandb", "log.wandb=true")
    if getattr(getattr(model, "lora", None), "enabled", False):
        require_extra("peft", "lora", "model.lora.enabled=true")


def describe_keys(cls) -> list[str]:
    """Every dotted config key of ``cls`` with its default (``optim.lr = 0.001``), for ``--help``."""
    def walk(obj, prefix):
        out = []
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                out += walk(v, f"{prefix}{f.name}.")
            else:
                out.append(f"{prefix}{f.name} = {v!r}")
        return out
    return walk(cls(), "")


def to_dict(cfg) -> dict:
    def conv(v):
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return {k: conv(v) for k, v in dataclasses.asdict(cfg).items()}


def to_yaml(cfg) -> str:
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
