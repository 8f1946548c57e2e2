"""Rejection sampling: best-of-K selection, the keep-best-of-all-rounds pool across runs, the
reward-over-K curve, clear config errors, and (reduced experiments) ground-truth gains over SFT and of
a second round (fresh prompts) over the first."""
import json

import pytest
import torch

from alignstack.config import ConfigError, load
from alignstack.methods import rejection_sampling as rs


def digit_reward(prompts, completions, **meta):
    """Deterministic, varied: share of digits (exercises import:module:function too)."""
    return [sum(c.isdigit() for c in x) / max(1, len(x)) for x in completions]


def big_digit_reward(prompts, completions, **meta):
    """The same ranking as ``digit_reward`` on another scale (a later round's reward model would have its own)."""
    assert len(meta["completion_ids"]) == len(completions)
    return [50.0 + 100.0 * r for r in digit_reward(prompts, completions)]


def _cfg(tmp_path, nano, *extra):
    return load(rs.RejectionSamplingConfig, overrides=[
        f"out={tmp_path}", f"model.path={nano['path']}", "reward=import:test_rejection_sampling:digit_reward",
        "n_prompts=12", "k=4", "max_new_tokens=12", "optim.max_steps=2", "optim.batch_size=4", "log.progress=false",
        *extra])


def test_selects_best_of_k_and_pools_rounds(nano, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path.parent))
    torch.manual_seed(0)
    # the random nano model rarely ends a response: let every response count as finished
    orig = rs.sample_and_score

    def all_finished(*a, **k):
        texts, r, fin, gt = orig(*a, **k)
        return texts, r, torch.ones_like(fin), gt
    monkeypatch.setattr(rs, "sample_and_score", all_finished)
    r1 = rs.train(_cfg(tmp_path / "r1", nano))
    from alignstack.rollout.experience import PromptSource
    unique = {json.dumps(r["prompt"], sort_keys=True) for r in PromptSource(0, pool=12).rows}   # one best per prompt
    assert r1["kept"] == len(unique) and r1["reward_best_mean"] >= r1["reward_mean"]
    rows = [json.loads(x) for x in (tmp_path / "r1" / "selected.jsonl").read_text().splitlines()]
    assert len(rows) == len(unique) and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    for r in rows:   # each kept response has the best reward of its prompt's K samples
        assert r["meta"]["reward"] == pytest.approx(digit_reward(None, [r["messages"][-1]["content"]])[0])
    curve = json.loads((tmp_path / "r1" / "reward_over_k.json").read_text())["1.0"]
    assert curve["4"][0] >= curve["1"][0] and curve["4"][0] >= curve["4"][1]       # max over K grows, ≥ median
    assert (tmp_path / "r1" / "reward_over_k.png").exists() and (tmp_path / "r1" / "model" / "config.json").exists()
    # round 2 with the pool: every prompt keeps the better of its two rounds' selections
    r2 = rs.train(_cfg(tmp_path / "r2", nano, f"pool={tmp_path / 'r1' / 'pool.json'}", "round=2", "seed=1"))
    pool1 = {e["prompt_id"]: e["reward"] for e in json.loads((tmp_path / "r1" / "pool.json").read_text())["entries"]}
    pool2 = {e["prompt_id"]: e["reward"] for e in json.loads((tmp_path / "r2" / "pool.json").read_text())["entries"]}
    assert set(pool1) <= set(pool2) and all(pool2[k] >= v for k, v in pool1.items())
    assert r2["kept"] == len(pool2)


@pytest.mark.parametrize("rescore", [True, False])
def test_an_earlier_rounds_selection_is_rescored_by_this_rounds_reward(nano, tmp_path, monkeypatch, rescore):
    """Round 1 scored on a larger scale than round 2 (a retrained RM): re-scored, every pooled selection carries
    round 2's reward of its own text; without re-scoring (the ablation) round 1's inflated rewards win every prompt."""
    monkeypatch.syspath_prepend(str(tmp_path.parent))
    orig = rs.sample_and_score

    def all_finished(*a, **k):
        texts, r, fin, gt = orig(*a, **k)
        return texts, r, torch.ones_like(fin), gt
    monkeypatch.setattr(rs, "sample_and_score", all_finished)
    rs.train(_cfg(tmp_path / "r1", nano, "reward=import:test_rejection_sampling:big_digit_reward"))
    r2 = rs.train(_cfg(tmp_path / "r2", nano, f"pool={tmp_path / 'r1' / 'pool.json'}", "round=2",
                       f"rescore_pool={str(rescore).lower()}"))
    pool2 = json.loads((tmp_path / "r2" / "pool.json").read_text())["entries"]
    if rescore:
        assert r2["pool_rescored"] == len(pool2) > 0
        assert all(e["reward"] == pytest.approx(digit_reward(None, [e["completion"]])[0]) for e in pool2)
    else:
        assert r2["pool_rescored"] == 0 and r2["pool_from_earlier_rounds"] == len(pool2)
        assert all(e["round"] == 1 and e["reward"] >= 50.0 for e in pool2)


def test_bad_configs_are_clear(tmp_path, nano):
    with pytest.raises(ConfigError, match="k must be"):
        load(rs.RejectionSamplingConfig, overrides=["k=0"])
    with pytest.raises(ConfigError, match="pool: .* not found"):
        rs.train(_cfg(tmp_path, nano, "pool=/nope/pool.json"))


def _oracle_round(trained_world, out, *extra) -> dict:
    """Best-of-8 at T = 1 by the world's helpfulness (an oracle reward model) on 1,000 train prompts."""
    cfg = load(rs.RejectionSamplingConfig, overrides=[
        f"out={out}", f"model.path={trained_world['sft']}", "reward=world:helpfulness", "n_prompts=1000", "k=8",
        "log.progress=false", *extra])
    return rs.train(cfg)


@pytest.fixture(scope="module")
def round1(trained_world, tmp_path_factory):
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("rs_round1")
    return out, _oracle_round(trained_world, out)


@pytest.mark.slow
def test_rejection_sampling_beats_sft_on_ground_truth(trained_world, round1, margin):
    """Reduced experiment: round 1, fine-tuned from SFT, beats SFT on held-out prompts (paired 95% CI clear
    of 0)."""
    from alignstack.eval.ground_truth import EvalConfig, compare, evaluate
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.world import corpus as C
    out, res = round1
    assert res["gt_of_kept"] > res["gt_mean"]
    tok = load_tokenizer(trained_world["sft"])
    tasks = C.prompt_set(0, "eval", 800)
    # 4 samples per prompt: with 1 the seed-1 fixture cleared zero by only 0.6 SE (scripts/margins.py)
    ecfg = EvalConfig(greedy=False, samples=4)
    c = compare(evaluate(load_model(out / "model"), tok, ecfg, tasks),
                evaluate(load_model(trained_world["sft"]), tok, ecfg, tasks))
    margin.ci_above("rejection sampling (oracle RM) − SFT score", c["diff"])


@pytest.mark.slow
def test_second_round_on_fresh_prompts_beats_the_first(trained_world, round1, tmp_path, margin):
    """Llama 2's iterated rejection sampling, reduced (experiments/rs_rounds.py: +0.030 [+0.021, +0.039] on
    2,000 prompts x 4): round 2 samples from the round-1 model on fresh train prompts (seed 1) and continues
    it on its own selections; it beats round 1 on 1,000 held-out prompts x 4 samples (paired 95% CI > 0)."""
    from alignstack.eval.ground_truth import EvalConfig, compare, eval_tasks, evaluate
    from alignstack.models.load import load_model, load_tokenizer
    r1, _ = round1
    res = _oracle_round(trained_world, tmp_path, f"model.path={r1 / 'model'}", "round=2", "seed=1")
    assert res["kept"] > 500 and res["pool_from_earlier_rounds"] == 0
    tok = load_tokenizer(trained_world["sft"])
    ecfg = EvalConfig(n_prompts=1000, seed=2029, samples=4, greedy=False)
    tasks = eval_tasks(ecfg)
    c = compare(evaluate(load_model(tmp_path / "model"), tok, ecfg, tasks),
                evaluate(load_model(r1 / "model"), tok, ecfg, tasks))
    margin.ci_above("rejection sampling round 2 − round 1 score (oracle RM)", c["diff"])


def test_no_finished_sample_is_a_clear_error(nano, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path.parent))
    orig = rs.sample_and_score

    def none_finished(*a, **k):            # every answer cut at max_new_tokens: nothing may be selected
        texts, r, fin, gt = orig(*a, **k)
        return texts, r, torch.zeros_like(fin), gt
    monkeypatch.setattr(rs, "sample_and_score", none_finished)
    with pytest.raises(ValueError, match=r"no prompt of 12 had a finished sample among k=4 within max_new_tokens=12"):
        rs.train(_cfg(tmp_path / "r", nano))
