"""Reward-hacking alarms: hand-made histories (issue 25)."""
import warnings

import pytest

from alignstack.train.alarms import HackingAlarms, detect


def rows(**series):
    n = len(next(iter(series.values())))
    return [{k: v[i] for k, v in series.items() if v[i] is not None} for i in range(n)]


def test_length_collapse():
    h = rows(length=[16, 15, 17, 12, 9, 7, 6, 5], reward=[0] * 8)
    a = detect(h)
    assert set(a) == {"length_collapse"} and "fell to 6.0 tokens from 16.0" in a["length_collapse"]
    assert detect(h[:5]) == {}                        # the last 3 steps (12, 9, 17..) are not below half yet
    assert detect(rows(length=[16, 15, 17, 9, 8, 9], reward=[0] * 6)) == {}       # 8.7 > 8.0


def test_kl_threshold():
    assert "kl" in detect(rows(kl=[0.1, 0.8, 1.5, 2.2]))       # mean of the last 3: 1.5
    assert detect(rows(kl=[0.1, 0.8, 1.0, 1.1])) == {}          # 0.97
    assert "kl" in detect(rows(kl=[0.2, 0.3, 0.6]), kl_limit=0.3)


def test_proxy_rises_while_the_check_falls():
    h = rows(reward=[-1.0, -0.5, 0.0, 0.5, 1.0, 1.2], gt=[0.60, 0.61, 0.59, 0.50, 0.45, 0.40])
    a = detect(h)
    assert "proxy_vs_check" in a and "'gt' fell 0.6 → 0.45" in a["proxy_vs_check"]
    assert detect(rows(reward=[-1.0, -0.5, 0.0, 0.5, 1.0, 1.2], gt=[0.6, 0.6, 0.61, 0.62, 0.63, 0.64])) == {}
    assert detect(rows(reward=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5], gt=[0.6, 0.5, 0.4, 0.3, 0.2, 0.1])) == {}
    # a check logged every step: no alarm before two full windows, nor for a drop within its noise
    assert detect(h[:5]) == {}
    noisy = rows(reward=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5], gt=[0.70, 0.55, 0.65, 0.50, 0.68, 0.56])
    assert detect(noisy) == {}               # 0.633 → 0.580: a drop of 0.053, but 2 SE = 2 × 0.069
    steady = rows(reward=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5], gt=[0.63, 0.64, 0.63, 0.58, 0.58, 0.57])
    assert "'gt' fell 0.633 → 0.577" in detect(steady)["proxy_vs_check"]   # the same mean drop without the noise
    # PPO's held-out dev reward, logged every few steps only
    h = rows(reward=[0.0, 0.2, 0.4, 0.6], dev_reward=[0.5, None, None, 0.3])
    assert "'dev_reward' fell 0.5 → 0.3" in detect(h)["proxy_vs_check"]


def test_alarms_warn_once_and_are_kept_for_the_result():
    al = HackingAlarms()
    h = []
    with pytest.warns(UserWarning):
        for L in (16, 16, 16, 4, 4, 4, 4):
            h.append({"length": L, "reward": 0.0})
            assert al.update(h) == (["length_collapse"] if len(h) == 6 else [])
    assert al.fired == [{"alarm": "length_collapse", "step": 6, "message": detect(h)["length_collapse"]}]
    with pytest.warns(UserWarning, match="reward-hacking alarm") as rec:
        al2 = HackingAlarms()
        al2.update(h[:6])
        al2.update(h)
    assert len(rec) == 1 and len(al2.fired) == 1


def short_reward(prompts, completions, **meta):
    """Rewards brevity: the degenerate optimum is the empty answer (what the length alarm is for)."""
    return [-float(len(c)) for c in completions]


def test_grpo_run_that_collapses_its_lengths_reports_the_alarm(nano, tmp_path):
    import torch

    from alignstack.config import load
    from alignstack.methods import grpo
    torch.set_num_threads(1)
    cfg = load(grpo.GRPOConfig, overrides=[f"out={tmp_path}", f"model.path={nano['path']}", "steps=10",
                                           "prompts_per_step=4", "num_generations=4", "max_new_tokens=16",
                                           "reward=import:test_alarms:short_reward", "optim.lr=3e-2",
                                           "optim.warmup_steps=0", "log.progress=false"])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = grpo.train(cfg)
    # measured: length 16 → 1 token and KL ≈ 7 by step 10 (reward −42 → 0)
    fired = {a["alarm"]: a for a in res["alarms"]}
    assert {"length_collapse", "kl"} <= fired.keys()
    assert sum("reward-hacking alarm" in str(x.message) for x in w) == len(res["alarms"])


def test_thresholds_come_from_the_log_config():
    from alignstack.config import ConfigError, load
    from alignstack.methods import ppo
    cfg = load(ppo.PPOConfig, overrides=["log.alarm_kl=5", "log.alarm_length_frac=0.2"])
    al = HackingAlarms.from_log(cfg.log)
    assert (al.kl_limit, al.length_frac) == (5.0, 0.2)
    assert detect(rows(kl=[2.0, 2.2, 2.4]), kl_limit=al.kl_limit) == {}
    with pytest.raises(ConfigError, match="alarm_kl"):
        load(ppo.PPOConfig, overrides=["log.alarm_kl=0"])
