import json

import pytest

from alignstack.data.formats import DataError, ranking_to_pairs, validate_row
from alignstack.data.render import ChatRenderer
from alignstack.data.sources import read_rows


def test_renderer_loss_mask_covers_assistant_turns_only(nano):
    tok = nano["tokenizer"]
    r = ChatRenderer(tok, max_length=128)
    msgs = [{"role": "user", "content": "What is 3 + 5?"}, {"role": "assistant", "content": "The answer is 8."},
            {"role": "user", "content": "Sort: b a"}, {"role": "assistant", "content": "a b."}]
    x = r.messages(msgs)
    targets = tok.decode([i for i, m in zip(x.input_ids, x.loss_mask) if m])
    assert targets == "The answer is 8.<|end|>a b.<|end|>"
    prompt_part = tok.decode([i for i, m in zip(x.input_ids, x.loss_mask) if not m])
    assert "What is 3 + 5?" in prompt_part and "The answer" not in prompt_part
    # the prompt ends where generation starts
    p = r.prompt_ids(msgs[:1])
    assert x.input_ids[:len(p)] == p and x.loss_mask[len(p)] == 1


def test_renderer_works_with_a_template_without_generation_markers(nano):
    tok = nano["tokenizer"]
    saved = tok.chat_template
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    try:
        x = ChatRenderer(tok).prompt_completion([{"role": "user", "content": "hi"}], "It is blue.")
        assert tok.decode([i for i, m in zip(x.input_ids, x.loss_mask) if m]).strip() == "It is blue.\n".strip()
    finally:
        tok.chat_template = saved


def test_renderer_renders_a_repeated_prompt_once_with_the_same_tokens(nano, monkeypatch):
    """K completions of one prompt (online RL, rejection sampling, reward scoring): the prompt is rendered once and
    each conversation once (not prompt, conversation and conversation again), with the tokens and masks of a
    renderer that remembers nothing."""
    tok = nano["tokenizer"]
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sort: c a b"}]
    completions = [f"a b c, take {i}." for i in range(8)]
    fresh = []
    for c in completions:
        r0 = ChatRenderer(tok, max_length=128)
        fresh.append((r0.prompt_ids(prompt), r0.prompt_completion(prompt, c)))
    calls = []
    real = type(tok).apply_chat_template
    monkeypatch.setattr(type(tok), "apply_chat_template", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    r = ChatRenderer(tok, max_length=128)
    got = [(r.prompt_ids(prompt), r.prompt_completion(prompt, c)) for c in completions]
    assert got == fresh
    assert len(calls) == 1 + len(completions)
    ids = r.prompt_ids(prompt)
    ids.append(-1)                              # a caller's change must not reach the next caller
    assert r.prompt_ids(prompt) == fresh[0][0]


def test_overlong_policy_is_counted(nano):
    tok = nano["tokenizer"]
    msgs = [{"role": "user", "content": "a " * 100}, {"role": "assistant", "content": "b " * 100}]
    r = ChatRenderer(tok, max_length=32, overlong="truncate")
    assert len(r.messages(msgs).input_ids) == 32 and r.stats.truncated == 1
    r = ChatRenderer(tok, max_length=32, overlong="drop")
    assert r.messages(msgs) is None and r.stats.dropped == 1
    with pytest.raises(DataError, match="max_length=32"):
        ChatRenderer(tok, max_length=32, overlong="error").messages(msgs, {"file": "x.jsonl", "row": 3})


def write(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_malformed_json_line_names_file_and_row(tmp_path):
    p = write(tmp_path, ['{"text": "ok"}', '{"text": "broken'])
    with pytest.raises(DataError) as e:
        read_rows(p, "text")
    assert str(p) in str(e.value) and "row 2" in str(e.value) and "malformed JSON" in str(e.value)


@pytest.mark.parametrize("row,field,msg", [
    ({"prompt": "x", "rejected": "y"}, "chosen", "missing required field"),
    ({"prompt": "x", "chosen": 3, "rejected": "y"}, "chosen", "expected a string, got int"),
    ({"prompt": "x", "chosen": "  ", "rejected": "y"}, "chosen", "empty"),
    ({"prompt": "x", "chosen": "a", "rejected": "y", "strength": "much_better"}, "strength", "unknown strength"),
])
def test_bad_preference_rows(tmp_path, row, field, msg):
    p = write(tmp_path, [json.dumps({"prompt": "ok", "chosen": "a", "rejected": "b"}), json.dumps(row)])
    with pytest.raises(DataError) as e:
        read_rows(p, "preference")
    s = str(e.value)
    assert "row 2" in s and f"field '{field}'" in s and msg in s


@pytest.mark.parametrize("ranking,msg", [([0, 0, 1], "duplicates: [0]"), ([0, 1], "K mismatch")])
def test_bad_rankings(ranking, msg):
    with pytest.raises(DataError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        validate_row("ranking", {"prompt": "p", "responses": ["a", "b", "c"], "ranking": ranking}, row_number=1)


def test_missing_file_and_prompt():
    with pytest.raises(DataError, match="file not found"):
        read_rows("/nonexistent/x.jsonl")
    with pytest.raises(DataError, match="field 'prompt'"):
        validate_row("ranking", {"responses": ["a", "b"], "ranking": [0, 1]})


def test_ranking_to_pairs_and_sources(tmp_path):
    row = validate_row("ranking", {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [2, 0, 1],
                                   "safe": [True, False, True]})
    pairs = ranking_to_pairs(row)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("c", "a"), ("c", "b"), ("a", "b")]
    assert pairs[1]["rejected_safe"] is False
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist([{"text": "hello"}]), tmp_path / "t.parquet")
    assert read_rows(tmp_path / "t.parquet", "text") == [{"text": "hello"}]
    from datasets import Dataset
    Dataset.from_list([{"text": "hi"}]).save_to_disk(str(tmp_path / "ds"))
    assert read_rows(tmp_path / "ds", "text") == [{"text": "hi"}]
