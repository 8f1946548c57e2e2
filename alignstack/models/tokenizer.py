"""The world's tokenizer: byte-level BPE trained on the world corpus, digits split one per token.

Every special token any later stage needs is reserved up front (``corpus.SPECIAL_TOKENS``: PAD
distinct from EOS, chat role markers, HIR's ``<correct>``/``<wrong>``, judge options, critique /
revision markers, 1–10 rating tokens, spare slots), so no stage ever has to grow the vocabulary and
invalidate a checkpoint. EOS is ``<|end|>`` (end of a turn), the stop token of every generation.
"""
from __future__ import annotations

from collections.abc import Iterable

# The reserved tokens, in id order. The world writes its corpus with the same markers
# (``world.corpus.SPECIAL_TOKENS``; a test keeps the two equal) — listed here so the model layer never
# imports the world.
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
                  "<correct>", "<wrong>", "<|judge|>", "<|A|>", "<|B|>", "<|critique|>", "<|revise|>", "<|rate|>",
                  *(f"<|r{i}|>" for i in range(1, 11)), *(f"<|reserved_{i}|>" for i in range(8)))

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


NO_TEMPLATE = ("the tokenizer has no chat template; set model.chat_template to a Jinja template string or a "
               "file holding one (alignstack's world tokenizer ships one)")


def set_chat_template(tokenizer, spec: str | None):
    """``model.chat_template``: a Jinja template string, or the path of a file holding one, replaces
    the tokenizer's own (and is saved with it)."""
    from pathlib import Path

    from alignstack.config import ConfigError

    if spec is None:
        return tokenizer
    if "{{" in spec or "{%" in spec:
        tokenizer.chat_template = spec
        return tokenizer
    p = Path(spec).expanduser()
    if not p.is_file():
        raise ConfigError(f"model.chat_template: {spec!r} is neither a Jinja template (no '{{{{' or '{{%') "
                          "nor an existing file")
    text = p.read_text()
    if "{{" not in text and "{%" not in text:
        raise ConfigError(f"model.chat_template: {p} holds no Jinja template (no '{{{{' or '{{%')")
    tokenizer.chat_template = text
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int = 768):
    """Train the world tokenizer; returns a ``PreTrainedTokenizerFast`` (saves as a normal HF tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    t = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<|end|>",
                                unk_token="<unk>",
                                additional_special_tokens=[s for s in SPECIAL_TOKENS
                                                           if s not in ("<pad>", "<s>", "<|end|>", "<unk>")])
    t.chat_template = CHAT_TEMPLATE
    t.padding_side = "right"
    return t


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end a generation: the tokenizer's EOS plus the world's turn/document ends."""
    ids = {tokenizer.eos_token_id}
    for s in ("<|end|>", "</s>"):
        i = tokenizer.convert_tokens_to_ids(s)
        if i is not None and i != tokenizer.unk_token_id:
            ids.add(i)
    return sorted(i for i in ids if i is not None)
