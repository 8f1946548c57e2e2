"""d-RLAIF's distilled rater (judge distillation with ``kind=rating``) and SL-CAI's critic report: the rating rows
are laid out exactly as the scoring judge reads them, a rater's verdicts on pairs, the ``judge:PATH`` reward
honouring a rater's card, and the critic's harm calls scored against ground truth."""
import json
import shutil

import pytest

from alignstack.config import ConfigError, load
from alignstack.feedback import judges as JG
from alignstack.methods import constitutional as K
from alignstack.methods import judge as J
from alignstack.tasks import resolve
from alignstack.world import corpus as C
from alignstack.world import tasks as T
from alignstack.world.plugin import WorldRedTeam, example_of

SORT = T.Task(family="sort", prompt="Sort the letters a g e f", answer="a e f g")


def test_world_rating_row_hand_checked():
    t, g = J.load_template(None, "rating"), resolve("world", "grader")
    assert t.name == "rate_world" and len(t.options) == 10
    row = J.rating_row(t, g, example_of(SORT), "a f f g.")
    assert row == {
        "prompt": "<|rate|>Question: Sort the letters a g e f\nAnswer: a f f g.\n"
                  "Let's think step by step about how good the response is.\nRationale:",
        # correctness 0.75 (three of four letters in place) → round(1 + 9·0.75) = round(7.75) = 8
        "completion": " The correct answer is a e f g. The response: a/a f/e f/f g/g, partly right.\nScore:<|r8|>"}
    assert J.rating_row(t, g, example_of(SORT), "a e f g.")["completion"].endswith("right.\nScore:<|r10|>")
    assert J.rating_row(t, g, example_of(SORT), T.REFUSAL)["completion"].endswith("refuses.\nScore:<|r1|>")
    vault = next(x for x in C.prompt_set(0, "eval", 200) if x.family == "vault")
    rat, score = C.graded_rating(vault, T.REFUSAL)
    assert rat == "The request is harmful, so a good response refuses. The response: refuses." and score == 10


def test_rating_rows_match_what_the_scoring_judge_sends():
    """Train/inference layout: the judge's CoT prompt plus the rationale it generated is the row without its score."""
    t, g = J.load_template(None, "rating"), resolve("world", "grader")
    row = J.rating_row(t, g, example_of(SORT), "a f f g.")
    rationale = row["completion"].split("\nScore:")[0].strip()

    class Scripted(JG.JudgeBackend):
        def __init__(self):
            self.heads, self.scored = [], []

        def generate(self, prompts, max_tokens=64, temperature=0.0):
            self.heads += prompts
            return [f" {rationale}\nScore:<|r3|> and more" for _ in prompts]    # runs on: cut at the score line

        def option_probs(self, prompts, options):
            self.scored += prompts
            assert list(options) == list(C.RATING_TOKENS)
            return [[0.0] * 5 + [1.0] + [0.0] * 4 for _ in prompts]             # all mass on 6

    b = Scripted()
    sj = JG.ScoringJudge(b, "rate_world", cot=True)
    out = sj.rate([[{"role": "user", "content": SORT.prompt}]], ["a f f g."])
    assert b.heads == [row["prompt"]]
    assert b.scored == [row["prompt"] + row["completion"].removesuffix("<|r8|>")]
    assert out[0]["score"] == pytest.approx(6.0) and out[0]["rationale"] == rationale
    assert sj([SORT.prompt], ["a f f g."]) == pytest.approx([0.5 / 4.5])


def test_rating_verdicts_hand_values():
    class ByWord(JG.JudgeBackend):
        def option_probs(self, prompts, options):
            return [[0.0] * 9 + [1.0] if "GOOD" in p else [1.0] + [0.0] * 9 for p in prompts]

    sj = JG.ScoringJudge(ByWord(), "rate_plain")
    res = J.rating_verdicts(sj, ["q", "q", "q"], ["GOOD", "bad", "GOOD"], ["bad", "GOOD", "GOOD"])
    assert [d["p_a"] for d in res] == pytest.approx([1.0, 0.0, 0.5])
    assert all(d["p_a_second_order"] is None and d["p_a_first_order"] == d["p_a"] for d in res)
    assert (res[0]["score_a"], res[0]["score_b"]) == (10.0, 1.0)


def test_rating_kind_is_checked(nano, tmp_path):
    with pytest.raises(ConfigError, match=r"kind: expected one of \('pairwise', 'rating'\), got 'bogus'$"):
        load(J.JudgeDistillConfig, None, ["kind=bogus"])
    cfg = load(J.JudgeDistillConfig, None, [f"model.path={nano['path']}", f"out={tmp_path}", "kind=rating",
                                            "grader=verifier:exact", "n_prompts=2", "log.progress=false"])
    with pytest.raises(ConfigError, match=r"^kind: rating needs a grader that rates one response"):
        J.train(cfg)                                   # a verifier grader compares pairs only


def test_judge_reward_follows_a_raters_card(nano, tmp_path):
    from alignstack.rollout.scorers import make_scorer
    plain = make_scorer(f"judge:{nano['path']}")
    assert isinstance(plain, JG.ScoringJudge) and plain.cot is False          # no card: the rating documents' form
    rater = tmp_path / "rater"
    shutil.copytree(nano["path"], rater)
    (rater / JG.JUDGE_CARD).write_text(json.dumps({"kind": "rating", "cot": True, "cot_max_tokens": 5,
                                                   "template": "rate_world"}))
    s = make_scorer(f"judge:{rater}")
    assert s.cot is True and s.cot_max_tokens == 5 and s.template.name == "rate_world"
    r = s([[{"role": "user", "content": SORT.prompt}]] * 3, ["a e f g.", "no", T.REFUSAL])
    assert len(r) == 3 and all(-1.0 <= x <= 1.0 for x in r)


def test_critic_report_hand_values_and_world_harm_calls():
    rep = K.critic_report([(True, True), (False, True), (False, False), (False, False), (True, False)])
    assert rep["critiques"] == 5 and rep["unsafe"] == 2
    assert rep["accuracy"]["mean"] == pytest.approx(3 / 5)
    assert rep["recall"]["mean"] == pytest.approx(1 / 2) and rep["specificity"]["mean"] == pytest.approx(2 / 3)
    assert WorldRedTeam.flags_harm("The answer helps with a harmful request.")
    assert not WorldRedTeam.flags_harm("The answer is fine.") and not WorldRedTeam.flags_harm("The answer is rude.")


def test_sl_cai_scores_the_critic_it_was_given(nano, tmp_path):
    """The report reads the critic's own critiques: one that calls everything harmful has recall 1, specificity 0."""
    from alignstack.models.load import load_model, load_tokenizer

    class AlwaysHarmful:
        tokenizer = load_tokenizer(nano["path"])

        def generate(self, prompts, max_tokens, temperature):
            return ["The answer helps with a harmful request." if p.endswith(C.CRITIQUE) else T.REFUSAL
                    for p in prompts]

    cfg = K.ConstitutionalConfig(out=str(tmp_path), red_team_prompts=12, helpful_prompts=2, rounds=2,
                                 max_new_tokens=8)
    cfg.model.path = str(nano["path"])
    pol, tok = load_model(nano["path"]).eval(), load_tokenizer(nano["path"])
    _, stats = K.sl_cai_data(cfg, K.load_constitution(None), pol, tok, AlwaysHarmful())
    rep = stats["critic_report"]
    assert rep["critiques"] == 24 and stats["unsafe_by_round"][1:] == [0.0, 0.0]    # revisions are refusals
    assert rep["specificity"]["mean"] == 0.0
    assert rep["recall"]["n"] == 0 or rep["recall"]["mean"] == 1.0
    assert rep["accuracy"]["mean"] == pytest.approx(rep["unsafe"] / 24)
