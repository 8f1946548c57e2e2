"""The model side of ``alignstack serve``.

:class:`ServeEngine` turns chat messages or raw text into token ids, generates with the rollout
engine (:func:`alignstack.rollout.engine.sample`, one batched call per request, ``n`` samples as
repeated prompts), applies stop strings, and — when asked — scores the completions once more to get
top-k log-probs.

Conventions:

- Completion text keeps every token except the stop tokens (``<|end|>`` …), so special tokens such
  as the world's ``<|A|>`` or ``<|r7|>`` are visible to clients (judges need them). Log-probs cover
  the visible tokens and then the stop token that ended the text, if any (so a judge still sees
  the first position's alternatives when the model stops at once).
- Log-probs follow the rollout engine: ``log softmax(logits / T)`` over the full vocabulary, with
  ``T = 1`` for greedy decoding (``temperature: 0``); the chosen token's value and the top-k list
  come from the same scoring pass, so they are consistent.
- Raw-text prompts (``/v1/completions``) get the BOS token prepended when the tokenizer's chat
  template starts conversations with ``bos_token`` (as the world's does): such models were trained
  on BOS-prefixed documents.
- Requests go to one worker thread that runs the model (so the web event loop never blocks).
  Requests waiting while a batch runs are merged into the next batch when their sampling settings
  agree (same temperature / top-p, or all greedy; never seeded ones, which run alone so a seed
  reproduces), up to ``max_batch_rows`` sequences; a merged batch decodes to its longest request's
  ``max_tokens`` and each request is cut back to its own.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch

FINISH_STOP, FINISH_LENGTH = "stop", "length"


@dataclass
class GenParams:
    max_tokens: int = 16
    temperature: float = 1.0          # 0 -> greedy
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    top_logprobs: int | None = None   # None: no log-probs; 0: chosen token only; k: also the top k


@dataclass
class TokenLogprob:
    token_id: int
    token: str
    logprob: float
    top: list[tuple[int, str, float]]   # (token id, token text, log-prob), best first


@dataclass
class Choice:
    text: str
    token_ids: list[int]               # visible tokens (no stop token, nothing past a stop string)
    n_sampled: int                     # tokens the model produced (usage counts these)
    finish_reason: str
    logprobs: list[TokenLogprob] | None = None     # visible tokens, then the stop token if one ended it
    pieces: list[str] = field(default_factory=list)   # text per visible token, for streaming
    stop_token: int | None = None                     # the stop token that ended the text (not shown)


@dataclass
class _Job:
    prompts: list[list[int]]
    params: GenParams
    future: Future


class ServeEngine:
    """A loaded model + tokenizer, ready to answer requests (thread-safe)."""

    def __init__(self, model, tokenizer, name: str = "alignstack", add_bos: bool | None = None,
                 batch_size: int = 64, max_batch_rows: int = 64):
        from alignstack.models.tokenizer import stop_token_ids

        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.model.eval()
        self.stop_ids = stop_token_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        cfg = model.config
        self.context = int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 2048))
        if add_bos is None:
            add_bos = "bos_token" in (getattr(tokenizer, "chat_template", None) or "")
        self.add_bos = bool(add_bos) and tokenizer.bos_token_id is not None
        self.batch_size = batch_size
        self.max_batch_rows = max_batch_rows
        self.lock = threading.Lock()
        self.tok_lock = threading.RLock()   # fast tokenizers are not safe to share between threads
        self._cv = threading.Condition()
        self._pending: list[_Job] = []
        self._worker: threading.Thread | None = None
        self.batches = self.batched_requests = 0
        self._tok_text: dict[int, str] = {}

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None, dtype: str | None = None) -> ServeEngine:
        from alignstack.models.load import load_model, load_tokenizer

        model = load_model(path, dtype=dtype)
        tok = load_tokenizer(path)
        return cls(model, tok, name or Path(path).resolve().name)

    # ---- tokenisation -------------------------------------------------------------------------
    def chat_ids(self, messages: list[dict]) -> list[int]:
        from alignstack.data.render import ChatRenderer

        with self.tok_lock:
            return ChatRenderer(self.tokenizer, max_length=sys.maxsize).prompt_ids(messages)

    def text_ids(self, text: str) -> list[int]:
        with self.tok_lock:
            ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        if self.add_bos and (not ids or ids[0] != self.tokenizer.bos_token_id):
            ids = [self.tokenizer.bos_token_id] + ids
        return ids

    def token_text(self, token_id: int) -> str:
        s = self._tok_text.get(token_id)
        if s is None:
            with self.tok_lock:
                s = self._tok_text[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return s

    def decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        with self.tok_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=False)

    # ---- generation ---------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], p: GenParams) -> list[list[Choice]]:
        """``n`` choices for each prompt (token ids that already fit the context); blocks."""
        return self.submit(prompts, p).result()

    def submit(self, prompts: list[list[int]], p: GenParams) -> Future:
        """Queue a request for the batching worker; the future resolves to ``generate``'s result."""
        job = _Job([list(x) for x in prompts], p, Future())
        with self._cv:
            self._pending.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="alignstack-serve-engine", daemon=True)
                self._worker.start()
            self._cv.notify()
        return job.future

    @staticmethod
    def _compatible(a: GenParams, b: GenParams) -> bool:
        if a.seed is not None or b.seed is not None:
            return False
        if (a.temperature == 0) != (b.temperature == 0):
            return False
        return a.temperature == 0 or (a.temperature == b.temperature and a.top_p == b.top_p)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._pending:
                    self._cv.wait()
                # requests whose client went away (future cancelled) are dropped here
                self._pending = [j for j in self._pending if not j.future.cancelled()]
                if not self._pending:
                    continue
                head = self._pending.pop(0)
                batch, rows, keep = [head], len(head.prompts) * head.params.n, []
                for j in self._pending:   # waiting requests with the same sampling settings join
                    r = len(j.prompts) * j.params.n
                    if self._compatible(head.params, j.params) and rows + r <= self.max_batch_rows:
                        batch.append(j)
                        rows += r
                    else:
                        keep.append(j)
                self._pending = keep
                batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                results = self._run(batch)
            except BaseException as e:  # noqa: BLE001 - hand any failure to the waiting requests
                for j in batch:
                    j.future.set_exception(e)
                continue
            self.batches += 1
            self.batched_requests += len(batch)
            for j, r in zip(batch, results):
                j.future.set_result(r)

    def _run(self, batch: list[_Job]) -> list[list[list[Choice]]]:
        from alignstack.rollout.engine import SamplingConfig, sample

        rep, spans = [], []
        for j in batch:
            start = len(rep)
            rep += [ids for ids in j.prompts for _ in range(j.params.n)]
            spans.append((start, len(rep)))
        p0 = batch[0].params
        greedy = p0.temperature == 0
        temp = 1.0 if greedy else p0.temperature
        cfg = SamplingConfig(max_new_tokens=max(j.params.max_tokens for j in batch), temperature=temp,
                             top_p=p0.top_p, greedy=greedy, batch_size=self.batch_size)
        gen = torch.Generator().manual_seed(int(p0.seed)) if p0.seed is not None else None
        stop = set(self.stop_ids)
        out = []
        with self.lock:
            g = sample(self.model, rep, cfg, self.stop_ids, self.pad_id, gen)
            for j, (a, b) in zip(batch, spans):
                choices = []
                for comp in g.completion_ids[a:b]:
                    comp = comp[:j.params.max_tokens]   # a batch runs to its longest request's limit
                    choices.append(self._finish(comp, bool(comp) and comp[-1] in stop, j.params.stop))
                if j.params.top_logprobs is not None:
                    self._score(rep[a:b], choices, temp, j.params.top_logprobs)
                n = j.params.n
                out.append([choices[i * n:(i + 1) * n] for i in range(len(j.prompts))])
        return out

    def _finish(self, comp: list[int], finished: bool, stop: list[str]) -> Choice:
        visible = comp[:-1] if finished else list(comp)
        reason = FINISH_STOP if finished else FINISH_LENGTH
        text = self.decode(visible)
        cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1) if stop else -1
        stop_token = comp[-1] if finished else None
        if cut >= 0:
            text, reason, stop_token = text[:cut], FINISH_STOP, None
            k = 0
            while k < len(visible) and len(self.decode(visible[:k + 1])) <= cut:
                k += 1
            visible = visible[:k]
        # text per token, holding back incomplete UTF-8 (shown as U+FFFD) until it completes
        pieces, emitted = [], ""
        for j in range(len(visible)):
            pre = self.decode(visible[:j + 1])
            if pre.endswith("\ufffd") and j + 1 < len(visible):
                pieces.append("")
                continue
            pieces.append(pre[len(emitted):])
            emitted = pre
        if pieces and not text.startswith(emitted):   # defensive: never stream more than `text`
            pieces = [""] * (len(pieces) - 1) + [text]
            emitted = text
        if len(emitted) < len(text):   # the part of a token cut by a stop string
            if pieces:
                pieces[-1] += text[len(emitted):]
            else:
                pieces = [text[len(emitted):]]
        return Choice(text, visible, len(comp), reason, None, pieces, stop_token)

    @torch.no_grad()
    def _score(self, prompts: list[list[int]], choices: list[Choice], temperature: float, k: int) -> None:
        scored = [c.token_ids + ([c.stop_token] if c.stop_token is not None else []) for c in choices]
        rows = [(i, prompts[i], sc) for i, sc in enumerate(scored) if sc]
        for c in choices:
            c.logprobs = []
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s:s + self.batch_size]
            T = max(len(p) + len(c) for _, p, c in chunk)
            ids = torch.full((len(chunk), T), self.pad_id, dtype=torch.long)
            att = torch.zeros((len(chunk), T), dtype=torch.long)
            for r, (_, p, c) in enumerate(chunk):
                ids[r, :len(p) + len(c)] = torch.tensor(p + c)
                att[r, :len(p) + len(c)] = 1
            pos = (att.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=False).logits
            for r, (i, p, c) in enumerate(chunk):
                lp = torch.log_softmax(logits[r, len(p) - 1:len(p) + len(c) - 1].float() / temperature, -1)
                chosen = lp.gather(-1, torch.tensor(c)[:, None]).squeeze(-1).tolist()
                top_v, top_i = (lp.topk(min(k, lp.shape[-1]), dim=-1) if k > 0 else (None, None))
                out = []
                for j, t in enumerate(c):
                    top = ([(int(a), self.token_text(int(a)), float(v))
                            for a, v in zip(top_i[j].tolist(), top_v[j].tolist())] if k > 0 else [])
                    out.append(TokenLogprob(t, self.token_text(t), float(chosen[j]), top))
                choices[i].logprobs = out
