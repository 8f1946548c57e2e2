"""Fast checks of the ReST and HIR method plumbing: threshold schedule application, learning-rate decay, original
data, hindsight relabeling on hand-written outputs, HIR batch construction and loss, and bad-config errors."""
import math
import sys
import types

import pytest
import torch

from alignstack.config import ConfigError, load
from alignstack.data.render import Rendered
from alignstack.methods import hir, rest
from alignstack.world import tasks as T

ADD = T.Task("add", "What is 3 + 5?", "8")
SORT = T.Task("sort", "Sort: c a b", "a b c")


# ------------------------------------------------------------------ ReST
def test_improve_plan_thresholds_and_lr_decay_across_grow_steps():
    cfg = rest.ReSTConfig(grow_steps=2, improve_steps=2, lr_decay=0.5)
    cfg.optim.lr = 1e-3
    plan = rest.improve_plan(cfg)
    assert [(g, i, tau) for g, i, tau, _ in plan] == [(1, 0, 0.0), (1, 1, 0.7), (1, 2, 0.8),
                                                      (2, 0, 0.0), (2, 1, 0.7), (2, 2, 0.8)]
    # the learning rate keeps falling over all Improve steps, also across a new Grow step
    assert [lr for *_, lr in plan] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5])


def test_select_step0_keeps_everything_then_strictly_above_rising_thresholds():
    taus = [0.0, 0.7, 0.8]
    r = [0.0, 0.7, 0.75, 0.8, 1.0]
    assert rest.select(r, 0, taus) == [0, 1, 2, 3, 4]          # reward-0 rows kept at step 0 (≥ 0)
    assert rest.select(r, 1, taus) == [2, 3, 4]                # > 0.7: the row exactly at 0.7 is dropped
    assert rest.select(r, 2, taus) == [4]


def test_original_rows_noise():
    from alignstack.tasks import PoolSource
    from alignstack.world.plugin import WorldPromptSource, example_of
    tasks = [ADD, SORT] * 5
    src, exs = WorldPromptSource(pool=1), [example_of(t) for t in tasks]
    clean = rest.original_rows(src, exs, 0, 0.0)
    assert all(T.verify(t, x) for t, x in zip(tasks, clean))
    noisy = rest.original_rows(src, exs, 0, 1.0)
    assert not any(T.verify(t, x) for t, x in zip(tasks, noisy))
    with pytest.raises(ConfigError, match="original=world needs a prompt source with behaviour data"):
        rest.original_rows(PoolSource(exs), exs, 0, 0.2)


def test_original_world_on_a_user_prompts_file_fails_when_the_config_is_built():
    with pytest.raises(ValueError, match="original=world needs the world's prompts"):
        load(rest.ReSTConfig, overrides=["prompts=rows:mine.jsonl", "original=world"])
    assert load(rest.ReSTConfig, overrides=["prompts=rows:mine.jsonl"]).original == "auto"


@pytest.mark.parametrize("over, msg", [
    (["improve_steps=6"], "needs 7 thresholds"),
    (["thresholds=[0.0, 0.9, 0.8, 0.95]"], "must rise strictly"),
    (["loss=gold"], "not implemented"),
    (["normalise=zscore"], "normalise must be"),
    (["reward_range=[1.0, 0.0]"], "reward_range"),
    (["grow_steps=0"], "grow_steps"),
    (["lr_decay=1.5"], "lr_decay"),
])
def test_rest_bad_config(over, msg):
    with pytest.raises(ValueError, match=msg):
        load(rest.ReSTConfig, overrides=over)


# ------------------------------------------------------------------ HIR
def test_world_relabel_on_hand_written_outputs():
    prompt = [{"role": "user", "content": "<correct> What is 3 + 5?"}]
    from alignstack.world.plugin import example_of
    recs = hir.relabel_samples([example_of(ADD)] * 4, [prompt] * 4,
                               ["The answer is 8.", "The answer is 7.", "The answer is 8.", "9"],
                               hir.make_relabeler("world"))
    assert len(recs) == 3                                       # the duplicate output is dropped
    assert [(r["response"], r["pos"], r["neg"]) for r in recs] == [
        ("The answer is 8.", "correct", "wrong"), ("The answer is 7.", "wrong", "correct"), ("9", "wrong", "correct")]


def test_import_relabeler(monkeypatch):
    mod = types.ModuleType("my_relabel_mod")
    mod.always_wrong = lambda example, response: "wrong"
    mod.bad = lambda example, response: "maybe"
    monkeypatch.setitem(sys.modules, "my_relabel_mod", mod)
    f = hir.make_relabeler("import:my_relabel_mod:always_wrong")
    assert hir.relabel_samples([ADD], [[{"role": "user", "content": "x"}]], ["8"], f)[0]["pos"] == "wrong"
    with pytest.raises(ValueError, match="returned 'maybe'"):
        hir.relabel_samples([ADD], [[{"role": "user", "content": "x"}]], ["8"],
                            hir.make_relabeler("import:my_relabel_mod:bad"))


def test_goal_messages_replaces_the_instruction_token():
    p = [{"role": "system", "content": "s"}, {"role": "user", "content": "<correct> Sort: c a b"}]
    assert hir.goal_messages(p, "wrong")[-1]["content"] == "<wrong> Sort: c a b"
    assert hir.goal_messages(p, "wrong")[0] == p[0]
    assert hir.goal_messages([{"role": "user", "content": "Sort: c a b"}], "correct")[-1]["content"] == \
        "<correct> Sort: c a b"


class CharRenderer:
    """Renders a conversation as character codes; loss on the assistant part."""

    def prompt_completion(self, prompt, completion, where=None):
        p = [ord(c) % 50 for c in prompt[-1]["content"] + "|"]
        c = [ord(ch) % 50 for ch in completion]
        return Rendered(p + c, [0] * len(p) + [1] * len(c))


def test_hir_pairs_same_response_tokens_goals_swapped():
    recs = [{"prompt": [{"role": "user", "content": "<correct> Q"}], "response": "ab", "pos": "wrong", "neg": "correct"}]
    (a, b, goal), = hir.hir_pairs(CharRenderer(), recs)
    assert goal == "wrong"
    n = sum(a.loss_mask)
    assert n == sum(b.loss_mask) == 2
    assert a.input_ids[-2:] == b.input_ids[-2:]
    assert a.input_ids[:len("<wrong>")] == [ord(c) % 50 for c in "<wrong>"]          # positive = relabelled
    assert b.input_ids[:len("<correct>")] == [ord(c) % 50 for c in "<correct>"]


class ConstModel(torch.nn.Module):
    """Logits independent of the input: every position predicts p = softmax(w)."""

    def __init__(self, V=4):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([math.log(3.0), 0.0, 0.0, 0.0]))

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        return types.SimpleNamespace(logits=self.w.expand(*input_ids.shape, -1))


def test_hir_batch_loss_hand_values():
    # p = [1/2, 1/6, 1/6, 1/6]; response tokens [0, 1]; instructions cannot change the logits, so
    # p_pos = p_neg and the contrastive term is exactly log 2 for any ε
    m = ConstModel()
    pos = {"input_ids": torch.tensor([[3, 2, 0, 1]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
           "loss_mask": torch.tensor([[0, 0, 1, 1]])}
    neg = {**pos, "input_ids": torch.tensor([[2, 2, 0, 1]])}
    loss, st = hir.hir_batch_loss(m, pos, neg, epsilon=0.0, contrastive_coef=1.0, entropy_coef=0.0)
    sup = (-math.log(0.5) - math.log(1 / 6)) / 2
    assert st["sup"].item() == pytest.approx(sup, abs=1e-6)
    assert st["contrastive"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert loss.item() == pytest.approx(sup + math.log(2), abs=1e-6)
    ent = -(0.5 * math.log(0.5) + 3 * (1 / 6) * math.log(1 / 6))
    assert st["entropy"].item() == pytest.approx(ent, abs=1e-6)
    loss0, _ = hir.hir_batch_loss(m, pos, neg, epsilon=0.0, contrastive_coef=0.0, entropy_coef=0.5)
    assert loss0.item() == pytest.approx(sup - 0.5 * ent, abs=1e-6)   # the ablation switch drops the term


@pytest.mark.parametrize("over, msg", [
    (["mode=ppo"], "mode must be"),
    (["relabel=verifier"], "needs the verifier key"),
    (["relabel=bogus"], "cannot resolve .bogus. as a relabeler"),
    (["epsilon=1.0"], "epsilon"),
    (["contrastive_coef=-1"], "contrastive_coef"),
    (["rounds=0"], "rounds"),
])
def test_hir_bad_config(over, msg):
    with pytest.raises(ValueError, match=msg):
        load(hir.HIRConfig, overrides=over)


def test_farl_cli_maps_to_hir_mode():
    from alignstack.cli import METHOD_BASE, METHODS
    assert METHODS["farl"] == ("alignstack.methods.hir", "HIRConfig")
    assert load(hir.HIRConfig, overrides=METHOD_BASE["farl"]).mode == "farl"


def test_goal_weights_balance_the_two_goals():
    w = hir.goal_weights(["wrong", "wrong", "wrong", "correct"], balance=True)
    assert w == pytest.approx([4 / 6, 4 / 6, 4 / 6, 2.0])               # each goal: half of the total weight 4
    assert sum(w[:3]) == pytest.approx(w[3]) and sum(w) == pytest.approx(4)
    assert hir.goal_weights(["wrong", "correct"], balance=False) == [1.0, 1.0]
    assert hir.goal_weights(["wrong", "wrong"], balance=True) == [1.0, 1.0]   # one goal only: unchanged
    w = hir.goal_weights(["wrong", "wrong", "wrong", "correct"], balance=True, correct_share=0.75)
    assert w == pytest.approx([1 / 3, 1 / 3, 1 / 3, 3.0])               # correct rows: 3/4 of the total weight 4
    with pytest.raises(ValueError, match="correct_share"):
        hir.HIRConfig(correct_share=1.0)


def test_hir_batch_loss_row_weights_hand_values():
    # two rows under the constant model: row 0 labels [0, 0], row 1 labels [1, 1]; p = [1/2, 1/6, 1/6, 1/6]
    m = ConstModel()
    pos = {"input_ids": torch.tensor([[3, 0, 0], [3, 1, 1]]), "attention_mask": torch.ones(2, 3, dtype=torch.long),
           "loss_mask": torch.tensor([[0, 1, 1], [0, 1, 1]])}
    neg = {**pos, "input_ids": torch.tensor([[2, 0, 0], [2, 1, 1]])}
    w = torch.tensor([0.5, 1.5])
    _, st = hir.hir_batch_loss(m, pos, neg, epsilon=0.0, contrastive_coef=1.0, entropy_coef=0.0, row_weights=w)
    # token mean over 4 tokens, each row's tokens weighted: (0.5·2·log 2 + 1.5·2·log 6) / 4
    assert st["sup"].item() == pytest.approx((0.5 * 2 * math.log(2) + 1.5 * 2 * math.log(6)) / 4, abs=1e-6)
    assert st["contrastive"].item() == pytest.approx(math.log(2), abs=1e-6)   # mean of w·log 2, mean w = 1
    _, st0 = hir.hir_batch_loss(m, pos, neg, epsilon=0.0, contrastive_coef=1.0, entropy_coef=0.0,
                                contrastive_epsilon=0.2)
    assert st0["sup"].item() == pytest.approx((2 * math.log(2) + 2 * math.log(6)) / 4, abs=1e-6)
