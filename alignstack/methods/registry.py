"""The one method registry: command name → (module, config class), and the overrides a name implies.

The CLI (``alignstack <method>``) and pipelines (``method:`` of a stage) both look methods up here, so a
method added once is available to both. Modules are named by string and imported on use (a method's
torch/transformers imports stay lazy).
"""
from __future__ import annotations

import importlib

METHODS: dict[str, tuple[str, str]] = {
    "pretrain": ("alignstack.methods.pretrain", "PretrainConfig"),
    "sft": ("alignstack.methods.sft", "SFTConfig"),
    "reward_model": ("alignstack.methods.reward_model", "RewardModelConfig"),
    "dpo": ("alignstack.methods.dpo", "DPOConfig"),
    "ppo": ("alignstack.methods.ppo", "PPOConfig"),
    "grpo": ("alignstack.methods.grpo", "GRPOConfig"),
    "rejection_sampling": ("alignstack.methods.rejection_sampling", "RejectionSamplingConfig"),
    "iterative": ("alignstack.methods.iterative", "IterativeConfig"),
    "rloo": ("alignstack.methods.grpo", "GRPOConfig"),
    "rest": ("alignstack.methods.rest", "ReSTConfig"),
    "hir": ("alignstack.methods.hir", "HIRConfig"),
    "farl": ("alignstack.methods.hir", "HIRConfig"),
    "rlaif": ("alignstack.methods.rlaif", "RLAIFConfig"),
    "constitutional": ("alignstack.methods.constitutional", "ConstitutionalConfig"),
    "judge": ("alignstack.methods.judge", "JudgeDistillConfig"),
}
METHOD_BASE: dict[str, list[str]] = {"rloo": ["algorithm=rloo"], "farl": ["mode=farl"]}


def method(name: str):
    """(module, config class) of method ``name``."""
    mod_name, cls_name = METHODS[name]
    mod = importlib.import_module(mod_name)
    return mod, getattr(mod, cls_name)


def build_config(name: str, path=None, overrides: list[str] | None = None):
    """Method ``name``'s config from an optional YAML file and dotted overrides (validated when built)."""
    from alignstack.config import load
    _, cls = method(name)
    return load(cls, path, METHOD_BASE.get(name, []) + list(overrides or []))
