"""SFT with pretraining replay (``replay_path`` / ``replay_frac``): documents mixed into the demonstrations with
the loss on every token, as many as asked, seeded; clear errors for a bad fraction, a missing file or bad rows."""
import json

import pytest

from alignstack.config import ConfigError, load
from alignstack.data.formats import DataError
from alignstack.data.render import ChatRenderer
from alignstack.methods import sft


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_replay_items_count_mask_and_seed(nano, tmp_path):
    docs = _write(tmp_path / "docs.jsonl", [{"text": f"The creature number {i} is blue."} for i in range(7)])
    r = ChatRenderer(nano["tokenizer"], 128)

    def cfg(frac, seed=0):
        return load(sft.SFTConfig, overrides=[f"replay_path={docs}", f"replay_frac={frac}", f"seed={seed}"])

    assert sft.replay_documents(cfg(0.0), 40) == []
    items = sft.replay_items(r, cfg(0.25), sft.replay_documents(cfg(0.25), 40))
    assert len(items) == 10                                   # more than the file holds: drawn again after 7
    assert all(x.loss_mask[1:] == [1] * (len(x.input_ids) - 1) for x in items)   # loss on every token
    texts = [nano["tokenizer"].decode(x.input_ids[1:]) for x in items]
    assert len(set(texts[:7])) == 7                           # the first pass draws without replacement
    assert sft.replay_documents(cfg(0.25), 40) == sft.replay_documents(cfg(0.25), 40)
    assert sft.replay_documents(cfg(0.25, seed=1), 40) != sft.replay_documents(cfg(0.25), 40)


def test_sft_trains_with_replay_and_reports_it(nano, tmp_path):
    rows = _write(tmp_path / "sft.jsonl", [{"messages": [{"role": "user", "content": f"Say {i}."},
                                                         {"role": "assistant", "content": f"{i}."}]}
                                           for i in range(20)])
    docs = _write(tmp_path / "docs.jsonl", [{"text": "The kaquo is red."}] * 3)
    over = [f"out={tmp_path / 'out'}", f"model.path={nano['path']}", f"data.path={rows}", f"replay_path={docs}",
            "replay_frac=0.5", "optim.epochs=1.0", "optim.batch_size=10", "log.progress=false"]
    res = sft.train(load(sft.SFTConfig, overrides=over))
    assert res["replay_rows"] == 10 and res["steps"] == 3     # 20 demonstrations + 10 documents, batches of 10


def test_replay_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="replay_frac"):
        load(sft.SFTConfig, overrides=["replay_frac=-0.1", "replay_path=x.jsonl"])
    with pytest.raises(ConfigError, match="replay_path"):
        load(sft.SFTConfig, overrides=["replay_frac=0.2"])
    def docs(path):
        return sft.replay_documents(load(sft.SFTConfig, overrides=[f"replay_path={path}", "replay_frac=1.0"]), 4)

    with pytest.raises(DataError, match=r"bad\.jsonl.*row 2"):
        docs(_write(tmp_path / "bad.jsonl", [{"text": "fine"}, {"txt": "oops"}]))
    with pytest.raises((DataError, FileNotFoundError, SystemExit), match="missing"):
        docs(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):          # never an endless draw from nothing
        docs(empty)
