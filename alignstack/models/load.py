"""Models: presets built from scratch, local Hugging Face checkpoints, atomic saving, references.

Checkpoints are ordinary Hugging Face folders (safetensors + config + tokenizer) that
``AutoModelForCausalLM.from_pretrained`` and ``pipeline("text-generation")`` load with no
alignstack import. Loading is safetensors-only and ``trust_remote_code`` stays off unless asked.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

# name -> (hidden, layers, heads, intermediate). tiny: tests and the demo; small: ~25M, benchmarks.
# tiny4: tiny with four layers, for world v3 (two layers copy unseen multi-token names poorly; docs/world.md).
# wide4: tiny4 twice as wide (~4x the compute), world v3's calibration attempt 12 (docs/world.md).
# deep8: tiny4 twice as deep (~2x the compute), world v3's depth screen (docs/world.md, "Attempts 18 and 19").
PRESETS = {
    "nano": (64, 2, 4, 256),
    "tiny": (128, 2, 4, 512),
    "tiny4": (128, 4, 4, 512),
    "wide4": (256, 4, 8, 1024),
    "deep8": (128, 8, 4, 512),
    "small": (512, 8, 8, 1376),
}


@dataclass
class ModelSpec:
    """Where a model comes from: a preset built from scratch or a local checkpoint path."""
    preset: str | None = None
    path: str | None = None
    max_positions: int = 256


def build_model(preset: str, tokenizer, max_positions: int = 256, seed: int = 0):
    """A fresh Llama-architecture causal LM of a named preset."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from alignstack.models.tokenizer import stop_token_ids

    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; expected one of {sorted(PRESETS)}")
    h, layers, heads, inter = PRESETS[preset]
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=h, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_token_ids(tokenizer),
                      tie_word_embeddings=True, attention_dropout=0.0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=stop_token_ids(tokenizer),
                                               pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                               do_sample=True, temperature=1.0, max_new_tokens=32)
    return model


def _check_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p} (expected a Hugging Face checkpoint folder)")
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"{p}: no config.json — not a Hugging Face checkpoint folder")
    return p


def load_tokenizer(path: str | os.PathLike, chat_template: str | None = None):
    """A local tokenizer; ``chat_template`` (``model.chat_template``: a template or a file) replaces its own."""
    from transformers import AutoTokenizer

    from alignstack.models.tokenizer import set_chat_template

    if not Path(path).exists():
        raise FileNotFoundError(f"tokenizer not found: {path} (expected a local Hugging Face tokenizer folder)")
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token_id is None:  # many base checkpoints ship no PAD; never reuse EOS silently for training
        tok.pad_token = tok.eos_token
    return set_chat_template(tok, chat_template)


# the attribute a config's context length lives in, by family (GPT-2 says n_positions)
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


def context_length(config) -> int | None:
    """A model's context in tokens, from its config object, its config dict or its checkpoint folder."""
    import json

    if isinstance(config, (str, os.PathLike)):
        f = Path(config) / "config.json"
        if not f.is_file():
            return None
        config = json.loads(f.read_text())
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
    for k in _CONTEXT_KEYS:
        v = get(k)
        if isinstance(v, int) and v > 0:
            return v
    return None


def resolve_max_length(model_cfg, model=None) -> int:
    """``model.max_length``, or where the user left it unset the model's context (from the loaded
    model or the checkpoint's config.json; 256 for a preset built here). Written back into the config
    so the saved config records the length used."""
    if model_cfg.max_length is None:
        n = None
        if model is not None:
            n = context_length(getattr(model, "config", None))
        elif model_cfg.path is not None:
            n = context_length(model_cfg.path)
        if n is None and model_cfg.path is None:
            n = 256
        if n is not None:
            model_cfg.max_length = n
    return model_cfg.max_length


def load_model(path: str | os.PathLike, trust_remote_code: bool = False, dtype: str | None = None):
    """Load a local causal-LM checkpoint (ours or any Hugging Face one)."""
    import torch
    from transformers import AutoModelForCausalLM

    p = _check_dir(path, "model checkpoint")
    kw = {"dtype": getattr(torch, dtype)} if dtype else {}
    return AutoModelForCausalLM.from_pretrained(str(p), use_safetensors=True, trust_remote_code=trust_remote_code,
                                                **kw)


def save_pretrained_atomic(model, tokenizer, path: str | os.PathLike, extra_files: dict[str, str] | None = None) -> Path:
    """Save to a temporary sibling folder and rename into place: a kill never leaves half a model.
    Under several processes only the main one writes (the others return the path at once)."""
    from alignstack.train.dist import is_main_process

    dest = Path(path)
    if not is_main_process():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        full = getattr(model, "_alignstack_full_state_dict", None)   # gathered FSDP weights (Trainer.__exit__)
        model.save_pretrained(str(tmp), safe_serialization=True, **({"state_dict": full} if full else {}))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def frozen_copy(model):
    """A frozen reference copy (eval mode, no grad) — π_ref for KL penalties and DPO."""
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def attention_for_precision(model, mixed_precision: str, device) -> None:
    """Under bf16 autocast on a CPU, switch a Hugging Face model's attention from SDPA to the eager kernel
    (in place; nothing is saved: the setting is not part of ``config.json``). Why: with torch 2.13 on an
    AVX-512-BF16 CPU, SDPA's bf16 flash-attention backward is ~6x its fp32 one (195 ms against 34 ms for the 8
    layers of the small preset's GRPO update, 32 rows of 39 tokens) while eager attention is plain matmuls at
    the CPU's bf16 rate: a forward and backward of that batch takes 575 ms eager against 835 ms with SDPA
    (8 × 256 tokens: 1,084 against 1,306 ms). fp32, GPUs and other attention settings are left alone. Eager
    attention holds each layer's (T × T) scores for the backward, which SDPA's flash kernel does not: for long
    sequences ``ALIGNSTACK_CPU_BF16_ATTENTION=sdpa`` keeps SDPA."""
    import torch
    if mixed_precision != "bf16" or torch.device(device).type != "cpu" or \
            os.environ.get("ALIGNSTACK_CPU_BF16_ATTENTION", "eager") == "sdpa":
        return
    for m in model.modules():        # a peft wrapper, PPO's policy-and-critic module: every HF model inside
        if getattr(getattr(m, "config", None), "_attn_implementation", None) == "sdpa" and \
                hasattr(m, "set_attn_implementation"):
            m.set_attn_implementation("eager")


def prepare_reference(ref, mixed_precision: str, device) -> None:
    """Ready a frozen reference model (GRPO's, PPO's) whose passes run under the trainer's autocast, in place:
    on ``device``, with its attention as :func:`attention_for_precision` sets the policy's, and under bf16 with
    its ``nn.Linear`` weights (and biases) stored in bf16. Why: autocast rounds every fp32 weight of a linear layer
    to bf16 at every forward (a frozen model's casts are never cached, as they are only for weights that need
    gradients); rounding them once gives the same bits, so the same log-probs, with half those weights' memory and
    no cast per pass. A weight shared with another module (input embeddings tied to the LM head) stays fp32:
    embedding lookups are not on autocast's bf16 list."""
    import torch
    ref.to(device)
    attention_for_precision(ref, mixed_precision, device)
    if mixed_precision != "bf16":
        return
    linear = [m for m in ref.modules() if isinstance(m, torch.nn.Linear)]
    others = {id(p) for m in ref.modules() if not isinstance(m, torch.nn.Linear) for p in m.parameters(recurse=False)}
    for m in linear:
        if not any(id(p) in others for p in m.parameters(recurse=False)):
            m.to(torch.bfloat16)


# default LoRA targets (the attention projections) by `config.model_type`; others fall back to "all-linear"
LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"], "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"], "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"], "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi3": ["qkv_proj", "o_proj"], "gpt2": ["c_attn", "c_proj"], "gpt_neox": ["query_key_value", "dense"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj"], "opt": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "bloom": ["query_key_value", "dense"], "falcon": ["query_key_value", "dense"],
}


def lora_targets(model, target_modules) -> list[str] | str:
    """``model.lora.target_modules`` for this model: as given, "all-linear", or (unset) the
    architecture's attention projections (``LORA_TARGETS``). Named modules must exist."""
    from alignstack.config import ConfigError

    if target_modules is None:
        target_modules = LORA_TARGETS.get(getattr(model.config, "model_type", None), "all-linear")
    if isinstance(target_modules, str):
        if target_modules != "all-linear":
            raise ConfigError(f"model.lora.target_modules: expected a list of module names or 'all-linear', "
                              f"got {target_modules!r}")
        return target_modules
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in target_modules if t not in names]
    if missing:
        raise ConfigError(f"model.lora.target_modules: {missing} not in this {model.config.model_type} model; "
                          "use 'all-linear' or names such as "
                          f"{sorted(LORA_TARGETS.get(model.config.model_type, ['q_proj', 'v_proj']))}")
    return list(target_modules)


def apply_lora(model, cfg, task_type: str = "CAUSAL_LM"):
    """Wrap ``model`` with LoRA adapters (peft, imported lazily); only adapter weights train (with
    ``task_type="SEQ_CLS"`` peft also trains the scalar ``score`` head in full)."""
    from alignstack.config import require_extra

    peft = require_extra("peft", "lora", "model.lora.enabled=true")
    pc = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                         target_modules=lora_targets(model, cfg.target_modules), task_type=task_type)
    return peft.get_peft_model(model, pc)


def prepare_model(model_cfg, tokenizer=None, seed: int = 0):
    """The model a method trains: a local checkpoint (``path``) or a fresh preset, then the
    gradient-checkpointing and LoRA switches. Returns ``(model, tokenizer)``."""
    chat = getattr(model_cfg, "chat_template", None)
    if model_cfg.path is not None:
        tokenizer = tokenizer or load_tokenizer(model_cfg.tokenizer or model_cfg.path, chat)
        model = load_model(model_cfg.path, trust_remote_code=model_cfg.trust_remote_code)
    else:
        if tokenizer is None:
            if model_cfg.tokenizer is None:
                raise ValueError("building a model from a preset needs a tokenizer (model.tokenizer=PATH)")
            tokenizer = load_tokenizer(model_cfg.tokenizer, chat)
        model = build_model(model_cfg.preset, tokenizer, max_positions=max(256, model_cfg.max_length or 256),
                            seed=seed)
    resolve_max_length(model_cfg, model)
    if model_cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if model_cfg.lora.enabled:
        import torch

        # peft draws the adapters' first weights from torch's global generator: seeded here, the same config
        # trains the same adapters whatever ran before in the process (a pipeline's earlier stages, a test)
        torch.manual_seed(seed)
        model = apply_lora(model, model_cfg.lora)
    return model, tokenizer


def save_final(model, tokenizer, out_dir: str | os.PathLike, config_yaml: str = "") -> Path:
    """Save a method's result as ``out/model`` (a plain HF checkpoint; LoRA merged) and, for LoRA,
    the adapter alone as ``out/adapter``."""
    out = Path(out_dir)
    extra = {"alignstack_config.yaml": config_yaml} if config_yaml else None
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(out / "adapter"))
        # merge a copy: methods that save between rounds (ReST, HIR) keep training the adapters afterwards
        model = copy.deepcopy(model).merge_and_unload()
    return save_pretrained_atomic(model, tokenizer, out / "model", extra)
