"""experiments/world_v3_recall_probe.py: its fact-completion items are the canonical fact sentences of train and
dev creatures only (never test), one continuation per value with the true one among them; its extraction summary
is best-of-k over ground-truth helpfulness."""

import pytest

from alignstack.world.v3 import lexicon as L
from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T


@pytest.fixture(scope="module")
def mod(load_experiment):
    return load_experiment("world_v3_recall_probe")


def test_items_are_canonical_fact_sentences_of_the_split(mod):
    for split in ("train", "dev"):
        items = mod.recall_items(split, 5)
        assert len(items) == 5 * len(mod.SLOTS)
        for it in items:
            assert S.split_of_key(f"creature:{it['entity']}") == split
            c = L.CREATURE_BY_NAME[it["entity"]]
            assert it["answer"] == getattr(c, it["slot"]) and it["answer"] in it["continuations"]
            # the true continuation rebuilds the canonical sentence the corpus states; every other value differs
            canon = L.fact_paraphrases("creature", c, it["slot"])[0]
            assert it["prefix"] + it["continuations"][it["answer"]] == canon
            assert len(set(it["continuations"].values())) == len(it["continuations"]) > 2
    with pytest.raises(ValueError, match="train and dev only"):
        mod.recall_items("test", 5)


def test_summary_is_best_of_k_by_ground_truth(mod):
    tasks = S.prompt_set(0, "dev", 2, {"lookup": 1.0})
    a, b = tasks
    right = T.answer_sentence(a, a.answer)
    wrong_b = T.answer_sentence(b, next(v for v in T.LORE_VOCAB[b.info["slot"]] if v != b.answer))
    res = mod.summarise_samples(tasks, [[right, T.REFUSAL], [wrong_b, wrong_b]])
    assert res["best_of_k"] == pytest.approx(0.5)          # prompt a: one right sample; prompt b: none
    assert res["mean_T1"] == pytest.approx(0.25)
    assert res["names_creature"] == pytest.approx(0.75)    # the refusal names no creature
    assert [f["prompt"] for f in res["failing"]] == [b.turns[-1]]
    assert res["failing"][0]["top"] == [(wrong_b, 2)]


def test_word_problems_have_no_creature_share(mod):
    (t,) = S.prompt_set(0, "dev", 1, {"word": 1.0})
    res = mod.summarise_samples([t], [[T.word_working(t, t.answer), "no idea"]])
    assert res["best_of_k"] == 1.0 and res["names_creature"] is None and res["failing"] == []
