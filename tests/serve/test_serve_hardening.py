"""Hardening of ``alignstack serve`` (issue 23): body-size and JSON-depth limits before parsing,
integer ranges (``seed`` ≥ 2**64), a 500 that leaves the keep-alive connection usable, and a fuzz
run of generated malformed bodies over one connection (no 5xx, the server answers after each)."""
from __future__ import annotations

import json
import random
import socket
from typing import Annotated

import pytest
from fastapi import FastAPI, File, Form, UploadFile

from alignstack.http_limits import RequestLimits

OK = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


class KeepAlive:
    """A raw HTTP/1.1 client that reuses one socket, so a server that drops the connection after a
    response (without announcing ``Connection: close``) shows up as an error here; httpx would
    quietly reconnect."""

    def __init__(self, url: str):
        host, port = url.split("//")[1].split(":")
        self.addr = (host, int(port))
        self.sock, self.reconnects = None, 0

    def _connect(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = b""

    def _recv(self) -> bytes:
        # ack at once: the server writes headers and body separately, and Nagle on its side would
        # otherwise wait out our 40 ms delayed ACK on every response
        self.sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_QUICKACK", socket.TCP_NODELAY), 1)
        return self.sock.recv(65536)

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self._recv()
            if not chunk:
                raise ConnectionError("server closed the keep-alive connection unannounced")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_n(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self._recv()
            if not chunk:
                raise ConnectionError("server closed mid-response")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        self._connect()
        hs = {"Host": "test", "Content-Length": str(len(body)), "Content-Type": "application/json", **(headers or {})}
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\n".encode()
                          + "".join(f"{k}: {v}\r\n" for k, v in hs.items()).encode() + b"\r\n" + body)
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        rh = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:])}
        if rh.get("transfer-encoding") == "chunked":
            data = b""
            while True:
                n = int(self._read_until(b"\r\n"), 16)
                data += self._read_n(n)
                self._read_n(2)
                if n == 0:
                    break
        else:
            data = self._read_n(int(rh.get("content-length", 0)))
        if rh.get("connection", "").lower() == "close":
            self.sock.close()
            self.sock = None
            self.reconnects += 1
        return status, rh, data

    def close(self):
        if self.sock is not None:
            self.sock.close()


def _err(data: bytes) -> dict:
    err = json.loads(data)["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


def test_deep_json_is_400_before_parsing_and_connection_stays_usable(server):
    c = KeepAlive(server.url)
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"messages": ' + b"[" * 5000):
        status, _, data = c.request("POST", "/v1/chat/completions", body)
        assert status == 400 and "deeper than 64" in _err(data)["message"]
        status, _, _ = c.request("GET", "/health")  # the same socket still answers
        assert status == 200
    assert c.reconnects == 0
    c.close()


def test_body_size_limit_before_reading(make_server):
    s = make_server(max_body_bytes=4096)
    c = KeepAlive(s.url)
    status, rh, data = c.request("POST", "/v1/completions", b'{"prompt": "' + b"a" * 10_000 + b'"}')
    assert status == 413 and _err(data)["code"] == "request_too_large" and rh["connection"] == "close"
    # a body announced as huge is refused from its header alone, before a byte of it is sent
    c._connect()
    c.sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n")
    head = c._read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    c.close()
    c = KeepAlive(s.url)
    status, _, _ = c.request("POST", "/v1/completions", json.dumps({"prompt": "Add", "max_tokens": 1}).encode())
    assert status == 200
    c.close()


def test_seed_range_is_validated(server):
    c = KeepAlive(server.url)
    for seed in (2**64, 10**30, -(2**63) - 1):
        status, _, data = c.request("POST", "/v1/chat/completions", json.dumps({**OK, "seed": seed}).encode())
        assert status == 400 and _err(data)["param"] == "seed", (seed, data)
    status, _, _ = c.request("POST", "/v1/chat/completions", json.dumps({**OK, "seed": 2**64 - 1}).encode())
    assert status == 200
    c.close()


def test_an_internal_error_is_500_in_the_error_shape_and_keeps_the_connection(make_server, engine,
                                                                              monkeypatch):
    s = make_server()

    def boom(*a, **k):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(engine, "submit", boom)
    c = KeepAlive(s.url)
    status, _, data = c.request("POST", "/v1/chat/completions", json.dumps(OK).encode())
    assert status == 500 and _err(data)["type"] == "server_error"
    assert "Traceback" not in data.decode()
    status, _, _ = c.request("GET", "/health")
    assert status == 200 and c.reconnects == 0
    c.close()


WEIRD = [10**20, -(10**30), 2**64, -1, 0, 1.5, float("nan"), float("inf"), "x", "", None, True, [], {},
         [[[[]]]], {"a": {"b": {}}}, "\u0000", "é" * 50, [1] * 100, 2**63 - 1]


def _mutations(rng: random.Random, n: int):
    """Malformed variants of valid chat and completion bodies: wrong types and out-of-range values
    per field, dropped fields, extra fields, truncation, invalid UTF-8, deep nesting, raw bytes."""
    bases = [("/v1/chat/completions", dict(OK, temperature=0.5, top_p=0.9, n=1, seed=1, stop=["x"],
                                            logprobs=False, stream=False)),
             ("/v1/completions", {"prompt": "Add", "max_tokens": 2, "n": 1, "logprobs": 1, "seed": 3})]
    for i in range(n):
        path, base = bases[i % 2]
        body = json.loads(json.dumps(base))
        kind = rng.randrange(8)
        if kind <= 2:  # one field gets a weird value (never unbounded generation: max_tokens stays set)
            key = rng.choice(sorted(body))
            body[key] = rng.choice([w for w in WEIRD if not (key == "max_tokens" and w is None)])
            raw = json.dumps(body).encode()
        elif kind == 3:  # a nested value in messages / prompt
            if "messages" in body:
                body["messages"][0][rng.choice(["role", "content", "extra"])] = rng.choice(WEIRD)
            else:
                body["prompt"] = rng.choice([[rng.choice(WEIRD)], [[1, 2], rng.choice(WEIRD)], rng.choice(WEIRD)])
            raw = json.dumps(body).encode()
        elif kind == 4:  # truncated JSON
            raw = json.dumps(body).encode()
            raw = raw[:rng.randrange(len(raw))]
        elif kind == 5:  # invalid UTF-8 spliced in
            raw = json.dumps(body).encode()
            j = rng.randrange(len(raw))
            raw = raw[:j] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xFE])]) + raw[j:]
        elif kind == 6:  # deep nesting in a field
            d = rng.choice([65, 1000, 50_000])
            raw = json.dumps(body)[:-1].encode() + b', "x": ' + b"[" * d + b"]" * d + b"}"
        else:  # random bytes / not an object
            raw = rng.choice([bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), b"null", b"[]",
                              b'"s"', b"1e999", b"-0", b""])
        yield path, raw


def test_fuzz_malformed_bodies(make_server):
    s = make_server()
    rng = random.Random(23)
    c = KeepAlive(s.url)
    tried, statuses = 0, {}
    for path, raw in _mutations(rng, 1000):
        status, _, data = c.request("POST", path, raw)
        tried += 1
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (path, raw[:200], data[:300])
        assert b"Traceback" not in data
        if status >= 400:
            _err(data)
        assert c.request("GET", "/health")[0] == 200  # still answering, on the same connection
    c.close()
    n5xx = sum(v for k, v in statuses.items() if k >= 500)
    print(f"serve fuzz: {tried} inputs, statuses {dict(sorted(statuses.items()))}, {n5xx} responses >= 500, "
          f"{c.reconnects} reconnects")
    assert n5xx == 0 and s.stats().get("status_500", 0) == 0
    assert statuses.get(400, 0) > tried // 2  # the generator really produces bad input


@pytest.mark.parametrize("depth,limit,expect", [(3, 64, 3), (64, 64, 64), (65, 64, 65), (10**5, 64, 65)])
def test_json_depth_counts_without_parsing(depth, limit, expect):
    from alignstack.http_limits import json_depth

    assert json_depth(b"[" * depth + b"]" * depth, limit) == expect
    # brackets inside strings do not count; escaped quotes do not end a string
    assert json_depth(b'{"a": "[[[[[[\\"[[[[", "b": [1]}', 2) == 2


def _limited_form_app(limit: int):
    app = FastAPI()
    seen = []

    @app.post("/up")
    async def up(file: Annotated[UploadFile, File()], name: str = Form("")):
        seen.append(len(await file.read()))
        return {"ok": True}

    app.add_middleware(RequestLimits, max_body=limit,
                       render=lambda st, msg: (json.dumps({"error": msg}).encode(), "application/json"))
    return app, seen


def _multipart(payload: bytes) -> tuple[bytes, str]:
    b = "XyZbOuNdArY"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nn\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def test_streamed_form_bodies_are_counted_not_buffered():
    from fastapi.testclient import TestClient

    app, seen = _limited_form_app(10_000)
    c = TestClient(app)
    small, ctype = _multipart(b"a" * 2000)
    assert c.post("/up", content=small, headers={"content-type": ctype}).json() == {"ok": True}
    big, ctype = _multipart(b"a" * 50_000)

    def chunks():  # chunked: no Content-Length to refuse it by, so the count while streaming must
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    r = c.post("/up", content=chunks(), headers={"content-type": ctype})
    assert r.status_code == 413 and "too large" in r.json()["error"] and r.headers["connection"] == "close"
    assert seen == [2000]  # the oversized upload never reached the route
