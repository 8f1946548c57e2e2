"""The FastAPI application of ``alignstack serve`` (OpenAI-compatible).

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health`` and ``GET /v1/stats`` (debug counters: requests, completions, faults, tokens).

- Bodies are validated by hand so every bad input gets an OpenAI-style error body
  ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status, never a 500.
- At most ``max_concurrency`` requests generate at once (an asyncio semaphore); up to ``max_queue``
  more wait for a slot, and beyond that requests get 429. Admitted requests go to the engine's
  worker thread, which merges compatible waiting requests into one batch; the event loop keeps
  answering ``/health`` while the model works.
- Fault injection (tests): a seeded fraction ``fault_rate`` of generation requests fails with 503,
  or — when ``fault_delay`` > 0, half of those — is answered only after sleeping ``fault_delay``
  seconds (a client with a shorter timeout sees a timeout).
- ``stream: true`` sends server-sent events (``data: {...}`` chunks, then ``data: [DONE]``). The
  tokens are generated in one engine call first and then streamed one chunk per token.
"""
from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import Counter
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from alignstack.http_limits import RequestLimits
from alignstack.serve.engine import Choice, GenParams, ServeEngine

ROLES = ("system", "user", "assistant")
MAX_N = 16
MAX_TOP_LOGPROBS = 20
MAX_STOP = 4
MAX_PROMPTS = 64   # prompts in one /v1/completions request
MAX_BODY_BYTES = 4 << 20   # a request body past this gets 413, before it is parsed
MAX_JSON_DEPTH = 64        # deeper JSON gets 400 before it is parsed (a chat body needs about 5)
SEED_RANGE = (-(2**63), 2**64 - 1)   # what torch.Generator.manual_seed accepts


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.param, self.code, self.type)


def error_response(status: int, message: str, param=None, code=None, type="invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}},
                        status_code=status)


# ---- validation helpers ------------------------------------------------------------------------
def _tname(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def _int(body: dict, key: str, default, lo: int | None = None, hi: int | None = None):
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise APIError(400, f"'{key}' must be an integer, got {_tname(v)}", key, "invalid_type")
    if lo is not None and v < lo:
        raise APIError(400, f"'{key}' must be ≥ {lo}, got {v}", key, "invalid_value")
    if hi is not None and v > hi:
        raise APIError(400, f"'{key}' must be ≤ {hi}, got {v}", key, "invalid_value")
    return v


def _num(body: dict, key: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise APIError(400, f"'{key}' must be a number, got {_tname(v)}", key, "invalid_type")
    if (v <= lo if lo_open else v < lo) or v > hi or v != v:
        raise APIError(400, f"'{key}' must be in {'(' if lo_open else '['}{lo}, {hi}], got {v}", key,
                       "invalid_value")
    return float(v)


def _bool(body: dict, key: str, default: bool) -> bool:
    v = body.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise APIError(400, f"'{key}' must be a boolean, got {_tname(v)}", key, "invalid_type")
    return v


def _stop(body: dict) -> list[str]:
    v = body.get("stop")
    if v is None:
        return []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise APIError(400, "'stop' must be a string or an array of strings", "stop", "invalid_type")
    if len(v) > MAX_STOP:
        raise APIError(400, f"'stop' takes at most {MAX_STOP} sequences, got {len(v)}", "stop", "invalid_value")
    if any(s == "" for s in v):
        raise APIError(400, "'stop' sequences must not be empty", "stop", "invalid_value")
    return v


def _model(body: dict) -> None:
    m = body.get("model")
    if m is not None and not isinstance(m, str):
        raise APIError(400, f"'model' must be a string, got {_tname(m)}", "model", "invalid_type")


def _content(m: dict, i: int) -> str:
    c = m.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):  # content parts: only text is supported
        out = []
        for j, part in enumerate(c):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"messages[{i}].content[{j}]: only text parts "
                                    "({\"type\": \"text\", \"text\": ...}) are supported",
                               f"messages[{i}].content", "invalid_value")
            out.append(part["text"])
        return "".join(out)
    if c is None:
        raise APIError(400, f"messages[{i}] has no 'content'", f"messages[{i}].content", "missing_required_parameter")
    raise APIError(400, f"messages[{i}].content must be a string or an array of text parts, got {_tname(c)}",
                   f"messages[{i}].content", "invalid_type")


def parse_messages(body: dict) -> list[dict]:
    if "messages" not in body or body["messages"] is None:
        raise APIError(400, "missing required parameter: 'messages'", "messages", "missing_required_parameter")
    msgs = body["messages"]
    if not isinstance(msgs, list):
        raise APIError(400, f"'messages' must be an array of message objects, got {_tname(msgs)}", "messages",
                       "invalid_type")
    if not msgs:
        raise APIError(400, "'messages' must not be empty", "messages", "invalid_value")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise APIError(400, f"messages[{i}] must be an object, got {_tname(m)}", f"messages[{i}]", "invalid_type")
        role = m.get("role")
        if not isinstance(role, str):
            raise APIError(400, f"messages[{i}] needs a string 'role'", f"messages[{i}].role",
                           "missing_required_parameter" if role is None else "invalid_type")
        if role not in ROLES:
            raise APIError(400, f"messages[{i}]: unknown role {role!r}; expected one of {list(ROLES)}",
                           f"messages[{i}].role", "invalid_value")
        out.append({"role": role, "content": _content(m, i)})
    return out


def parse_prompts(body: dict, engine: ServeEngine) -> list[list[int]]:
    out = _parse_prompts(body, engine)
    if len(out) > MAX_PROMPTS:
        raise APIError(400, f"at most {MAX_PROMPTS} prompts per request, got {len(out)}", "prompt", "invalid_value")
    if any(not p for p in out):
        raise APIError(400, "the prompt is empty (it encodes to no tokens)", "prompt", "invalid_value")
    return out


def _parse_prompts(body: dict, engine: ServeEngine) -> list[list[int]]:
    if "prompt" not in body or body["prompt"] is None:
        raise APIError(400, "missing required parameter: 'prompt'", "prompt", "missing_required_parameter")
    p = body["prompt"]
    if isinstance(p, str):
        return [engine.text_ids(p)]
    if isinstance(p, list) and p:
        if all(isinstance(x, str) for x in p):
            return [engine.text_ids(x) for x in p]
        vocab = len(engine.tokenizer)
        if all(isinstance(x, int) and not isinstance(x, bool) for x in p):
            p = [p]
        if all(isinstance(r, list) and r and all(isinstance(x, int) and not isinstance(x, bool) for x in r)
               for r in p):
            if any(not 0 <= x < vocab for r in p for x in r):
                raise APIError(400, f"token ids must be in [0, {vocab})", "prompt", "invalid_value")
            return [list(r) for r in p]
    raise APIError(400, "'prompt' must be a string, an array of strings, or token ids", "prompt", "invalid_type")


def parse_common(body: dict, engine: ServeEngine, prompt_lens: list[int], default_max: int | None,
                 prompt_param: str) -> GenParams:
    _model(body)
    longest = max(prompt_lens)
    if longest >= engine.context:
        raise APIError(400, f"the prompt has {longest} tokens but the model's context is {engine.context}",
                       prompt_param, "context_length_exceeded")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    room = engine.context - longest
    max_tokens = _int(body, key, None, lo=1)
    if max_tokens is None:
        max_tokens = min(default_max or room, room)
    elif longest + max_tokens > engine.context:
        raise APIError(400, f"this model's context is {engine.context} tokens; the prompt has {longest} and "
                            f"{key}={max_tokens} would need {longest + max_tokens}", key, "context_length_exceeded")
    return GenParams(max_tokens=max_tokens, temperature=_num(body, "temperature", 1.0, 0.0, 2.0),
                     top_p=_num(body, "top_p", 1.0, 0.0, 1.0, lo_open=True), n=_int(body, "n", 1, 1, MAX_N),
                     seed=_int(body, "seed", None, *SEED_RANGE), stop=_stop(body))


# ---- response building ---------------------------------------------------------------------------
def _bytes(s: str) -> list[int]:
    return list(s.encode("utf-8"))


def chat_logprobs(c: Choice, lo: int = 0, hi: int | None = None) -> dict:
    content = [{"token": t.token, "logprob": t.logprob, "bytes": _bytes(t.token),
                "top_logprobs": [{"token": s, "logprob": v, "bytes": _bytes(s)} for _, s, v in t.top]}
               for t in c.logprobs[lo:hi]]
    return {"content": content, "refusal": None}


def legacy_logprobs(c: Choice, lo: int = 0, hi: int | None = None) -> dict:
    offsets, pos = [], 0   # absolute character offsets into the choice's text
    for i in range(len(c.logprobs)):
        offsets.append(pos)
        pos += len(c.pieces[i]) if i < len(c.pieces) else 0
    toks = c.logprobs[lo:hi]
    tops = []
    for t in toks:
        d: dict[str, float] = {}
        for _, s, v in t.top:
            d.setdefault(s, v)
        tops.append(d)
    return {"tokens": [t.token for t in toks], "token_logprobs": [t.logprob for t in toks],
            "top_logprobs": tops, "text_offset": offsets[lo:hi]}


def _usage(prompt_lens: list[int], n: int, choices: list[Choice]) -> dict:
    pt = sum(prompt_lens)   # counted once per prompt, whatever n is (as OpenAI does)
    ct = sum(c.n_sampled for c in choices)
    return {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


class Gate:
    """At most ``limit`` requests inside; up to ``max_queue`` waiting; more → 429."""

    def __init__(self, limit: int, max_queue: int):
        self.limit, self.max_queue = limit, max_queue
        self.sem = asyncio.Semaphore(limit)
        self.waiting = self.active = 0

    @asynccontextmanager
    async def slot(self):
        if self.active >= self.limit and self.waiting >= self.max_queue:
            raise APIError(429, f"server busy: {self.active} requests running and {self.waiting} queued "
                                f"(--max-queue {self.max_queue}); retry later", None, "server_busy",
                           "rate_limit_error")
        self.waiting += 1
        try:
            await self.sem.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self.sem.release()


def create_app(engine: ServeEngine, max_concurrency: int = 8, max_queue: int = 64, fault_rate: float = 0.0,
               fault_delay: float = 0.0, fault_seed: int = 0, max_body_bytes: int = MAX_BODY_BYTES,
               max_json_depth: int = MAX_JSON_DEPTH) -> FastAPI:
    app = FastAPI(title="alignstack serve", docs_url=None, redoc_url=None)
    gate = Gate(max_concurrency, max_queue)
    stats: Counter = Counter()

    def render_limit_error(status: int, message: str) -> tuple[bytes, str]:
        stats[f"status_{status}"] += 1
        code, typ = {413: ("request_too_large", "invalid_request_error"), 400: ("invalid_json", "invalid_request_error"),
                     500: (None, "server_error")}.get(status, (None, "invalid_request_error"))
        body = {"error": {"message": message, "type": typ, "param": None, "code": code}}
        return json.dumps(body).encode(), "application/json"

    # body cap and JSON depth cap before routing and parsing; a stray exception answers 500 in the
    # OpenAI error shape and leaves the keep-alive connection usable
    app.add_middleware(RequestLimits, render=render_limit_error, max_body=max_body_bytes, max_depth=max_json_depth)
    fault_rng = random.Random(fault_seed)
    fault_lock = threading.Lock()
    app.state.engine, app.state.stats, app.state.gate = engine, stats, gate

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        stats[f"status_{exc.status}"] += 1
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        stats[f"status_{exc.status_code}"] += 1
        typ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}", None, None, typ)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        stats["status_400"] += 1
        return error_response(400, f"invalid request: {exc.errors()}")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        stats["status_500"] += 1
        return error_response(500, f"internal server error: {type(exc).__name__}: {exc}", None, None, "server_error")

    async def _body(request: Request) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise APIError(400, f"could not parse the request body as JSON: {e}", None, "invalid_json") from None
        if not isinstance(body, dict):
            raise APIError(400, f"the request body must be a JSON object, got {_tname(body)}", None, "invalid_type")
        return body

    async def _maybe_fault() -> None:
        if fault_rate <= 0:
            return
        with fault_lock:
            hit = fault_rng.random() < fault_rate
            slow = hit and fault_delay > 0 and fault_rng.random() < 0.5
        if slow:
            stats["faults_delayed"] += 1
            await asyncio.sleep(fault_delay)
        elif hit:
            stats["faults_503"] += 1
            raise APIError(503, "injected fault (--fault-rate): service unavailable, retry", None, "injected_fault",
                           "server_error")

    async def _run(prompts: list[list[int]], params: GenParams) -> list[list[Choice]]:
        async with gate.slot():
            return await asyncio.wrap_future(engine.submit(prompts, params))

    def _count(prompt_lens, choices):
        stats["completed"] += 1
        stats["prompt_tokens"] += sum(prompt_lens)
        stats["completion_tokens"] += sum(c.n_sampled for c in choices)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": engine.name}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "created": 0,
                                            "owned_by": "alignstack", "max_model_len": engine.context}]}

    @app.get("/v1/stats")
    async def get_stats():
        return {**stats, "in_flight": gate.active, "waiting": gate.waiting, "batches": engine.batches,
                "batched_requests": engine.batched_requests}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        stats["requests"] += 1
        stats["requests_chat"] += 1
        await _maybe_fault()
        body = await _body(request)
        msgs = parse_messages(body)
        try:
            ids = engine.chat_ids(msgs)
        except Exception as e:  # noqa: BLE001 - a template that rejects the conversation is bad input
            raise APIError(400, f"the chat template cannot render these messages: {e}", "messages",
                           "invalid_value") from None
        params = parse_common(body, engine, [len(ids)], None, "messages")
        want_lp = _bool(body, "logprobs", False)
        k = _int(body, "top_logprobs", None, 0, MAX_TOP_LOGPROBS)
        if k is not None and not want_lp:
            raise APIError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs", "invalid_value")
        params.top_logprobs = (k or 0) if want_lp else None
        stream = _bool(body, "stream", False)
        include_usage = bool(body["stream_options"].get("include_usage")) if isinstance(
            body.get("stream_options"), dict) else False
        choices = (await _run([ids], params))[0]
        _count([len(ids)], choices)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        usage = _usage([len(ids)], params.n, choices)
        if not stream:
            return {"id": rid, "object": "chat.completion", "created": created, "model": engine.name,
                    "system_fingerprint": None,
                    "choices": [{"index": i, "message": {"role": "assistant", "content": c.text, "refusal": None},
                                 "logprobs": chat_logprobs(c) if want_lp else None, "finish_reason": c.finish_reason}
                                for i, c in enumerate(choices)],
                    "usage": usage}

        def chunk(choice_list, with_usage=None):
            d = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": engine.name,
                 "system_fingerprint": None, "choices": choice_list}
            if include_usage:
                d["usage"] = with_usage
            return _sse(d)

        async def events():
            for i, c in enumerate(choices):
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}])
                for j, piece in enumerate(c.pieces):
                    yield chunk([{"index": i, "delta": {"content": piece},
                                  "logprobs": chat_logprobs(c, j, j + 1) if want_lp else None,
                                  "finish_reason": None}])
                    await asyncio.sleep(0)
                if want_lp and len(c.logprobs) > len(c.pieces):   # the stop token's log-prob
                    yield chunk([{"index": i, "delta": {"content": ""},
                                  "logprobs": chat_logprobs(c, len(c.pieces)), "finish_reason": None}])
                yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": c.finish_reason}])
            if include_usage:
                yield chunk([], usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request):
        stats["requests"] += 1
        stats["requests_completions"] += 1
        await _maybe_fault()
        body = await _body(request)
        prompts = parse_prompts(body, engine)
        lens = [len(p) for p in prompts]
        params = parse_common(body, engine, lens, 16, "prompt")
        k = _int(body, "logprobs", None, 0, MAX_TOP_LOGPROBS)
        params.top_logprobs = k
        if _bool(body, "echo", False):
            raise APIError(400, "'echo' is not supported", "echo", "unsupported_parameter")
        best_of = _int(body, "best_of", None, 1)
        if best_of not in (None, 1) and best_of != params.n:
            raise APIError(400, "'best_of' other than n is not supported", "best_of", "unsupported_parameter")
        stream = _bool(body, "stream", False)
        include_usage = bool(body["stream_options"].get("include_usage")) if isinstance(
            body.get("stream_options"), dict) else False
        per_prompt = await _run(prompts, params)
        flat = [c for cs in per_prompt for c in cs]
        _count(lens, flat)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        usage = _usage(lens, params.n, flat)
        if not stream:
            return {"id": rid, "object": "text_completion", "created": created, "model": engine.name,
                    "system_fingerprint": None,
                    "choices": [{"index": i, "text": c.text, "logprobs": legacy_logprobs(c) if k is not None else None,
                                 "finish_reason": c.finish_reason} for i, c in enumerate(flat)],
                    "usage": usage}

        def chunk(choice_list, with_usage=None):
            d = {"id": rid, "object": "text_completion", "created": created, "model": engine.name,
                 "system_fingerprint": None, "choices": choice_list}
            if include_usage:
                d["usage"] = with_usage
            return _sse(d)

        async def events():
            for i, c in enumerate(flat):
                for j, piece in enumerate(c.pieces):
                    yield chunk([{"index": i, "text": piece,
                                  "logprobs": legacy_logprobs(c, j, j + 1) if k is not None else None,
                                  "finish_reason": None}])
                    await asyncio.sleep(0)
                if k is not None and len(c.logprobs) > len(c.pieces):   # the stop token's log-prob
                    yield chunk([{"index": i, "text": "", "logprobs": legacy_logprobs(c, len(c.pieces)),
                                  "finish_reason": None}])
                yield chunk([{"index": i, "text": "", "logprobs": None, "finish_reason": c.finish_reason}])
            if include_usage:
                yield chunk([], usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app
