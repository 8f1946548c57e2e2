"""The one renderer: chat template → ``input_ids`` + ``loss_mask``, used by every stage.

Masking convention: ``loss_mask[t] = 1`` iff ``input_ids[t]`` is a training target (assistant
content and its end-of-turn token for SFT; every token for plain text). It works with any
Hugging Face chat template, including ones without ``{% generation %}`` markers: assistant spans
are found by rendering each prefix with ``add_generation_prompt=True`` and comparing texts, then
mapped to tokens through the tokenizer's character offsets, so no template-specific parsing is
needed.

Over-long rows follow ``overlong``: ``"truncate"`` (keep the start, cut the end — the loss mask
is cut with it), ``"drop"`` (the row is skipped) or ``"error"``; :attr:`ChatRenderer.stats`
counts truncated and dropped rows so trainers can report them.

A truncated row can lose its whole target (a long prompt pushes the response past ``max_length``)
and would then train on nothing. ``empty_target`` decides: ``"keep"`` (count it; scoring and
rollouts, where the row is not a training example), ``"error"`` (training's default: refuse, naming
the row) or ``"drop"`` (skip it; :meth:`ChatRenderer.warn_dropped` reports the count).

Assistant ``tool_calls`` are rendered by templates that know them; for a template that does not,
they are appended to the turn's text as JSON, so the model still learns to make the call.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

from alignstack.data.formats import DataError

OVERLONG = ("truncate", "drop", "error")
EMPTY_TARGET = ("keep", "error", "drop")


@dataclass
class Rendered:
    input_ids: list[int]
    loss_mask: list[int]


@dataclass
class RenderStats:
    rendered: int = 0
    truncated: int = 0
    dropped: int = 0
    empty_target: int = 0
    dropped_empty_target: int = 0


@dataclass
class ChatRenderer:
    tokenizer: object
    max_length: int | None = 256      # None: the context of the model the tokenizer was saved with
    overlong: str = "truncate"
    empty_target: str = "keep"
    stats: RenderStats = field(default_factory=RenderStats)
    # prompts rendered with the generation marker, by their JSON text: online methods, rejection sampling, reward
    # scoring and evaluation render each prompt once per completion, K times in a row, and a Jinja render costs
    # ~40 µs against ~3 µs for the key (rows that are not plain JSON are rendered every time)
    _prompts: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.overlong not in OVERLONG:
            raise ValueError(f"overlong must be one of {OVERLONG}, got {self.overlong!r}")
        if self.empty_target not in EMPTY_TARGET:
            raise ValueError(f"empty_target must be one of {EMPTY_TARGET}, got {self.empty_target!r}")
        if getattr(self.tokenizer, "chat_template", None) is None:
            from alignstack.models.tokenizer import NO_TEMPLATE
            raise DataError(NO_TEMPLATE)
        self._tools_native = "tool_calls" in str(self.tokenizer.chat_template)
        if self.max_length is None:
            from alignstack.models.load import context_length
            n = context_length(getattr(self.tokenizer, "name_or_path", "") or ".")
            tm = getattr(self.tokenizer, "model_max_length", None)
            self.max_length = n or (tm if isinstance(tm, int) and tm < 1_000_000 else 1024)

    def _prep(self, messages: list[dict]) -> list[dict]:
        if self._tools_native or not any(m.get("tool_calls") for m in messages):
            return messages
        return [{**m, "content": (m["content"] + "\n" if m["content"] else "") + json.dumps(m["tool_calls"])}
                if m.get("tool_calls") else m for m in messages]

    def _text(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(self._prep(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def _prompt(self, messages: list[dict]) -> tuple[str, list[int]]:
        """A prompt's text with the generation marker and its token ids, memoised (see ``_prompts``)."""
        try:
            key = json.dumps(messages, ensure_ascii=False)      # key order kept: a template may iterate a dict
        except (TypeError, ValueError):
            key = None
        hit = self._prompts.get(key) if key is not None else None
        if hit is None:
            text = self._text(messages, True)
            hit = (text, self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if key is not None:
                if len(self._prompts) >= 256:        # bounded: repeats come K in a row, and long prompts are large
                    self._prompts.clear()
                self._prompts[key] = hit
        return hit

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of a prompt, ending where the assistant's reply begins."""
        ids = list(self._prompt(messages)[1])         # a copy: the memo's list must not be changed by a caller
        if len(ids) >= self.max_length:
            # keep the end of an over-long prompt: the generation marker must survive
            self.stats.truncated += 1
            if self.overlong == "error":
                raise DataError(f"prompt has {len(ids)} tokens, more than max_length={self.max_length}")
            ids = ids[-(self.max_length // 2):]
        return ids

    def messages(self, messages: list[dict], where: dict | None = None) -> Rendered | None:
        """A conversation with the loss on every assistant turn.

        Assistant spans are located in characters (prompt-with-generation-marker vs conversation up
        to that turn), then the whole text is tokenized once and a token is a target iff it overlaps
        a span — robust to BPE merges across the boundary."""
        spans, full = [], None
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prefix = self._prompt(messages[:i])[0]
            full = self._text(messages[: i + 1], False)
            if not full.startswith(prefix):
                raise DataError("chat template is not prefix-stable: rendering the conversation up to an "
                                "assistant turn does not start with the rendered prompt", **(where or {}))
            spans.append((len(prefix), len(full)))
        # a conversation that ends on an assistant turn was just rendered whole as that turn's ``full``
        text = full if messages and messages[-1]["role"] == "assistant" else self._text(messages, False)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        mask = [int(any(s < b and e > a for a, b in spans)) for s, e in enc["offset_mapping"]]
        return self._finish(list(enc["input_ids"]), mask, where)

    def prompt_completion(self, prompt: list[dict], completion: str, where: dict | None = None) -> Rendered | None:
        return self.messages(prompt + [{"role": "assistant", "content": completion}], where)

    def raw_completion(self, prompt: str, completion: str, where: dict | None = None) -> Rendered | None:
        """Plain text, no chat template (TRL's standard prompt/completion format): BOS + prompt + completion, the
        loss on the completion's tokens. Each part is tokenized on its own so the boundary is exact."""
        bos = self.tokenizer.bos_token_id
        head = ([] if bos is None else [bos]) + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        tail = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        return self._finish(head + tail, [0] * len(head) + [1] * len(tail), where)

    def text(self, text: str, where: dict | None = None) -> Rendered | None:
        bos = self.tokenizer.bos_token_id          # None for tokenizers without one (Qwen2): no BOS then
        ids = ([] if bos is None else [bos]) + self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._finish(ids, [0] + [1] * (len(ids) - 1), where)   # the first token has no context

    def _finish(self, ids: list[int], mask: list[int], where: dict | None) -> Rendered | None:
        self.stats.rendered += 1
        if len(ids) > self.max_length:
            if self.overlong == "error":
                raise DataError(f"row has {len(ids)} tokens, more than max_length={self.max_length}; "
                                "raise max_length or set overlong=truncate|drop", **(where or {}))
            if self.overlong == "drop":
                self.stats.dropped += 1
                return None
            self.stats.truncated += 1
            ids, mask = ids[: self.max_length], mask[: self.max_length]
        if not any(mask):
            self.stats.empty_target += 1
            if self.empty_target == "error":
                raise DataError(f"the response is truncated away at max_length={self.max_length} (the row would "
                                "train on nothing); raise model.max_length or set data.drop_empty_targets=true "
                                "to drop such rows", **(where or {}))
            if self.empty_target == "drop":
                self.stats.dropped_empty_target += 1
                return None
        return Rendered(ids, mask)

    def warn_dropped(self, source: str) -> None:
        """One warning with the counts, after a data set was rendered with ``empty_target="drop"``."""
        n = self.stats.dropped_empty_target
        if n:
            warnings.warn(f"{source}: dropped {n} of {self.stats.rendered} rendered rows whose response was "
                          f"truncated away at max_length={self.max_length}", stacklevel=2)


def training_renderer(tokenizer, model_cfg, data_cfg) -> ChatRenderer:
    """The renderer a training method uses: ``model.max_length``, ``data.overlong``, and a row whose
    response is truncated away refused (or, with ``data.drop_empty_targets``, dropped and counted)."""
    return ChatRenderer(tokenizer, model_cfg.max_length, data_cfg.overlong,
                        "drop" if getattr(data_cfg, "drop_empty_targets", False) else "error")
