"""Reward-hacking alarms for the RL methods (PPO, GRPO, RLOO): pure checks over the logged history.

A policy that games its reward leaves marks in the numbers every RL run already logs (Gao et al.
2022; the issue-25 PPO run: reward −1.09 → 1.23 while completions shrank 16 → 5 tokens at KL 2.2):

- ``length_collapse``: the mean completion length of the last ``window`` steps is below
  ``length_frac`` of the first ``window`` steps' (empty or truncated answers that a reward favours);
- ``kl``: the mean sequence KL to the reference over the last ``window`` steps passes ``kl_limit``
  nats (the policy has left the region where the reward model was trained);
- ``proxy_vs_check``: the proxy reward rose while an independent check fell by more than
  ``min_drop`` (and, for a check logged every step, by more than twice the standard error of the
  windows' difference) between the first and last ``window`` steps — the check is the ground truth (``gt``,
  when the prompt source has one) or the reward on held-out dev prompts (``dev_reward``, PPO).

:func:`detect` is a pure function of the history; :class:`HackingAlarms` warns once per alarm and
keeps what fired for the run's result JSON. Nothing stops the run: the alarm is for the person.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

CHECKS = ("gt", "dev_reward")     # independent checks, in order of preference


def _series(history: list[dict], key: str) -> list[float]:
    return [float(h[key]) for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]


def _mean(x: list[float]) -> float:
    return sum(x) / len(x)


def _se_of_diff(a: list[float], b: list[float]) -> float:
    """Standard error of mean(a) − mean(b) from the windows' own spread (0 for one-point windows)."""
    if len(a) < 2 or len(b) < 2:
        return 0.0
    var = [sum((x - _mean(v)) ** 2 for x in v) / (len(v) - 1) for v in (a, b)]
    return math.sqrt(var[0] / len(a) + var[1] / len(b))


def detect(history: list[dict], *, length_frac: float = 0.5, kl_limit: float = 1.0, window: int = 3,
           min_drop: float = 0.02) -> dict[str, str]:
    """The alarms ``history`` (logged rows with ``reward``, ``length``, ``kl``, ``gt``/``dev_reward``)
    shows now: alarm name → one-line message."""
    out = {}
    lengths = _series(history, "length")
    if len(lengths) >= 2 * window:
        first, now = _mean(lengths[:window]), _mean(lengths[-window:])
        if first > 0 and now < length_frac * first:
            out["length_collapse"] = (f"mean completion length fell to {now:.1f} tokens from {first:.1f} in the "
                                      f"first {window} steps (< {length_frac:.0%}); read the samples")
    kls = _series(history, "kl")
    if len(kls) >= window and _mean(kls[-window:]) > kl_limit:
        out["kl"] = (f"KL to the reference is {_mean(kls[-window:]):.2f} nats (> {kl_limit:g}); the reward is being "
                     "optimised far from the reference (raise the KL coefficient)")
    n_reward = len(_series(history, "reward"))
    for check in CHECKS:
        pairs = [(float(h["reward"]), float(h[check])) for h in history
                 if isinstance(h.get("reward"), (int, float)) and isinstance(h.get(check), (int, float))]
        # A check logged every step (the ground truth of a small batch) is noisy step to step: wait for two full
        # windows and ask for a drop beyond twice its standard error, or a healthy run alarms at step 2 on noise
        # (seen on the demo's PPO). A sparse check (PPO's dev reward, every few steps) compares what there is.
        dense = len(pairs) == n_reward
        if dense and len(pairs) < 2 * window:
            continue
        w = min(window, len(pairs) // 2)
        if w < 1:
            continue
        r0, r1 = _mean([p[0] for p in pairs[:w]]), _mean([p[0] for p in pairs[-w:]])
        first, last = [p[1] for p in pairs[:w]], [p[1] for p in pairs[-w:]]
        c0, c1 = _mean(first), _mean(last)
        if r1 > r0 and c0 - c1 > max(min_drop, 2 * _se_of_diff(first, last)):
            out["proxy_vs_check"] = (f"the reward rose {r0:.3g} → {r1:.3g} while the independent check '{check}' "
                                     f"fell {c0:.3g} → {c1:.3g}")
        break
    return out


@dataclass
class HackingAlarms:
    """Runs :func:`detect` after every logged step; warns the first time each alarm fires."""
    length_frac: float = 0.5
    kl_limit: float = 1.0
    window: int = 3
    min_drop: float = 0.02
    fired: list[dict] = field(default_factory=list)

    def update(self, history: list[dict]) -> list[str]:
        seen = {f["alarm"] for f in self.fired}
        new = []
        for name, msg in detect(history, length_frac=self.length_frac, kl_limit=self.kl_limit, window=self.window,
                                min_drop=self.min_drop).items():
            if name in seen:
                continue
            step = len(history)
            self.fired.append({"alarm": name, "step": step, "message": msg})
            warnings.warn(f"reward-hacking alarm at step {step}: {msg}", stacklevel=2)
            new.append(name)
        return new

    @classmethod
    def from_log(cls, log) -> HackingAlarms:
        """The thresholds a method's ``log`` group sets (``log.alarm_length_frac``, ``log.alarm_kl``)."""
        return cls(length_frac=getattr(log, "alarm_length_frac", 0.5), kl_limit=getattr(log, "alarm_kl", 1.0))
