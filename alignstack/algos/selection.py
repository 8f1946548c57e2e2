"""Sample selection: best-of-K and Llama 2's rejection-sampling bookkeeping (METHODS §4.4, A.4),
ReST thresholds and filtering (§7, A.5)."""

from __future__ import annotations

from typing import Any

import torch


def best_of_k(rewards: torch.Tensor) -> torch.Tensor:
    """Index of the highest reward per row of (B, K); ties go to the lowest index."""
    return torch.argmax(rewards, dim=1)  # torch returns the first maximal index


def _log_comb(n: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(n + 1) - torch.lgamma(r + 1) - torch.lgamma(n - r + 1)


def _order_stat_weights(n: int, k: int) -> torch.Tensor:
    """W[m, i] = P(the i-th smallest of n values is the (m+1)-th smallest of a uniform k-subset).

    = C(i, m)·C(n−1−i, k−1−m)/C(n, k) with 0-based i and m (hypergeometric), in log space.
    """
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.arange(k, dtype=torch.float64)[:, None]
    valid = (i >= m) & (n - 1 - i >= k - 1 - m)
    i_, m_ = torch.where(valid, i, m), m.expand_as(valid)  # keep lgamma arguments legal where invalid
    rest_n = torch.where(valid, n - 1 - i, k - 1 - m_)
    logw = (
        _log_comb(i_, m_)
        + _log_comb(rest_n, k - 1 - m_)
        - _log_comb(torch.tensor(float(n), dtype=torch.float64), torch.tensor(float(k), dtype=torch.float64))
    )
    return torch.where(valid, logw.exp(), torch.zeros_like(logw))


def max_median_curve(
    rewards: torch.Tensor,
    ks: list[int],
    method: str = "exact",
    n_boot: int = 1000,
    generator: torch.Generator | None = None,
) -> dict[int, tuple[float, float]]:
    """Expected max and median reward of k samples, averaged over prompts (Llama 2 Fig. 7).

    ``rewards (B, N)``: N scored samples per prompt. ``method="exact"`` (default) gives the
    unbiased subset estimate: the exact mean over all C(N, k) subsets of each prompt's N
    samples, via order-statistic (hypergeometric) weights — no sampling noise. The median of an
    even-sized subset is the mean of its two middle values. ``method="bootstrap"`` instead draws
    ``n_boot`` size-k resamples **with replacement** (``generator`` seeds it).
    Returns {k: (mean max, mean median)}.
    """
    B, N = rewards.shape
    r = rewards.detach().to(torch.float64)
    out: dict[int, tuple[float, float]] = {}
    if method == "exact":
        sorted_r = torch.sort(r, dim=1).values
        for k in ks:
            if not 1 <= k <= N:
                raise ValueError(f"k={k} must be in [1, N={N}] for the exact estimate")
            w = _order_stat_weights(N, k)  # (k, N)
            order_means = sorted_r @ w.T  # (B, k): expected m-th order statistic
            mx = order_means[:, k - 1]
            if k % 2 == 1:
                med = order_means[:, k // 2]
            else:
                med = 0.5 * (order_means[:, k // 2 - 1] + order_means[:, k // 2])
            out[k] = (float(mx.mean()), float(med.mean()))
        return out
    if method == "bootstrap":
        for k in ks:
            if k < 1:
                raise ValueError("k must be >= 1")
            idx = torch.randint(0, N, (B, n_boot, k), generator=generator)
            samples = torch.gather(r.unsqueeze(1).expand(B, n_boot, N), 2, idx)
            s = torch.sort(samples, dim=2).values
            mx = s[..., -1]
            med = s[..., k // 2] if k % 2 == 1 else 0.5 * (s[..., k // 2 - 1] + s[..., k // 2])
            out[k] = (float(mx.mean()), float(med.mean()))
        return out
    raise ValueError(f"unknown method {method!r}; expected 'exact' or 'bootstrap'")


class PooledBest:
    """Best sample per prompt for rejection-sampling fine-tuning (Llama 2 §3.2.3, METHODS §4.4).

    Default: pool the best of ALL rounds so far (the fix Llama 2 adopted from V4). With
    ``last_round_only=True`` only the latest round's selections count (the V1–V3 behaviour,
    kept for the pooling ablation): prompts not sampled in the latest round drop out.
    On equal rewards a later round's sample replaces an earlier one (a tie carries no reward
    information, and the newer policy's sample is closer to what the model now generates: with a
    bounded reward most prompts tie at the ceiling, and keeping the oldest sample would freeze the pool
    at round 1, see experiments/results/rejection_sampling.md); within one round the first is kept.
    State is JSON-able (``to_dict``/``from_dict``);
    prompt ids and completions must themselves be JSON-able.
    """

    def __init__(self, last_round_only: bool = False):
        self.last_round_only = last_round_only
        self.latest_round: int | None = None
        # prompt_id -> (completion, reward, round)
        self._best: dict[Any, tuple[Any, float, int]] = {}

    def update(self, round: int, prompt_ids: list, completions: list, rewards) -> None:
        if not (len(prompt_ids) == len(completions) == len(rewards)):
            raise ValueError("prompt_ids, completions and rewards must have the same length")
        if self.latest_round is not None and round < self.latest_round:
            raise ValueError(f"round {round} is older than the latest round {self.latest_round}")
        if isinstance(rewards, torch.Tensor):
            rewards = rewards.detach().reshape(-1).tolist()
        self.latest_round = round
        for pid, comp, rew in zip(prompt_ids, completions, rewards):
            rew = float(rew)
            cur = self._best.get(pid)
            stale = cur is not None and self.last_round_only and cur[2] != round
            if cur is None or stale or rew > cur[1] or (rew == cur[1] and round > cur[2]):
                self._best[pid] = (comp, rew, round)

    def earlier(self, prompt_ids: list, round: int) -> list:
        """The distinct prompt ids among ``prompt_ids`` that hold a selection from a round before ``round``."""
        return [p for p in dict.fromkeys(prompt_ids) if p in self._best and self._best[p][2] < round]

    def rescore(self, prompt_ids: list, rewards) -> None:
        """Replace the stored reward of these prompts' selections (completion and round kept): the reward of an
        earlier round's sample under this round's reward model, so that it competes on the same scale."""
        if isinstance(rewards, torch.Tensor):
            rewards = rewards.detach().reshape(-1).tolist()
        if len(prompt_ids) != len(rewards):
            raise ValueError("prompt_ids and rewards must have the same length")
        for pid, rew in zip(prompt_ids, rewards):
            comp, _, rnd = self._best[pid]
            self._best[pid] = (comp, float(rew), rnd)

    def completion(self, prompt_id) -> Any:
        return self._best[prompt_id][0]

    def best(self) -> dict[Any, tuple[Any, float, int]]:
        """prompt_id -> (completion, reward, round)."""
        if self.last_round_only:
            return {p: v for p, v in self._best.items() if v[2] == self.latest_round}
        return dict(self._best)

    def to_dict(self) -> dict:
        return {
            "last_round_only": self.last_round_only,
            "latest_round": self.latest_round,
            "entries": [
                {"prompt_id": p, "completion": c, "reward": r, "round": k}
                for p, (c, r, k) in self._best.items()
            ],
        }

    @classmethod
    def from_dict(cls, state: dict) -> PooledBest:
        obj = cls(last_round_only=bool(state["last_round_only"]))
        obj.latest_round = state["latest_round"]
        for e in state["entries"]:
            pid = e["prompt_id"]
            if isinstance(pid, list):  # JSON turns tuples into lists
                pid = tuple(pid)
            obj._best[pid] = (e["completion"], float(e["reward"]), int(e["round"]))
        return obj


REST_SCHEDULE = (0.0, 0.7, 0.8, 0.9, 0.95, 0.99)


def rest_thresholds(I: int, schedule: tuple[float, ...] = REST_SCHEDULE) -> list[float]:
    """Thresholds for Improve steps 0..I: ``schedule[:I+1]`` (ReST, Gulcehre et al. 2023; METHODS A.5)."""
    if I < 0 or I + 1 > len(schedule):
        raise ValueError(f"I={I} needs {I + 1} thresholds; the schedule has {len(schedule)}")
    return list(schedule[: I + 1])


def normalise_rewards(
    r: torch.Tensor, mode: str = "minmax", lo: float | None = None, hi: float | None = None
) -> torch.Tensor:
    """Rescale rewards to [0, 1] (METHODS §7).

    ``"minmax"``: (r − min)/(max − min) over the given tensor (the grown set D_g); a constant
    tensor maps to 0. ``"range"``: (r − lo)/(hi − lo) with a known range (e.g. the world's GT
    range), clamped to [0, 1].
    """
    if mode == "minmax":
        lo_t, hi_t = r.min(), r.max()
        span = hi_t - lo_t
        if float(span) == 0.0:
            return torch.zeros_like(r)
        return (r - lo_t) / span
    if mode == "range":
        if lo is None or hi is None or hi <= lo:
            raise ValueError("mode='range' needs lo < hi")
        return ((r - lo) / (hi - lo)).clamp(0.0, 1.0)
    raise ValueError(f"unknown mode {mode!r}; expected 'minmax' or 'range'")


def rest_filter(normalised_rewards: torch.Tensor, step_index: int, thresholds: list[float]) -> torch.Tensor:
    """ReST Improve filter F = 1[R > τ] (Gulcehre et al. 2023), METHODS §7 convention:

    step 0 keeps R ≥ τ_0 (τ_0 = 0: all of D_g, reward-0 samples included); steps ≥ 1 keep R > τ_step.
    """
    if not 0 <= step_index < len(thresholds):
        raise ValueError(f"step_index {step_index} out of range for {len(thresholds)} thresholds")
    tau = thresholds[step_index]
    if step_index == 0:
        return normalised_rewards >= tau
    return normalised_rewards > tau
