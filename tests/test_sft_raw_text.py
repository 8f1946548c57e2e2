"""SFT on plain-text prompt/completion rows (``data.raw_text``, TRL's standard format): no chat template, the
loss on the completion only; clear errors for rows that are not plain strings."""
import json

import pytest

from alignstack.config import load
from alignstack.data.formats import DataError
from alignstack.data.render import ChatRenderer
from alignstack.methods import sft


def test_raw_completion_masks_the_prompt(nano):
    tok = nano["tokenizer"]
    r = ChatRenderer(tok, 128)
    x = r.raw_completion("Question: a b\nRationale:", " fine.")
    head = [tok.bos_token_id] + tok("Question: a b\nRationale:", add_special_tokens=False)["input_ids"]
    tail = tok(" fine.", add_special_tokens=False)["input_ids"]
    assert x.input_ids == head + tail                       # no chat markers anywhere
    assert x.loss_mask == [0] * len(head) + [1] * len(tail)


def test_sft_trains_on_raw_rows_and_names_bad_rows(nano, tmp_path):
    rows = [{"prompt": f"<|judge|>Question: {i}\nRationale:", "completion": " The correct answer is 1.\nBetter:<|A|>"}
            for i in range(40)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    over = [f"out={tmp_path / 'out'}", f"model.path={nano['path']}", f"data.path={data}", "data.raw_text=true",
            "optim.epochs=2.0", "optim.batch_size=8", "optim.lr=3e-3", "optim.warmup_steps=0", "log.progress=false", "log.every=1"]
    res = sft.train(load(sft.SFTConfig, overrides=over))
    assert (tmp_path / "out" / "model" / "config.json").exists()
    first = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert res["train_loss"] < first                      # the completion is learned
    data.write_text(json.dumps({"prompt": [{"role": "user", "content": "hi"}], "completion": "x"}) + "\n")
    with pytest.raises(DataError, match=r"rows\.jsonl.*row 1.*prompt.*raw_text"):
        sft.train(load(sft.SFTConfig, overrides=over))
