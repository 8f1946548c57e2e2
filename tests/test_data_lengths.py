"""Lengths and chat templates (issue 25): max_length from the model's context, no silent training on
rows whose response was truncated away, and a chat template from the config."""
import warnings

import pytest

from alignstack.config import ConfigError, DataConfig, ModelConfig, load
from alignstack.data.formats import DataError
from alignstack.data.render import ChatRenderer
from alignstack.data.sources import write_jsonl
from alignstack.models.load import context_length, resolve_max_length

LONG = "word " * 400


def test_max_length_defaults_from_the_model_context(nano):
    from transformers import GPT2Config

    assert context_length(nano["path"]) == nano["model"].config.max_position_embeddings == 256
    assert context_length(GPT2Config(n_positions=77)) == 77
    mc = ModelConfig(path=str(nano["path"]))
    assert mc.max_length is None and resolve_max_length(mc) == 256 and mc.max_length == 256
    mc = ModelConfig(path=str(nano["path"]), max_length=40)          # a user's value stays
    assert resolve_max_length(mc, nano["model"]) == 40
    from alignstack.methods.sft import SFTConfig
    assert load(SFTConfig).model.max_length is None                   # no hidden 96 in the method defaults


def test_a_truncated_away_response_is_refused_or_dropped_with_counts(nano):
    tok = nano["tokenizer"]
    long = [{"role": "user", "content": LONG}, {"role": "assistant", "content": "ok"}]
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    with pytest.raises(DataError) as e:
        ChatRenderer(tok, 64, empty_target="error").messages(long, {"file": "d.jsonl", "row": 4})
    assert "d.jsonl, row 4" in str(e.value) and "data.drop_empty_targets=true" in str(e.value)
    r = ChatRenderer(tok, 64, empty_target="drop")
    out = [r.messages(m) for m in (long, short, long)]
    assert out[0] is None and out[2] is None and out[1] is not None
    with pytest.warns(UserWarning, match="d.jsonl: dropped 2 of 3 rendered rows .* max_length=64"):
        r.warn_dropped("d.jsonl")
    keep = ChatRenderer(tok, 64)                                       # scoring keeps (and counts) them
    assert keep.messages(long) is not None and keep.stats.empty_target == 1


def _sft(nano, tmp_path, *over):
    from alignstack.methods import sft
    rows = [{"prompt": LONG if i % 3 == 0 else "hi", "completion": "ok"} for i in range(6)]
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = load(sft.SFTConfig, overrides=[f"out={tmp_path}/out", f"model.path={nano['path']}", f"data.path={p}",
                                         "optim.max_steps=1", "optim.batch_size=2", "log.progress=false", *over])
    return sft.train(cfg), cfg


def test_sft_refuses_rows_that_lose_their_target_unless_allowed(nano, tmp_path):
    with pytest.raises(DataError, match=r"d.jsonl, row 1: the response is truncated away at max_length=256"):
        _sft(nano, tmp_path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res, cfg = _sft(nano, tmp_path, "data.drop_empty_targets=true")
    assert cfg.model.max_length == 256                                 # from the model, recorded in the config
    assert res["render"]["dropped_empty_target"] == 2 and res["steps"] == 1
    assert any("dropped 2 of 6 rendered rows" in str(x.message) for x in w)


def test_chat_template_from_a_string_or_a_file(nano, tmp_path):
    from alignstack.models.load import load_tokenizer, prepare_model
    tpl = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}" \
          "{% if add_generation_prompt %}[assistant] {% endif %}"
    f = tmp_path / "tpl.jinja"
    f.write_text(tpl)
    for spec in (tpl, str(f)):
        _, tok = prepare_model(ModelConfig(path=str(nano["path"]), chat_template=spec))
        assert tok.chat_template == tpl
        x = ChatRenderer(tok, 64).prompt_completion([{"role": "user", "content": "hi"}], "ok")
        assert tok.decode(x.input_ids).startswith("[user] hi\n[assistant] ok")
    with pytest.raises(ConfigError, match="neither a Jinja template .* nor an existing file"):
        load_tokenizer(nano["path"], str(tmp_path / "nope.jinja"))


def test_a_tokenizer_without_a_template_gives_one_line_telling_the_fix(nano):
    tok = load_tok = nano["tokenizer"]
    saved, tok.chat_template = tok.chat_template, None
    try:
        with pytest.raises(DataError) as e:
            ChatRenderer(load_tok)
        assert "set model.chat_template" in str(e.value) and "\n" not in str(e.value)
    finally:
        tok.chat_template = saved


def test_data_config_names_the_flag():
    assert DataConfig().drop_empty_targets is False
