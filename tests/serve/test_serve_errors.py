"""Bad requests get OpenAI-style 4xx errors (never 500); the concurrency gate queues and 429s."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

OK_MSGS = [{"role": "user", "content": "hi"}]

CHAT_CASES = [
    ("bad json", b'{"messages": [', None),
    ("not an object", b"[1, 2]", None),
    ("missing messages", {"model": "m"}, "messages"),
    ("messages null", {"messages": None}, "messages"),
    ("messages wrong type", {"messages": "hello"}, "messages"),
    ("empty messages", {"messages": []}, "messages"),
    ("message not object", {"messages": ["hi"]}, "messages[0]"),
    ("unknown role", {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ("missing role", {"messages": [{"content": "x"}]}, "messages[0].role"),
    ("missing content", {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("content wrong type", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ("image part", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content"),
    ("too many tokens", {"messages": OK_MSGS, "max_tokens": 100000}, "max_tokens"),
    ("max_completion_tokens too many", {"messages": OK_MSGS, "max_completion_tokens": 100000},
     "max_completion_tokens"),
    ("max_tokens zero", {"messages": OK_MSGS, "max_tokens": 0}, "max_tokens"),
    ("max_tokens string", {"messages": OK_MSGS, "max_tokens": "10"}, "max_tokens"),
    ("max_tokens bool", {"messages": OK_MSGS, "max_tokens": True}, "max_tokens"),
    ("prompt too long", {"messages": [{"role": "user", "content": "a b c d e f g h " * 200}]}, "messages"),
    ("temperature string", {"messages": OK_MSGS, "temperature": "hot"}, "temperature"),
    ("temperature negative", {"messages": OK_MSGS, "temperature": -1}, "temperature"),
    ("top_p zero", {"messages": OK_MSGS, "top_p": 0}, "top_p"),
    ("n too big", {"messages": OK_MSGS, "n": 1000}, "n"),
    ("seed float", {"messages": OK_MSGS, "seed": 1.5}, "seed"),
    ("stop wrong type", {"messages": OK_MSGS, "stop": 3}, "stop"),
    ("stop too many", {"messages": OK_MSGS, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("logprobs wrong type", {"messages": OK_MSGS, "logprobs": "yes"}, "logprobs"),
    ("top_logprobs without logprobs", {"messages": OK_MSGS, "top_logprobs": 3}, "top_logprobs"),
    ("top_logprobs too many", {"messages": OK_MSGS, "logprobs": True, "top_logprobs": 50}, "top_logprobs"),
    ("stream wrong type", {"messages": OK_MSGS, "stream": "yes"}, "stream"),
    ("model wrong type", {"messages": OK_MSGS, "model": 7}, "model"),
]

COMPLETION_CASES = [
    ("missing prompt", {"max_tokens": 3}, "prompt"),
    ("prompt wrong type", {"prompt": {"text": "x"}}, "prompt"),
    ("prompt mixed list", {"prompt": ["a", 1]}, "prompt"),
    ("token id out of range", {"prompt": [1, 2, 10 ** 9]}, "prompt"),
    ("logprobs too many", {"prompt": "a", "logprobs": 99}, "logprobs"),
    ("logprobs bool", {"prompt": "a", "logprobs": True}, "logprobs"),
    ("echo", {"prompt": "a", "echo": True}, "echo"),
    ("too many tokens", {"prompt": "a", "max_tokens": 5000}, "max_tokens"),
    ("too many prompts", {"prompt": ["a"] * 65}, "prompt"),
    ("empty token list", {"prompt": []}, "prompt"),
]


def _post(server, path, body):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    return httpx.post(server.url + path, headers={"content-type": "application/json"}, timeout=30, **kw)


def _check(r, param):
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["message"]
    assert err["param"] == param


@pytest.mark.parametrize("name,body,param", CHAT_CASES, ids=[c[0] for c in CHAT_CASES])
def test_bad_chat_requests(server, name, body, param):
    _check(_post(server, "/v1/chat/completions", body), param)


@pytest.mark.parametrize("name,body,param", COMPLETION_CASES, ids=[c[0] for c in COMPLETION_CASES])
def test_bad_completion_requests(server, name, body, param):
    _check(_post(server, "/v1/completions", body), param)


def test_no_500_anywhere(server):
    r = httpx.get(server.url + "/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["message"]
    r = httpx.get(server.url + "/v1/chat/completions")
    assert r.status_code == 405 and "error" in r.json()
    assert server.stats().get("status_500", 0) == 0


def test_context_error_code(server):
    r = _post(server, "/v1/chat/completions", {"messages": OK_MSGS, "max_tokens": 100000})
    assert r.json()["error"]["code"] == "context_length_exceeded" and "256" in r.json()["error"]["message"]


def test_openai_client_sees_bad_request(server):
    openai = pytest.importorskip("openai")
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as ei:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=10 ** 6)
    assert ei.value.status_code == 400 and "context" in str(ei.value)


def test_gate_queues_then_429():
    from alignstack.serve.app import APIError, Gate

    async def scenario():
        gate = Gate(limit=1, max_queue=1)
        release = asyncio.Event()
        order = []

        async def holder():
            async with gate.slot():
                order.append("a-in")
                await release.wait()

        async def waiter():
            async with gate.slot():
                order.append("b-in")

        t1 = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        t2 = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)
        assert gate.active == 1 and gate.waiting == 1
        with pytest.raises(APIError) as ei:   # the queue is full
            async with gate.slot():
                pass
        assert ei.value.status == 429
        release.set()
        await asyncio.gather(t1, t2)
        assert order == ["a-in", "b-in"] and gate.active == gate.waiting == 0

    asyncio.run(scenario())


def test_busy_server_answers_429_not_500(make_server):
    s = make_server(max_concurrency=1, max_queue=0)

    async def burst():
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*[c.post(s.url + "/v1/completions",
                                                 json={"prompt": "Add", "max_tokens": 64, "n": 4})
                                          for _ in range(6)])

    rs = asyncio.run(burst())
    codes = sorted(r.status_code for r in rs)
    assert set(codes) == {200, 429}, codes
    for r in rs:
        if r.status_code == 429:
            assert json.loads(r.text)["error"]["type"] == "rate_limit_error"
    assert s.stats()["status_429"] == codes.count(429)
