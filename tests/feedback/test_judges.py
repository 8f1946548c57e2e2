"""AI judges without a model: order averaging, clamping, score normalisation, templates, parsing,
label rows, and the HTTP backend's cache / retries against a mock transport."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from alignstack.feedback import judges as J  # noqa: E402

TEMPLATE = "#! options: X Y\nQ={question}\nFIRST={a}\nSECOND={b}\nP={principle}\nVerdict:\n"


def _g(resp: str) -> float:
    return float(re.search(r"g=([-0-9.]+)", resp).group(1))


class BiasedBackend(J.JudgeBackend):
    """P(first better) = σ(k·(g_first − g_second)) + bias: a labeler that favours position one."""

    name = "fake"

    def __init__(self, bias=0.0, k=2.0, extreme=False):
        self.bias, self.k, self.extreme = bias, k, extreme
        self.calls, self.prompts, self.generated = 0, [], []

    def true_p(self, first, second):
        return 1 / (1 + math.exp(-self.k * (_g(first) - _g(second))))

    def option_probs(self, prompts, options):
        self.calls += 1
        self.prompts += prompts
        out = []
        for p in prompts:
            first = re.search(r"FIRST=(.*)", p).group(1)
            second = re.search(r"SECOND=(.*)", p).group(1)
            q = self.true_p(first, second) + self.bias
            if self.extreme:
                q = 0.99 if q > 0.5 else 0.01
            out.append([q, 1 - q])
        return out

    def generate(self, prompts, max_tokens=64, temperature=0.0):
        self.generated += prompts
        return [" because reasons. " for _ in prompts]


@pytest.fixture
def tpl():
    return J.PromptTemplate.parse(TEMPLATE, "test")


PAIRS = [("q1", "g=0.9", "g=0.2"), ("q2", "g=0.1", "g=0.6"), ("q3", "g=0.5", "g=0.5"), ("q4", "g=0.3", "g=0.45")]


def test_order_averaging_removes_position_bias(tpl):
    b = 0.08
    fb = BiasedBackend(bias=b)
    qs, a, bb = zip(*PAIRS)
    res = J.PairwiseJudge(fb, tpl).judge(list(qs), list(a), list(bb))
    single = J.PairwiseJudge(BiasedBackend(bias=b), tpl, both_orders=False).judge(list(qs), list(a), list(bb))
    assert fb.calls == 1   # both orders of every pair in one batched backend call
    for (_, x, y), r, s in zip(PAIRS, res, single):
        truth = fb.true_p(x, y)
        assert r["p_a"] == pytest.approx(truth, abs=1e-12)
        assert r["p_a_first_order"] == pytest.approx(truth + b)
        assert r["p_a_second_order"] == pytest.approx(truth - b)
        assert s["p_a"] == pytest.approx(truth + b) and s["p_a_second_order"] is None
    assert J.average_orders(0.7, 0.5) == pytest.approx(0.6)


def test_clamp_only_with_cot(tpl):
    qs, a, b = zip(*PAIRS[:2])
    plain = J.PairwiseJudge(BiasedBackend(extreme=True), tpl).judge(list(qs), list(a), list(b))
    assert [r["p_a"] for r in plain] == pytest.approx([0.99, 0.01])
    fb = BiasedBackend(extreme=True)
    cot = J.PairwiseJudge(fb, tpl, cot=True).judge(list(qs), list(a), list(b))
    assert [r["p_a"] for r in cot] == pytest.approx([0.6, 0.4])
    assert cot[0]["p_a_first_order"] == pytest.approx(0.99)   # per-order values stay raw
    wide = J.PairwiseJudge(BiasedBackend(extreme=True), tpl, cot=True, clamp=(0.2, 0.8)).judge(list(qs), list(a),
                                                                                               list(b))
    assert [r["p_a"] for r in wide] == pytest.approx([0.8, 0.2])
    assert J.clamp(0.9, 0.4, 0.6) == 0.6 and J.clamp(0.5, 0.4, 0.6) == 0.5


def test_cot_is_two_step(tpl):
    fb = BiasedBackend()
    res = J.PairwiseJudge(fb, tpl, cot=True).judge(["q"], ["g=0.9"], ["g=0.1"])
    assert len(fb.generated) == 2   # one rationale per order
    head = fb.generated[0]
    assert head.endswith(J.DEFAULT_COT_PROMPT) and "Verdict:" not in head
    scored = fb.prompts[0]
    assert scored.startswith(head) and "because reasons." in scored and scored.endswith("\nVerdict:")
    assert res[0]["rationale"] == "because reasons." and "rationale_second_order" in res[0]


def test_score_normalisation_hand_values():
    uniform = [0.1] * 10
    assert J.expected_score(uniform) == pytest.approx(5.5)
    assert J.score_to_reward(5.5) == 0.0
    assert J.score_to_reward(10) == 1.0 and J.score_to_reward(1) == -1.0
    two = [0, 0, 0, 0, 0, 0, 0.5, 0, 0.5, 0]
    assert J.expected_score(two) == pytest.approx(8.0)
    assert J.score_to_reward(8.0) == pytest.approx(2.5 / 4.5)
    assert J.expected_score([0, 0, 2, 0, 0, 0, 0, 0, 0, 2]) == pytest.approx(6.5)   # renormalised

    class Fixed(J.JudgeBackend):
        def __init__(self):
            self.calls = 0

        def option_probs(self, prompts, options):
            self.calls += 1
            assert len(options) == 10
            return [two if "GOODANSWER" in p else uniform for p in prompts]

    fb = Fixed()
    sj = J.ScoringJudge(fb, "rate_plain")
    r = sj([[{"role": "user", "content": "hi"}], "hello"], ["GOODANSWER", "meh"])
    assert r == pytest.approx([2.5 / 4.5, 0.0]) and fb.calls == 1


def test_world_templates_match_corpus_formats():
    from alignstack.world.corpus import judge_prompt, rate_prompt

    pw = J.PromptTemplate.load("pairwise_world")
    assert pw.options == ("<|A|>", "<|B|>") and pw.fields == {"question", "a", "b"}
    assert pw.render(question="Add 2 and 3", a="5.", b="6.", principle="ignored") == judge_prompt("Add 2 and 3",
                                                                                                  "5.", "6.")
    rw = J.PromptTemplate.load("rate_world")
    assert rw.options == tuple(f"<|r{i}|>" for i in range(1, 11))
    assert rw.render(question="q", response="r") == rate_prompt("q", "r")
    plain = J.PromptTemplate.load("pairwise_plain")
    assert plain.options == ("A", "B") and {"question", "a", "b", "principle"} == plain.fields
    assert J.PromptTemplate.load("rate_plain").options == tuple(str(i) for i in range(1, 11))


def test_template_missing_field_and_user_path(tmp_path):
    t = J.PromptTemplate.parse("{preamble}\nQ: {question}\n{{literal}} {a} vs {b}\nAnswer:", "mine")
    with pytest.raises(J.TemplateError, match=r"mine.*\['preamble'\]"):
        t.render(question="q", a="x", b="y")
    assert t.render(preamble="P", question="q", a="x", b="y") == "P\nQ: q\n{literal} x vs y\nAnswer:"
    f = tmp_path / "judge.txt"
    f.write_text("#! options: Yes No\nIs {a} better than {b} for {question}?\nAnswer:\n")
    loaded = J.PromptTemplate.load(str(f))
    assert loaded.options == ("Yes", "No") and loaded.name == "judge"
    assert loaded.render(question="q", a="1", b="2") == "Is 1 better than 2 for q?\nAnswer:"
    # a judge needing a field nobody fills names it
    f.write_text("#! options: A B\n{shots}\n{question} {a} {b}\nBetter:")
    with pytest.raises(J.TemplateError, match="shots"):
        J.PairwiseJudge(BiasedBackend(), str(f)).judge(["q"], ["g=1"], ["g=0"])
    res = J.PairwiseJudge(BiasedBackend(), J.PromptTemplate.parse(TEMPLATE.replace("Q=", "{shots}Q="), "s"),
                          fields={"shots": "EX\n"}).judge(["q"], ["g=1"], ["g=0"])
    assert res[0]["p_a"] > 0.5
    with pytest.raises(J.TemplateError, match="positional"):
        J.PromptTemplate.parse("{} and {question}")
    with pytest.raises(J.TemplateError, match="not a file and not a built-in"):
        J.PromptTemplate.load("no_such_template")
    with pytest.raises(J.TemplateError, match="two options"):
        J.PairwiseJudge(BiasedBackend(), J.PromptTemplate.parse("{question}{a}{b}"))


def test_parse_choice():
    ab = ("A", "B")
    assert J.parse_choice("A", ab) == 0
    assert J.parse_choice(" B.", ab) == 1
    assert J.parse_choice("The answer is (B)", ab) == 1
    assert J.parse_choice("Response 2 is better", ab) == 1
    assert J.parse_choice("Both are bad", ab) is None   # no standalone A/B/1/2
    nums = tuple(str(i) for i in range(1, 11))
    assert J.parse_choice("10", nums) == 9
    assert J.parse_choice("Score: 7/10", nums) == 6
    assert J.parse_choice("<|B|>", ("<|A|>", "<|B|>")) == 1


def test_label_pairs_rows_and_reward_interface(tpl):
    fb = BiasedBackend()
    judge = J.PairwiseJudge(fb, tpl, name="unit")
    rows = [{"prompt": "q1", "completions": ["g=0.9", "g=0.1"], "meta": {"id": 1}},
            {"prompt": [{"role": "user", "content": "q2"}], "a": "g=0.0", "b": "g=0.8"},
            {"prompt": "q3", "chosen": "g=0.2", "rejected": "g=0.7", "principle": "Be terse."}]
    out = judge.label_pairs(rows)
    assert [r["chosen"] for r in out] == ["g=0.9", "g=0.8", "g=0.7"]
    assert [r["rejected"] for r in out] == ["g=0.1", "g=0.0", "g=0.2"]
    assert all(0.5 <= r["soft_label"] <= 1 and r["annotator"] == "judge:unit" for r in out)
    assert out[0]["soft_label"] == pytest.approx(fb.true_p("g=0.9", "g=0.1"))
    assert out[0]["meta"]["id"] == 1 and out[1]["meta"]["a_is_chosen"] is False
    assert out[1]["prompt"] == rows[1]["prompt"]
    assert out[2]["meta"]["principle"] == "Be terse." and any("P=Be terse." in p for p in fb.prompts)
    assert json.loads(json.dumps(out)) == out
    with pytest.raises(ValueError, match="row 1"):
        judge.label_pairs([{"prompt": "q", "completions": ["x"]}])
    r = judge(["q", "q"], ["g=0.9", "g=0.1"], references=["g=0.5", "g=0.5"])
    assert r[0] == pytest.approx(2 * fb.true_p("g=0.9", "g=0.5") - 1) and r[0] > 0 > r[1]
    with pytest.raises(ValueError, match="references"):
        judge(["q"], ["g=1"])


def test_principles_are_sampled_deterministically(tpl):
    ps = [f"Principle {i}." for i in range(16)]
    j = J.PairwiseJudge(BiasedBackend(), tpl, principles=ps)
    qs = [f"q{i}" for i in range(40)]
    r1 = j.judge(qs, ["g=1"] * 40, ["g=0"] * 40)
    r2 = j.judge(qs, ["g=1"] * 40, ["g=0"] * 40)
    assert [r["principle"] for r in r1] == [r["principle"] for r in r2]
    assert len({r["principle"] for r in r1}) > 5


def test_judges_module_is_light():
    code = ("import sys, alignstack.feedback, alignstack.feedback.judges; "
            "heavy = [m for m in ('torch', 'transformers', 'httpx', 'fastapi') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO),
                   env={**os.environ, "PYTHONPATH": str(REPO)})


# ---- HTTP backend against a mock transport --------------------------------------------------
httpx = pytest.importorskip("httpx")


def _completion_response(top: dict[str, float] | None, text="A"):
    lp = None if top is None else {"tokens": [next(iter(top))], "token_logprobs": [next(iter(top.values()))],
                                   "top_logprobs": [top], "text_offset": [0]}
    return {"choices": [{"index": 0, "text": text, "logprobs": lp, "finish_reason": "length"}]}


def _chat_response(top: list[tuple[str, float]] | None, text="A"):
    lp = None if top is None else {"content": [{"token": top[0][0], "logprob": top[0][1], "bytes": None,
                                                "top_logprobs": [{"token": t, "logprob": v, "bytes": None}
                                                                 for t, v in top]}]}
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                         "finish_reason": "length"}]}


class Script:
    """A mock transport answering from a function; counts calls."""

    def __init__(self, fn):
        self.fn, self.calls, self.bodies = fn, 0, []

    def __call__(self, request):
        self.calls += 1
        body = json.loads(request.content)
        self.bodies.append(body)
        return self.fn(self.calls, body)


def _backend(script, **kw):
    kw.setdefault("backoff", 0.001)
    return J.HTTPJudgeBackend("http://judge.invalid/v1", "m", transport=httpx.MockTransport(script), **kw)


def test_http_logprobs_and_text_fallback():
    s = Script(lambda n, b: httpx.Response(200, json=_chat_response([(" A", math.log(0.3)), ("B", math.log(0.1)),
                                                                     ("A", math.log(0.1)), ("x", -0.1)])))
    be = _backend(s)
    assert be.option_probs(["p"], ("A", "B"))[0] == pytest.approx([0.8, 0.2])
    body = s.bodies[0]
    assert body["messages"] == [{"role": "user", "content": "p"}] and body["logprobs"] is True
    assert body["top_logprobs"] == 20 and body["temperature"] == 0
    s2 = Script(lambda n, b: httpx.Response(200, json=_completion_response(None, text=" B, clearly")))
    be2 = _backend(s2, endpoint="completions")
    assert be2.option_probs(["p"], ("A", "B")) == [[0.0, 1.0]] and be2.stats["from_text"] == 1
    assert s2.bodies[0]["prompt"] == "p" and s2.bodies[0]["logprobs"] == 20
    s3 = Script(lambda n, b: httpx.Response(200, json=_completion_response({"zz": -0.1}, text="no idea")))
    be3 = _backend(s3, endpoint="completions")
    assert be3.option_probs(["p"], ("A", "B")) == [[0.5, 0.5]] and be3.stats["unparsed"] == 1
    with pytest.raises(J.JudgeError, match="none of the options"):
        _backend(s3, endpoint="completions", on_unparsed="error").option_probs(["p"], ("A", "B"))


def test_http_cache_hit_avoids_second_call(tmp_path):
    s = Script(lambda n, b: httpx.Response(200, json=_completion_response({"<|A|>": -0.2, "<|B|>": -1.8})))
    cache = tmp_path / "cache.jsonl"
    be = _backend(s, endpoint="completions", cache_path=cache)
    first = be.option_probs(["p1", "p2"], ("<|A|>", "<|B|>"))
    assert s.calls == 2
    again = be.option_probs(["p1", "p2"], ("<|A|>", "<|B|>"))
    assert s.calls == 2 and again == first and be.stats["cache_hits"] == 2
    be.close()
    # a new process (new backend) resumes from the file; a torn last line is ignored
    with open(cache, "a") as f:
        f.write('{"key": "abc", "respo')
    be2 = _backend(s, endpoint="completions", cache_path=cache)
    assert be2.option_probs(["p2", "p1", "p3"], ("<|A|>", "<|B|>"))[:2] == first[::-1]
    assert s.calls == 3   # only p3 was sent
    be2.close()
    lines = cache.read_text().splitlines()
    assert sum(1 for ln in lines if ln.startswith('{"key"') and ln.endswith("}")) == 3
    # a different model or parameter is a different request
    be3 = J.HTTPJudgeBackend("http://judge.invalid/v1", "other", transport=httpx.MockTransport(s), cache_path=cache,
                             endpoint="completions")
    be3.option_probs(["p1"], ("<|A|>", "<|B|>"))
    assert s.calls == 4


def test_http_retries_5xx_and_timeouts_then_succeeds():
    def fn(n, body):
        if n == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        if n == 2:
            raise httpx.ReadTimeout("slow")
        if n == 3:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=_chat_response([("B", -0.01)]))

    s = Script(fn)
    be = _backend(s)
    assert be.option_probs(["p"], ("A", "B")) == [[0.0, 1.0]]
    assert s.calls == 4 and be.stats["retries"] == 3 and be.stats["timeouts"] == 1
    assert be.stats["http_503"] == 1 and be.stats["connection_errors"] == 1


def test_http_gives_up_and_4xx_is_not_retried():
    s = Script(lambda n, b: httpx.Response(500, text="boom"))
    with pytest.raises(J.JudgeError, match="3 attempts.*HTTP 500"):
        _backend(s, max_retries=2).option_probs(["p"], ("A", "B"))
    assert s.calls == 3
    s4 = Script(lambda n, b: httpx.Response(400, json={"error": {"message": "bad max_tokens"}}))
    with pytest.raises(J.JudgeError, match="HTTP 400.*bad max_tokens"):
        _backend(s4).option_probs(["p"], ("A", "B"))
    assert s4.calls == 1


def test_http_generate_for_cot():
    s = Script(lambda n, b: httpx.Response(200, json=_chat_response(None, text="A is correct.")))
    be = _backend(s)
    assert be.generate(["think"], max_tokens=32) == ["A is correct."]
    assert s.bodies[0]["max_tokens"] == 32 and "logprobs" not in s.bodies[0]
