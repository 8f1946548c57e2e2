"""The public data formats people have, read as published (issue 25), and the errors for rows that fit none."""
import json

import pytest

from alignstack.data.formats import DataError, conversational, resolve_kind, validate_row
from alignstack.data.render import ChatRenderer
from alignstack.data.sources import read_rows, write_jsonl

U = [{"role": "user", "content": "What is 2 + 2?"}]


def test_prompt_chosen_rejected_strings():
    r = validate_row("preference", {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"})
    assert r["prompt"] == U and r["chosen"] == "4" and r["rejected"] == "5"


def test_hh_transcripts_split_the_shared_turns_into_the_prompt():
    pre = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: What is 2 + 2?\n\nAssistant:"
    r = validate_row("preference", {"chosen": pre + " It is 4.", "rejected": pre + " No idea."})
    assert r["prompt"] == [{"role": "user", "content": "Hi there"},
                           {"role": "assistant", "content": "Hello! How can I help?"},
                           {"role": "user", "content": "What is 2 + 2?"}]
    assert (r["chosen"], r["rejected"]) == ("It is 4.", "No idea.")


def test_hh_transcripts_that_diverge_early_are_refused_with_the_row():
    with pytest.raises(DataError) as e:
        validate_row("preference", {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
                                    "rejected": "\n\nHuman: a\n\nAssistant: x\n\nHuman: c\n\nAssistant: d"},
                     file="hh.jsonl", row_number=7)
    assert "hh.jsonl, row 7" in str(e.value) and "share every turn but a final assistant reply" in str(e.value)


def test_ultrafeedback_message_lists_with_a_prompt_string():
    row = {"prompt": "What is 2 + 2?", "prompt_id": "abc", "score_chosen": 9.0,
           "chosen": U + [{"role": "assistant", "content": "4"}],
           "rejected": U + [{"role": "assistant", "content": "5"}]}
    r = validate_row("preference", row)
    assert r["prompt"] == U and r["chosen"] == "4" and r["rejected"] == "5" and r["score_chosen"] == 9.0


def test_trl_implicit_prompt_conversational_keeps_a_system_turn():
    sys_u = [{"role": "system", "content": "Be brief."}] + U
    r = validate_row("preference", {"chosen": sys_u + [{"role": "assistant", "content": "4"}],
                                    "rejected": sys_u + [{"role": "assistant", "content": "5"}]})
    assert r["prompt"] == sys_u and (r["chosen"], r["rejected"]) == ("4", "5")


def test_trl_explicit_prompt_conversational():
    r = validate_row("preference", {"prompt": U, "chosen": [{"role": "assistant", "content": "4"}],
                                    "rejected": [{"role": "assistant", "content": "5"}]})
    assert r["prompt"] == U and (r["chosen"], r["rejected"]) == ("4", "5")


@pytest.mark.parametrize("row", [
    {"prompt": "What is 2 + 2?", "completion": "4", "label": True},                       # TRL standard
    {"prompt": U, "completion": [{"role": "assistant", "content": "4"}], "label": True},  # conversational
    {"completion": U + [{"role": "assistant", "content": "4"}], "label": True},           # implicit prompt
])
def test_trl_kto_unpaired_rows(row):
    r = validate_row("unpaired", row)
    assert r["prompt"] == U and r["completion"] == "4" and r["label"] is True
    assert resolve_kind(None, row, ("unpaired", "preference")) == "unpaired"


def test_sharegpt_conversations_and_the_kind_alias():
    row = {"id": "x1", "conversations": [{"from": "system", "value": "Be brief."},
                                         {"from": "human", "value": "What is 2 + 2?"},
                                         {"from": "gpt", "value": "4"}]}
    for kind in ("messages", "sharegpt"):
        r = validate_row(kind, row)
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"] and r["id"] == "x1"
    with pytest.raises(DataError, match=r"conversations\[0\].from.*unknown speaker 'bot'"):
        validate_row("sharegpt", {"conversations": [{"from": "bot", "value": "hi"}]}, file="s.jsonl", row_number=2)


def test_openai_messages_with_system_and_tool_turns_render_the_call_as_a_target(nano):
    call = [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 2}"}}]
    row = {"messages": [{"role": "system", "content": "You can call add."},
                        {"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]},
                        {"role": "assistant", "content": None, "tool_calls": call},
                        {"role": "tool", "tool_call_id": "c1", "content": "4"},
                        {"role": "assistant", "content": "It is 4."}]}
    r = validate_row("messages", row)
    assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert r["messages"][1]["content"] == "What is 2 + 2?" and r["messages"][2]["tool_calls"] == call
    assert r["messages"][3]["tool_call_id"] == "c1"
    tok = nano["tokenizer"]                   # the world template knows no tool_calls: the call is rendered as JSON
    x = ChatRenderer(tok, 512).messages(r["messages"])
    target = tok.decode([i for i, m in zip(x.input_ids, x.loss_mask) if m])
    assert '"name": "add"' in target and "It is 4." in target and "You can call add" not in target
    assert "<|end|>4<|end|>" not in target    # the tool's result is context, not a target


def test_an_unknown_data_kind_is_named():
    with pytest.raises(DataError, match="unknown data.kind 'sharegtp'"):
        validate_row("sharegtp", {"conversations": []})
    with pytest.raises(DataError, match="x.jsonl: unknown data.kind 'chatml'"):
        resolve_kind("chatml", {}, ("messages", "completion"), file="x.jsonl")
    with pytest.raises(DataError, match="data.kind 'preference' is not a kind of SFT rows"):
        resolve_kind("preference", {}, ("messages", "completion"), file="x.jsonl", what="SFT rows")


def test_sft_reads_sharegpt_files_and_names_an_unknown_kind(tmp_path):
    from alignstack.config import DataConfig
    from alignstack.methods.sft import load_conversations
    p = write_jsonl(tmp_path / "sg.jsonl", [{"conversations": [{"from": "human", "value": "hi"},
                                                               {"from": "gpt", "value": "hello"}]}])
    convs, _ = load_conversations(DataConfig(path=str(p)))
    assert convs == [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]
    with pytest.raises(DataError, match="unknown data.kind 'chatml'"):
        load_conversations(DataConfig(path=str(p), kind="chatml"))


def test_a_row_that_fits_no_format_names_file_row_and_the_formats_tried(tmp_path):
    p = write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"},
                                               {"question": "a", "good": "b", "bad": "c"}])
    with pytest.raises(DataError) as e:
        read_rows(p, "preference")
    msg = str(e.value)
    assert str(p) in msg and "row 2" in msg and "fits no known format" in msg
    assert "HH transcripts" in msg and "UltraFeedback" in msg and "['bad', 'good', 'question']" in msg
    assert "\n" not in msg


def test_conversational_export_round_trips_and_matches_trl_shape():
    r = validate_row("preference", {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5", "margin": 1.0})
    c = conversational(r)
    assert c["prompt"] == U and c["chosen"] == [{"role": "assistant", "content": "4"}]
    assert c["rejected"] == [{"role": "assistant", "content": "5"}] and c["margin"] == 1.0
    assert validate_row("preference", json.loads(json.dumps(c)))["chosen"] == "4"


def test_reward_models_read_hh_rows_and_name_a_wrong_kind(tmp_path):
    from alignstack.methods.reward_model import load_rows
    p = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: Q\n\nAssistant: A",
                                             "rejected": "\n\nHuman: Q\n\nAssistant: B"}])
    for kind in (None, "hh"):
        (r,) = load_rows(str(p), kind)
        assert r["prompt"] == [{"role": "user", "content": "Q"}] and (r["chosen"], r["rejected"]) == ("A", "B")
    with pytest.raises(DataError, match="data.kind 'sharegpt' is not a kind of reward-model rows"):
        load_rows(str(p), "sharegpt")
