"""KL estimators, controllers and KL-shaped rewards (METHODS §2, §5.1, §5.2, §11).

Per-token tensors are (B, T) with a response mask; ``logp`` is log π_θ(y_t) of the sampled
token and ``ref_logp`` log π_ref(y_t) (Schulman's "Approximating KL divergence" k1/k2/k3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignstack.losses.reduce import masked_sum


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast to float32; float32/float64 are kept."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = log π_θ − log π_ref: unbiased, can be negative (the PPO reward's estimator)."""
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2 = ½·(log π_θ − log π_ref)²: non-negative, biased, low variance."""
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = ρ − log ρ − 1 with ρ = π_ref/π_θ: unbiased and non-negative (GRPO's loss term)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def exact_kl(
    logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-position exact KL Σ_a p(a)(log p(a) − log q(a)) from logits (…, V) -> (…); 0 where masked.

    Pass logits already divided by the sampling temperature.
    """
    logp = F.log_softmax(_upcast(logits), dim=-1)
    logq = F.log_softmax(_upcast(ref_logits), dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)
    if mask is not None:
        kl = torch.where(mask.bool(), kl, torch.zeros_like(kl))
    return kl


def sequence_kl(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence KL: sum over unmasked tokens, (B, T) -> (B,). Average over prompts to report it."""
    return masked_sum(per_token, mask, dim=-1)


class AdaptiveKLController:
    """Adaptive β of Ziegler et al. 2019, code form (METHODS §5.2, ref. code):

    β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n_steps/horizon), ``n_steps`` = episodes in the batch.
    The paper form β(1 + K_β·e_t) is ``horizon = n_steps/K_β``.
    """

    def __init__(self, init_beta: float = 0.15, target: float = 6.0, horizon: int = 10000):
        if target <= 0 or horizon <= 0:
            raise ValueError("target and horizon must be positive")
        self.beta = float(init_beta)
        self.target = float(target)
        self.horizon = int(horizon)

    @property
    def value(self) -> float:
        return self.beta

    def update(self, current_kl: float | torch.Tensor, n_steps: int) -> float:
        kl = float(current_kl)
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.beta *= 1.0 + error * n_steps / self.horizon
        return self.beta

    def state_dict(self) -> dict:
        return {"type": "adaptive", "beta": self.beta, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.target = float(state["target"])
        self.horizon = int(state["horizon"])


class FixedKLController:
    """Constant β (Stiennon / Llama 2 / InstructGPT settings)."""

    def __init__(self, beta: float):
        self.beta = float(beta)

    @property
    def value(self) -> float:
        return self.beta

    def update(self, current_kl: float | torch.Tensor, n_steps: int) -> float:
        return self.beta

    def state_dict(self) -> dict:
        return {"type": "fixed", "beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])


def _last_index(mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    if not bool(m.any(dim=-1).all()):
        raise ValueError("every row needs at least one unmasked token to receive its score")
    pos = torch.arange(m.shape[-1], device=m.device).expand_as(m)
    return torch.where(m, pos, torch.full_like(pos, -1)).max(dim=-1).values


def kl_shaped_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO rewards (Ziegler et al.; METHODS §5.1): r_t = −β·(log π − log π_ref),
    plus the sequence score at the last unmasked token of each row.

    Inputs are detached (rewards are constants for the policy update). Returns
    (rewards (B, T), k1 kl (B, T)), both 0 at masked positions. Raises ValueError for a row
    with no unmasked token.
    """
    m = mask.bool()
    kl = torch.where(m, (logprobs - ref_logprobs).detach(), torch.zeros_like(logprobs))
    rewards = -beta * kl
    last = _last_index(m)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards = rewards.clone()
    rewards[rows, last] += scores.detach().to(rewards.dtype)
    return rewards, kl


def rloo_kl_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """RLOO sequence rewards R − β·Σ_t(log π_old − log π_ref) (METHODS §11, A.9), all detached; (B,)."""
    kl = masked_sum((logprobs - ref_logprobs).detach(), mask, dim=-1)
    return scores.detach() - beta * kl
