"""Length-grouped batch plans: every item once per epoch, deterministic by (seed, step), less padding."""
import random

from alignstack.train.supervised import BatchPlan


def test_grouped_plan_covers_each_item_once_per_epoch_and_is_deterministic():
    rng = random.Random(0)
    lengths = [rng.randint(5, 80) for _ in range(256)]
    a = BatchPlan(256, 7, 8, lengths, group=8)
    b = BatchPlan(256, 7, 8, lengths, group=8)
    epoch = [i for s in range(32) for i in a(s)]
    assert sorted(epoch) == list(range(256))
    assert [b(s) for s in (5, 3, 31, 0)] == [a(s) for s in (5, 3, 31, 0)]   # any order of access (resume)


def test_grouped_plan_pads_less_than_random():
    rng = random.Random(1)
    lengths = [rng.randint(5, 80) for _ in range(512)]

    def padded(plan):
        return sum(max(lengths[i] for i in plan(s)) * 8 - sum(lengths[i] for i in plan(s)) for s in range(64))
    plain, grouped = padded(BatchPlan(512, 0, 8, lengths, 0)), padded(BatchPlan(512, 0, 8, lengths, 16))
    assert grouped < 0.3 * plain, (grouped, plain)
    assert BatchPlan(512, 0, 8, None, 16)(0) == BatchPlan(512, 0, 8, lengths, 0)(0)   # no lengths: plain order
