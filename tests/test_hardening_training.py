"""Hardening of the training inputs (issue 23): data files that are not UTF-8 or are nested too
deeply, out-of-range configs and a file given as ``model.path`` all stop with one line naming
file / row / byte offset or the config key (never a traceback); stale checkpoint temp folders are
removed; and a fuzz corpus of malformed data files gives one clear DataError each."""
from __future__ import annotations

import json
import random

import pytest

from alignstack.config import ConfigError, DataConfig, load
from alignstack.data.formats import DataError
from alignstack.data.sources import read_rows

SFT_ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
PREF_ROW = {"prompt": "p", "chosen": "a", "rejected": "b"}


def _jsonl(path, rows) -> bytes:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    path.write_bytes(data)
    return data


def test_non_utf8_jsonl_names_file_row_and_byte_offset(tmp_path):
    p = tmp_path / "sft.jsonl"
    good = json.dumps(SFT_ROW).encode() + b"\n"
    bad = json.dumps(SFT_ROW).encode().replace(b"hello", b"h\xe9llo") + b"\n"  # Latin-1 e-acute
    p.write_bytes(good + good + bad)
    with pytest.raises(DataError) as e:
        read_rows(p)
    msg = str(e.value)
    offset = 2 * len(good) + bad.index(b"\xe9")
    assert msg.startswith(f"{p}, row 3: not valid UTF-8: byte 0xe9 at byte offset {offset}"), msg
    assert "\n" not in msg


def test_non_utf8_json_array_counts_the_line(tmp_path):
    p = tmp_path / "prefs.json"
    p.write_bytes(b'[\n{"prompt": "p", "chosen": "a", "rejected": "b"},\n{"prompt": "\xff"}]')
    with pytest.raises(DataError, match=r"prefs\.json: not valid UTF-8: byte 0xff at byte offset 63 \(line 3\)"):
        read_rows(p)


def test_every_trainer_loader_reports_bad_bytes_as_one_line(tmp_path):
    """sft, dpo and reward_model all read through data.sources."""
    from alignstack.methods import dpo, reward_model, sft

    p = tmp_path / "rows.jsonl"
    _jsonl(p, [PREF_ROW])
    p.write_bytes(p.read_bytes() + b'{"prompt": "\x80"}\n')
    with pytest.raises(DataError, match="row 2: not valid UTF-8"):
        sft.load_conversations(DataConfig(path=str(p)))
    with pytest.raises(DataError, match="row 2: not valid UTF-8"):
        dpo.load_rows(load(dpo.DPOConfig, None, [f"data.path={p}"]))
    with pytest.raises(DataError, match="row 2: not valid UTF-8"):
        reward_model.load_rows(str(p))


def test_deeply_nested_json_is_a_data_error(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_bytes(json.dumps(SFT_ROW).encode() + b"\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(DataError, match=r"deep\.jsonl, row 2: JSON nested too deeply"):
        read_rows(p)
    q = tmp_path / "deep.json"
    q.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(DataError, match="nested too deeply"):
        read_rows(q)


@pytest.mark.parametrize("override,key", [
    ("optim.batch_size=-4", "optim.batch_size"), ("optim.batch_size=0", "optim.batch_size"),
    ("optim.lr=nan", "optim.lr"), ("optim.lr=.inf", "optim.lr"), ("optim.lr=-1e-3", "optim.lr"),
    ("optim.epochs=0", "optim.epochs"), ("optim.grad_accum=0", "optim.grad_accum"),
    ("optim.betas=[0.9, 1.5]", "optim.betas"), ("optim.weight_decay=.nan", "optim.weight_decay"),
    ("optim.warmup_steps=-1", "optim.warmup_steps"), ("data.n_rows=0", "data.n_rows"),
    ("log.every=0", "log.every"), ("checkpoint.keep=0", "checkpoint.keep"),
    ("model.lora.r=0", "model.lora.r"), ("model.max_length=1", "model.max_length"),
])
def test_config_ranges(override, key):
    from alignstack.methods.sft import SFTConfig

    with pytest.raises(ConfigError) as e:
        load(SFTConfig, None, [override])
    assert str(e.value).startswith(f"command line: {key} must be "), str(e.value)


def test_nested_optim_groups_are_checked_too():
    from alignstack.methods.constitutional import ConstitutionalConfig

    with pytest.raises(ConfigError, match=r"^command line: rm_optim\.lr must be a finite number > 0, got nan"):
        load(ConstitutionalConfig, None, ["rm_optim.lr=nan"])


def test_model_path_that_is_a_file(tmp_path):
    from alignstack.methods.sft import SFTConfig

    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"^command line: model\.path must be a checkpoint folder"):
        load(SFTConfig, None, [f"model.path={f}"])
    load(SFTConfig, None, [f"model.path={tmp_path}"])  # a folder is accepted here (loading checks it)


def test_cli_prints_one_line_for_bad_config_and_bad_bytes(tmp_path, capsys):
    from alignstack.cli import main

    assert main(["sft", "optim.lr=nan", f"out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "optim.lr must be a finite number > 0" in err
    assert "Traceback" not in err
    assert main(["sft", "optim.batch_size=-4", f"out={tmp_path / 'o'}"]) == 2
    assert "optim.batch_size must be an integer ≥ 1, got -4" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim: {lr: .nan}\n")
    assert main(["sft", "--config", str(cfg), f"out={tmp_path / 'o'}"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {cfg}: optim.lr must be")


def test_stale_checkpoint_temps_are_removed(tmp_path):
    from alignstack.train import checkpoint as ckpt

    root = tmp_path / "checkpoints"
    (root / ".tmp-abc123").mkdir(parents=True)
    (root / ".tmp-abc123" / "model.safetensors").write_bytes(b"\0" * 1000)
    (root / "step-00000003").mkdir()
    (root / "step-00000003" / "COMPLETE").write_text("ok")
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000003"
    assert sorted(p.name for p in root.iterdir()) == ["step-00000003"]  # the temp folder is gone
    assert ckpt.remove_stale_temps(tmp_path) == 0


def test_stale_temps_removed_when_a_run_saves(tmp_path):
    import torch

    from alignstack.models.load import build_model
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.train import checkpoint as ckpt

    tok = train_tokenizer(["hello world"] * 4)
    model = build_model("nano", tok, seed=0)
    (tmp_path / "checkpoints" / ".tmp-dead").mkdir(parents=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ckpt.save_checkpoint(tmp_path, 1, model, tok, opt, sched, {}, "x: 1\n")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000001"]


def _malformed_corpus(tmp_path, rng: random.Random, n: int):
    """Files a careless user might hand a trainer: bad bytes, bad JSON, wrong shapes, wrong types."""
    good = json.dumps(SFT_ROW)
    makers = [
        lambda: (".jsonl", good.encode() + b"\n" + bytes([rng.choice([0x80, 0xC0, 0xFF, 0xFE, 0xE9])]) + b"\n"),
        lambda: (".jsonl", good.encode()[:rng.randrange(1, len(good))] + b"\n"),
        lambda: (".jsonl", b"[" * rng.choice([1000, 100_000]) + b"\n"),
        lambda: (".jsonl", json.dumps(rng.choice([1, "s", None, [], [1, 2], True])).encode() + b"\n"),
        lambda: (".jsonl", json.dumps({"messages": rng.choice([None, "hi", [1], [{"role": 5}], []])}).encode()),
        lambda: (".jsonl", json.dumps({"prompt": "p", "chosen": rng.choice([None, 3, [], {}]),
                                       "rejected": "b"}).encode()),
        lambda: (".jsonl", b"\xef\xbb\xbf" + good.encode()),  # a UTF-8 byte-order mark
        lambda: (".jsonl", "\n".join([good] * 3 + ["{" + good]).encode()),
        lambda: (".json", b'{"not": "an array"}'),
        lambda: (".json", b"[" + good.encode() + b","),
        lambda: (".json", good.encode().replace(b"hi", b"h\xffi")),
        lambda: (".jsonl", b""),
        lambda: (".jsonl", b"\n\n  \n"),
        lambda: (".jsonl", good.encode().replace(b"hello", "hé".encode("utf-16"))),
    ]
    for i in range(n):
        suffix, data = makers[i % len(makers)]()
        p = tmp_path / f"bad{i}{suffix}"
        p.write_bytes(data)
        yield p


def test_fuzz_data_loaders_one_clear_error_each(tmp_path):
    rng = random.Random(23)
    tried = clear = 0
    for p in _malformed_corpus(tmp_path, rng, 140):
        for kind in ("messages", "preference"):
            tried += 1
            try:
                read_rows(p, kind)
            except DataError as e:
                msg = str(e)
                assert "\n" not in msg and msg.startswith(str(p)), msg
                clear += 1
            else:
                pytest.fail(f"{p.name}: no error for {p.read_bytes()[:80]!r} as {kind}")
    print(f"data-loader fuzz: {tried} (file, kind) inputs, {clear} one-line DataErrors, "
          f"{tried - clear} other outcomes")
    assert clear == tried
