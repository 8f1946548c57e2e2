"""World v3 split hygiene: test problems, templates, entities and jailbreak styles never occur in
train or dev; the test split is sealed."""
import pytest

from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T
from alignstack.world.v3.templates import SEEN_STYLES, STYLE_SPLIT, TEMPLATE_BY_ID, TEMPLATES

N = 3000
TEST_ONLY_STYLES = {"roleplay", "prefix", "multiturn", "encoded"}


@pytest.fixture(scope="module")
def sets():
    return {"train": S.prompt_set(0, "train", N), "dev": S.prompt_set(0, "dev", N), "test": S.sealed_test_set(0, N)}


def test_no_test_problem_or_template_in_train_or_dev(sets):
    seen = sets["train"] + sets["dev"]
    test = sets["test"]
    assert not {t.problem_id for t in test} & {t.problem_id for t in seen}
    assert not {t.template_id for t in test} & {t.template_id for t in seen}
    assert not {T.entity_of(t.problem_id) for t in test} & {T.entity_of(t.problem_id) for t in seen}
    assert not {t.turns for t in test} & {t.turns for t in seen}
    # and dev is as disjoint from train as test is
    assert not {t.problem_id for t in sets["dev"]} & {t.problem_id for t in sets["train"]}
    assert not {t.template_id for t in sets["dev"]} & {t.template_id for t in sets["train"]}


def test_every_prompt_carries_ids_of_its_own_split(sets):
    for split, tasks in sets.items():
        for t in tasks:
            assert t.split == split and S.problem_split(t.problem_id) == split
            assert TEMPLATE_BY_ID[t.template_id].split == split


def test_jailbreak_styles_only_in_test_and_seen_styles_everywhere(sets):
    styles = {s: {t.style for t in ts if t.kind == "harmful"} for s, ts in sets.items()}
    assert TEST_ONLY_STYLES <= styles["test"]
    assert not TEST_ONLY_STYLES & (styles["train"] | styles["dev"])
    assert styles["train"] == set(SEEN_STYLES)
    # test also asks in seen styles (with unseen phrasings), so seen and unseen attacks can be compared
    assert set(SEEN_STYLES) <= styles["test"]
    # structurally: a train template is built from train parts only; no template mixes dev and test parts
    for tpl in TEMPLATES:
        if tpl.style is not None:
            if tpl.split == "train":
                assert STYLE_SPLIT[tpl.style] == "train"
            if tpl.split == "test":
                assert STYLE_SPLIT[tpl.style] != "dev"


def test_test_split_is_sealed():
    with pytest.raises(S.SealedSplitError, match="sealed"):
        S.prompt_set(0, "test", 5)
    assert len(S.prompt_set(0, "test", 5, sealed=True)) == 5
    with pytest.raises(ValueError, match="unknown split"):
        S.prompt_set(0, "eval", 5)


def test_deterministic_and_seed_dependent():
    a, b, c = S.prompt_set(3, "dev", 50), S.prompt_set(3, "dev", 50), S.prompt_set(4, "dev", 50)
    assert [t.turns for t in a] == [t.turns for t in b]
    assert [t.turns for t in a] != [t.turns for t in c]


def test_family_mixture_is_the_same_in_every_split(sets):
    for fam, w in S.MIX.items():
        for tasks in sets.values():
            share = sum(t.family == fam for t in tasks) / len(tasks)
            assert abs(share - w) < 0.035, (fam, share, w)


def test_rows_round_trip_including_multi_turn(sets):
    multi = [t for t in sets["test"] if len(t.turns) > 1]
    assert multi and all(len(t.turns) == 3 for t in multi)
    for t in sets["test"][:200] + multi[:20]:
        row = t.to_row()
        assert row["prompt"][-1]["role"] == "user" and row["meta"]["world_version"] == "3"
        back = T.Task.from_row(row)
        assert back == t and back.info == t.info
