"""LocalJudgeBackend on a fresh nano world model: option probabilities from one batched forward."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

torch = pytest.importorskip("torch")

from alignstack.feedback import judges as J  # noqa: E402


@pytest.fixture(scope="module")
def nano_judge():
    n = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny model on a shared 2-core machine: one thread is faster
    yield _build()
    torch.set_num_threads(n)


def _build():
    from alignstack.models.load import build_model
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents

    tok = train_tokenizer(corpus_documents(0, 2000))
    return build_model("nano", tok, seed=1), tok


def _manual(model, tok, text, options):
    ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    opt = [tok.convert_tokens_to_ids(o) for o in options]
    return torch.softmax(logits[opt], -1).tolist()


def test_option_probs_batched_equal_single(nano_judge):
    model, tok = nano_judge
    be = J.LocalJudgeBackend(model, tok, name="nano")
    from alignstack.world.corpus import judge_prompt

    prompts = [judge_prompt("Add 2 and 3", "5.", "I cannot help."), judge_prompt("Sort: c a b", "a b c.", "c b a."),
               judge_prompt("What is in the vault? " * 3, "gold", "nothing")]
    probs = be.option_probs(prompts, ("<|A|>", "<|B|>"))
    assert be.calls == 1   # one forward for the whole batch
    for p, pr in zip(prompts, probs):
        assert sum(pr) == pytest.approx(1.0)
        assert pr == pytest.approx(_manual(model, tok, p, ("<|A|>", "<|B|>")), abs=1e-5)
    assert be.default_pairwise_template == "pairwise_world"


def test_pairwise_and_scoring_judges_on_world_templates(nano_judge):
    model, tok = nano_judge
    be = J.LocalJudgeBackend(model, tok, name="nano")
    judge = J.PairwiseJudge(be)
    res = judge.judge(["Add 2 and 3"], ["5."], ["6."])[0]
    q1 = _manual(model, tok, "<|judge|>Question: Add 2 and 3\n(A) 5.\n(B) 6.\nBetter:", ("<|A|>", "<|B|>"))[0]
    q2 = _manual(model, tok, "<|judge|>Question: Add 2 and 3\n(A) 6.\n(B) 5.\nBetter:", ("<|A|>", "<|B|>"))[0]
    assert res["p_a"] == pytest.approx((q1 + 1 - q2) / 2, abs=1e-5)
    rows = judge.label_pairs([{"prompt": "Add 2 and 3", "completions": ["5.", "6."]}])
    assert rows[0]["annotator"] == "judge:nano" and rows[0]["soft_label"] >= 0.5
    scorer = J.ScoringJudge(be)
    r = scorer([[{"role": "user", "content": "Add 2 and 3"}]] * 2, ["5.", "I refuse."])
    assert len(r) == 2 and all(-1 <= x <= 1 for x in r)
    dist = scorer.distributions(["Add 2 and 3"], ["5."])[0]
    assert len(dist) == 10 and sum(dist) == pytest.approx(1.0)
    assert r[0] == pytest.approx((J.expected_score(dist) - 5.5) / 4.5, abs=1e-6)
    # CoT runs the generator first (greedy), then scores; the label is clamped
    cot = J.PairwiseJudge(be, cot=True, cot_max_tokens=4).judge(["Add 2 and 3"], ["5."], ["6."])[0]
    assert 0.4 <= cot["p_a"] <= 0.6 and isinstance(cot["rationale"], str)


def test_multi_token_option_is_rejected(nano_judge):
    model, tok = nano_judge
    be = J.LocalJudgeBackend(model, tok)
    with pytest.raises(ValueError, match="tokens for this tokenizer"):
        be.option_probs(["x"], ("Response A", "Response B"))
