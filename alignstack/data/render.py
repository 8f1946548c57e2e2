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
"""
from __future__ import annotations

from dataclasses import dataclass, field

from alignstack.data.formats import DataError

OVERLONG = ("truncate", "drop", "error")


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


@dataclass
class ChatRenderer:
    tokenizer: object
    max_length: int = 256
    overlong: str = "truncate"
    stats: RenderStats = field(default_factory=RenderStats)

    def __post_init__(self):
        if self.overlong not in OVERLONG:
            raise ValueError(f"overlong must be one of {OVERLONG}, got {self.overlong!r}")
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; set tokenizer.chat_template "
                             "(alignstack's world tokenizer ships one)")

    def _text(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _ids(self, messages: list[dict], add_generation_prompt: bool) -> list[int]:
        return self.tokenizer(self._text(messages, add_generation_prompt), add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of a prompt, ending where the assistant's reply begins."""
        ids = self._ids(messages, True)
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
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prefix = self._text(messages[:i], True)
            full = self._text(messages[: i + 1], False)
            if not full.startswith(prefix):
                raise DataError("chat template is not prefix-stable: rendering the conversation up to an "
                                "assistant turn does not start with the rendered prompt", **(where or {}))
            spans.append((len(prefix), len(full)))
        text = self._text(messages, False)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        mask = [int(any(s < b and e > a for a, b in spans)) for s, e in enc["offset_mapping"]]
        return self._finish(list(enc["input_ids"]), mask, where)

    def prompt_completion(self, prompt: list[dict], completion: str, where: dict | None = None) -> Rendered | None:
        return self.messages(prompt + [{"role": "assistant", "content": completion}], where)

    def text(self, text: str, where: dict | None = None) -> Rendered | None:
        ids = [self.tokenizer.bos_token_id] + self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._finish(ids, [0] + [1] * (len(ids) - 1), where)

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
        return Rendered(ids, mask)
