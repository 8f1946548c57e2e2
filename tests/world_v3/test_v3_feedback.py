"""Simulated human feedback on world v3: collection from v3's train prompts labelled by its annotator pool,
inter-annotator agreement, the reward model and DPO's generated pairs on v3, pipelines with `world: 3`, and
v2's collection unchanged. Nano models only; nothing here trains for more than two steps."""
import hashlib
import json
import random

import pytest

from alignstack.config import ConfigError, load
from alignstack.feedback import collect as F
from alignstack.world.v3 import annotators as A
from alignstack.world.v3 import splits as S
from alignstack.world.v3 import tasks as T
from alignstack.world.v3.templates import FAMILIES, TEMPLATES

TRAIN_TEMPLATES = {t.id for t in TEMPLATES if t.split == "train"}
POOL_IDS = {f"pool-{i}" for i in range(8)}


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/conftest.py: tiny models run faster on one thread


def _assert_train_only(rows):
    for r in rows:
        m = r["meta"]
        assert m["world_version"] == "3" and m["split"] == "train"
        assert S.problem_split(m["problem_id"]) == "train" and m["template_id"] in TRAIN_TEMPLATES


@pytest.mark.parametrize("mode", ["preference", "ranking"])
def test_v3_collection_rows_are_train_only_and_labelled_by_the_pool(nano, mode):
    from alignstack.data.formats import validate_row

    cfg = F.CollectConfig(n_prompts=10, mode=mode, k=4, max_new_tokens=6, world="3", seed=2)
    rows = F.collect(nano["model"], nano["tokenizer"], cfg)
    assert len(rows) == (20 if mode == "preference" else 10)
    assert all(validate_row(mode, r) == r for r in rows)
    _assert_train_only(rows)
    annotators = [r["annotator"] for r in rows]
    assert set(annotators) == POOL_IDS                       # 10 prompts, 8 members: round-robin reaches all
    careless = [a.id for a in A.make_pool(8, 2, 1) if a.cfg.careless]
    assert careless == ["pool-7"] and "pool-7" in annotators
    per_prompt = annotators[::2] if mode == "preference" else annotators
    if mode == "preference":                                 # both pairs of a prompt: one annotator
        assert annotators[1::2] == per_prompt
    assert all(per_prompt.count(a) <= 2 for a in POOL_IDS)   # balanced: 10 prompts over 8 members
    tasks = F.world_tasks(cfg)
    rebuilt = F.rows_tasks(rows)
    assert rebuilt == ([t for t in tasks for _ in range(2)] if mode == "preference" else tasks)
    assert all(isinstance(t, T.Task) for t in rebuilt)
    assert [t.info for t in rebuilt[:: 2 if mode == "preference" else 1]] == [t.info for t in tasks]


def test_v3_collection_splits_and_safety_mix():
    with pytest.raises(S.SealedSplitError, match="test split is sealed"):
        F.CollectConfig(world="3", split="test")
    with pytest.raises(ValueError, match="world must be one of 2, 3"):
        F.CollectConfig(world="4")
    with pytest.raises(ValueError, match="pool_careless"):
        F.CollectConfig(world="3", pool_size=2, pool_careless=3)
    dev = F.world_tasks(F.CollectConfig(n_prompts=30, world="3", split="eval"))   # eval is v3's dev, as in the plug-in
    assert {t.split for t in dev} == {"dev"} and all(S.problem_split(t.problem_id) == "dev" for t in dev)
    assert F.CollectConfig(world=3).world == "3"
    harmful = F.world_tasks(F.CollectConfig(n_prompts=40, world="3", safety_frac=1.0))
    benign = F.world_tasks(F.CollectConfig(n_prompts=40, world="3", safety_frac=0.0))
    assert all(t.kind == "harmful" for t in harmful) and not any(t.kind == "harmful" for t in benign)
    assert {t.family for t in benign} <= set(FAMILIES) - {"vault", "potion"}
    with pytest.raises(ValueError, match="tasks of the other world version"):
        F.label_responses(harmful[:1], [["a", "b"]], [[1.0, 1.0]], F.CollectConfig(k=2))
    mix = F.family_mix(0.5, S.MIX, S.HARMFUL)
    assert sum(mix[f] for f in S.HARMFUL) == pytest.approx(0.5) and sum(mix.values()) == pytest.approx(1.0)


def test_rows_tasks_and_ground_truth_dispatch_by_world():
    from alignstack.world import tasks as T2

    v3 = F.CollectConfig(n_prompts=6, world="3", mode="ranking", safety_frac=0.5)
    v2 = F.CollectConfig(n_prompts=6, mode="ranking", safety_frac=0.5)
    rng = random.Random(0)
    rows = []
    for cfg, W in ((v3, T), (v2, T2)):
        tasks = F.world_tasks(cfg)
        texts = [[W.good_response(t, rng), W.REFUSAL, "It is 7."] for t in tasks]
        rows += F.label_responses(tasks, texts, [[1.0] * 3] * len(tasks), cfg)
    tasks = F.rows_tasks(rows)                               # one list, both worlds
    assert [type(t) for t in tasks] == [T.Task] * 6 + [T2.Task] * 6
    for t, r in zip(tasks, rows):
        W = T if isinstance(t, T.Task) else T2
        for x in r["responses"]:
            assert F.helpfulness(t, x) == W.helpfulness(t, x)
    vault = next(t for t in tasks[:6] if t.family == "vault")
    code = "".join(T.L.VAULT_BY_NAME[vault.info["entity"]].code)
    assert F.unsafe(vault, f"It starts with {code[:2]}.") and not F.unsafe(vault, T.REFUSAL)   # partial leak counts


def _deterministic(i: int) -> A.PoolAnnotator:
    # (almost) no noise, no errors, no biases, always checks the answer: prefers the right answer every time
    # (a gap of 1 at noise 0.01 picks the worse answer with probability e^-100)
    prof = A.AnnotatorProfile(noise=0.01, error_rate=0.0, length_bias=0.0, politeness_bias=0.0, position_bias=0.0,
                              expertise=1.0, strength_noise=0.0)
    return A.PoolAnnotator(prof, 0, f"exact-{i}")


def test_agreement_drops_with_careless_annotators_hand_checked():
    rng = random.Random(0)
    tasks = [t for t in S.prompt_set(0, "train", 400) if t.kind == "benign"][:200]
    # the right answer against a refusal, shown first on even items and second on odd ones
    items = [(t, T.good_response(t, rng), T.REFUSAL) if i % 2 == 0 else (t, T.REFUSAL, T.good_response(t, rng))
             for i, t in enumerate(tasks)]
    exact = [_deterministic(i) for i in range(4)]
    agree = F.pool_agreement(items, exact)
    # four annotators who all choose the right answer: full agreement, and κ = 1 (the two labels are balanced)
    assert agree == {"pairwise_agreement": 1.0, "fleiss_kappa": 1.0, "n_annotators": 4, "n_items": 200}
    careless = [A.PoolAnnotator(A.AnnotatorProfile(careless=True), 0, f"careless-{i}") for i in range(2)]
    mixed = F.pool_agreement(items, exact + careless)
    # of 15 pairs of annotators, 6 are exact–exact (agree always) and 9 involve a coin (agree half the time):
    # expected pairwise agreement (6 + 9 / 2) / 15 = 0.7
    assert mixed["pairwise_agreement"] == pytest.approx(0.7, abs=0.04)
    assert -1.0 <= mixed["fleiss_kappa"] < agree["fleiss_kappa"] and mixed["n_annotators"] == 6
    # the drawn pool: its one careless member lowers agreement on the same items
    honest = F.pool_agreement(items, A.make_pool(8, 0, 0))
    one = F.pool_agreement(items, A.make_pool(8, 0, 1))
    for a in (honest, one):
        assert 0.0 <= a["pairwise_agreement"] <= 1.0 and -1.0 <= a["fleiss_kappa"] <= 1.0
    assert one["pairwise_agreement"] < honest["pairwise_agreement"] and one["fleiss_kappa"] < honest["fleiss_kappa"]


def test_inter_annotator_of_a_collection_leaves_its_rows_alone():
    cfg = F.CollectConfig(n_prompts=12, world="3", mode="preference", agreement_items=10, seed=4)
    tasks = F.world_tasks(cfg)
    rng = random.Random(1)
    texts = [[T.good_response(t, rng), T.REFUSAL, "It is 7.", "Sure! It is 12."] for t in tasks]
    temps = [[1.0] * 4] * len(tasks)
    rows = F.label_responses(tasks, texts, temps, cfg)
    ia = F.inter_annotator(rows, cfg)
    assert set(ia) == {"pairwise_agreement", "fleiss_kappa", "n_annotators", "n_items"}
    assert ia["n_annotators"] == 8 and ia["n_items"] == 10                 # one pair per prompt
    assert 0.0 <= ia["pairwise_agreement"] <= 1.0 and -1.0 <= ia["fleiss_kappa"] <= 1.0
    assert F.inter_annotator(rows, cfg) == ia                              # a fresh pool each time: deterministic
    assert F.label_responses(tasks, texts, temps, cfg) == rows
    assert F.inter_annotator(rows, F.CollectConfig()) is None              # v2: one annotator, no agreement


# sha256 of the rows v2's collection wrote before world v3 feedback existed (fixed tasks, responses and seed)
V2_DIGESTS = {"ranking": ("066a4cbae19e688a9a70c28d75cc38b875882a21adfb85abc3936879313fae00", 40),
              "preference": ("6039aa64a415aebaf46e498a00f5b670dcfc7220788c110d67d18b0d0275c9e2", 80)}


@pytest.mark.parametrize("mode", sorted(V2_DIGESTS))
def test_v2_collection_is_unchanged(mode):
    from alignstack.world import tasks as T2

    def rows_of(**kw):
        cfg = F.CollectConfig(n_prompts=40, seed=5, mode=mode, k=4, temperatures=[0.7, 1.3], safety_frac=0.3, **kw)
        tasks = F.world_tasks(cfg)
        rng = random.Random(1)
        texts = [[T2.good_response(t, rng), T2.REFUSAL, "It is 7.", "Sure! " + t.answer] for t in tasks]
        return F.label_responses(tasks, texts, [[0.7, 1.3, 0.7, 1.3] for _ in tasks], cfg, "m")

    rows = rows_of()
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    assert (digest, len(rows)) == V2_DIGESTS[mode]
    assert rows_of(world="2", pool_size=3, pool_careless=2) == rows      # pool settings do not touch v2
    assert {r["annotator"] for r in rows} == {"sim-0"} and "world_version" not in rows[0]["meta"]


@pytest.mark.parametrize("mode", ["preference", "ranking"])
def test_reward_model_evaluation_scores_v3_rows_by_v3_truth(mode):
    """A scorer that returns v3's ground-truth helpfulness orders every pair right; safety counts are v3's
    leaks; ranking rows (no strength labels) get their strength buckets from v3's ground-truth gap."""
    from alignstack.methods import reward_model as RM

    cfg = F.CollectConfig(n_prompts=16, world="3", mode=mode, safety_frac=0.5, seed=3)
    tasks = F.world_tasks(cfg)
    rng = random.Random(2)
    texts = [[T.good_response(t, rng), T.REFUSAL,
              T.compliance(t, rng) if t.kind == "harmful" else T.styled_response(t, rng, correct=False, style="rude"),
              "It is 7."] for t in tasks]
    rows = F.label_responses(tasks, texts, [[1.0] * 4] * len(tasks), cfg)
    truth = {(json.dumps(t.messages()), x): T.helpfulness(t, x) for t, xs in zip(tasks, texts) for x in xs}
    res = RM.evaluate(lambda prompts, responses: [truth[(json.dumps(p), x)] for p, x in zip(prompts, responses)],
                      rows)
    assert res["gt_pair_accuracy"]["mean"] == 1.0 and res["gt_pair_accuracy"]["n"] > 0
    assert res["within_prompt_kendall_gt"]["mean"] == pytest.approx(1.0)
    assert res["safety"]["n_unsafe"] == sum(T.leak(t, x) > 0 for t, r in zip(F.rows_tasks(rows), rows)
                                            for x in (r["responses"] if mode == "ranking" else
                                                      [r["chosen"], r["rejected"]])) > 0
    assert sum(b["n"] for b in res["accuracy_by_strength"].values()) == res["n_pairs"]


def test_reward_model_on_v3_feedback(nano, tmp_path):
    from alignstack.methods import reward_model as RM

    over = [f"out={tmp_path}/rm", f"model.path={nano['path']}", "feedback.world=3", "feedback.n_prompts=8",
            "feedback.calib_prompts=0", "feedback.eval_prompts=8", "feedback.k=4", "feedback.max_new_tokens=6",
            "feedback.mode=preference", "feedback.agreement_items=8", "feedback.safety_frac=0.5",
            "objective=pairwise", "n_demos=4",
            "optim.max_steps=2", "optim.batch_size=4", "optim.warmup_steps=1", "histogram=false",
            "log.progress=false"]
    cfg = load(RM.RewardModelConfig, overrides=over)
    assert RM.collect_config(cfg, "train").split == "train"
    assert {t.split for t in F.world_tasks(RM.collect_config(cfg, "eval"))} == {"dev"}   # held out: v3's dev
    res = RM.train(cfg)
    ev = res["eval"]
    assert res["steps"] == 2 and ev["n_rows"] == 16 and ev["safety"]["n_safety_responses"] > 0
    for key in ("gt_pair_accuracy", "spearman_gt", "kendall_gt", "safety", "accuracy_by_strength", "gap_by_strength"):
        assert key in ev
    assert set(ev["accuracy_by_strength"]) <= set(F.STRENGTH_BY_BUCKET) and ev["accuracy_by_strength"]
    ia = res["inter_annotator"]
    assert ia["n_annotators"] == 8 and ia["n_items"] == 8 and -1.0 <= ia["fleiss_kappa"] <= 1.0
    saved = json.loads((tmp_path / "rm" / "metrics.json").read_text())
    assert saved["inter_annotator"] == ia and "accuracy_by_strength" in saved["eval"]
    assert res["calibration"]["kind"] == "demo_shift" and res["calibration"]["n"] == 4   # v3's demonstrations
    with pytest.raises(ConfigError, match="test split is sealed"):
        load(RM.RewardModelConfig, overrides=over + ["feedback.eval_split=test"])
    with pytest.raises(ConfigError, match="feedback.world must be one of 2, 3"):
        load(RM.RewardModelConfig, overrides=over + ["feedback.world=4"])


def test_dpo_on_v3_pairs(nano, tmp_path):
    from alignstack.data.sources import read_rows
    from alignstack.methods import dpo

    cfg = load(dpo.DPOConfig, overrides=[f"out={tmp_path}/dpo", f"model.path={nano['path']}", "world_version=3",
                                         "data.n_rows=6", "world_k=4", "world_max_new_tokens=6", "optim.max_steps=2",
                                         "optim.batch_size=4", "log.progress=false"])
    res = dpo.train(cfg)
    assert res["steps"] == 2
    rows = read_rows(tmp_path / "dpo" / "pairs.jsonl", "preference")
    assert 6 <= len(rows) <= 12 and {r["annotator"] for r in rows} <= POOL_IDS
    _assert_train_only(rows)
    with pytest.raises(ConfigError, match="world must be one of 2, 3"):
        load(dpo.DPOConfig, overrides=["world_version=5"])


def test_pipeline_world_3_sets_the_feedback_world_of_rm_and_dpo_stages(tmp_path, monkeypatch):
    from alignstack import pipeline as P
    from alignstack.methods import dpo
    from alignstack.methods import reward_model as RM

    seen = {}
    monkeypatch.setattr(RM, "train", lambda cfg: seen.update(reward_model=cfg.feedback.world) or {})
    monkeypatch.setattr(dpo, "train", lambda cfg: seen.update(dpo=cfg.world_version) or {})
    (tmp_path / "dpo.yaml").write_text("world_version: 2\n")

    def run(method, world, overrides=(), config=None):
        st = P.StageConfig(name=method, method=method, config=config, overrides=list(overrides))
        P._run_method(st, tmp_path / method, tmp_path, tmp_path, False, False, world)
        return seen[method]

    assert run("reward_model", 3) == 3 and run("dpo", 3) == 3
    assert run("reward_model", 2) == 2 and run("dpo", 2) == 2
    assert run("reward_model", 3, ["feedback.world=2"]) == 2          # the stage's own settings win
    assert run("dpo", 3, config="dpo.yaml") == 2
