"""Preference losses: reward-model losses (METHODS §2, §3.1, §4.2, §9.2, §10) and the DPO
family (§6). Pure functions of tensors; all return per-example values (the caller reduces).

Conventions: ``*_logps`` are sequence log-probs of the response only. DPO, cDPO, robust DPO,
hinge and KTO take **summed** log-probs; IPO, SimPO and ORPO take **length-averaged** ones
(METHODS §2). DPO-family functions return ``(losses, chosen_rewards, rejected_rewards)``
where the rewards are the detached implicit rewards, for logging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Llama 2, Table 27. The "small" significantly-better cell (1.0) is unverified (METHODS §4.2).
MARGIN_TABLES: dict[str, dict[str, float]] = {
    "none": {"significantly_better": 0.0, "better": 0.0, "slightly_better": 0.0, "negligibly_better": 0.0},
    "small": {
        "significantly_better": 1.0,
        "better": 2.0 / 3.0,
        "slightly_better": 1.0 / 3.0,
        "negligibly_better": 0.0,
    },
    "large": {"significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0},
}


def margins_from_strengths(strengths: list[str], table: str) -> torch.Tensor:
    """Map Llama 2 strength labels to margins m(r) (Table 27); float tensor of shape (len(strengths),)."""
    if table not in MARGIN_TABLES:
        raise ValueError(f"unknown margin table {table!r}; expected one of {sorted(MARGIN_TABLES)}")
    values = MARGIN_TABLES[table]
    out = []
    for s in strengths:
        if s not in values:
            raise ValueError(f"unknown preference strength {s!r}; expected one of {sorted(values)}")
        out.append(values[s])
    return torch.tensor(out, dtype=torch.float32)


# --------------------------------------------------------------------------- reward-model losses


def pairwise_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, margin: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Per-pair Bradley–Terry loss −logσ(r_c − r_r − m).

    Llama 2 Eq. 2 with a margin ``m``; ``margin=None`` is Eq. 1 (the plain InstructGPT pair loss).
    """
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff)


def ranking_loss(rewards: torch.Tensor, ranks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """InstructGPT Eq. 1 with one prompt per batch element; returns per-prompt losses (B,).

    ``rewards (B, K)``: one score per response (each scored once, shared by all its pairs).
    ``ranks (B, K)``: rank position, 0 = best. ``mask (B, K)``: which responses exist (K may vary
    per prompt). Per prompt the loss is the mean, over all valid ordered pairs (i ranked strictly
    above j), of −logσ(r_i − r_j); with no ties that is the 1/C(K,2) average of Eq. 1.
    Departure (our choice, paper silent): tied pairs are dropped. A prompt with no valid pair
    gets loss 0.
    """
    valid = mask.bool()
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    diff = r.unsqueeze(2) - r.unsqueeze(1)  # (B, K, K): r_i - r_j
    above = ranks.unsqueeze(2) < ranks.unsqueeze(1)  # i strictly better than j
    pair = above & valid.unsqueeze(2) & valid.unsqueeze(1)
    per_pair = torch.where(pair, -F.logsigmoid(diff), torch.zeros_like(diff))
    n_pairs = pair.sum(dim=(1, 2)).to(rewards.dtype)
    return per_pair.sum(dim=(1, 2)) / n_pairs.clamp(min=1.0)


def soft_label_loss(r1: torch.Tensor, r2: torch.Tensor, q: torch.Tensor | float) -> torch.Tensor:
    """Soft-target preference loss −q·logσ(r1−r2) − (1−q)·logσ(r2−r1), q = P(y1 ≻ y2).

    RLAIF (Lee et al. 2023) distilled-RM loss and RL-CAI's soft labels (METHODS §2, §9.2, §10).
    Per-pair values.
    """
    d = r1 - r2
    return -q * F.logsigmoid(d) - (1 - q) * F.logsigmoid(-d)


def best_of_n_loss(rewards: torch.Tensor, best_index: torch.Tensor) -> torch.Tensor:
    """Ziegler et al. best-of-n loss −log(e^{r_b}/Σ_i e^{r_i}); rewards (B, n), best_index (B,) -> (B,)."""
    return F.cross_entropy(rewards, best_index.long(), reduction="none")


# --------------------------------------------------------------------------- DPO family


def _logratios(pc, pr, rc, rr) -> tuple[torch.Tensor, torch.Tensor]:
    return pc - rc, pr - rr


def _check_eps(eps: float, *, strict: bool) -> None:
    if eps < 0 or eps > 0.5 or (strict and eps >= 0.5):
        bound = "< 0.5" if strict else "<= 0.5"
        raise ValueError(f"label_smoothing must satisfy 0 <= label_smoothing {bound}; got {eps}")


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO (Rafailov et al. 2023, Eq. 7): −logσ(β·h), h = log-ratio(y_w) − log-ratio(y_l).

    ``label_smoothing = ε > 0`` gives conservative DPO (cDPO): −(1−ε)logσ(βh) − ε·logσ(−βh)
    (METHODS §6.4; TRL 1.x's ``sigmoid`` loss ignores ε, so cDPO is tested by hand).
    Inputs are summed sequence log-probs. Returns (losses, β·chosen log-ratio, β·rejected log-ratio).
    """
    _check_eps(label_smoothing, strict=False)
    cw, cl = _logratios(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    z = beta * (cw - cl)
    losses = -F.logsigmoid(z)
    if label_smoothing > 0:
        losses = (1 - label_smoothing) * losses - label_smoothing * F.logsigmoid(-z)
    return losses, beta * cw.detach(), beta * cl.detach()


def _no_smoothing(name: str, label_smoothing: float) -> None:
    if label_smoothing != 0.0:
        raise ValueError(f"{name} does not use label_smoothing (got {label_smoothing})")


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IPO (Azar et al., arXiv 2310.12036, Eq. 17): (h − 1/(2τ))², with τ = ``beta``.

    Callers pass **length-averaged** log-probs, so h is a difference of per-token log-ratios (as
    TRL does, reportedly confirmed by the IPO authors); with summed log-probs the 1/(2τ) target
    would scale with length. ``label_smoothing`` exists only for a uniform ``DPO_LOSSES``
    signature and must be 0.
    """
    _no_smoothing("ipo_loss", label_smoothing)
    cw, cl = _logratios(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    losses = (cw - cl - 1.0 / (2.0 * beta)) ** 2
    return losses, beta * cw.detach(), beta * cl.detach()


def hinge_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hinge / RSO (arXiv 2309.06657): relu(1 − β·h), β = 1/margin. Summed log-probs.

    ``label_smoothing`` exists only for a uniform signature and must be 0.
    """
    _no_smoothing("hinge_loss", label_smoothing)
    cw, cl = _logratios(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    losses = torch.relu(1.0 - beta * (cw - cl))
    return losses, beta * cw.detach(), beta * cl.detach()


def robust_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Robust DPO (Chowdhury et al., arXiv 2403.00409): [−(1−ε)logσ(βh) + ε·logσ(−βh)]/(1−2ε).

    Unbiased under symmetric label-flip rate ε; requires 0 ≤ ε < 0.5. Summed log-probs.
    """
    _check_eps(label_smoothing, strict=True)
    eps = label_smoothing
    cw, cl = _logratios(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    z = beta * (cw - cl)
    losses = (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)
    return losses, beta * cw.detach(), beta * cl.detach()


DPO_LOSSES = {"sigmoid": dpo_loss, "ipo": ipo_loss, "hinge": hinge_loss, "robust": robust_dpo_loss}
"""Single lookup for the DPO method. Uniform call: ``fn(pc, pr, rc, rr, beta=β, label_smoothing=ε)``."""


def simpo_loss(
    policy_chosen_avg_logps: torch.Tensor,
    policy_rejected_avg_logps: torch.Tensor,
    beta: float,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SimPO (Meng et al., arXiv 2405.14734): −logσ(β·avg_w − β·avg_l − γ). Reference-free.

    Inputs are length-averaged log-probs. Returns (losses, β·avg_w, β·avg_l). Formula *(unverified)*
    per METHODS §6.5; matches TRL's CPO ``simpo`` loss with label_smoothing 0.
    """
    losses = -F.logsigmoid(beta * (policy_chosen_avg_logps - policy_rejected_avg_logps) - gamma)
    return losses, beta * policy_chosen_avg_logps.detach(), beta * policy_rejected_avg_logps.detach()


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """Stable log(1 − exp(x)) for x < 0 (Mächler 2012: switch at −log 2)."""
    return torch.where(x < -math.log(2.0), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def log_odds(avg_logps: torch.Tensor) -> torch.Tensor:
    """log(P/(1−P)) with P = exp(avg_logps): avg − log(1 − exp(avg)), computed stably.

    ``avg_logps`` is clamped to ≤ −1e-12 so P = 1 gives a large finite value instead of inf.
    """
    x = avg_logps.clamp(max=-1e-12)
    return x - _log1mexp(x)


def orpo_loss(
    policy_chosen_avg_logps: torch.Tensor,
    policy_rejected_avg_logps: torch.Tensor,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ORPO (Hong et al., arXiv 2403.07691) odds-ratio term λ·(−logσ(log odds_w − log odds_l)).

    P(y|x) = exp(length-averaged log-prob). Only the odds-ratio part: the SFT NLL on y_w
    (L_SFT) is added by the method. Returns (per-example λ·L_OR, λ·avg_w, λ·avg_l) — rewards
    as TRL logs them (TRL's ``beta`` is λ). TRL returns +λ·logσ(·) and subtracts it; we return the
    loss with its sign.
    """
    lo = log_odds(policy_chosen_avg_logps) - log_odds(policy_rejected_avg_logps)
    losses = -lam * F.logsigmoid(lo)
    return losses, lam * policy_chosen_avg_logps.detach(), lam * policy_rejected_avg_logps.detach()


def kto_kl_estimate(
    policy_mismatched_logps: torch.Tensor, ref_mismatched_logps: torch.Tensor
) -> torch.Tensor:
    """KTO reference point z0 = max(0, mean_i log π(y_j|x_i)/π_ref(y_j|x_i)) on mismatched pairs; detached."""
    with torch.no_grad():
        return (policy_mismatched_logps - ref_mismatched_logps).mean().clamp(min=0.0)


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl_estimate: torch.Tensor | float,
    beta: float,
    lambda_d: float = 1.0,
    lambda_u: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KTO (Ethayarajh et al., arXiv 2402.01306, METHODS §6.5): per-example λ_y − v(x, y).

    r = log π(y|x) − log π_ref(y|x) (summed log-probs); v = λ_D·σ(β(r − z0)) if desirable else
    λ_U·σ(β(z0 − r)). ``kl_estimate`` z0 is detached and clamped ≥ 0 here (no gradient through
    the reference point). Returns (losses (B,), detached rewards β·r (B,)).
    Formula *(unverified)*; it equals TRL's ``kto`` loss λ_y·(1 − σ(·)).
    """
    z0 = (
        torch.as_tensor(kl_estimate, dtype=policy_logps.dtype, device=policy_logps.device)
        .detach()
        .clamp(min=0.0)
    )
    r = policy_logps - ref_logps
    des = desirable.bool()
    v = torch.where(des, lambda_d * torch.sigmoid(beta * (r - z0)), lambda_u * torch.sigmoid(beta * (z0 - r)))
    lam = torch.where(des, torch.full_like(r, lambda_d), torch.full_like(r, lambda_u))
    return lam - v, beta * r.detach()


def nll_term(chosen_logps_sum: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """RPO-style NLL on the chosen response: per-example mean per-token NLL −Σ_t log π / |y_w|.

    Returns (B,); lengths are clamped to ≥ 1. The method averages over the batch.
    Note TRL's RPO averages over all chosen tokens of the batch instead (token-weighted).
    """
    return -chosen_logps_sum / chosen_lengths.to(chosen_logps_sum.dtype).clamp(min=1.0)
