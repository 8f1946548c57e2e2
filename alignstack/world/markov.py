"""T1 — a tabular Markov "language" with an exact KL-regularised optimum (METHODS §12.2).

Tokens ``0..A-1`` (``n_pos`` positive with w = +1, ``n_neg`` negative with w = −1, the rest
neutral); sequences have a fixed length ``horizon`` (no EOS: every sequence has T tokens, which
keeps the DP exact and IPO's length average a constant 1/T). The state is the last token, with
state 0 = BOS and state ``1 + a`` after token ``a``. ``π_ref`` is a random first-order chain
``P(a|s)``; the reward is additive, ``r(y) = Σ_t w(y_t)``.

- :func:`optimal_policy` — backward DP for the optimum of ``E[r] − β·KL(π‖π_ref)``:
  ``V_{T}(s) = 0;  Q_t(s,a) = w(a) + V_{t+1}(1+a);  V_t(s) = β·log Σ_a π_ref(a|s)·exp(Q_t(s,a)/β);
  π*_t(a|s) = π_ref(a|s)·exp((Q_t(s,a) − V_t(s))/β)`` — a time-dependent tabular policy.
- :func:`evaluate_policy` — exact ``E[r]`` and sequence KL for **any** tabular policy (stationary
  ``(S, A)`` or time-dependent ``(T, S, A)`` log-probs) by a forward pass over state marginals.
- :func:`frontier` — the exact reward–KL frontier by sweeping β.
- :func:`fit_tabular_preference` — a tiny tabular-policy DPO/IPO trainer on pairs sampled from
  ``π_ref``, using the library's own pure ``dpo_loss`` / ``ipo_loss``. (It is an optimiser over a
  table, kept here with the testbed it belongs to; it never touches a model.)

All tensors are float64.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from alignstack.losses.preference import DPO_LOSSES

DT = torch.float64
BOS = 0


@dataclass
class MarkovWorld:
    log_ref: torch.Tensor      # (S, A) log π_ref(a | s), S = A + 1
    w: torch.Tensor            # (A,) per-token reward in {+1, −1, 0}
    horizon: int

    @property
    def n_tokens(self) -> int:
        return self.w.shape[0]

    @property
    def n_states(self) -> int:
        return self.log_ref.shape[0]


def make_world(seed: int = 0, n_tokens: int = 12, n_pos: int = 4, n_neg: int = 4, horizon: int = 4,
               logit_scale: float = 1.0) -> MarkovWorld:
    """A random first-order chain over ``n_tokens`` tokens (12–16 in METHODS) with additive reward."""
    if n_pos + n_neg > n_tokens:
        raise ValueError(f"n_pos + n_neg = {n_pos + n_neg} exceeds n_tokens = {n_tokens}")
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_tokens + 1, n_tokens, generator=g, dtype=DT) * logit_scale
    w = torch.zeros(n_tokens, dtype=DT)
    perm = torch.randperm(n_tokens, generator=g)
    w[perm[:n_pos]] = 1.0
    w[perm[n_pos:n_pos + n_neg]] = -1.0
    return MarkovWorld(torch.log_softmax(logits, -1), w, horizon)


def _time_dependent(world: MarkovWorld, log_pi: torch.Tensor) -> torch.Tensor:
    if log_pi.dim() == 2:
        return log_pi.unsqueeze(0).expand(world.horizon, *log_pi.shape)
    if log_pi.shape[0] != world.horizon:
        raise ValueError(f"time-dependent policy has {log_pi.shape[0]} steps, the world {world.horizon}")
    return log_pi


def optimal_policy(world: MarkovWorld, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward DP: (log π*, shape (T, S, A); V_0 per state, shape (S,)). V_0(BOS) is the optimal
    value of E[r] − β·KL."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    V = torch.zeros(world.n_states, dtype=DT)
    out = []
    for _ in range(world.horizon):
        Q = (world.w + V[1:]).unsqueeze(0).expand(world.n_states, -1)         # Q_t(s, a)
        V = beta * torch.logsumexp(world.log_ref + Q / beta, dim=-1)         # V_t(s)
        out.append(world.log_ref + (Q - V[:, None]) / beta)
    return torch.stack(out[::-1]), V


def evaluate_policy(world: MarkovWorld, log_pi: torch.Tensor) -> dict:
    """Exact E[r] and KL(π‖π_ref) = Σ_t E_{s~d_t}[KL(π_t(·|s)‖π_ref(·|s))] by state marginals."""
    lp = _time_dependent(world, log_pi.to(DT))
    d = torch.zeros(world.n_states, dtype=DT)
    d[BOS] = 1.0
    reward = kl = torch.zeros((), dtype=DT)
    for t in range(world.horizon):
        p = lp[t].exp()
        plogr = torch.where(p > 0, p * (lp[t] - world.log_ref), torch.zeros_like(p))
        reward = reward + (d[:, None] * p * world.w).sum()
        kl = kl + (d[:, None] * plogr).sum()
        d_next = torch.zeros_like(d)
        d_next[1:] = (d[:, None] * p).sum(0)
        d = d_next
    return {"reward": float(reward), "kl": float(kl)}


def frontier(world: MarkovWorld, betas) -> list[dict]:
    """The exact reward–KL frontier: the optimum's (E[r], KL) for each β."""
    out = []
    for b in betas:
        lp, V = optimal_policy(world, b)
        out.append({"beta": float(b), **evaluate_policy(world, lp), "value": float(V[BOS])})
    return out


def all_sequences(world: MarkovWorld) -> torch.Tensor:
    """Every sequence of the world, (A^T, T) — brute force, for small worlds only."""
    return torch.tensor(list(itertools.product(range(world.n_tokens), repeat=world.horizon)), dtype=torch.long)


def sequence_rewards(world: MarkovWorld, seqs: torch.Tensor) -> torch.Tensor:
    return world.w[seqs].sum(-1)


def sequence_logprobs(world: MarkovWorld, log_pi: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """Σ_t log π_t(y_t | y_{t−1}) for sequences (N, T); differentiable in ``log_pi``."""
    lp = _time_dependent(world, log_pi)
    states = torch.cat([torch.full_like(seqs[:, :1], BOS), seqs[:, :-1] + 1], dim=1)
    t = torch.arange(world.horizon).expand_as(seqs)
    return lp[t, states, seqs].sum(-1)


def sample(world: MarkovWorld, log_pi: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    lp = _time_dependent(world, log_pi.detach())
    s = torch.full((n,), BOS, dtype=torch.long)
    out = []
    for t in range(world.horizon):
        a = torch.multinomial(lp[t, s].exp(), 1, generator=generator).squeeze(-1)
        out.append(a)
        s = a + 1
    return torch.stack(out, 1)


def preference_pairs(world: MarkovWorld, n: int, seed: int = 0, labels: str = "bt",
                     flip: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs (chosen, rejected) of sequences from π_ref. ``labels="bt"``: Bradley–Terry on the
    reward, P(a ≻ b) = σ(r(a) − r(b)); ``"deterministic"``: the higher reward wins (ties: coin).
    ``flip`` flips a share of the labels at random (label noise)."""
    g = torch.Generator().manual_seed(seed)
    a, b = sample(world, world.log_ref, n, g), sample(world, world.log_ref, n, g)
    dr = sequence_rewards(world, a) - sequence_rewards(world, b)
    u = torch.rand(n, generator=g, dtype=DT)
    if labels == "bt":
        a_wins = u < torch.sigmoid(dr)
    elif labels == "deterministic":
        a_wins = (dr > 0) | ((dr == 0) & (u < 0.5))
    else:
        raise ValueError(f"labels must be 'bt' or 'deterministic', got {labels!r}")
    if flip > 0:
        a_wins = a_wins ^ (torch.rand(n, generator=g, dtype=DT) < flip)
    m = a_wins[:, None]
    return torch.where(m, a, b), torch.where(m, b, a)


def fit_tabular_preference(world: MarkovWorld, chosen: torch.Tensor, rejected: torch.Tensor, beta: float,
                           loss: str = "sigmoid", label_smoothing: float = 0.0, steps: int = 600,
                           lr: float = 0.1) -> torch.Tensor:
    """Full-batch Adam on a time-dependent table of logits (initialised at π_ref) minimising the
    mean DPO-family loss over the pairs. IPO gets length-averaged log-probs (÷ T, METHODS §2).
    Returns the fitted log-policy (T, S, A)."""
    fn = DPO_LOSSES[loss]
    theta = world.log_ref.unsqueeze(0).repeat(world.horizon, 1, 1).clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    with torch.no_grad():
        rc = sequence_logprobs(world, world.log_ref, chosen)
        rr = sequence_logprobs(world, world.log_ref, rejected)
    scale = 1.0 / world.horizon if loss == "ipo" else 1.0
    for _ in range(steps):
        lp = torch.log_softmax(theta, -1)
        pc, pr = sequence_logprobs(world, lp, chosen), sequence_logprobs(world, lp, rejected)
        losses, _, _ = fn(pc * scale, pr * scale, rc * scale, rr * scale, beta=beta, label_smoothing=label_smoothing)
        opt.zero_grad()
        losses.mean().backward()
        opt.step()
        sched.step()
    return torch.log_softmax(theta.detach(), -1)


def bandit(p_first: float = 0.5) -> MarkovWorld:
    """A two-action bandit as a one-step world: action 0 has reward 1, action 1 reward 0."""
    ref = torch.log(torch.tensor([p_first, 1.0 - p_first], dtype=DT)).expand(3, 2).clone()
    return MarkovWorld(ref, torch.tensor([1.0, 0.0], dtype=DT), 1)
