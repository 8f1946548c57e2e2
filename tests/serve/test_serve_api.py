"""``alignstack serve`` over real localhost HTTP, driven by the ``openai`` client and raw httpx."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the openai package is a test-only dependency")

MSGS = [{"role": "user", "content": "Add 2 and 3"}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)


def test_health_and_models(server, client):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    models = client.models.list()
    assert [m.id for m in models.data] == ["nano-world"]


def test_chat_with_logprobs(client, engine):
    r = client.chat.completions.create(model="nano-world", messages=MSGS, max_tokens=8, temperature=0,
                                       logprobs=True, top_logprobs=5)
    ch = r.choices[0]
    assert ch.message.role == "assistant" and ch.finish_reason in ("stop", "length")
    content = ch.logprobs.content
    assert 1 <= len(content) <= 8
    toks = [t.token for t in content]
    if ch.finish_reason == "stop":   # the stop token's log-prob comes last; the text omits it
        assert toks.pop() == "<|end|>"
    assert "".join(toks) == ch.message.content
    for t in content:
        assert len(t.top_logprobs) == 5 and t.logprob <= 0
        assert bytes(t.bytes).decode() == t.token
        tops = [x.logprob for x in t.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert t.top_logprobs[0].token == t.token and t.top_logprobs[0].logprob == pytest.approx(t.logprob)  # greedy
    prompt_len = len(engine.chat_ids(MSGS))
    assert r.usage.prompt_tokens == prompt_len
    assert r.usage.completion_tokens == len(content)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_chat_matches_non_streamed(client):
    kw = dict(model="nano-world", messages=MSGS, max_tokens=12, temperature=0)
    full = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_streamed_completion_with_logprobs(client):
    prompt = "<|judge|>Question: Add 2 and 3\n(A) 5.\n(B) 7.\nBetter:"
    full = client.completions.create(model="nano-world", prompt=prompt, max_tokens=6, temperature=0, logprobs=3)
    lp = full.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    toks = list(lp.tokens)
    if full.choices[0].finish_reason == "stop":
        assert toks.pop() == "<|end|>" and lp.text_offset[-1] == len(full.choices[0].text)
    assert "".join(toks) == full.choices[0].text and lp.text_offset[0] == 0
    assert lp.tokens[0] in ("<|A|>", "<|B|>") and set(lp.top_logprobs[0]) >= {lp.tokens[0]}
    stream = client.completions.create(model="nano-world", prompt=prompt, max_tokens=6, temperature=0, logprobs=3,
                                       stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == full.choices[0].text
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason


def test_sse_wire_format(server):
    with httpx.stream("POST", server.url + "/v1/chat/completions",
                      json={"messages": MSGS, "max_tokens": 3, "stream": True, "temperature": 0}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_sampling_n_seed_and_stop(client):
    kw = dict(model="nano-world", messages=MSGS, max_tokens=10, temperature=1.0, n=3, seed=123)
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert len(a.choices) == 3 and [c.index for c in a.choices] == [0, 1, 2]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    g = client.completions.create(model="nano-world", prompt="Add 2 and 3", max_tokens=10, temperature=0)
    text = g.choices[0].text
    if len(text) >= 3:   # stop at a substring the greedy output is known to contain
        stop = text[2:4] if len(text) >= 4 else text[2]
        s = client.completions.create(model="nano-world", prompt="Add 2 and 3", max_tokens=10, temperature=0,
                                      stop=[stop])
        assert s.choices[0].text == text[:text.find(stop)] and s.choices[0].finish_reason == "stop"
    default = client.completions.create(model="nano-world", prompt="Add", temperature=0)
    assert default.usage.completion_tokens <= 16   # legacy default max_tokens


def test_token_id_prompts_and_batches(server, engine):
    ids = engine.text_ids("Add 2 and 3")
    r = httpx.post(server.url + "/v1/completions", json={"prompt": ids, "max_tokens": 4, "temperature": 0}).json()
    r2 = httpx.post(server.url + "/v1/completions",
                    json={"prompt": "Add 2 and 3", "max_tokens": 4, "temperature": 0}).json()
    assert r["choices"][0]["text"] == r2["choices"][0]["text"]
    both = httpx.post(server.url + "/v1/completions",
                      json={"prompt": ["Add 2 and 3", "Sort: c b a"], "max_tokens": 4, "temperature": 0, "n": 2}).json()
    assert len(both["choices"]) == 4 and both["choices"][0]["text"] == r["choices"][0]["text"]


def test_event_loop_stays_responsive_during_generation(server):
    done = threading.Event()

    def long_request():
        httpx.post(server.url + "/v1/completions", json={"prompt": "Add", "max_tokens": 200, "n": 16,
                                                         "temperature": 1.0}, timeout=120)
        done.set()

    t = threading.Thread(target=long_request)
    t.start()
    try:
        deadline = time.time() + 10
        while server.stats()["in_flight"] == 0 and not done.is_set() and time.time() < deadline:
            time.sleep(0.005)
        if done.is_set():
            pytest.skip("the generation finished before /health could be probed")
        t0 = time.perf_counter()
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        assert time.perf_counter() - t0 < 1.0
    finally:
        t.join(120)


def test_concurrent_requests_are_batched(make_server, engine):
    import asyncio

    s = make_server(max_concurrency=8)
    prompts = ["Add 2 and 3", "Sort: c a b", "Reverse: x y", "Count: a a", "Add 9 and 1", "What is in the vault?"]
    bodies = [{"prompt": p, "max_tokens": 4 + 3 * i, "temperature": 0, "logprobs": 2} for i, p in enumerate(prompts)]
    solo = [httpx.post(s.url + "/v1/completions", json=b, timeout=60).json() for b in bodies]
    before = s.stats()

    async def together():
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*[c.post(s.url + "/v1/completions", json=b) for b in bodies * 3])

    rs = [r.json() for r in asyncio.run(together())]
    after = s.stats()
    assert after["batched_requests"] - before["batched_requests"] == len(rs)
    assert after["batches"] - before["batches"] < len(rs)   # some requests shared a forward pass
    for i, r in enumerate(rs):
        ref = solo[i % len(bodies)]
        assert r["choices"][0]["text"] == ref["choices"][0]["text"]
        assert r["usage"] == ref["usage"] and r["usage"]["completion_tokens"] <= bodies[i % len(bodies)]["max_tokens"]
        assert r["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(
            ref["choices"][0]["logprobs"]["token_logprobs"], abs=1e-4)


def test_engine_drops_cancelled_requests(engine):
    from alignstack.serve.engine import GenParams

    ids = engine.text_ids("Add 2 and 3")
    busy = engine.submit([ids], GenParams(max_tokens=64, n=8, temperature=1.0))
    gone = engine.submit([ids], GenParams(max_tokens=4, seed=1))   # seeded: waits for its own batch
    assert gone.cancel()
    after = engine.submit([ids], GenParams(max_tokens=4, temperature=0))
    assert len(after.result(timeout=60)[0]) == 1 and len(busy.result(timeout=60)[0]) == 8
    assert gone.cancelled()
