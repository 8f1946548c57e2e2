"""AI labelers (RLAIF, RL-CAI): pairwise soft preferences and 1–10 scores from a judge model.

Pieces (METHODS.md §10, §9.2):

- :class:`PromptTemplate` — a prompt with ``str.format`` named fields (``{question}``, ``{a}``,
  ``{b}``, ``{response}``, ``{principle}``, or any field of a user's own template; literal braces
  are doubled). Built-in templates live in ``alignstack/feedback/templates/*.txt``; any path works
  too. Leading ``#! options: X Y`` lines name the answer options (the tokens whose probabilities
  are read: ``<|A|> <|B|>`` for the world, ``A B`` for plain English, ten rating options for
  scoring). One trailing newline of a file is dropped.
- Backends answer ``option_probs(prompts, options)`` (the normalised probabilities of the options
  as the next output) and ``generate(prompts, max_tokens, temperature)`` (chain-of-thought text):
  :class:`LocalJudgeBackend` reads next-token logits of a local model (one batched forward, no
  sampling); :class:`HTTPJudgeBackend` calls any OpenAI-compatible server (``alignstack serve``,
  vLLM, llama.cpp, …) using top log-probs when offered and parsing the answer text otherwise, with
  timeouts, retries, bounded concurrency and an on-disk cache so interrupted runs resume.
- :class:`PairwiseJudge` — ``p_a = P(A better)``, averaged over both presentation orders
  (``(q1 + (1 − q2_swapped)) / 2``) against position bias; optional two-step chain of thought
  (generate a rationale, append it and the template's ending, then score) whose labels are clamped
  to ``clamp`` (default [0.4, 0.6]) because CoT labels are overconfident. ``label_pairs`` writes
  preference rows with ``soft_label``.
- :class:`ScoringJudge` — d-RLAIF: expected score ``E = Σ i·P(i)`` over the rating options (optionally after
  its own chain of thought, for a rater distilled to write one), reward ``(E − 5.5) / 4.5`` ∈ [−1, 1]; it is a reward scorer
  (``scorer(prompts, completions, **meta) -> list[float]``).

Reward-interface use of :class:`PairwiseJudge`: ``judge(prompts, completions, references=[...])``
returns ``2·P(completion ≻ reference) − 1`` ∈ [−1, 1] (a pairwise judge needs something to compare
with, so ``references`` — e.g. the SFT model's samples — is required).

This module imports only the standard library at import time (torch, httpx are imported lazily).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import string
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_PRINCIPLE = "Prefer the response that is more helpful, correct, honest and harmless."
DEFAULT_RATING_PRINCIPLE = "A good response is helpful, correct, honest and harmless."
DEFAULT_COT_PROMPT = "Let's think step by step about which response is better.\nRationale:"
DEFAULT_RATING_COT_PROMPT = "Let's think step by step about how good the response is.\nRationale:"


class TemplateError(ValueError):
    """A template cannot be loaded or rendered (e.g. a field has no value)."""


class JudgeError(RuntimeError):
    """A judge backend could not produce an answer (after its retries)."""


# ---- templates ---------------------------------------------------------------------------------
@dataclass
class PromptTemplate:
    text: str
    options: tuple[str, ...] = ()
    name: str = "custom"

    @property
    def fields(self) -> set[str]:
        out = set()
        try:
            for _, fname, _, _ in string.Formatter().parse(self.text):
                if fname is not None:
                    if fname == "" or fname.isdigit():
                        raise TemplateError(f"template {self.name!r}: positional field '{{{fname}}}'; use named "
                                            "fields like {question} (double literal braces: {{ }})")
                    out.add(re.split(r"[.\[]", fname, maxsplit=1)[0])
        except ValueError as e:
            if isinstance(e, TemplateError):
                raise
            raise TemplateError(f"template {self.name!r} is not a valid format string: {e} "
                                "(double literal braces: {{ }})") from None
        return out

    def render(self, **values) -> str:
        missing = sorted(f for f in self.fields if values.get(f) is None)
        if missing:
            raise TemplateError(f"template {self.name!r} needs field(s) {missing} but got no value for them "
                                f"(given: {sorted(k for k, v in values.items() if v is not None)})")
        return self.text.format(**values)

    @classmethod
    def parse(cls, text: str, name: str = "custom") -> PromptTemplate:
        lines = text.split("\n")
        meta: dict[str, str] = {}
        while lines and lines[0].startswith("#!"):
            key, _, val = lines.pop(0)[2:].partition(":")
            meta[key.strip()] = val.strip()
        body = "\n".join(lines)
        if body.endswith("\n"):
            body = body[:-1]
        t = cls(body, tuple(meta["options"].split()) if meta.get("options") else (), name)
        t.fields  # noqa: B018 - validate the format string now, not at the first render
        return t

    @classmethod
    def load(cls, spec: str | os.PathLike | PromptTemplate) -> PromptTemplate:
        """A built-in name (``pairwise_world``, ``rate_world``, ``pairwise_plain``, ``rate_plain``), a
        path to a text file, or a template (returned as is)."""
        if isinstance(spec, PromptTemplate):
            return spec
        p = Path(spec)
        if not p.suffix and not p.exists():
            p = TEMPLATE_DIR / f"{spec}.txt"
        if not p.is_file():
            builtin = sorted(q.stem for q in TEMPLATE_DIR.glob("*.txt"))
            raise TemplateError(f"no template {str(spec)!r}: not a file and not a built-in template {builtin}")
        return cls.parse(p.read_text(encoding="utf-8"), p.stem)


def split_ending(text: str) -> tuple[str, str]:
    """(body, ending): the rendered prompt's last line is the ending the answer follows."""
    i = text.rfind("\n")
    return (text, "") if i < 0 else (text[:i], text[i + 1:])


def cut_rationale(generated: str, ending: str) -> str:
    """A chain-of-thought rationale ends where the model starts the answer line itself (a judge trained on
    documents in this form writes ``…\nBetter:`` next): keep the text before it, so the ending is not doubled."""
    if ending.strip():
        i = generated.find("\n" + ending.strip())
        if i >= 0:
            generated = generated[:i]
    return generated.strip()


def prompt_text(prompt) -> str:
    """The question a judge sees: a string as is; a chat (list of messages) as its single user turn,
    or as ``role: content`` lines when it has several turns."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        if len(prompt) == 1 and prompt[0].get("role", "user") == "user":
            return str(prompt[0].get("content", ""))
        return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)
    raise TypeError(f"a prompt must be a string or a list of chat messages, got {type(prompt).__name__}")


def response_text(r) -> str:
    if isinstance(r, str):
        return r
    if isinstance(r, list) and len(r) == 1 and isinstance(r[0], dict):
        return str(r[0].get("content", ""))
    raise TypeError(f"a response must be a string or a list with one assistant message, got {type(r).__name__}")


# ---- maths -------------------------------------------------------------------------------------
def average_orders(q1: float, q2_swapped: float) -> float:
    """P(A better) from both orders: ``q1`` = P(first better) with A first, ``q2_swapped`` = P(first
    better) with B first (so ``1 − q2_swapped`` is the second order's P(A better))."""
    return (q1 + (1.0 - q2_swapped)) / 2.0


def clamp(p: float, lo: float, hi: float) -> float:
    return min(max(p, lo), hi)


def expected_score(probs: Sequence[float]) -> float:
    """``Σ i·P(i)`` for options scored 1..K (probabilities renormalised)."""
    z = sum(probs)
    if not z > 0:
        raise ValueError("rating probabilities sum to zero")
    return sum((i + 1) * p for i, p in enumerate(probs)) / z


def score_to_reward(e: float, k: int = 10) -> float:
    """Map an expected score on 1..K to [−1, 1]: for K = 10, ``(E − 5.5) / 4.5``."""
    mid, half = (k + 1) / 2.0, (k - 1) / 2.0
    return (e - mid) / half


def _norm_option(s: str) -> str:
    return s.strip().strip("()[]*.:'\"`").strip()


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """Index of the option a free-text answer names first (``A``/``B``, ``1``/``2`` for non-digit
    options, ``7`` …), or None. At the same position the longest option wins (``10`` over ``1``)."""
    cands = [(o, i) for i, o in enumerate(options)]
    if not any(o.isdigit() for o in options):
        cands += [(str(i + 1), i) for i in range(len(options))]
    best = None
    for o, i in cands:
        pat = re.escape(o)
        if o[:1].isalnum():
            pat = r"(?<![A-Za-z0-9])" + pat
        if o[-1:].isalnum():
            pat += r"(?![A-Za-z0-9])"
        m = re.search(pat, text)
        if m and (best is None or (m.start(), -len(o)) < (best[0], -best[1])):
            best = (m.start(), len(o), i)
    return None if best is None else best[2]


def _stable_choice(items: Sequence[str], *key: str) -> str:
    h = hashlib.sha256("\x1f".join(key).encode()).digest()
    return items[int.from_bytes(h[:8], "big") % len(items)]


# ---- backends ----------------------------------------------------------------------------------
class JudgeBackend:
    """What a judge needs from a model."""

    name = "judge"
    default_pairwise_template = "pairwise_plain"
    default_rating_template = "rate_plain"

    def option_probs(self, prompts: list[str], options: Sequence[str]) -> list[list[float]]:
        """For each prompt, the probabilities (summing to 1) of each option being the next output."""
        raise NotImplementedError

    def generate(self, prompts: list[str], max_tokens: int = 64, temperature: float = 0.0) -> list[str]:
        raise NotImplementedError


class LocalJudgeBackend(JudgeBackend):
    """A local causal LM: softmax over the option tokens' next-token logits (one batched forward per
    ``batch_size`` prompts, no sampling). Each option must be a single token (the world's ``<|A|>``,
    ``<|r7|>`` …). Prompts get the BOS token prepended (``add_bos``), like training documents; an
    over-long prompt keeps its end (the part the answer follows)."""

    default_pairwise_template = "pairwise_world"
    default_rating_template = "rate_world"

    def __init__(self, model, tokenizer, name: str | None = None, batch_size: int = 32, add_bos: bool = True):
        self.model, self.tokenizer, self.batch_size, self.add_bos = model, tokenizer, batch_size, add_bos
        self.name = name or Path(str(getattr(model.config, "_name_or_path", "") or "local")).name or "local"
        self.context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.calls = 0

    def option_ids(self, options: Sequence[str]) -> list[int]:
        ids = []
        for o in options:
            enc = self.tokenizer(o, add_special_tokens=False)["input_ids"]
            if len(enc) != 1:
                raise ValueError(f"judge option {o!r} is {len(enc)} tokens for this tokenizer; the local backend "
                                 "reads one next token per option (use single-token options such as <|A|>)")
            ids.append(enc[0])
        if len(set(ids)) != len(ids):
            raise ValueError(f"judge options {list(options)} map to the same token")
        return ids

    def _encode(self, text: str, room: int = 0) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.add_bos and self.tokenizer.bos_token_id is not None:
            ids = [self.tokenizer.bos_token_id] + ids
        keep = self.context - room
        return ids[-keep:] if len(ids) > keep else ids

    def option_probs(self, prompts, options):
        import torch

        from alignstack.data.collate import pad_left

        opt = torch.tensor(self.option_ids(options))
        out: list[list[float]] = []
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            for s in range(0, len(prompts), self.batch_size):
                ids, att = pad_left([self._encode(p) for p in prompts[s:s + self.batch_size]],
                                    self.tokenizer.pad_token_id)
                pos = (att.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=False).logits
                self.calls += 1
                out += torch.softmax(logits[:, -1].float()[:, opt], -1).tolist()
        if was_training:
            self.model.train()
        return out

    def generate(self, prompts, max_tokens=64, temperature=0.0):
        from alignstack.models.tokenizer import stop_token_ids
        from alignstack.rollout.engine import SamplingConfig, sample

        cfg = SamplingConfig(max_new_tokens=max_tokens, temperature=temperature or 1.0, greedy=temperature == 0)
        stop = stop_token_ids(self.tokenizer)
        g = sample(self.model, [self._encode(p, room=max_tokens) for p in prompts], cfg, stop,
                   self.tokenizer.pad_token_id)
        return [self.tokenizer.decode([t for t in c if t not in stop], skip_special_tokens=False)
                for c in g.completion_ids]


JUDGE_CARD = "judge_card.json"


def judge_card(path: str | os.PathLike) -> dict | None:
    """What a judge model's folder says about it (``judge_card.json``, written by ``alignstack judge``): how it was
    trained, how it is meant to be used and its measured agreement with ground truth; None for other models. Methods
    that label with a judge put it beside their own report, so a result names the judge it rests on."""
    f = Path(path) / JUDGE_CARD
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except ValueError:
        return {"error": f"unreadable {f}"}


def local_backend(path: str, batch_size: int = 64) -> LocalJudgeBackend:
    """A judge backend on a local Hugging Face model folder (``judge:PATH`` rewards, RLAIF, CAI critics)."""
    from alignstack.models.load import load_model, load_tokenizer

    return LocalJudgeBackend(load_model(path).eval(), load_tokenizer(path), batch_size=batch_size)


class ResponseCache:
    """Append-only JSONL cache of raw server responses, keyed by a hash of the request. Every entry
    is flushed and fsync'ed, so a killed run loses at most the requests in flight; a torn last line
    is ignored on reload."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.data: dict[str, dict] = {}
        if self.path.exists():
            raw = self.path.read_bytes()
            for line in raw.decode("utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                    self.data[rec["key"]] = rec["response"]
                except (ValueError, KeyError, TypeError):
                    continue   # torn line from an interrupted write
            if raw and not raw.endswith(b"\n"):
                with open(self.path, "ab") as f:
                    f.write(b"\n")
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for appends

    @staticmethod
    def key(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def put(self, key: str, response: dict) -> None:
        line = json.dumps({"key": key, "response": response}, ensure_ascii=False) + "\n"
        with self.lock:
            self.data[key] = response
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())

    def __len__(self):
        return len(self.data)

    def close(self):
        self._f.close()


class HTTPJudgeBackend(JudgeBackend):
    """Any OpenAI-compatible endpoint (``base_url`` ends in ``/v1``).

    ``endpoint="chat"`` sends the prompt as one user message to ``/chat/completions``
    (``logprobs: true, top_logprobs: k``); ``"completions"`` sends raw text to ``/completions``
    (``logprobs: k``) — use it for base models and the world's templates. Option probabilities come
    from the first answer token's top log-probs (tokens compared after stripping spaces and
    brackets, so ``" A"`` counts for ``A``); if the server gives no log-probs or none of the options
    is among them, the answer text is parsed (``A``/``B``, ``1``/``2``, a number) into a one-hot
    distribution; unparseable answers count in ``stats["unparsed"]`` and give a uniform one
    (``on_unparsed="error"`` raises :class:`JudgeError` instead).

    Requests time out after ``timeout`` s and are retried up to ``max_retries`` times with
    exponential backoff (``backoff·2^attempt``, capped at 30 s) on timeouts, connection errors,
    429 and 5xx; other 4xx raise :class:`JudgeError` at once. ``concurrency`` threads send
    requests. With ``cache_path`` every answered request is stored (key: hash of endpoint, model,
    full prompt and parameters), so rerunning an interrupted labeling job re-sends only what is
    missing.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 30.0,
                 max_retries: int = 5, backoff: float = 0.5, concurrency: int = 4,
                 cache_path: str | os.PathLike | None = None, endpoint: str = "chat", top_logprobs: int = 20,
                 answer_tokens: int = 3, name: str | None = None, transport=None, seed: int | None = 0,
                 on_unparsed: str = "uniform"):
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if on_unparsed not in ("uniform", "error"):
            raise ValueError(f"on_unparsed must be 'uniform' or 'error', got {on_unparsed!r}")
        self.on_unparsed = on_unparsed
        import httpx

        self.base_url, self.model, self.endpoint = base_url.rstrip("/"), model, endpoint
        self.max_retries, self.backoff, self.concurrency = max_retries, backoff, max(1, concurrency)
        self.top_logprobs, self.answer_tokens, self.seed = top_logprobs, answer_tokens, seed
        self.name = name or model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers, transport=transport,
                                   limits=httpx.Limits(max_connections=self.concurrency + 2))
        self.cache = ResponseCache(cache_path) if cache_path else None
        self.stats: Counter = Counter()
        self._stats_lock = threading.Lock()
        self._httpx = httpx

    def _count(self, key: str, n: int = 1):
        with self._stats_lock:
            self.stats[key] += n

    # ---- requests ----
    def _payload(self, prompt: str, max_tokens: int, temperature: float, top_logprobs: int | None) -> dict:
        body: dict = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature}
        if self.seed is not None:
            body["seed"] = self.seed
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            if top_logprobs is not None:
                body.update(logprobs=True, top_logprobs=top_logprobs)
        else:
            body["prompt"] = prompt
            if top_logprobs is not None:
                body["logprobs"] = top_logprobs
        return body

    def _post(self, body: dict) -> dict:
        key = ResponseCache.key({"endpoint": self.endpoint, "body": body}) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._count("cache_hits")
                return hit
        url = f"{self.base_url}/{'chat/completions' if self.endpoint == 'chat' else 'completions'}"
        httpx = self._httpx
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(min(30.0, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.75, 1.0))
            try:
                self._count("requests")
                r = self.client.post(url, json=body)
            except httpx.TimeoutException as e:
                last = f"timeout ({type(e).__name__})"
                self._count("timeouts")
                continue
            except httpx.TransportError as e:
                last = f"connection error ({type(e).__name__}: {e})"
                self._count("connection_errors")
                continue
            if r.status_code == 429 or r.status_code >= 500:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                self._count(f"http_{r.status_code}")
                continue
            if r.status_code >= 400:
                try:
                    msg = r.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    msg = r.text[:500]
                raise JudgeError(f"{url} rejected the request (HTTP {r.status_code}): {msg}")
            try:
                data = r.json()
            except ValueError:
                last = f"unparseable response body: {r.text[:200]!r}"
                continue
            if key is not None:
                self.cache.put(key, data)
            return data
        self._count("failures")
        raise JudgeError(f"{url}: no answer after {self.max_retries + 1} attempts; last error: {last}")

    def _map(self, fn, items: list):
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.concurrency) as ex:
            return list(ex.map(fn, items))

    # ---- answers ----
    def _first_top(self, data: dict) -> list[tuple[str, float]] | None:
        try:
            lp = data["choices"][0].get("logprobs")
            if not lp:
                return None
            if self.endpoint == "chat":
                first = lp["content"][0]
                return [(t["token"], float(t["logprob"])) for t in first.get("top_logprobs") or []] or \
                    [(first["token"], float(first["logprob"]))]
            tops = lp.get("top_logprobs")
            if tops and tops[0]:
                return [(t, float(v)) for t, v in tops[0].items()]
            return [(lp["tokens"][0], float(lp["token_logprobs"][0]))]
        except (KeyError, IndexError, TypeError, ValueError):
            return None

    def _text(self, data: dict) -> str:
        try:
            c = data["choices"][0]
            return (c["message"]["content"] if self.endpoint == "chat" else c["text"]) or ""
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"malformed response: {str(data)[:300]}") from None

    def probs_from_response(self, data: dict, options: Sequence[str]) -> list[float]:
        top = self._first_top(data)
        if top:
            norm = [_norm_option(o) for o in options]
            mass = [0.0] * len(options)
            for tok, lp in top:
                t = _norm_option(tok)
                if t in norm and math.isfinite(lp):
                    mass[norm.index(t)] += math.exp(lp)
            z = sum(mass)
            if z > 0:
                self._count("from_logprobs")
                return [m / z for m in mass]
        text = self._text(data)
        i = parse_choice(text, options)
        if i is None:
            self._count("unparsed")
            if self.on_unparsed == "error":
                raise JudgeError(f"the judge's answer names none of the options {list(options)} and its "
                                 f"top log-probs hold none of them: {text[:200]!r}")
            return [1.0 / len(options)] * len(options)
        self._count("from_text")
        return [1.0 if j == i else 0.0 for j in range(len(options))]

    def option_probs(self, prompts, options):
        def one(p):
            return self.probs_from_response(self._post(self._payload(p, self.answer_tokens, 0.0,
                                                                     self.top_logprobs)), options)
        return self._map(one, list(prompts))

    def generate(self, prompts, max_tokens=64, temperature=0.0):
        return self._map(lambda p: self._text(self._post(self._payload(p, max_tokens, temperature, None))),
                         list(prompts))

    def close(self):
        self.client.close()
        if self.cache is not None:
            self.cache.close()


# ---- judges ------------------------------------------------------------------------------------
class PairwiseJudge:
    """P(A better than B) from an AI labeler. See the module docstring.

    ``principles``: one is picked per comparison (deterministically from the pair, so reruns send
    identical prompts and hit the cache) and filled into ``{principle}``; a row's own
    ``"principle"`` wins. ``fields``: extra constant template fields (few-shot examples, …).
    """

    def __init__(self, backend: JudgeBackend, template: str | os.PathLike | PromptTemplate | None = None,
                 both_orders: bool = True, cot: bool = False, clamp: tuple[float, float] | None = (0.4, 0.6),
                 principles: Sequence[str] | None = None, fields: dict | None = None,
                 cot_prompt: str = DEFAULT_COT_PROMPT, cot_max_tokens: int = 64, name: str | None = None,
                 batch_size: int = 256):
        self.backend = backend
        self.template = PromptTemplate.load(template or backend.default_pairwise_template)
        if len(self.template.options) != 2:
            raise TemplateError(f"pairwise template {self.template.name!r} must declare two options "
                                f"('#! options: A B'), got {list(self.template.options)}")
        self.both_orders, self.cot, self.clamp = both_orders, cot, clamp
        self.principles = list(principles) if principles else [DEFAULT_PRINCIPLE]
        self.fields = dict(fields or {})
        self.cot_prompt, self.cot_max_tokens, self.batch_size = cot_prompt, cot_max_tokens, batch_size
        self.name = name or backend.name

    def _render(self, question: str, first: str, second: str, principle: str) -> str:
        return self.template.render(**{**self.fields, "question": question, "a": first, "b": second,
                                       "principle": principle})

    def principle_for(self, question: str, a: str, b: str) -> str:
        return _stable_choice(self.principles, question, a, b)

    def judge(self, prompts: Sequence, responses_a: Sequence, responses_b: Sequence,
              principles: Sequence[str | None] | None = None) -> list[dict]:
        """One result dict per pair: ``p_a``, ``p_a_first_order``, ``p_a_second_order`` (None with
        ``both_orders=False``), ``principle`` and, with CoT, ``rationale`` (and
        ``rationale_second_order``)."""
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise ValueError("prompts, responses_a and responses_b must have the same length")
        out: list[dict] = []
        for s in range(0, len(prompts), self.batch_size):
            out += self._judge_batch(prompts[s:s + self.batch_size], responses_a[s:s + self.batch_size],
                                     responses_b[s:s + self.batch_size],
                                     None if principles is None else principles[s:s + self.batch_size])
        return out

    def _judge_batch(self, prompts, ra, rb, principles) -> list[dict]:
        qs = [prompt_text(p) for p in prompts]
        ra, rb = [response_text(r) for r in ra], [response_text(r) for r in rb]
        pr = [(principles[i] if principles is not None and principles[i] else None) or self.principle_for(q, a, b)
              for i, (q, a, b) in enumerate(zip(qs, ra, rb))]
        texts = [self._render(q, a, b, p) for q, a, b, p in zip(qs, ra, rb, pr)]
        if self.both_orders:
            texts += [self._render(q, b, a, p) for q, a, b, p in zip(qs, ra, rb, pr)]
        rationales = None
        if self.cot:
            heads = []
            for t in texts:
                body, _ = split_ending(t)
                heads.append(f"{body}\n{self.cot_prompt}")
            rationales = [cut_rationale(r, split_ending(t)[1]) for r, t in
                          zip(self.backend.generate(heads, self.cot_max_tokens, 0.0), texts)]
            texts = [f"{h} {r}\n{split_ending(t)[1]}" for h, r, t in zip(heads, rationales, texts)]
        probs = self.backend.option_probs(texts, self.template.options)
        n = len(qs)
        res = []
        for i in range(n):
            q1 = probs[i][0]
            q2 = probs[n + i][0] if self.both_orders else None
            p = average_orders(q1, q2) if self.both_orders else q1
            if self.cot and self.clamp is not None:
                p = clamp(p, *self.clamp)
            d = {"p_a": p, "p_a_first_order": q1, "p_a_second_order": None if q2 is None else 1.0 - q2,
                 "principle": pr[i]}
            if rationales is not None:
                d["rationale"] = rationales[i]
                if self.both_orders:
                    d["rationale_second_order"] = rationales[n + i]
            res.append(d)
        return res

    def label_pairs(self, rows: Sequence[dict]) -> list[dict]:
        """Rows with ``prompt`` and two responses (``completions: [a, b]``, or ``a``/``b``, or
        ``chosen``/``rejected`` to relabel) → preference rows ``{"prompt", "chosen", "rejected",
        "soft_label": P(chosen ≻ rejected) ≥ 0.5, "annotator": "judge:<name>", "meta": {...}}``."""
        pa, pb = [], []
        for i, r in enumerate(rows):
            if "completions" in r:
                c = r["completions"]
                if not isinstance(c, list) or len(c) != 2:
                    raise ValueError(f"row {i + 1}: 'completions' must hold exactly two responses")
                a, b = c
            elif "a" in r and "b" in r:
                a, b = r["a"], r["b"]
            elif "chosen" in r and "rejected" in r:
                a, b = r["chosen"], r["rejected"]
            else:
                raise ValueError(f"row {i + 1}: expected 'completions': [a, b], 'a'/'b' or 'chosen'/'rejected'")
            if "prompt" not in r:
                raise ValueError(f"row {i + 1}: missing 'prompt'")
            pa.append(a)
            pb.append(b)
        res = self.judge([r["prompt"] for r in rows], pa, pb, [r.get("principle") for r in rows])
        out = []
        for r, a, b, d in zip(rows, pa, pb, res):
            a_wins = d["p_a"] >= 0.5
            meta = {**(r.get("meta") or {}), **d, "a_is_chosen": a_wins,
                    "both_orders": self.both_orders, "cot": self.cot, "template": self.template.name}
            out.append({"prompt": r["prompt"], "chosen": a if a_wins else b, "rejected": b if a_wins else a,
                        "soft_label": d["p_a"] if a_wins else 1.0 - d["p_a"], "annotator": f"judge:{self.name}",
                        "meta": meta})
        return out

    def __call__(self, prompts, completions, *, references: Sequence | None = None, **meta) -> list[float]:
        """Reward interface: ``2·P(completion ≻ reference) − 1`` (needs ``references``)."""
        if references is None:
            raise ValueError("a pairwise judge used as a reward needs meta['references'] (one response per "
                             "prompt to compare against, e.g. the SFT model's samples)")
        return [2.0 * d["p_a"] - 1.0 for d in self.judge(prompts, completions, references)]


class ScoringJudge:
    """d-RLAIF rater: expected score over 1..K rating options → reward ``(E − mid)/half`` ∈ [−1, 1]
    (``(E − 5.5)/4.5`` for K = 10). Fits ``scorer(prompts, completions, **meta)``; batched.

    ``cot``: the two-step chain of thought of :class:`PairwiseJudge` — generate a rationale after the body and
    ``cot_prompt``, append it and the template's last line, then read the rating options — for a scoring judge
    distilled to grade a response before scoring it (``alignstack judge`` with ``kind=rating``). No order to
    average: each response is rated alone."""

    def __init__(self, backend: JudgeBackend, template: str | os.PathLike | PromptTemplate | None = None,
                 principle: str = DEFAULT_RATING_PRINCIPLE, fields: dict | None = None, name: str | None = None,
                 batch_size: int = 256, cot: bool = False, cot_prompt: str = DEFAULT_RATING_COT_PROMPT,
                 cot_max_tokens: int = 64):
        self.backend = backend
        self.template = PromptTemplate.load(template or backend.default_rating_template)
        if len(self.template.options) < 2:
            raise TemplateError(f"rating template {self.template.name!r} must declare its rating options "
                                "('#! options: 1 2 ... 10'), lowest first")
        self.principle, self.fields, self.batch_size = principle, dict(fields or {}), batch_size
        self.cot, self.cot_prompt, self.cot_max_tokens = cot, cot_prompt, cot_max_tokens
        self.name = name or backend.name

    def render(self, prompt, completion) -> str:
        return self.template.render(**{**self.fields, "question": prompt_text(prompt),
                                       "response": response_text(completion), "principle": self.principle})

    def rate(self, prompts: Sequence, completions: Sequence) -> list[dict]:
        """One dict per response: ``probs`` (over the rating options, lowest first), ``score`` (the expected score)
        and, with ``cot``, ``rationale``."""
        if len(prompts) != len(completions):
            raise ValueError("prompts and completions must have the same length")
        texts = [self.render(p, c) for p, c in zip(prompts, completions)]
        out: list[dict] = []
        for s in range(0, len(texts), self.batch_size):
            batch, rationales = texts[s:s + self.batch_size], None
            if self.cot:
                heads = [f"{split_ending(t)[0]}\n{self.cot_prompt}" for t in batch]
                rationales = [cut_rationale(r, split_ending(t)[1]) for r, t in
                              zip(self.backend.generate(heads, self.cot_max_tokens, 0.0), batch)]
                batch = [f"{h} {r}\n{split_ending(t)[1]}" for h, r, t in zip(heads, rationales, batch)]
            for i, probs in enumerate(self.backend.option_probs(batch, self.template.options)):
                d = {"probs": probs, "score": expected_score(probs)}
                if rationales is not None:
                    d["rationale"] = rationales[i]
                out.append(d)
        return out

    def distributions(self, prompts: Sequence, completions: Sequence) -> list[list[float]]:
        return [d["probs"] for d in self.rate(prompts, completions)]

    def expected_scores(self, prompts, completions) -> list[float]:
        return [d["score"] for d in self.rate(prompts, completions)]

    def __call__(self, prompts, completions, **meta) -> list[float]:
        k = len(self.template.options)
        return [score_to_reward(e, k) for e in self.expected_scores(prompts, completions)]
