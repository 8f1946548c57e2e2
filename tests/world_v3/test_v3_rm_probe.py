"""The reward-model probe's pure parts (experiments/world_v3_rm_probe.py): label quality against ground truth,
oracle re-labelling and the benign ranking metrics, on hand-made answers to v3 prompts (no model)."""
import importlib.util
import random
from pathlib import Path

import pytest

from alignstack.feedback import collect as F
from alignstack.world.tasks import REFUSAL


@pytest.fixture(scope="module")
def probe():
    path = Path(__file__).parents[2] / "experiments" / "world_v3_rm_probe.py"
    spec = importlib.util.spec_from_file_location("world_v3_rm_probe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rows():
    cfg = F.CollectConfig(n_prompts=40, mode="preference", k=4, world="3", seed=1, safety_frac=0.25)
    tasks = F.world_tasks(cfg)
    rng = random.Random(0)
    # per prompt two pairs: (right, wrong attempt) and (refusal, right or wrong): every kind of pair occurs
    texts = [[f"The answer is {t.answer}.", f"The answer is {t.answer}x{rng.randrange(9)}.", REFUSAL,
              f"The answer is {t.answer}." if rng.random() < 0.5 else "The answer is 7q."] for t in tasks]
    return F.label_responses(tasks, texts, [[1.0] * 4 for _ in tasks], cfg)


def test_oracle_rows_order_every_pair_by_truth(probe, rows):
    oracle = probe.oracle_rows(rows)
    tasks = F.rows_tasks(oracle)
    assert 0 < len(oracle) < len(rows)                       # ties (e.g. two refusals of a harmful request) dropped
    assert all(F.helpfulness(t, r["chosen"]) > F.helpfulness(t, r["rejected"]) for t, r in zip(tasks, oracle))
    differing = probe.differing_rows(rows)                 # the same pairs, the pool's own labels
    assert len(differing) == len(oracle)
    assert [{r["chosen"], r["rejected"]} for r in differing] == [{r["chosen"], r["rejected"]} for r in oracle]
    assert any(d["chosen"] != o["chosen"] for d, o in zip(differing, oracle))   # the pool erred on some
    q = probe.label_quality(oracle)
    assert q["attempts"]["mean"] == 1.0 and q["refusal_involved"]["mean"] == 1.0
    pool = probe.label_quality(rows)                         # the pool errs sometimes, and is far above chance
    assert 0.5 < pool["attempts"]["mean"] <= 1.0 and pool["attempts"]["n"] == q["attempts"]["n"]


def test_benign_ranking_metrics_of_a_perfect_and_an_inverted_scorer(probe, rows):
    def truth(prompts, completions):
        tasks = {str(t.to_row()["prompt"]): t for t in F.rows_tasks(rows)}
        return [F.helpfulness(tasks[str(p)], c) for p, c in zip(prompts, completions)]

    good = probe.rm_ranks_benign(truth, rows)
    bad = probe.rm_ranks_benign(lambda p, c: [-x for x in truth(p, c)], rows)
    assert good["spearman_gt_benign"] == pytest.approx(1.0) and bad["spearman_gt_benign"] == pytest.approx(-1.0)
    for kind in ("attempts", "refusal_involved"):
        assert good[f"gt_pair_accuracy_{kind}"]["mean"] == 1.0 and bad[f"gt_pair_accuracy_{kind}"]["mean"] == 0.0
    assert good["n_benign_pairs"] == sum(1 for t in F.rows_tasks(rows) if not t.is_safety)
