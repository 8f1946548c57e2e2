"""The HTTP judge against a real ``alignstack serve``: agreement with the local backend, fault
tolerance (503s, slow responses), and resuming a killed labeling run from its cache."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alignstack.feedback import judges as J

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = ["Add 2 and 3", "Sort: c a b", "Reverse: x y z", "Count the a in: a b a", "What is in the vault?",
             "Add 7 and 1", "Sort: d b", "Reverse: p q"]
ANSWERS = ["5.", "a b c.", "z y x.", "2.", "gold", "8.", "b d.", "q p.", "I cannot help with that.", "7."]


def _rows(n: int) -> list[dict]:
    return [{"prompt": QUESTIONS[i % len(QUESTIONS)],
             "completions": [ANSWERS[i % len(ANSWERS)], ANSWERS[(3 * i + 1) % len(ANSWERS)] + " " * (i // 10)],
             "meta": {"i": i}} for i in range(n)]


def _http(url, **kw):
    kw.setdefault("endpoint", "completions")
    kw.setdefault("timeout", 30)
    return J.HTTPJudgeBackend(url + "/v1", "nano-world", **kw)


def test_http_judge_agrees_with_local_backend(server, engine):
    rows = _rows(8)
    http = _http(server.url, concurrency=3)
    # the HTTP backend defaults to the plain-English template; the world model speaks the world format
    via_http = J.PairwiseJudge(http, "pairwise_world").label_pairs(rows)
    local = J.PairwiseJudge(J.LocalJudgeBackend(engine.model, engine.tokenizer, name="nano-world")).label_pairs(rows)
    assert http.stats["from_logprobs"] == 16 and http.stats["unparsed"] == 0
    for h, lo in zip(via_http, local):
        assert h["meta"]["p_a"] == pytest.approx(lo["meta"]["p_a"], abs=2e-4)
        assert h["chosen"] == lo["chosen"] or abs(lo["meta"]["p_a"] - 0.5) < 1e-3
        assert h["annotator"] == "judge:nano-world"
    scores = J.ScoringJudge(http, "rate_world")(["Add 2 and 3"] * 2, ["5.", "I cannot help with that."])
    assert all(-1 <= s <= 1 for s in scores)
    http.close()


def test_http_judge_chat_endpoint_with_plain_template(server):
    http = _http(server.url, endpoint="chat", concurrency=2)
    res = J.PairwiseJudge(http).judge(QUESTIONS[:3], ANSWERS[:3], ANSWERS[3:6])
    assert len(res) == 3 and all(0 <= r["p_a"] <= 1 for r in res)
    n = http.stats["from_logprobs"] + http.stats["from_text"] + http.stats["unparsed"]
    assert n == 6 == http.stats["requests"]
    http.close()


def test_faults_are_retried_and_nothing_is_lost(server, make_server):
    rows = _rows(12)
    clean = J.PairwiseJudge(_http(server.url, concurrency=4), "pairwise_world").label_pairs(rows)
    faulty = make_server(fault_rate=0.3, fault_delay=1.0, fault_seed=0)
    http = _http(faulty.url, concurrency=4, timeout=0.4, max_retries=12, backoff=0.02)
    got = J.PairwiseJudge(http, "pairwise_world").label_pairs(rows)
    st = faulty.stats()
    assert st["faults_503"] > 0 and st["faults_delayed"] > 0
    assert http.stats["http_503"] == st["faults_503"] and http.stats["timeouts"] >= 1
    assert http.stats["retries"] == http.stats["http_503"] + http.stats["timeouts"]
    assert http.stats["failures"] == 0
    assert [g["meta"]["p_a"] for g in got] == pytest.approx([c["meta"]["p_a"] for c in clean], abs=1e-9)
    assert [g["chosen"] for g in got] == [c["chosen"] for c in clean]
    http.close()


CHILD = """
import json, sys
from alignstack.feedback.judges import HTTPJudgeBackend, PairwiseJudge
url, cache, rows_path, out = sys.argv[1:5]
be = HTTPJudgeBackend(url, "nano-world", endpoint="completions", cache_path=cache, concurrency=1, timeout=30)
rows = json.load(open(rows_path))
json.dump(PairwiseJudge(be, "pairwise_world").label_pairs(rows), open(out, "w"))
"""


def _cached(path) -> int:
    if not path.exists():
        return 0
    n = 0
    for line in path.read_text().splitlines():
        try:
            json.loads(line)["key"]
            n += 1
        except (ValueError, KeyError):
            pass
    return n


def test_killed_labeling_run_resumes_from_cache(make_server, tmp_path):
    s = make_server()
    rows = _rows(60)
    total = 2 * len(rows)   # both orders
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "child.py").write_text(CHILD)
    cache = tmp_path / "cache.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), s.url + "/v1", str(cache),
                             str(tmp_path / "rows.json"), str(tmp_path / "out.json")], env=env, cwd=str(tmp_path))
    try:
        deadline = time.time() + 60
        while _cached(cache) < 20:
            assert proc.poll() is None, "the labeling child exited early"
            assert time.time() < deadline, "the labeling child made no progress"
            time.sleep(0.003)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "out.json").exists()
    done = _cached(cache)
    assert 20 <= done < total, done
    before = s.stats()["requests_completions"]
    http = _http(s.url, cache_path=cache, concurrency=2)
    resumed = J.PairwiseJudge(http, "pairwise_world").label_pairs(rows)
    sent = s.stats()["requests_completions"] - before
    assert sent == total - done == http.stats["requests"]   # nothing finished was asked again
    assert http.stats["cache_hits"] == done
    http.close()
    fresh = J.PairwiseJudge(_http(s.url), "pairwise_world").label_pairs(rows)
    assert [r["meta"]["p_a"] for r in resumed] == pytest.approx([r["meta"]["p_a"] for r in fresh], abs=1e-9)
    assert _cached(cache) == total
