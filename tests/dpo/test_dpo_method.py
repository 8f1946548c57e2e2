"""CPU smoke tests of the DPO-family method on a nano model: every loss type trains (all
trainable parameter tensors change, the loss on a fixed full batch falls), the reference modes
agree, the reference cache is reused, bad data is rejected, shipped configs load."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignstack.config import ConfigError, load
from alignstack.data.formats import DataError
from alignstack.methods import dpo

ROOT = Path(__file__).resolve().parents[2]
FAST = ["log.progress=false", "optim.batch_size=16", "optim.warmup_steps=0", "optim.schedule=constant",
        "optim.grad_clip=0"]


@pytest.fixture(autouse=True, scope="module")
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(tmp_path, nano, data, *over):
    return load(dpo.DPOConfig, overrides=[f"out={tmp_path / 'run'}", f"model.path={nano['path']}",
                                          f"data.path={data}", "data.n_rows=16", *FAST, *over])


def _weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(path) / "model.safetensors"))


CASES = [
    ("sigmoid", ["beta=0.5"]),
    ("sigmoid", ["beta=0.5", "label_smoothing=0.1", "rpo_alpha=0.2"]),   # cDPO + RPO term
    ("ipo", ["beta=0.5"]),
    ("hinge", ["beta=0.5"]),
    ("robust", ["beta=0.5", "label_smoothing=0.1"]),
    ("simpo", ["beta=2.0", "simpo_gamma=0.5"]),
    ("orpo", ["orpo_lambda=0.1"]),
    ("kto", ["beta=0.5"]),
]


@pytest.mark.parametrize("loss,over", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_every_loss_trains(tmp_path, nano, make_pairs, loss, over):
    from alignstack.data.sources import write_jsonl

    # 16 pairs and batch 16: every step sees the same (full) batch, so its loss must fall
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(16))
    cfg = _cfg(tmp_path, nano, data, f"loss={loss}", "optim.lr=2e-3", "optim.max_steps=6", *over)
    res = dpo.train(cfg)
    hist = res["history"]
    assert len(hist) == 6 and res["steps"] == 6
    assert hist[-1]["loss"] < hist[0]["loss"] - 1e-3, [h["loss"] for h in hist]
    before, after = _weights(nano["path"]), _weights(tmp_path / "run" / "model")
    assert set(before) == set(after)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"parameters that did not change: {unchanged}"
    assert res["reference"] == ("none" if loss in ("simpo", "orpo") else "precomputed")
    if loss != "kto":
        assert hist[-1]["rewards/margins"] > hist[0]["rewards/margins"]
        assert {"rewards/chosen", "rewards/rejected", "rewards/accuracy"} <= set(hist[-1])


def test_kto_reads_unpaired_rows(tmp_path, nano, unpaired_file):
    res = dpo.train(_cfg(tmp_path, nano, unpaired_file, "loss=kto", "optim.lr=2e-3", "optim.max_steps=3"))
    assert res["examples"] == 48 and res["steps"] == 3
    assert "kto/kl" in res["history"][-1]


def test_reference_cache_is_reused(tmp_path, nano, pairs_file, make_pairs, monkeypatch):
    cfg = _cfg(tmp_path, nano, pairs_file, "optim.max_steps=2", "optim.lr=1e-3")
    first = dpo.train(cfg)
    assert first["ref_cache"] == "miss"
    assert len(list((tmp_path / "run" / "ref_logps").glob("*.pt"))) == 1

    def boom(*a, **k):
        raise AssertionError("reference log-probs recomputed despite the cache")

    monkeypatch.setattr(dpo, "score_items", boom)
    second = dpo.train(cfg)
    assert second["ref_cache"] == "hit"
    assert second["history"][0]["loss"] == pytest.approx(first["history"][0]["loss"], abs=1e-7)
    assert second["history"][-1]["loss"] == pytest.approx(first["history"][-1]["loss"], abs=1e-6)
    # different data -> a different key -> recomputed
    monkeypatch.undo()
    from alignstack.data.sources import write_jsonl

    other = _cfg(tmp_path, nano, write_jsonl(tmp_path / "other.jsonl", make_pairs(20)), "optim.max_steps=1")
    assert dpo.train(other)["ref_cache"] == "miss"


def test_precomputed_and_live_reference_agree(tmp_path, nano, pairs_file):
    runs = {}
    for mode in ("precomputed", "live"):
        cfg = _cfg(tmp_path / mode, nano, pairs_file, f"reference={mode}", "optim.max_steps=3", "optim.lr=2e-3",
                   "beta=0.5")
        runs[mode] = dpo.train(cfg)["history"]
    for a, b in zip(runs["precomputed"], runs["live"]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["rewards/margins"] == pytest.approx(b["rewards/margins"], abs=1e-5)


def test_lora_base_reference_matches_precomputed(tmp_path, nano, pairs_file):
    pytest.importorskip("peft")
    runs = {}
    for mode in ("precomputed", "lora_base"):
        cfg = _cfg(tmp_path / mode, nano, pairs_file, f"reference={mode}", "optim.max_steps=3", "optim.lr=5e-3",
                   "beta=0.5", "model.lora.enabled=true")
        res = dpo.train(cfg)
        runs[mode] = res["history"]
        assert (tmp_path / mode / "run" / "adapter").exists()
    assert runs["lora_base"][-1]["rewards/margins"] != pytest.approx(0.0, abs=1e-6)
    for a, b in zip(runs["precomputed"], runs["lora_base"]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)


def test_bad_data_and_config_are_rejected(tmp_path, nano, unpaired_file):
    with pytest.raises(DataError, match="kto"):
        dpo.train(_cfg(tmp_path, nano, unpaired_file, "loss=sigmoid"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "chosen": "a"}\n')
    with pytest.raises(DataError, match="rejected"):
        dpo.train(_cfg(tmp_path, nano, bad))
    with pytest.raises(ConfigError, match="loss must be one of"):
        load(dpo.DPOConfig, overrides=["loss=nope"])
    with pytest.raises(ConfigError, match="needs a reference"):
        load(dpo.DPOConfig, overrides=["reference=none"])
    with pytest.raises(ConfigError, match="label_smoothing"):
        load(dpo.DPOConfig, overrides=["loss=ipo", "label_smoothing=0.1"])


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("dpo*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load(dpo.DPOConfig, path)
    assert cfg.loss in dpo.LOSSES and cfg.reference in dpo.REFERENCES
